"""Criterion ``ls_kd``: label-smoothed cross-entropy mixed with knowledge distillation.

    loss = (1 - β) · CE(y^LS, p_s)  +  β · T² · Σ_tokens H(p_t(T), p_s(T))

summed over the non-pad target tokens of the batch (the sample size is the number of target
tokens, as in fairseq's ``label_smoothed_cross_entropy``). ``y^LS`` follows fairseq's own
convention for ``--label-smoothing ε`` (the target keeps 1 − ε, every other word gets
ε / (V − 1)), so a student with β = 0 trains exactly like a fairseq teacher.
p(T) = softmax(z / T) in fp32 for both models; T is set once, on the task
(``--kd-temperature``), and read from it here.

Logged per target token, in bits like fairseq's ``nll_loss``: ``kd_loss`` = H(p_t(T), p_s(T))
(without the T² factor), ``kl`` = KL(p_t(T) ‖ p_s(T)) and ``teacher_entropy`` = H(p_t(T)), so
that kd_loss = kl + teacher_entropy; plus ``loss``, ``nll_loss`` and ``ppl``.

The teacher's logits come from the ``kd_translation`` task, which runs the frozen teacher with
teacher forcing on the same batch and puts them in ``sample["kd_teacher"]``.
"""

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import CRITERION_REGISTRY, FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from torch.nn.parallel import DistributedDataParallel

from .errors import LskdConfigError, report_errors_in_one_line

logger = logging.getLogger(__name__)

TEACHER_KEY = "kd_teacher"


@dataclass
class LsKdCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(
        default=0.0,
        metadata={
            "help": "epsilon for label smoothing of the cross-entropy term (fairseq's "
            "convention), 0 means none"
        },
    )
    kd_beta: float = field(
        default=1.0,
        metadata={
            "help": "weight β of the distillation term, in [0, 1]: "
            "loss = (1-β)·CE + β·T²·H(p_t(T), p_s(T)); 1 = pure KD (the paper)"
        },
    )
    report_accuracy: bool = field(default=False, metadata={"help": "report accuracy metric"})
    ignore_prefix_size: int = field(default=0, metadata={"help": "Ignore first N tokens"})


class _SoftCrossEntropy(torch.autograd.Function):
    """Per-row H(p_t(T), p_s(T)) and H(p_t(T)) for full-vocabulary teacher logits, with the
    closed-form gradient d/dz_s = (p_s(T) - p_t(T)) / T: fewer [N, V] passes than autograd."""

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, temperature):
        with torch.autocast(device_type=student_logits.device.type, enabled=False):  # fp32 under --amp too
            s_lp = F.log_softmax(student_logits.float().div(temperature), dim=-1)
            t_lp = F.log_softmax(teacher_logits.float().div(temperature), dim=-1)
            t_p = t_lp.exp()
            # row-wise dot products (einsum "nv,nv->n" runs as a batched matmul: 5x slower on CPU)
            cross = -torch.linalg.vecdot(t_p, s_lp, dim=-1)
            entropy = -torch.linalg.vecdot(t_p, t_lp, dim=-1)
        ctx.save_for_backward(s_lp, t_p)
        ctx.temperature, ctx.dtype = temperature, student_logits.dtype
        ctx.mark_non_differentiable(entropy)
        return cross, entropy

    @staticmethod
    def backward(ctx, grad_cross, grad_entropy):
        s_lp, t_p = ctx.saved_tensors
        grad = s_lp.exp().sub_(t_p).mul_(grad_cross.unsqueeze(-1) / ctx.temperature)
        return grad.to(ctx.dtype), None, None


def kd_token_terms(
    student_logits: torch.Tensor,
    temperature: float,
    teacher_logits=None,
    teacher_topk_values=None,
    teacher_topk_indices=None,
):
    """Per-token distillation terms on [N, V] student logits (rows = non-pad tokens).

    Returns ``(cross, kl, entropy)``, each [N] in nats: H(p_t, p_s), KL(p_t ‖ p_s), H(p_t), all at
    temperature T, computed in fp32; only ``cross`` carries a gradient. With top-k teacher logits
    the teacher distribution is the softmax over its k largest logits only (the other words get
    probability 0, the k kept ones are renormalised among themselves).
    """
    if teacher_topk_indices is None:
        cross, entropy = _SoftCrossEntropy.apply(student_logits, teacher_logits, float(temperature))
    else:
        s_lp = F.log_softmax(student_logits.float() / temperature, dim=-1).gather(-1, teacher_topk_indices)
        t_lp = F.log_softmax(teacher_topk_values.float() / temperature, dim=-1)
        t_p = t_lp.exp()
        cross = -(t_p * s_lp).sum(-1)
        entropy = -(t_p * t_lp).sum(-1)
    kl = cross.detach() - entropy
    return cross, kl, entropy


def can_project_outside_forward(model) -> bool:
    """Whether ``model.decoder.output_layer`` may be called outside the model's forward.

    Plain models and fairseq's ``legacy_ddp`` (which all-reduces every gradient after backward)
    allow it, and so does torch's DDP (``--ddp-backend pytorch_ddp``) by default: its gradient
    hooks fire for every parameter that gets a gradient. Not so with ``--find-unused-parameters``:
    DDP then marks every parameter it cannot reach from the forward's output as unused, and an
    output projection that is not tied to the embeddings is marked ready a second time when its
    gradient arrives (a RuntimeError), nor under a sharded wrapper (FSDP), whose parameters are
    only whole inside its forward.
    """
    while model is not None:
        if isinstance(model, DistributedDataParallel) and model.find_unused_parameters:
            return False
        if "FullyShardedDataParallel" in type(model).__name__:
            return False
        model = model._modules.get("module")  # fairseq's proxy / timeout wrappers, DDP
    return True


def _register(name, dataclass):
    """Register once: a second import of this module (plugin also installed) is harmless."""

    def wrap(cls):
        if name in CRITERION_REGISTRY:
            return CRITERION_REGISTRY[name]
        return register_criterion(name, dataclass=dataclass)(cls)

    return wrap


@_register("ls_kd", dataclass=LsKdCriterionConfig)
class LsKdCriterion(FairseqCriterion):
    def __init__(self, task, label_smoothing=0.0, kd_beta=1.0, report_accuracy=False, ignore_prefix_size=0):
        report_errors_in_one_line()  # fairseq builds the criterion: its errors in one line
        super().__init__(task)
        if not (0.0 <= kd_beta <= 1.0) or math.isnan(kd_beta):
            raise LskdConfigError(f"--kd-beta must be in [0, 1], got {kd_beta}")
        if not (0.0 <= label_smoothing < 1.0):
            raise LskdConfigError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        temperature = getattr(getattr(task, "cfg", None), "kd_temperature", None)
        if temperature is None:
            raise LskdConfigError(
                "criterion ls_kd needs the kd_translation task "
                "(--user-dir nmt_plugin --task kd_translation --teacher-path CKPT --kd-temperature T)"
            )
        self.eps = float(label_smoothing)
        self.beta = float(kd_beta)
        self.report_accuracy = report_accuracy
        self.ignore_prefix_size = ignore_prefix_size

    def _project_outside_forward(self, model) -> bool:
        ok = can_project_outside_forward(model)  # a walk over at most a few wrappers
        if not ok and not getattr(self, "_said_full_projection", False):
            self._said_full_projection = True
            logger.info(
                "ls_kd: the model's DDP/FSDP wrapper needs the output projection inside its "
                "forward (--find-unused-parameters or sharding): projecting every target "
                "position, padding included"
            )
        return ok

    @property
    def temperature(self) -> float:
        return float(self.task.cfg.kd_temperature)

    def forward(self, model, sample, reduce=True):
        teacher = sample.get(TEACHER_KEY)
        if teacher is None:
            raise LskdConfigError(
                "criterion ls_kd got a batch without teacher outputs: use --task kd_translation"
            )
        # The decoder's output features, projected to the vocabulary at the non-pad target
        # positions only (as the task does for the teacher): no [B, L, V] logits of padding.
        # Where a wrapper forbids that (see can_project_outside_forward), the whole forward.
        project = self._project_outside_forward(model)
        out, extra = model(**sample["net_input"], features_only=project)
        target = model.get_targets(sample, (None, extra))
        mask = teacher["mask"]  # [B, L] non-pad target positions; teacher rows follow it
        rows = {k: v for k, v in teacher.items() if k != "mask" and v is not None}
        if self.ignore_prefix_size > 0:
            keep = torch.zeros_like(mask)
            keep[:, self.ignore_prefix_size :] = True
            sub = keep.flatten()[mask.flatten()]
            rows = {k: v[sub] for k, v in rows.items()}
            mask = mask & keep
        flat = mask.flatten()
        rows_out = out.reshape(-1, out.size(-1))[flat]
        s_logits = model.decoder.output_layer(rows_out) if project else rows_out  # [N, V]
        tgt = target.reshape(-1)[flat]
        T = self.temperature

        # Cross-entropy with the data (fairseq's label smoothing); only in the graph when β < 1.
        if self.beta < 1.0:
            lprobs = F.log_softmax(s_logits.float(), dim=-1)
            ce_loss, nll_loss = label_smoothed_nll_loss(lprobs, tgt, self.eps, ignore_index=None, reduce=True)
        else:  # logged only: -log p_s(y) = logsumexp(z) - z_y, without an [N, V] log-softmax
            with torch.no_grad():
                z = s_logits.float()
                nll_loss = (torch.logsumexp(z, dim=-1) - z.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)).sum()
            ce_loss = None
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.beta > 0.0):
            cross, kl, entropy = kd_token_terms(
                s_logits,
                T,
                teacher_logits=rows.get("logits"),
                teacher_topk_values=rows.get("topk_values"),
                teacher_topk_indices=rows.get("topk_indices"),
            )
            kd_loss = cross.sum()
        loss = 0.0
        if self.beta < 1.0:
            loss = loss + (1.0 - self.beta) * ce_loss
        if self.beta > 0.0:
            loss = loss + self.beta * T * T * kd_loss
        if not torch.is_tensor(loss):
            loss = s_logits.sum() * 0.0
        ntokens = int(tgt.numel()) if self.ignore_prefix_size > 0 else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "kd_loss": kd_loss.data,
            "kl": kl.sum().data,
            "teacher_entropy": entropy.sum().data,
            "ntokens": ntokens,
            "nsentences": sample["target"].size(0),
            "sample_size": ntokens,
        }
        if self.report_accuracy:
            logging_output["n_correct"] = utils.item(s_logits.argmax(-1).eq(tgt).sum())
            logging_output["total"] = int(tgt.numel())
        return loss, ntokens, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """Aggregate logging outputs from data parallel training (all in bits per token)."""

        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        loss_sum = total("loss")
        ntokens = total("ntokens")
        sample_size = total("sample_size")
        ln2 = math.log(2)
        metrics.log_scalar("loss", loss_sum / max(sample_size, 1) / ln2, sample_size, round=3)
        for key in ("nll_loss", "kd_loss", "kl", "teacher_entropy"):
            metrics.log_scalar(key, total(key) / max(ntokens, 1) / ln2, ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))

        n_total = utils.item(total("total"))
        if n_total > 0:
            metrics.log_scalar("total", n_total)
            metrics.log_scalar("n_correct", utils.item(total("n_correct")))
            metrics.log_derived(
                "accuracy",
                lambda meters: (
                    round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3)
                    if meters["total"].sum > 0
                    else float("nan")
                ),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
