"""Task ``kd_translation``: fairseq's translation task plus a frozen teacher queried at T.

    fairseq-train DATA --user-dir nmt_plugin --task kd_translation \\
        --teacher-path teacher/checkpoint_best.pt --kd-temperature 2 --criterion ls_kd ...

* ``--teacher-path`` is loaded once, when the task is set up (so a bad path or a dictionary
  mismatch fails before training starts), frozen (``requires_grad=False``), in eval mode, and
  never handed to the trainer: it is not DDP-wrapped and has no optimizer state. On the first
  batch it moves to the student's device and dtype (half under ``--fp16``; fp32 under
  ``--amp``, where it runs inside the same autocast as the student).
* ``--kd-temperature`` is the only place T is set; the ``ls_kd`` criterion reads it here.
* In ``train_step`` and ``valid_step`` the teacher runs with teacher forcing on the very batch
  the student sees; its logits at the non-pad target positions go to the criterion in
  ``sample["kd_teacher"]``. The vocabulary projection is applied to those rows only.
* ``--teacher-topk k`` keeps only the teacher's k largest logits per token (values and word
  ids). The criterion then uses the softmax of those k logits at T as the teacher
  distribution: every other word gets probability 0 and the k kept words are renormalised
  among themselves, so the target is sharper than the full p_t(T) (its entropy is lower, and
  the lost tail mass -- the part label smoothing puts on "dissimilar" words -- is gone).
"""

import argparse
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq import models, utils
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import FairseqEncoderDecoderModel
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from . import checkpoints
from .checkpoints import UnreadableCheckpoint, read_checkpoint
from .errors import LskdConfigError
from .ls_kd import TEACHER_KEY

# fairseq's own checkpoint reads (trainer restore, fairseq-generate) go through the plugin's
# weights-only loader from here on; see nmt_plugin/checkpoints.py.
checkpoints.install()

logger = logging.getLogger(__name__)


@dataclass
class KdTranslationConfig(TranslationConfig):
    teacher_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "fairseq checkpoint of the frozen teacher (a translation model trained "
            "on the same dictionaries)"
        },
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={
            "help": "distillation temperature T > 0 (p(T) = softmax(z/T)); the ls_kd "
            "criterion reads it from the task"
        },
    )
    teacher_data: Optional[str] = field(
        default=None,
        metadata={
            "help": "folder with the teacher's dict.SRC.txt and dict.TGT.txt, to check them "
            "against the data's (default: the data folder its checkpoint names)"
        },
    )
    teacher_topk: int = field(
        default=0,
        metadata={
            "help": "keep only the teacher's k largest logits per token (its softmax is "
            "renormalised over them, others get probability 0); 0 = full vocabulary"
        },
    )


def _get(cfg, key, default=None):
    """A field of a DictConfig, dict or argparse.Namespace (fairseq saves all three)."""
    if cfg is None:
        return default
    if isinstance(cfg, argparse.Namespace):
        return getattr(cfg, key, default)
    try:
        return cfg.get(key, default)
    except Exception:
        return getattr(cfg, key, default)


def _first_line(e: BaseException) -> str:
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
                f"{who} {path} is not a readable fairseq checkpoint ({_first_line(e)})"
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


def load_teacher_state(path: Optional[str]):
    """(state, cfg) of the teacher checkpoint, or a one-line LskdConfigError."""
    if not path:
        raise LskdConfigError("--task kd_translation needs --teacher-path CKPT (the frozen teacher)")
    return load_checkpoint_state(path, "teacher checkpoint")


def teacher_alpha(path: Optional[str]) -> Optional[float]:
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
    crit = _get(cfg, "criterion")
    eps = _get(crit, "label_smoothing")
    if eps is not None:
        return float(eps)
    return 0.0 if _get(crit, "_name") == "cross_entropy" else None


def _dict_difference(ours: Dictionary, theirs: Dictionary, who: str = "teacher") -> Optional[str]:
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
    dict_dir: Optional[str] = None,
    dict_flag: str = "--teacher-data",
) -> None:
    """Refuse (LskdConfigError) a checkpoint whose dictionaries are not ``task``'s (the data's).

    The checkpoint's own dictionaries are the dict.*.txt of ``dict_dir`` (its ``dict_flag``
    option), else of the data folder its config names: a checkpoint whose dictionaries cannot be
    read is refused, since the weights' row counts alone cannot tell two orders of the same
    words apart. ``who`` names the checkpoint in the messages ("teacher", "checkpoint")."""
    src, tgt = task.cfg.source_lang, task.cfg.target_lang
    tsrc, ttgt = _get(ckpt_cfg.task, "source_lang"), _get(ckpt_cfg.task, "target_lang")
    if tsrc and ttgt and (tsrc, ttgt) != (src, tgt):
        raise LskdConfigError(
            f"{who} {path} translates {tsrc}->{ttgt} but the data is {src}->{tgt}: "
            f"its source and target dictionary do not line up with the data's"
        )
    problems = []
    recorded = (utils.split_paths(_get(ckpt_cfg.task, "data") or "") or [None])[0]
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
            raise LskdConfigError(f"{who} {path}: cannot read {f} ({_first_line(e)})") from None
        diff = _dict_difference(ours, theirs, who)
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
        raise LskdConfigError(f"cannot read the translation data in {paths[0]} ({_first_line(e)})") from None


@register_task("kd_translation", dataclass=KdTranslationConfig)
class KdTranslationTask(TranslationTask):
    """Translation with a frozen teacher queried at temperature T (see the module docstring)."""

    cfg: KdTranslationConfig
    #: fairseq-train's restart resumes the newest whole checkpoint when checkpoint_last.pt is
    #: empty or truncated (checkpoints.load_checkpoint)
    lskd_resume_whole = True

    def __init__(self, cfg: KdTranslationConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.teacher = None
        self._teacher_placement = None
        self._teacher_checked = False

    @classmethod
    def setup_task(cls, cfg: KdTranslationConfig, **kwargs):
        T = cfg.kd_temperature
        if T is None or not math.isfinite(float(T)):
            raise LskdConfigError(f"--kd-temperature must be finite (a number > 0), got {T}")
        if float(T) <= 0:
            raise LskdConfigError(f"--kd-temperature must be a number > 0, got {T}")
        if cfg.teacher_topk is None or cfg.teacher_topk < 0:
            raise LskdConfigError(
                f"--teacher-topk must be >= 0 (0 = full vocabulary), got {cfg.teacher_topk}"
            )
        task = setup_translation_data(cfg, super().setup_task, **kwargs)
        if cfg.teacher_topk >= len(task.tgt_dict):
            raise LskdConfigError(
                f"--teacher-topk {cfg.teacher_topk} is not smaller than the target "
                f"vocabulary ({len(task.tgt_dict)}); use 0 for the full vocabulary"
            )
        # A student checkpoint being loaded for inference (fairseq-generate, feature dumps) does
        # not need its teacher, which may not even exist on this machine.
        if not kwargs.get("from_checkpoint", False):
            task.load_teacher(cfg.teacher_path)
        return task

    # ------------------------------------------------------------------ teacher
    def load_teacher(self, path: Optional[str]) -> None:
        state, tcfg = load_teacher_state(path)
        task_name = str(_get(tcfg.task, "_name") or "")
        if "translation" not in task_name:
            raise LskdConfigError(
                f"teacher {path} is not a translation model (trained with task {task_name or 'unknown'!r})"
            )
        check_data_dictionaries(self, path, tcfg, state["model"], dict_dir=self.cfg.teacher_data)
        try:
            teacher = models.build_model(tcfg.model, self, from_checkpoint=True)
        except LskdConfigError:
            raise
        except Exception as e:
            raise LskdConfigError(f"teacher {path}: cannot build its model ({_first_line(e)})") from None
        if not isinstance(teacher, FairseqEncoderDecoderModel):
            raise LskdConfigError(
                f"teacher {path} is not a translation model "
                f"({type(teacher).__name__} is not an encoder-decoder)"
            )
        if getattr(teacher.decoder, "adaptive_softmax", None) is not None:
            raise LskdConfigError(f"teacher {path}: adaptive softmax is not supported")
        try:
            teacher.load_state_dict(state["model"], strict=True, model_cfg=tcfg.model)
        except Exception as e:
            raise LskdConfigError(
                f"teacher {path}: its weights do not fit its architecture ({_first_line(e)})"
            ) from None
        bad = next(
            (
                k
                for k, v in state["model"].items()
                if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
            ),
            None,
        )
        if bad:
            raise LskdConfigError(
                f"teacher {path}: its weights hold NaN or inf ({bad}): the teacher "
                f"checkpoint is broken (a diverged run?); distil from a sound one"
            )
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher = teacher
        self.teacher_path = path
        self._teacher_placement = None
        self._teacher_checked = False
        n = sum(p.numel() for p in teacher.parameters())
        logger.info(
            f"teacher {path}: {type(teacher).__name__} ({_get(tcfg.model, 'arch', '?')}), "
            f"{n:,} parameters, frozen; T = {self.cfg.kd_temperature}, "
            f"top-k = {self.cfg.teacher_topk or 'full vocabulary'}"
        )

    def _teacher_for(self, model):
        if self.teacher is None:
            self.load_teacher(self.cfg.teacher_path)
        p = next(model.parameters())
        if self._teacher_placement != (p.device, p.dtype):
            self.teacher.to(device=p.device, dtype=p.dtype)
            self._teacher_placement = (p.device, p.dtype)
            logger.info(f"teacher placed on {p.device} as {p.dtype} (the student's device and dtype)")
        return self.teacher

    def teacher_outputs(self, sample, model, autocast: bool = False) -> dict:
        """Teacher-forced teacher logits at the non-pad target positions of ``sample``."""
        teacher = self._teacher_for(model)
        mask = sample["target"].ne(self.tgt_dict.pad())
        device_type = mask.device.type
        with torch.no_grad(), torch.autocast(device_type=device_type, enabled=autocast):
            features, _ = teacher(**sample["net_input"], features_only=True)
            logits = teacher.decoder.output_layer(features[mask])  # [N, V]
            if not self._teacher_checked:  # the first batch only: one host sync
                if not torch.isfinite(logits).all():
                    raise LskdConfigError(
                        f"teacher {self.teacher_path} gives NaN or inf logits on the first batch (run in "
                        f"{logits.dtype}): the teacher is at fault, not the student's settings"
                        + (
                            " (its logits overflow float16: train with --amp, where it stays fp32)"
                            if logits.dtype == torch.float16
                            else ""
                        )
                    )
                self._teacher_checked = True
            k = self.cfg.teacher_topk
            if k and k > 0:
                values, indices = logits.topk(k, dim=-1)
                return {"mask": mask, "logits": None, "topk_values": values, "topk_indices": indices}
        return {"mask": mask, "logits": logits, "topk_values": None, "topk_indices": None}

    def _with_teacher(self, sample, model, autocast=False):
        if sample is None or "net_input" not in sample:
            return sample
        sample = dict(sample)
        sample[TEACHER_KEY] = self.teacher_outputs(sample, model, autocast)
        return sample

    # -------------------------------------------------------------- train/valid
    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        sample = self._with_teacher(sample, model, autocast=isinstance(optimizer, AMPOptimizer))
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        sample = self._with_teacher(sample, model)
        return super().valid_step(sample, model, criterion)
