"""Smoothness of teacher targets (paper Supp. G, Table 13).

The mean entropy over a set of the targets softmax(z/T), in nats (natural log; the maximum is
ln K for K classes), and the temperature at which one teacher's mean entropy equals a given value
or another teacher's (Table 13: the α = 0 ResNet-50 at T = 1.481 matches the α = 0.1 one at T = 1).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

CHUNK_ROWS = 8192


def check_temperature(T: float) -> float:
    T = float(T)
    if not np.isfinite(T) or T <= 0:
        raise ValueError(f"temperature must be a positive number, got {T:g}")
    return T


def log_softmax(z: np.ndarray, T: float = 1.0) -> np.ndarray:
    """float64 log softmax(z / T) along the last axis."""
    z = np.asarray(z, np.float64) / T
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray, T: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(z, T))


def _chunks(logits, chunk_rows: int = CHUNK_ROWS):
    """float64 blocks of rows; a NaN/inf is an error naming its row (and file, for a memmap)."""
    for start in range(0, logits.shape[0], chunk_rows):
        block = np.asarray(logits[start : start + chunk_rows], np.float64)
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.argwhere(bad)[0][0])
            where = getattr(logits, "filename", None)
            raise ValueError(
                f"{str(where) + ': ' if where else ''}non-finite logit (NaN or inf) in row {row}"
            )
        yield block


def mean_entropy(logits, T: float = 1.0) -> float:
    """Mean over rows of H(softmax(z/T)) = −Σ_k p_k ln p_k, in nats. ``logits``: [N, K], may be a memmap."""
    T = check_temperature(T)
    total = 0.0
    for block in _chunks(logits):
        logp = log_softmax(block, T)
        total += float(-(np.exp(logp) * logp).sum())
    return total / logits.shape[0]


def match_temperature(
    logits, entropy: float, *, lo: float = 1e-3, hi: float = 1e4, xtol: float = 1e-7
) -> float:
    """The T at which ``mean_entropy(logits, T) == entropy`` (to well within 1e-4 in T).

    Each row's entropy grows with T (dH/dT = Var_p(z)/T³ ≥ 0), so the root is unique and a
    bracketing root finder (Brent) applies."""
    K = logits.shape[1]
    entropy = float(entropy)
    if not np.isfinite(entropy) or entropy < 0:
        raise ValueError(f"the entropy to match must be a number >= 0 (nats), got {entropy:g}")
    f = lambda T: mean_entropy(logits, T) - entropy  # noqa: E731
    f_lo, f_hi = f(lo), f(hi)
    if f_hi < 0:
        raise ValueError(
            f"entropy {entropy:.6g} nats is not reached below T = {hi:g} "
            f"(the maximum is ln K = {np.log(K):.6g})"
        )
    if f_lo > 0:
        raise ValueError(f"entropy {entropy:.6g} nats is below this teacher's entropy at T = {lo:g}")
    return float(brentq(f, lo, hi, xtol=xtol, rtol=1e-12))
