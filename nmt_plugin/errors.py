"""The plugin's one error type, and a one-line report of it instead of a traceback.

``fairseq-train`` has no hook for user errors; an uncaught :class:`LskdConfigError` (bad T or
β, a missing teacher, a dictionary mismatch, ...) is printed as ``error: <message>`` and the
process exits with status 1. Every other exception keeps Python's usual traceback. Either way
the cleanups registered with :func:`at_failure` run first (e.g. removing a --save-dir this run
made and never wrote into).
"""

from __future__ import annotations

import sys


class LskdConfigError(ValueError):
    """Bad input to the plugin or one of its commands; the message says what and where."""


_AT_FAILURE: list = []


def at_failure(callback) -> None:
    """Call ``callback()`` if the process ends with an uncaught exception (before it is reported)."""
    _AT_FAILURE.append(callback)


def _install_excepthook() -> None:
    previous = sys.excepthook
    if getattr(previous, "_lskd", False):
        return

    def hook(exc_type, exc, tb):
        while _AT_FAILURE:
            try:
                _AT_FAILURE.pop()()
            except Exception:
                pass
        # by name: a second copy of the plugin (an installed one) has its own class
        if any(c.__name__ == "LskdConfigError" for c in exc_type.__mro__):
            sys.stderr.write(f"error: {exc}\n")
            sys.stderr.flush()
            # sys.excepthook cannot choose the status (the interpreter exits with 1): that is
            # still != 0, which is what callers check.
            return
        previous(exc_type, exc, tb)

    hook._lskd = True
    sys.excepthook = hook


_install_excepthook()
