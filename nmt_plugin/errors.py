"""The plugin's error type, and its one-line report under ``fairseq-train``.

The plugin's own commands (``python -m nmt_plugin.bleu``, ``python -m nmt_plugin.dump_features``)
report a :class:`LskdConfigError` through :func:`shared_metrics.errors.run_cli`, like every
other entry point of the project.

``fairseq-train`` and ``fairseq-generate`` have no hook for user errors: fairseq calls the plugin
(the task's ``setup_task``, the criterion's constructor, the checkpoint functions of
nmt_plugin/checkpoints.py) from deep inside its own ``main``, and an exception raised there ends
the process with Python's traceback. Wrapping those calls cannot choose the exit either (fairseq
owns the process, its distributed spawn included), so the report goes through ``sys.excepthook``,
installed by :func:`report_errors_in_one_line` when fairseq first calls into the plugin, not when
the plugin is imported: a process that only imports ``nmt_plugin`` keeps its own hook. The hook
prints an uncaught :class:`~shared_metrics.errors.UserError` (a bad T or β, a missing teacher, a
dictionary mismatch, ...) as ``error: <message>``; the process exits with status 1. Every other
exception keeps the previous hook's report (Python's traceback). Either way the cleanups
registered with :func:`at_failure` run first (e.g. removing a --save-dir this run made and never
wrote into).
"""

from __future__ import annotations

import sys

from shared_metrics.errors import UserError, error_line


class LskdConfigError(UserError):
    """Bad input to the plugin or one of its commands; the message says what and where."""


_AT_FAILURE: list = []


def at_failure(callback) -> None:
    """Call ``callback()`` if the process ends with an uncaught exception (before it is reported)."""
    report_errors_in_one_line()
    _AT_FAILURE.append(callback)


def report_errors_in_one_line() -> None:
    """Install the plugin's ``sys.excepthook`` (once per process; see the module docstring)."""
    previous = sys.excepthook
    if getattr(previous, "_lskd", False):
        return

    def hook(exc_type, exc, tb):
        while _AT_FAILURE:
            try:
                _AT_FAILURE.pop()()
            except Exception:
                pass
        # by name: a second copy of the plugin (an installed one) has its own classes
        if any(c.__name__ == "UserError" for c in exc_type.__mro__):
            sys.stderr.write(error_line("", exc) + "\n")
            sys.stderr.flush()
            # sys.excepthook cannot choose the status (the interpreter exits with 1): that is
            # still != 0, which is what callers check.
            return
        previous(exc_type, exc, tb)

    hook._lskd = True
    sys.excepthook = hook
