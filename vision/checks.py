"""The checks vision/distill.py makes of its options, its teacher and the checkpoints it resumes.

Each refuses bad input with a one-line :class:`~vision.utils.VisionError` before any work is
lost: options out of range, a teacher fed other images than it learned from or whose α
contradicts ``--teacher-alpha``, weights holding NaN or inf, a ``--resume`` that would make one
run of two trainings. The checks of checkpoint files themselves (readable, which model, which
classes) are in vision/models.py.
"""

from __future__ import annotations

import ast
import math

import numpy as np
import torch

from shared_metrics.naming import temperature_tag
from vision import data as vdata
from vision import utils
from vision.utils import VisionError


# ----------------------------------------------------------------------------- options
def check_train_args(args) -> None:
    """Refuse bad options of vision/distill.py before any work (one-line VisionErrors)."""
    if not 0.0 <= args.label_smoothing < 1.0:
        raise VisionError(f"--label-smoothing α must be in [0, 1), got {args.label_smoothing:g}")
    if not 0.0 <= args.beta <= 1.0:
        raise VisionError(f"--beta must be in [0, 1], got {args.beta:g}")
    if args.clip_grad_norm is not None and not args.clip_grad_norm > 0:
        raise VisionError(f"--clip-grad-norm must be > 0, got {args.clip_grad_norm:g}")
    if args.lr_warmup_epochs < 0:
        raise VisionError(f"--lr-warmup-epochs must be >= 0, got {args.lr_warmup_epochs}")
    if not (args.lr_gamma > 0 and math.isfinite(args.lr_gamma)):
        raise VisionError(f"--lr-gamma must be a finite number > 0, got {args.lr_gamma:g}")
    if args.teacher_alpha is not None and not 0.0 <= args.teacher_alpha < 1.0:
        raise VisionError(f"--teacher-alpha α must be in [0, 1), got {args.teacher_alpha:g}")
    if args.mode == "student":
        if not args.temperature:
            raise VisionError("--mode student needs --temperature T [T ...]")
        bad = [t for t in args.temperature if not np.isfinite(t)]
        if bad:
            raise VisionError(f"--temperature must be finite (a number > 0), got {bad[0]:g}")
        bad = [t for t in args.temperature if not t > 0]
        if bad:
            raise VisionError(f"--temperature must be > 0, got {bad[0]:g}")
        if len({temperature_tag(t) for t in args.temperature}) != len(args.temperature):
            raise VisionError("--temperature lists the same value twice")
        if not args.teacher:
            raise VisionError("--mode student needs --teacher CKPT")
    elif args.temperature or args.teacher:
        raise VisionError("--temperature and --teacher only apply to --mode student")
    utils.check_data_args(args)  # the data and loader flags, as vision/dump_features.py checks them
    for name in ("epochs", "lr_step"):
        utils.check_at_least(name, getattr(args, name), 1)
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise VisionError(f"--lr must be a finite number > 0, got {args.lr:g}")
    if not 0.0 <= args.momentum < 1.0:
        raise VisionError(f"--momentum must be in [0, 1), got {args.momentum:g}")
    if not (args.weight_decay >= 0 and math.isfinite(args.weight_decay)):
        raise VisionError(f"--weight-decay must be a finite number >= 0, got {args.weight_decay:g}")
    if args.sync_bn and args.device != "cuda":
        raise VisionError("--sync-bn needs --device cuda (SyncBatchNorm has no CPU kernels)")
    if args.resume and args.test_only:
        raise VisionError("--test-only already loads the checkpoint(s); drop --resume")


def parse_model_args(items) -> dict:
    """--model-arg KEY=VALUE items as keyword arguments (a VALUE Python can read as a literal is
    that literal, anything else the string)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise VisionError(f"--model-arg wants KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


# ----------------------------------------------------------------------------- teacher
#: What a checkpoint's args record of the input pipeline (vision/data.py builds the transforms
#: and the grey sets' resizing and normalisation from these): a teacher must be fed images like
#: those it learned from (kind, resolution, normalisation). --limit-*, --epochs, --lr, --data (a
#: moved copy), ... may differ; so may --small-input (the teacher is rebuilt with its own stem)
#: and --recipe (it only adds training augmentation: rotation and colour jitter for cub; the
#: resolution and normalisation are the same).
TEACHER_INPUTS = ("dataset", "image_size")


def check_teacher_inputs(what: str, saved: dict, args) -> None:
    """Refuse a teacher whose checkpoint ``saved`` args record another input pipeline than this
    run's ``args`` (after build_datasets resolved args.image_size). Nothing to compare for a plain
    state dict (no args) or an older checkpoint without a field."""

    def size(a):
        s = a.get("image_size")
        return s or vdata.DEFAULT_IMAGE_SIZE.get(a.get("dataset"))

    now = vars(args)
    diffs = []
    for key in TEACHER_INPUTS:
        if key not in saved:
            continue
        then_v, now_v = (size(saved), size(now)) if key == "image_size" else (saved[key], now[key])
        if then_v != now_v:
            diffs.append(f"--{key.replace('_', '-')} {then_v} (this run: {now_v})")
    if diffs:
        raise VisionError(
            f"{what} was trained with {', '.join(diffs)}: it would see other images "
            "than it learned from; give this run the teacher's data flags"
        )


def teacher_alpha(recorded, given):
    """The teacher's α: the one its checkpoint ``recorded``, else the ``given`` --teacher-alpha
    (None: neither); the two must agree when both are known."""
    if recorded is None:  # not recorded (e.g. a student of a plain state dict)
        return given
    if given is not None and recorded != given:
        raise VisionError(f"--teacher-alpha {given:g} contradicts the teacher checkpoint's α = {recorded:g}")
    return recorded


def first_nonfinite(state_dict: dict) -> str | None:
    """The name of the first floating-point tensor of ``state_dict`` holding NaN or inf, else None."""
    return next(
        (k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()), None
    )


def check_finite_teacher(path: str, model) -> None:
    """Refuse a teacher whose weights hold NaN or inf (a diverged run)."""
    bad = first_nonfinite(model.state_dict())
    if bad:
        raise VisionError(
            f"teacher {path}: its weights hold NaN or inf ({bad}): the teacher "
            "checkpoint is broken (a diverged run?); distil from a sound one"
        )


# ----------------------------------------------------------------------------- --resume
#: What a --resume may not change: it would make one run of two trainings (the data, the model
#: built, the loss). The epochs, lr and engineering flags may change, --backend too (the same
#: files and random draws; the pixels differ by a few levels of resampling arithmetic).
RESUME_FIXED = (
    "mode",
    "model",
    "dataset",
    "recipe",
    "image_size",
    "limit_train",
    "small_input",
    "model_kwargs",
    "label_smoothing",
    "beta",
    "seed",
)


def check_restorable(path: str, ck: dict, args, full: bool) -> None:
    """A checkpoint of distill.py, of this run's --mode and --model, holding what a restore
    needs (its epoch; with ``full``, a --resume, its optimizer, schedule and RNG states too)."""
    if not ck:
        raise VisionError(f"{path}: not a checkpoint of distill.py (a plain state dict?)")
    lacking = [
        k for k in ("epoch", *(("optimizer", "lr_scheduler", "rng") if full else ())) if ck.get(k) is None
    ]
    if lacking:
        raise VisionError(f"{path}: the checkpoint lacks {', '.join(lacking)}")
    if ck.get("model_name") != args.model or ck.get("mode") != args.mode:
        raise VisionError(
            f"{path} is a {ck.get('mode')} {ck.get('model_name')}, not a {args.mode} {args.model}"
        )


def check_same_training(path: str, ck: dict, now: dict, temperature, alpha) -> None:
    """Refuse a --resume whose options (``now``: this run's plain args), temperature or teacher
    α differ from the checkpoint's in a way that makes another training (RESUME_FIXED)."""
    saved = ck.get("args") or {}
    changed = [
        f"--{k.replace('_', '-')} {saved[k]} (now {now.get(k)})"
        for k in RESUME_FIXED
        if k in saved and saved[k] != now.get(k)
    ]
    if ck.get("temperature") != temperature:
        changed.append(f"temperature {ck.get('temperature')} (now {temperature})")
    if alpha is not None and ck.get("alpha") is not None and ck["alpha"] != alpha:
        changed.append(f"teacher α {ck['alpha']:g} (now {alpha:g})")
    if changed:
        raise VisionError(
            f"{path} was trained with {', '.join(changed)}: --resume continues "
            "the same training; use another --output-dir for a new one"
        )
