"""Run a command with its output written line by line to a log (and echoed), optionally killed whole
after a timeout: what scripts/gpu_check.py runs its steps with."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Logged:
    returncode: int
    killed: bool  # by the timeout
    output: str  # what it printed (only when asked to keep it)


def run_logged(
    cmd: list[str],
    log,
    env: dict,
    prefix: str = "",
    echo: bool = True,
    timeout: float | None = None,
    keep: bool = False,
    lock=None,
) -> Logged:
    """Run ``cmd`` from the repository root, its stdout and stderr written line by line to the open
    file ``log`` and, when ``echo``, to stdout with ``prefix`` (under ``lock`` if several run at
    once). With ``timeout`` it runs in a process group of its own, killed whole after that many
    seconds."""
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=timeout is not None,
        )
    except OSError as e:
        log.write(f"{e}\n")
        return Logged(127, False, str(e))
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(max(1.0, timeout), kill) if timeout is not None else None
    if timer:
        timer.start()
    lines = []
    try:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if keep:
                lines.append(line)
            if echo:
                with lock or contextlib.nullcontext():
                    sys.stdout.write(prefix + line)
                    sys.stdout.flush()
        rc = proc.wait()
    finally:
        if timer:
            timer.cancel()
    return Logged(rc, killed.is_set(), "".join(lines))
