"""Checks of fairseq checkpoints and dictionaries against the data, for the plugin's task and commands.

The ``kd_translation`` task (its teacher), ``python -m nmt_plugin.dump_features`` and
``python -m nmt_plugin.bleu`` read checkpoints and data through these functions, so that every
problem is one :class:`~nmt_plugin.errors.LskdConfigError` line naming the file and what is
wrong: a file that is no fairseq checkpoint, a teacher that is no translation model or whose
weights are not finite, dictionaries (or a language pair) that differ from the data's, a data
folder fairseq cannot read, a bad ``--kd-temperature`` or ``--teacher-topk``.
"""

from __future__ import annotations

import argparse
import math
import os

import torch
from fairseq import models, utils
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import FairseqEncoderDecoderModel
from fairseq.tasks.translation import TranslationTask

from . import checkpoints
from .checkpoints import UnreadableCheckpoint, read_checkpoint
from .errors import LskdConfigError


def cfg_get(cfg, key, default=None):
    """A field of a DictConfig, dict or argparse.Namespace (fairseq saves all three)."""
    if cfg is None:
        return default
    if isinstance(cfg, argparse.Namespace):
        return getattr(cfg, key, default)
    try:
        return cfg.get(key, default)
    except Exception:
        return getattr(cfg, key, default)


def first_line(e: BaseException) -> str:
    """``TypeName: the first non-blank line of the message`` of ``e``, for one-line errors."""
    text = [t.strip() for t in str(e).strip().splitlines() if t.strip()]
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_checkpoint_state(path: str, who: str = "checkpoint"):
    """(state, cfg) of a fairseq checkpoint, read with torch's weights-only loader
    (checkpoints.read_checkpoint), or a one-line LskdConfigError saying what is wrong (``who``
    names it in the message: "checkpoint", "teacher checkpoint")."""
    state = read_checkpoint(path, who)
    if isinstance(state, dict) and "model" in state:
        try:  # fairseq's config conversion and upgrade of older checkpoints
            state = checkpoints.upgrade_state(state)
        except Exception as e:
            raise LskdConfigError(
                f"{who} {path} is not a readable fairseq checkpoint ({first_line(e)})"
            ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise LskdConfigError(f"{who} {path} has no model weights (not a fairseq checkpoint)")
    if state.get("args") is not None:
        cfg = convert_namespace_to_omegaconf(state["args"])
    elif state.get("cfg") is not None:
        cfg = state["cfg"]
    else:
        raise LskdConfigError(f"{who} {path} has no training config (not a fairseq checkpoint)")
    return state, cfg


def load_teacher_state(path: str | None):
    """(state, cfg) of the teacher checkpoint, or a one-line LskdConfigError."""
    if not path:
        raise LskdConfigError("--task kd_translation needs --teacher-path CKPT (the frozen teacher)")
    return load_checkpoint_state(path, "teacher checkpoint")


def teacher_alpha(path: str | None) -> float | None:
    """The label smoothing the teacher was trained with (None if unknown; a teacher file the
    weights-only loader refuses is an error, not an unknown)."""
    try:
        _, cfg = load_teacher_state(path)
    except UnreadableCheckpoint as e:
        if e.kind == "unsafe":
            raise
        return None
    except LskdConfigError:
        return None
    crit = cfg_get(cfg, "criterion")
    eps = cfg_get(crit, "label_smoothing")
    if eps is not None:
        return float(eps)
    return 0.0 if cfg_get(crit, "_name") == "cross_entropy" else None


def dictionary_difference(ours: Dictionary, theirs: Dictionary, who: str = "teacher") -> str | None:
    """Where the checkpoint's dictionary ``theirs`` first differs from the data's ``ours``
    (None: the same symbols in the same order)."""
    if ours.symbols == theirs.symbols:
        return None
    n = min(len(ours), len(theirs))
    i = next((i for i in range(n) if ours.symbols[i] != theirs.symbols[i]), n)
    if i < n:
        where = f"first difference at index {i}: {who} {theirs.symbols[i]!r}, data {ours.symbols[i]!r}"
    else:
        where = "one is a prefix of the other"
    return f"{who} {len(theirs)} symbols, data {len(ours)}; {where}"


def check_data_dictionaries(
    task,
    path: str,
    ckpt_cfg,
    weights,
    who: str = "teacher",
    dict_dir: str | None = None,
    dict_flag: str = "--teacher-data",
) -> None:
    """Refuse (LskdConfigError) a checkpoint whose dictionaries are not ``task``'s (the data's).

    The checkpoint's own dictionaries are the dict.*.txt of ``dict_dir`` (its ``dict_flag``
    option), else of the data folder its config names: a checkpoint whose dictionaries cannot be
    read is refused, since the weights' row counts alone cannot tell two orders of the same
    words apart. ``who`` names the checkpoint in the messages ("teacher", "checkpoint")."""
    src, tgt = task.cfg.source_lang, task.cfg.target_lang
    tsrc, ttgt = cfg_get(ckpt_cfg.task, "source_lang"), cfg_get(ckpt_cfg.task, "target_lang")
    if tsrc and ttgt and (tsrc, ttgt) != (src, tgt):
        raise LskdConfigError(
            f"{who} {path} translates {tsrc}->{ttgt} but the data is {src}->{tgt}: "
            f"its source and target dictionary do not line up with the data's"
        )
    problems = []
    recorded = (utils.split_paths(cfg_get(ckpt_cfg.task, "data") or "") or [None])[0]
    cdata = dict_dir or recorded
    for side, lang, ours in (("source", src, task.src_dict), ("target", tgt, task.tgt_dict)):
        f = os.path.join(cdata, f"dict.{lang}.txt") if cdata else None
        if not (f and os.path.isfile(f)):
            where = (
                f"{dict_flag} {cdata} has no dict.{lang}.txt"
                if dict_dir
                else f"its checkpoint names the data folder {recorded}, which no longer exists"
                if recorded and not os.path.isdir(recorded)
                else f"its checkpoint names the data folder {recorded}, which has no dict.{lang}.txt"
                if recorded
                else "its checkpoint names no data folder"
            )
            raise LskdConfigError(
                f"{who} {path}: cannot check its {side} dictionary against the data's ({where}); "
                f"pass {dict_flag} DIR, the folder with the {who}'s dict.{src}.txt and "
                f"dict.{tgt}.txt (the data folder itself if the {who} was trained on it)"
            )
        try:
            theirs = Dictionary.load(f)
        except Exception as e:
            raise LskdConfigError(f"{who} {path}: cannot read {f} ({first_line(e)})") from None
        diff = dictionary_difference(ours, theirs, who)
        if diff:
            problems.append(f"{side} dictionary differs ({f} vs the data's: {diff})")
    # The weights themselves say how many symbols the checkpoint knows.
    sizes = (
        ("source", "encoder.embed_tokens.weight", task.src_dict),
        ("target", "decoder.output_projection.weight", task.tgt_dict),
        ("target", "decoder.embed_tokens.weight", task.tgt_dict),
    )
    for side, key, ours in sizes:
        w = weights.get(key)
        if w is not None and w.shape[0] != len(ours) and not any(p.startswith(side) for p in problems):
            problems.append(
                f"{side} dictionary differs (the {who}'s {key} has {w.shape[0]} "
                f"rows, the data's {side} dictionary {len(ours)} symbols)"
            )
    if problems:
        raise LskdConfigError(f"{who} {path}: " + "; ".join(problems))


def setup_translation_data(cfg, setup=None, **kwargs):
    """``setup(cfg, **kwargs)`` (default TranslationTask.setup_task: reads the data folder's
    dictionaries and language pair), with a missing or unreadable data folder reported as a
    one-line LskdConfigError naming it instead of fairseq's traceback."""
    paths = [p for p in utils.split_paths(cfg.data or "") if p]
    if not paths:
        raise LskdConfigError("no data directory given (the first argument: the fairseq-preprocess output)")
    for p in paths:
        if not os.path.isdir(p):
            raise LskdConfigError(f"data directory not found: {p}")
    try:
        return (setup or TranslationTask.setup_task)(cfg, **kwargs)
    except LskdConfigError:
        raise
    except Exception as e:
        raise LskdConfigError(f"cannot read the translation data in {paths[0]} ({first_line(e)})") from None


def check_task_options(cfg) -> None:
    """``--kd-temperature`` a finite number > 0 and ``--teacher-topk`` >= 0."""
    T = cfg.kd_temperature
    if T is None or not math.isfinite(float(T)):
        raise LskdConfigError(f"--kd-temperature must be finite (a number > 0), got {T}")
    if float(T) <= 0:
        raise LskdConfigError(f"--kd-temperature must be a number > 0, got {T}")
    if cfg.teacher_topk is None or cfg.teacher_topk < 0:
        raise LskdConfigError(f"--teacher-topk must be >= 0 (0 = full vocabulary), got {cfg.teacher_topk}")


def check_topk_fits(topk: int, tgt_dict) -> None:
    """``--teacher-topk`` smaller than the target vocabulary (0: the full vocabulary)."""
    if topk >= len(tgt_dict):
        raise LskdConfigError(
            f"--teacher-topk {topk} is not smaller than the target "
            f"vocabulary ({len(tgt_dict)}); use 0 for the full vocabulary"
        )


def first_nonfinite(weights: dict) -> str | None:
    """The name of the first floating-point tensor of ``weights`` holding NaN or inf, else None."""
    return next(
        (
            k
            for k, v in weights.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
        ),
        None,
    )


def build_teacher(task, path: str | None, dict_dir: str | None = None):
    """(model, cfg) of the teacher checkpoint ``path`` for ``task``, its weights loaded, after
    checking that it is a translation model (an encoder-decoder without adaptive softmax) on the
    data's dictionaries (``dict_dir``: --teacher-data) whose weights fit its architecture and are
    finite; any problem is a one-line LskdConfigError."""
    state, tcfg = load_teacher_state(path)
    task_name = str(cfg_get(tcfg.task, "_name") or "")
    if "translation" not in task_name:
        raise LskdConfigError(
            f"teacher {path} is not a translation model (trained with task {task_name or 'unknown'!r})"
        )
    check_data_dictionaries(task, path, tcfg, state["model"], dict_dir=dict_dir)
    try:
        teacher = models.build_model(tcfg.model, task, from_checkpoint=True)
    except LskdConfigError:
        raise
    except Exception as e:
        raise LskdConfigError(f"teacher {path}: cannot build its model ({first_line(e)})") from None
    if not isinstance(teacher, FairseqEncoderDecoderModel):
        raise LskdConfigError(
            f"teacher {path} is not a translation model ({type(teacher).__name__} is not an encoder-decoder)"
        )
    if getattr(teacher.decoder, "adaptive_softmax", None) is not None:
        raise LskdConfigError(f"teacher {path}: adaptive softmax is not supported")
    try:
        teacher.load_state_dict(state["model"], strict=True, model_cfg=tcfg.model)
    except Exception as e:
        raise LskdConfigError(
            f"teacher {path}: its weights do not fit its architecture ({first_line(e)})"
        ) from None
    bad = first_nonfinite(state["model"])
    if bad:
        raise LskdConfigError(
            f"teacher {path}: its weights hold NaN or inf ({bad}): the teacher "
            f"checkpoint is broken (a diverged run?); distil from a sound one"
        )
    return teacher, tcfg


def check_checkpoint_dictionaries(task, path: str, cfg, weights, checkpoint_data: str | None = None) -> None:
    """:func:`check_data_dictionaries` for a checkpoint being evaluated on ``task``'s data
    (``checkpoint_data``: its --checkpoint-data folder)."""
    check_data_dictionaries(
        task, path, cfg, weights, who="checkpoint", dict_dir=checkpoint_data, dict_flag="--checkpoint-data"
    )
