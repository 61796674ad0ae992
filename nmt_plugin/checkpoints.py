"""Safe reading of fairseq checkpoints, and the fairseq functions the plugin guards.

Every checkpoint the plugin reads goes through :func:`read_checkpoint`: ``torch.load`` with
``weights_only=True`` passed explicitly, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` cannot turn
off (torch/serialization.py applies that override only where the caller left ``weights_only``
unset), and ``argparse.Namespace`` allowed (fairseq pickles it; nothing else is added). A file it
cannot read is a one-line :class:`UnreadableCheckpoint` that says which of these it is: empty, a
directory, not a torch file, truncated or corrupted, or "refused: unsafe object" (a pickle naming
a global that the weights-only loader does not allow: a ``__reduce__`` payload, say).

Where fairseq reads or writes checkpoints itself, :func:`install` (run when the plugin is
imported, i.e. under ``--user-dir nmt_plugin``) replaces, in ``fairseq.checkpoint_utils``:

* ``load_checkpoint_to_cpu`` (the trainer's restore of checkpoint_last.pt or ``--restore-file``,
  fairseq-generate's ``--path``, ``load_model_ensemble``) by :func:`load_checkpoint_to_cpu`:
  fairseq 0.12.3's post-processing of what :func:`read_checkpoint` loaded;
* ``load_checkpoint`` (fairseq-train's restart): under ``--task kd_translation`` a
  checkpoint_last.pt that is empty, truncated or corrupted is named in one log line and the
  newest whole checkpoint of ``--save-dir`` is resumed instead;
* ``verify_checkpoint_directory`` (fairseq-train's first look at ``--save-dir``): a file is a
  one-line error; the folder is locked for this run (one writer, see shared_metrics.locks);
  copies of killed runs (``NAME.pt.tmp-PID`` of a dead PID) are removed; a folder this run made
  is removed again when the run fails while it is still empty;

and ``fairseq.file_io.PathManager.copy`` (how fairseq writes checkpoint_last.pt and
checkpoint_best.pt: copies of the first file saved) by a copy to ``DEST.tmp-PID`` renamed into
place, so a run killed while copying leaves the previous whole file under the name.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import re
import shutil
import warnings

import torch

from .errors import LskdConfigError, at_failure, report_errors_in_one_line

# fairseq checkpoints pickle argparse.Namespace; the weights-only loader allows nothing else extra.
torch.serialization.add_safe_globals([argparse.Namespace])

logger = logging.getLogger(__name__)

ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save's zip archive; a legacy pickle
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # torch bolds part of its weights-only error


class UnreadableCheckpoint(LskdConfigError):
    """A checkpoint file that cannot be read; ``kind`` is one of "empty", "not torch",
    "truncated" (truncated or corrupted) and "unsafe" (refused by the weights-only loader)."""

    def __init__(self, message: str, path: str, kind: str):
        super().__init__(message)
        self.path, self.kind = path, kind


def _one_line(text: str, limit: int = 200) -> str:
    out = " ".join(_ANSI.sub("", str(text)).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def refused_global(error: BaseException) -> str | None:
    """What torch's weights-only unpickler refused ("GLOBAL posix.system is blocked", ...), or
    None when ``error`` is not such a refusal."""
    text = _ANSI.sub("", str(error))
    if not text.startswith("Weights only load failed"):
        return None
    m = re.search(r"unsupported GLOBAL ([\w.]+) whose module ([\w.]+) is blocked", text)
    if m:
        return f"GLOBAL {m.group(1)}: its module {m.group(2)} is blocked"
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"GLOBAL {m.group(1)} is not an allowed global"
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, re.S)
    return _one_line(m.group(1).split(". ")[0]) if m else "an object the weights-only loader does not allow"


def read_checkpoint(path: str, who: str = "checkpoint"):
    """``torch.load(path, map_location="cpu", weights_only=True)``, or an UnreadableCheckpoint
    (a missing path or a directory: LskdConfigError) whose one line says what is wrong.
    ``who`` names the file in the message ("checkpoint", "teacher checkpoint")."""
    path = str(path)
    if os.path.isdir(path):
        raise LskdConfigError(f"{who} {path} is a directory, not a checkpoint file")
    if not os.path.exists(path):
        raise LskdConfigError(f"{who} not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise LskdConfigError(f"{who} {path} cannot be read ({e.strerror})") from None
    if not head:
        raise UnreadableCheckpoint(
            f"{who} {path} is empty (0 bytes): not a fairseq checkpoint", path, "empty"
        )
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not for the one-line error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors come in many types
        if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
            raise UnreadableCheckpoint(
                f"{who} {path} is not a readable fairseq checkpoint (not a torch file: torch.save "
                f"writes a zip archive or a pickle; this file starts with {head[:4]!r})",
                path,
                "not torch",
            ) from None
        refused = refused_global(e)
        if refused:
            raise UnreadableCheckpoint(
                f"{who} {path}: refused: unsafe object ({refused} in a weights-only load; "
                f"the file would run code or build arbitrary objects if unpickled in full: "
                f"load it only if you trust it)",
                path,
                "unsafe",
            ) from None
        why = _one_line(str(e).strip().split(". ")[0]) if str(e).strip() else ""
        why = f"{type(e).__name__}: {why}" if why else type(e).__name__
        size = os.path.getsize(path)
        raise UnreadableCheckpoint(
            f"{who} {path} is truncated or corrupted ({size} bytes; {why})", path, "truncated"
        ) from None


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's ``checkpoint_utils.load_checkpoint_to_cpu`` (0.12.3) on :func:`read_checkpoint`:
    the same remote-file handling, argument overrides, config conversion and state upgrade."""
    report_errors_in_one_line()  # fairseq calls the plugin: its errors in one line
    import torch.distributed
    from fairseq.file_io import PathManager

    local_path = PathManager.get_local_path(path)
    if local_path != path and PathManager.path_requires_pathmanager(path):
        try:  # a cached copy of a remote file may be stale (fairseq's comment)
            os.remove(local_path)
        except FileNotFoundError:
            pass
        if load_on_all_ranks:
            torch.distributed.barrier()
        local_path = PathManager.get_local_path(path)
    state = read_checkpoint(local_path)
    if not isinstance(state, dict):
        raise LskdConfigError(f"checkpoint {path} holds a {type(state).__name__}, not a fairseq checkpoint")
    return upgrade_state(state, arg_overrides)


def upgrade_state(state: dict, arg_overrides=None) -> dict:
    """What fairseq 0.12.3's load_checkpoint_to_cpu does to a loaded checkpoint: argument
    overrides, the saved config as an OmegaConf object, the upgrade of older layouts."""
    from fairseq import checkpoint_utils
    from fairseq.dataclass.utils import overwrite_args_by_name
    from omegaconf import OmegaConf

    if "args" in state and state["args"] is not None and arg_overrides is not None:
        for arg_name, arg_val in arg_overrides.items():
            setattr(state["args"], arg_name, arg_val)
    if "cfg" in state and state["cfg"] is not None:
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})  # omegaconf >= 2.2
        if arg_overrides is not None:
            overwrite_args_by_name(state["cfg"], arg_overrides)
    return checkpoint_utils._upgrade_state_dict(state)


# ---------------------------------------------------------------------- restart
_RESTART_CANDIDATE = re.compile(r"checkpoint.*\.pt")


def whole_checkpoint_candidates(save_dir: str, last: str, suffix: str = "") -> list[str]:
    """The other checkpoints of ``save_dir`` (checkpointN, checkpoint_N_U, checkpoint_best,
    checkpoint.best_*), newest first by modification time."""
    try:
        names = os.listdir(save_dir)
    except OSError:
        return []
    found = [
        os.path.join(save_dir, n)
        for n in names
        if _RESTART_CANDIDATE.fullmatch(n)
        and n.endswith(f"{suffix}.pt")
        and os.path.join(save_dir, n) != last
        and os.path.isfile(os.path.join(save_dir, n))
    ]
    return sorted(found, key=lambda p: os.stat(p).st_mtime_ns, reverse=True)


def _restart_problem(error: UnreadableCheckpoint) -> str:
    return {"empty": "empty (0 bytes)"}.get(error.kind, "truncated or corrupted")


def load_checkpoint(cfg, trainer, **passthrough_args):
    """fairseq's ``checkpoint_utils.load_checkpoint``; under --task kd_translation, a
    checkpoint_last.pt that is empty or truncated (a run killed while writing it) is named in one
    log line and the newest whole checkpoint of --save-dir is restored in its place (its
    optimizer, scheduler, meters and data position: the state fairseq saved with it)."""
    report_errors_in_one_line()  # fairseq calls the plugin: its errors in one line
    from omegaconf import open_dict

    original = _FAIRSEQ["load_checkpoint"]
    if not (getattr(trainer.task, "lskd_resume_whole", False) and cfg.restore_file == "checkpoint_last.pt"):
        return original(cfg, trainer, **passthrough_args)
    suffix = trainer.checkpoint_suffix
    last = os.path.join(cfg.save_dir, f"checkpoint_last{suffix}.pt")
    try:
        return original(cfg, trainer, **passthrough_args)
    except UnreadableCheckpoint as e:
        if e.kind not in ("empty", "truncated") or os.path.abspath(e.path) != os.path.abspath(last):
            raise
        problem = _restart_problem(e)
    for candidate in whole_checkpoint_candidates(cfg.save_dir, last, suffix):
        logger.warning(
            f"{last} is {problem} (a run killed while writing it?); resuming from "
            f"{candidate}, the newest other checkpoint in --save-dir"
        )
        with open_dict(cfg):  # load_checkpoint appends the suffix to a --restore-file itself
            cfg.restore_file = candidate[: len(candidate) - len(f"{suffix}.pt")] + ".pt"
        try:
            return original(cfg, trainer, **passthrough_args)
        except UnreadableCheckpoint as e:
            if e.kind not in ("empty", "truncated") or os.path.abspath(e.path) != os.path.abspath(candidate):
                raise
            logger.warning(f"{candidate} is {_restart_problem(e)} too")
        finally:
            with open_dict(cfg):
                cfg.restore_file = "checkpoint_last.pt"
    raise LskdConfigError(
        f"{last} is {problem} and --save-dir {cfg.save_dir} holds no other whole "
        f"checkpoint to resume from: remove {last} to start afresh"
    )


# ---------------------------------------------------------------------- --save-dir
_SAVE_DIR_LOCKS: dict = {}


def verify_checkpoint_directory(save_dir: str) -> None:
    """fairseq's check that --save-dir is writable, after refusing a file (one line), taking the
    folder's lock (a second fairseq-train into it fails naming this one's PID) and removing the
    temporary copies of killed runs. A folder made here is removed again if the run fails before
    anything is written into it."""
    report_errors_in_one_line()  # fairseq calls the plugin: its errors in one line
    from shared_metrics.locks import OutputLock, remove_stale_temporaries

    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise LskdConfigError(f"--save-dir {save_dir} is a file, not a directory")
    key = os.path.abspath(save_dir)
    if key not in _SAVE_DIR_LOCKS:
        existed = os.path.isdir(save_dir)
        lock = OutputLock(save_dir, "--save-dir", error=LskdConfigError).acquire()
        _SAVE_DIR_LOCKS[key] = lock
        atexit.register(lock.release)

        def remove_if_unused(save_dir=save_dir, existed=existed, lock=lock):
            if not existed:
                try:
                    os.rmdir(save_dir)  # only succeeds while it is empty
                except OSError:
                    pass
            lock.release()  # then the lock file, and the folders made for it if left empty

        at_failure(remove_if_unused)
    try:
        _FAIRSEQ["verify_checkpoint_directory"](save_dir)
    except OSError as e:
        raise LskdConfigError(f"--save-dir {save_dir} is not writable ({e.strerror or e})") from None
    for stem in {n.split(".tmp-")[0] for n in os.listdir(save_dir) if ".pt.tmp-" in n}:
        remove_stale_temporaries(save_dir, stem)  # atomic_copy's DEST.tmp-PID of killed runs


# ---------------------------------------------------------------------- copies
def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    """``PathManager.copy`` for local files: copy to ``DEST.tmp-PID``, then rename it over DEST
    (a kill mid-copy leaves DEST as it was); remote paths go to fairseq's own copy."""
    if "://" in str(src_path) or "://" in str(dst_path):
        return _FAIRSEQ["copy"](src_path, dst_path, overwrite=overwrite)
    if os.path.exists(dst_path) and not overwrite:
        return False
    tmp = f"{dst_path}.tmp-{os.getpid()}"
    try:
        shutil.copyfile(src_path, tmp)
        os.replace(tmp, dst_path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


# ---------------------------------------------------------------------- install
_FAIRSEQ: dict = {}


def install() -> None:
    """Put the guarded functions in place of fairseq's (once per process, whichever copy of the
    plugin is imported first)."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    if getattr(checkpoint_utils.load_checkpoint_to_cpu, "_lskd_guard", False):
        return
    _FAIRSEQ.update(
        load_checkpoint_to_cpu=checkpoint_utils.load_checkpoint_to_cpu,
        load_checkpoint=checkpoint_utils.load_checkpoint,
        verify_checkpoint_directory=checkpoint_utils.verify_checkpoint_directory,
        copy=PathManager.copy,
    )
    for f in (load_checkpoint_to_cpu, load_checkpoint, verify_checkpoint_directory, atomic_copy):
        f._lskd_guard = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    checkpoint_utils.load_checkpoint = load_checkpoint
    checkpoint_utils.verify_checkpoint_directory = verify_checkpoint_directory
    PathManager.copy = staticmethod(atomic_copy)
