"""Stability of a teacher's predictions (Shen et al., ICLR 2021, Sec. 3.1 Eq. 2 and Supp. Eq. 5).

    S      = 1 − (1/K) Σ_c (1/n_c) Σ_i ‖p_{i,c} − p̄_c‖²      (Eq. 2, intra-class)
    S_inter = 1 − (1/K) Σ_c ‖p̄_c − p̄_all‖²                   (Eq. 5, inter-class)

p = softmax(z / T) is the full probability vector; p̄_c the mean over class c's samples,
p̄_all the mean over the whole set. Shen et al.'s Appendix C code differs from Eq. 2: it
averages, over classes, the standard deviation (Bessel-corrected, torch's default) of the
probability of the true class only; it is offered as ``variant="target-std"``. Eq. 2 is the
default. Classes without samples are left out of the average over c (K counts the others).
"""

from __future__ import annotations

import numpy as np

from .entropy import _chunks, check_temperature, softmax

VARIANTS = ("eq2", "target-std")


def _class_moments(logits, labels: np.ndarray, K: int, T: float):
    n = np.bincount(labels, minlength=K).astype(np.float64)
    s1 = np.zeros((K, logits.shape[1]))  # Σ p per class
    s2 = np.zeros(K)  # Σ ‖p‖² per class
    t1 = np.zeros(K)  # Σ p_true per class
    t2 = np.zeros(K)  # Σ p_true² per class
    start = 0
    for block in _chunks(logits):
        y = labels[start : start + len(block)]
        p = softmax(block, T)
        np.add.at(s1, y, p)
        s2 += np.bincount(y, weights=(p * p).sum(axis=1), minlength=K)
        pt = p[np.arange(len(y)), y]
        t1 += np.bincount(y, weights=pt, minlength=K)
        t2 += np.bincount(y, weights=pt * pt, minlength=K)
        start += len(block)
    return n, s1, s2, t1, t2


def stability(logits, labels, T: float = 1.0, variant: str = "eq2") -> dict:
    """{"stability", "inter_class_stability", "classes_used"} of probabilities softmax(logits/T)."""
    T = check_temperature(T)
    if variant not in VARIANTS:
        raise ValueError(f"unknown stability variant {variant!r} (use one of {', '.join(VARIANTS)})")
    labels = np.asarray(labels)
    K = logits.shape[1]
    n, s1, s2, t1, t2 = _class_moments(logits, labels, K, T)
    used = n > 0
    nu = n[used]
    mean_c = s1[used] / nu[:, None]
    if variant == "eq2":
        intra = s2[used] / nu - (mean_c**2).sum(axis=1)
        spread = float(np.clip(intra, 0, None).mean())
    else:
        if (nu < 2).any():
            raise ValueError("the target-std variant needs at least 2 samples in every class")
        var = (t2[used] - t1[used] ** 2 / nu) / (nu - 1)
        spread = float(np.sqrt(np.clip(var, 0, None)).mean())
    mean_all = s1.sum(axis=0) / n.sum()
    inter = float(((mean_c - mean_all) ** 2).sum(axis=1).mean())
    return {"stability": 1.0 - spread, "inter_class_stability": 1.0 - inter, "classes_used": int(used.sum())}
