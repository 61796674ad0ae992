"""Task ``kd_translation``: fairseq's translation task plus a frozen teacher queried at T.

    fairseq-train DATA --user-dir nmt_plugin --task kd_translation \\
        --teacher-path teacher/checkpoint_best.pt --kd-temperature 2 --criterion ls_kd ...

* ``--teacher-path`` is loaded once, when the task is set up (so a bad path or a dictionary
  mismatch fails before training starts), frozen (``requires_grad=False``), in eval mode, and
  never handed to the trainer: it is not DDP-wrapped and has no optimizer state. On the first
  batch it moves to the student's device and dtype (half under ``--fp16``; fp32 under
  ``--amp``, where it runs inside the same autocast as the student).
* ``--kd-temperature`` is the only place T is set; the ``ls_kd`` criterion reads it here.
* The checks of the teacher checkpoint, its dictionaries and the options are in
  nmt_plugin/checks.py.
* In ``train_step`` and ``valid_step`` the teacher runs with teacher forcing on the very batch
  the student sees; its logits at the non-pad target positions go to the criterion in
  ``sample["kd_teacher"]``. The vocabulary projection is applied to those rows only.
* ``--teacher-topk k`` keeps only the teacher's k largest logits per token (values and word
  ids). The criterion then uses the softmax of those k logits at T as the teacher
  distribution: every other word gets probability 0 and the k kept words are renormalised
  among themselves, so the target is sharper than the full p_t(T) (its entropy is lower, and
  the lost tail mass -- the part label smoothing puts on "dissimilar" words -- is gone).
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from . import checkpoints
from .checks import build_teacher, cfg_get, check_task_options, check_topk_fits, setup_translation_data
from .errors import LskdConfigError, report_errors_in_one_line
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
        report_errors_in_one_line()  # fairseq sets the task up: its errors in one line
        check_task_options(cfg)
        task = setup_translation_data(cfg, super().setup_task, **kwargs)
        check_topk_fits(cfg.teacher_topk, task.tgt_dict)
        # A student checkpoint being loaded for inference (fairseq-generate, feature dumps) does
        # not need its teacher, which may not even exist on this machine.
        if not kwargs.get("from_checkpoint", False):
            task.load_teacher(cfg.teacher_path)
        return task

    # ------------------------------------------------------------------ teacher
    def load_teacher(self, path: Optional[str]) -> None:
        """Load, check (nmt_plugin.checks.build_teacher) and freeze the teacher of ``path``."""
        teacher, tcfg = build_teacher(self, path, dict_dir=self.cfg.teacher_data)
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher = teacher
        self.teacher_path = path
        self._teacher_placement = None
        self._teacher_checked = False
        n = sum(p.numel() for p in teacher.parameters())
        logger.info(
            f"teacher {path}: {type(teacher).__name__} ({cfg_get(tcfg.model, 'arch', '?')}), "
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
