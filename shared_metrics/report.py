"""Rendering results as JSON, markdown or CSV, and writing files atomically.

Units: JSON and CSV carry fractions (η, accuracy) as computed; markdown prints them in percent,
as the paper's tables do, and every header names its unit.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path

FORMATS = ("json", "markdown", "csv")


def _cell(v, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    lines = [
        "| " + " | ".join(esc(c) for c in columns) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(esc(_cell(r.get(c), digits)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict], columns: list[str] | None = None) -> str:
    buf = io.StringIO()
    columns = columns or (list(rows[0]) if rows else [])
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {c: _cell(r.get(c), 10) if isinstance(r.get(c), (list, tuple)) else r.get(c) for c in columns}
        )
    return buf.getvalue()


def to_json(payload) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=True) + "\n"


def read_json(path, error=ValueError, what: str = "file"):
    """Parse a JSON file; a missing or malformed file raises ``error`` naming the path."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it to ``path``; the sibling is removed
    if that fails, and those of killed writers (.NAME.tmp-PID whose PID is dead) are removed."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: give a file name to write to")
    path.parent.mkdir(parents=True, exist_ok=True)
    from .locks import remove_stale_temporaries

    remove_stale_temporaries(path.parent, f".{path.name}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def tmp_name(path) -> Path:
    """A temporary sibling for writers that cannot stream (e.g. matplotlib's savefig); those of
    killed writers (same name, a dead PID) are removed."""
    path = Path(path)
    from .locks import remove_stale_temporaries

    remove_stale_temporaries(path.parent, f".{path.stem}", path.suffix)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


class Progress:
    """A throttled stderr progress line: done/total, rate and ETA."""

    def __init__(
        self, total: int, unit: str = "rows", label: str = "", every: float = 5.0, enabled: bool = True
    ):
        self.total, self.unit, self.label, self.every = total, unit, label, every
        self.enabled = enabled
        self.t0 = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < self.every and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        print(
            f"[{self.label}] {done:,}/{self.total:,} {self.unit} ({100 * done / self.total:.0f}%) "
            f"{rate:,.0f} {self.unit}/s ETA {eta:.0f}s",
            file=sys.stderr,
            flush=True,
        )
