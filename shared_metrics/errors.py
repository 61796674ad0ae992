"""One error path for every entry point: bad input is a :class:`UserError`, shown as one line.

Every command of the project (``lskd-metrics``, ``vision/distill.py``, ``vision/dump_features.py``,
``python -m nmt_plugin.bleu``, the preprocessors, the workflow's helpers) runs its body through
:func:`run_cli`::

    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        return run_cli("lskd-metrics eta", run, args)

``run_cli`` prints ``PROG: error: MESSAGE`` on one line (``error: MESSAGE`` when ``prog`` is
empty) and returns 2 for a :class:`UserError` or an ``OSError`` (missing file, permission, disk
full, ...), 2 for ``MemoryError``, 0 for a closed pipe, and for any other exception one
``internal error`` line and 1 (``LSKD_DEBUG=1`` re-raises it, for the traceback).
"""

from __future__ import annotations

import os
import sys


class UserError(ValueError):
    """Bad input to one of the project's commands; the message says what and where, in one line."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(text).split())


def error_line(prog: str, message: object) -> str:
    """``PROG: error: MESSAGE`` (``error: MESSAGE`` without a ``prog``), on one line."""
    if not prog:
        return f"error: {one_line(message)}"
    # a bracketed tag reads "[study] error: ...", a program name "lskd-metrics eta: error: ..."
    return f"{prog}{' ' if prog.startswith('[') else ': '}error: {one_line(message)}"


def run_cli(prog: str, fn, *args, bad_input: tuple = (), **kwargs) -> int:
    """Call ``fn(*args, **kwargs)``; return its int result (0 for None), or report a failure in one line.

    Exit statuses: 2 for bad input (:class:`UserError`, ``OSError``, ``MemoryError`` and the
    exception types in ``bad_input``, e.g. ``(ValueError,)`` where ``fn`` calls library functions
    that say what is wrong with one), 1 for an internal error, 0 when the reader of our output
    went away (``BrokenPipeError``).
    """
    try:
        result = fn(*args, **kwargs)
    except BrokenPipeError:
        return 0
    except (UserError, OSError, *bad_input) as e:
        print(error_line(prog, e), file=sys.stderr)
        return 2
    except MemoryError:
        print(error_line(prog, "out of memory"), file=sys.stderr)
        return 2
    except Exception as e:  # never a raw traceback at the user
        if os.environ.get("LSKD_DEBUG"):
            raise
        print(
            f"{prog + ': ' if prog else ''}internal error: {type(e).__name__}: {one_line(e)} "
            "(set LSKD_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)
