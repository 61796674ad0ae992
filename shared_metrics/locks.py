"""One writer per output, and the removal of what dead writers left behind.

:class:`OutputLock` is an advisory lock (``fcntl.flock``, non-blocking) on a lock file beside the
output, ``.NAME.lock`` in its parent folder: a second run into the same output fails at once with a
one-line error naming the holder's PID (and host). The kernel drops a flock when its holder exits,
killed or not, so a stale lock file blocks no one; the holder removes its file when it is done.

:func:`remove_stale_temporaries` removes ``PREFIX.tmp-PID[-XXXXXXXX]SUFFIX`` entries (the
temporary names of this project's atomic writers) whose PID is no longer running: what a killed
writer left. A caller removes only what its own output owns (it holds that output's lock).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a POSIX system: writers are not locked there
    fcntl = None


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this machine (signal 0 delivers nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def remove_stale_temporaries(folder, prefix: str, suffix: str = "") -> list[Path]:
    """Remove ``folder/PREFIX.tmp-PID[-hex]SUFFIX`` files or directories whose PID is dead (not
    this process's, not a running one's). Returns what was removed."""
    folder = Path(folder)
    pattern = re.compile(rf"{re.escape(prefix)}\.tmp-?(\d+)(?:-[0-9a-f]{{8}})?{re.escape(suffix)}")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:  # no folder yet: nothing left there
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except FileNotFoundError:
                pass
        removed.append(entry)
    return removed


def lock_path(output) -> Path:
    """The lock file of an output (a file or folder): ``.NAME.lock`` beside it."""
    p = Path(os.path.abspath(output))
    return p.with_name(f".{p.name}.lock")


#: lock file -> [fd, holders] of the locks this process holds (a lock is re-entrant within it:
#: an entry point may lock its output and then open a writer that locks the same output)
_HELD: dict = {}


class OutputLock:
    """``with OutputLock(out, "--output"):`` holds the lock of ``out`` or raises ``error`` (a
    one-line message naming the holder's PID). ``what`` names the output in messages (the flag
    it came from). Parent folders made for the lock file are removed again if left empty.
    Re-entrant within a process; other processes are refused."""

    def __init__(self, output, what: str = "output", error=OSError):
        self.output, self.what, self.error = Path(output), what, error
        self.path = lock_path(output)
        self.fd: int | None = None
        self._made: list[Path] = []

    def acquire(self) -> OutputLock:
        if self.fd is not None:
            return self
        held = _HELD.get(self.path)
        if held is not None:
            held[1] += 1
            self.fd = held[0]
            return self
        if fcntl is None:
            return self
        missing = []
        p = self.path.parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self.error(f"{self.what} {self.output}: cannot create its folder ({e.strerror})") from None
        self._made = missing  # deepest first
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                self._remove_made()
                raise self.error(
                    f"{self.what} {self.output}: cannot create the lock file {self.path} ({e.strerror})"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                os.close(fd)
                who = (
                    f"PID {holder[0]}"
                    + (f" on {holder[1]}" if len(holder) > 1 and holder[1] != socket.gethostname() else "")
                    if holder
                    else "a process that is just starting"
                )
                raise self.error(
                    f"{self.what} {self.output} is being written by another run ({who}, "
                    f"lock {self.path}): wait for it to finish or choose another "
                    f"{self.what}"
                ) from None
            # The previous holder may have removed the file between our open and our flock: then
            # we hold a lock on a file nobody else sees; start again on the current one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        _HELD[self.path] = [fd, 1]
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        held = _HELD.get(self.path)
        if held is not None and held[0] == self.fd and held[1] > 1:
            held[1] -= 1
            self.fd = None
            return
        _HELD.pop(self.path, None)
        try:
            os.unlink(self.path)  # while still held: no one can lock the removed file meanwhile
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
        self._remove_made()

    def _remove_made(self) -> None:
        for d in self._made:  # folders this lock made, deepest first, only if left empty
            try:
                d.rmdir()
            except OSError:
                break
        self._made = []

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
