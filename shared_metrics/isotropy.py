"""Supp. D, "systematic, not isotropic": how few classes a teacher's soft targets spread over.

For a class π, the teacher's mean probability vector p̄ = mean over π's samples of softmax(z/T)
(:func:`shared_metrics.soft_targets.class_mean_soft_targets`). The paper lets p1 be the largest
probability, "which is also the probability of the correct class", and counts how many of the other
999 probabilities the second largest, p2, is "at least 100x larger than" (976/999 for
Standard_poodle, 924/999 for golden_retriever, 964/999 for thunder_snake: an LS ResNet-50 on the
ImageNet training set, T = 1, the teacher's output probability).

The reading implemented here: the reference p2 is the largest *non-target* probability (the
second largest whenever the target's is the largest, as in the paper; a vector whose largest is
not the target says so in ``target_is_largest``); a non-target class k is negligible when
p̄_k ≤ p2 / ratio ("at least 100x smaller", the bound included), counted over the K − 1
non-target classes (p2 itself never is, so counting over the K − 2 others gives the same number).
The classes that are not negligible, p2's class first, are those the diffusion goes towards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The paper's threshold: "we use 100x to mean significance/insignificance" (Supp. D).
PAPER_RATIO = 100.0


@dataclass(frozen=True)
class Negligibility:
    """The Supp. D count for one target's mean probability vector (class indices)."""

    target: int
    reference: int  # the largest non-target probability's class (the paper's p2)
    target_is_largest: bool
    negligible: int  # non-target classes with p <= p[reference] / ratio
    others: int  # K - 1
    not_negligible: list[int]  # the other non-target classes, largest probability first


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (math.isfinite(ratio) and ratio > 1.0):
        raise ValueError(f"the ratio must be a number > 1, got {ratio:g}")
    return ratio


def negligible_classes(p, target: int, ratio: float = PAPER_RATIO) -> Negligibility:
    """How many of the K − 1 non-target probabilities of ``p`` are at least ``ratio`` times smaller
    than the largest non-target one (Supp. D); see the module docstring for the reading."""
    ratio = check_ratio(ratio)
    p = np.asarray(p, np.float64)
    if p.ndim != 1 or p.size < 2 or not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("expected a 1-D vector of K >= 2 finite probabilities >= 0")
    if not 0 <= target < p.size:
        raise ValueError(f"target {target} outside 0..{p.size - 1}")
    others = np.delete(np.arange(p.size), target)
    at = int(np.argmax(p[others]))
    reference = int(others[at])
    small = p[others] <= p[reference] / ratio
    small[at] = False  # p2 is the reference, also where it is 0 (an underflowed softmax)
    kept = others[~small]
    kept = kept[np.argsort(-p[kept], kind="stable")]
    return Negligibility(
        target=target,
        reference=reference,
        target_is_largest=bool(p[target] >= p[reference]),
        negligible=int(small.sum()),
        others=int(others.size),
        not_negligible=[int(k) for k in kept],
    )
