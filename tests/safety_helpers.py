"""Helpers of the tests/test_safety_*.py files: a checkpoint whose unpickling runs code, a second
process holding an output's lock, and the PID of a process that has exited."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: what every payload test runs under: torch's override that turns weights_only off wherever a
#: caller leaves it unset
UNSAFE_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


class Payload:
    """Unpickled in full (not weights-only), this would run ``touch MARKER``: the ``__reduce__``
    payload of a crafted checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def plant_payload(path, marker, state: dict | None = None) -> Path:
    """A torch.save file at ``path``: ``state`` (e.g. a real checkpoint's, so that everything but
    the payload looks right) plus a payload entry that would create ``marker``."""
    import torch

    torch.save({**(state or {"model": {}}), "payload": Payload(marker)}, path)
    return Path(path)


def payload_works(path, marker) -> bool:
    """Control: ``path`` really carries the payload, a call of ``os.system`` a full unpickle would
    make (torch's own inspector lists the globals weights-only loading refuses, without running
    anything); the payload tests are only meaningful when it does. ``marker`` must not exist yet."""
    import torch

    return (
        "posix.system" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
        and not Path(marker).exists()
    )


def env(**extra) -> dict:
    e = dict(os.environ, **extra)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


HOLDER = """
import sys
from shared_metrics.locks import OutputLock
lock = OutputLock(sys.argv[1], "output").acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
lock.release()
"""


@contextlib.contextmanager
def lock_held_by_another_process(output):
    """A second process that takes ``output``'s lock the way every writer does
    (shared_metrics.locks.OutputLock) and holds it until the block ends; yields its PID."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(output)],
        cwd=REPO,
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ shared fixtures of the safety tests
import pytest  # noqa: E402
from vision_helpers import TINY_DIGITS  # noqa: E402

#: distill.py on the built-in digits, as small as it trains: one epoch on 16 images, batches of 8
DIGITS = [*TINY_DIGITS, "--batch-size", "8", "--print-freq", "100"]


@pytest.fixture(scope="module")
def toyset(tmp_path_factory):
    """The tiny fairseq data set and teacher of tests/nmt_toy.py."""
    from nmt_toy import toy

    return toy(tmp_path_factory)


@pytest.fixture(scope="module")
def vision_teacher(tmp_path_factory):
    """A digits resnet18 checkpoint of distill.py (one epoch on 16 images)."""
    from vision import distill

    out = tmp_path_factory.mktemp("vteacher")
    distill.main(distill.get_args_parser().parse_args([*DIGITS, "--output-dir", str(out)]))
    return out / "checkpoint.pt"
