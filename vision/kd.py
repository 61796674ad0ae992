"""The KD loss and the training step shared by teachers, students and temperature sweeps.

L = (1 - β)·CE(y, p_s) + β·T²·H(p_t(T), p_s(T)),   p(T) = softmax(z / T)   (docs/design.md)

H(p_t, p_s) differs from KL(p_t ‖ p_s) by the teacher entropy, a constant for the student:
the gradients are the same. ``kd_terms`` also returns the KL and the teacher entropy for logs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(
    student_logits,
    teacher_logits,
    target,
    temperature: float,
    beta: float = 1.0,
    label_smoothing: float = 0.0,
):
    """(1-β)·CE(y) + β·T²·H(softmax(t/T), softmax(s/T)), averaged over the batch (float32)."""
    s, t, T = student_logits.float(), teacher_logits.float(), float(temperature)
    kd = -(F.softmax(t / T, dim=1) * F.log_softmax(s / T, dim=1)).sum(1).mean() * (T * T)
    if beta == 1.0:
        return kd
    return (1.0 - beta) * F.cross_entropy(s, target, label_smoothing=label_smoothing) + beta * kd


def kd_terms(student_logits, teacher_logits, temperature: float) -> dict:
    """Per-batch means of H(p_t, p_s), KL(p_t ‖ p_s) and H(p_t) at temperature T (no T² factor)."""
    T = float(temperature)
    log_pt = F.log_softmax(teacher_logits.float() / T, dim=1)
    log_ps = F.log_softmax(student_logits.float() / T, dim=1)
    pt = log_pt.exp()
    cross = -(pt * log_ps).sum(1).mean()
    ent = -(pt * log_pt).sum(1).mean()
    return {"cross_entropy": cross, "kl": cross - ent, "teacher_entropy": ent}


class FrozenTeacher(nn.Module):
    """A teacher that stays in eval mode whatever ``train()`` is called with, has no trainable
    parameters, runs under ``no_grad`` and is never wrapped in DDP."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.forward_fn = self.model  # replaced by a torch.compile'd module with --compile

    def train(self, mode: bool = True):
        return super().train(False)

    @torch.no_grad()
    def forward(self, x):
        return self.forward_fn(x)


@dataclass
class Slot:
    """One model being trained: its (DDP/compiled) module, optimizer and temperature (None for a
    teacher), plus its own RNG stream, so that dropout-like randomness of one student neither
    depends on nor disturbs the others in a sweep (nor the data augmentation)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    temperature: float | None = None
    seed: int = 0
    cuda: bool = False  # also keep a CUDA RNG stream (the current device's)
    rng: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.rng:
            self.rng = {"cpu": torch.Generator().manual_seed(self.seed).get_state()}
            if self.cuda:
                with torch.random.fork_rng(devices=[torch.cuda.current_device()]):
                    torch.cuda.manual_seed(self.seed)
                    self.rng["cuda"] = torch.cuda.get_rng_state()

    @contextlib.contextmanager
    def rng_scope(self):
        outer_cpu = torch.get_rng_state()
        torch.set_rng_state(self.rng["cpu"])
        use_cuda = "cuda" in self.rng
        if use_cuda:
            outer_cuda = torch.cuda.get_rng_state()
            torch.cuda.set_rng_state(self.rng["cuda"])
        try:
            yield
        finally:
            self.rng["cpu"] = torch.get_rng_state()
            torch.set_rng_state(outer_cpu)
            if use_cuda:
                self.rng["cuda"] = torch.cuda.get_rng_state()
                torch.cuda.set_rng_state(outer_cuda)


def train_step(
    slots,
    images,
    target,
    *,
    teacher=None,
    beta: float = 1.0,
    label_smoothing: float = 0.0,
    autocast=contextlib.nullcontext,
    clip_grad_norm: float | None = None,
):
    """One optimisation step of every slot on the same batch.

    Teacher mode (``teacher is None``): CE with label smoothing. Student mode: ONE teacher
    forward, then each student in turn (forward, KD loss at its T, backward, optimizer step).
    ``clip_grad_norm``: each student's gradient is scaled to at most this global L2 norm.
    Returns ``[(loss, logits, terms)]`` per slot, detached and left on the device (no host sync);
    ``terms`` = [KL(p_t ‖ p_s), H(p_t)] at the student's T (batch means, nats, no T²; None for a
    teacher), for the logs."""
    t_logits = None
    if teacher is not None:
        with autocast():
            t_logits = teacher(images)
    out = []
    for slot in slots:
        with slot.rng_scope():
            with autocast():
                logits = slot.model(images)
            if t_logits is None:
                loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
            else:
                loss = kd_loss(logits, t_logits, target, slot.temperature, beta, label_smoothing)
            slot.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm:
                nn.utils.clip_grad_norm_(slot.model.parameters(), clip_grad_norm)
            slot.optimizer.step()
        terms = None
        if t_logits is not None:
            with torch.no_grad():
                k = kd_terms(logits, t_logits, slot.temperature)
                terms = torch.stack((k["kl"], k["teacher_entropy"]))
        out.append((loss.detach(), logits.detach(), terms))
    return out


#: What ``tally`` adds up per slot (sums over samples; the trainer divides by their number).
TALLY = ("loss", "correct", "kl", "teacher_entropy")


def tally(acc, outs, target) -> None:
    """Add (loss·n, correct top-1, KL·n, H(p_t)·n) of each slot's step into ``acc`` (one device
    tensor of shape [len(TALLY)] per slot; the KD terms stay 0 for a teacher), without a host
    sync; the trainer reads it at print time only."""
    n = target.size(0)
    for a, (loss, logits, terms) in zip(acc, outs):
        kd = terms.float() * n if terms is not None else loss.new_zeros(2, dtype=torch.float32)
        a += torch.cat((torch.stack((loss.float() * n, (logits.argmax(1) == target).sum().float())), kd))
