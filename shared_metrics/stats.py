"""Paired tests and intervals behind the toolkit's verdicts (scipy.stats; no hand-rolled tables).

Over images (two models scored on the same samples):

* :func:`mcnemar_exact` -- McNemar's exact test: under H0 the discordant pairs split
  Binomial(b + c, 1/2); the two-sided p-value is ``scipy.stats.binomtest(b, b + c, 0.5)``.
* :func:`paired_bootstrap_accuracy` -- percentile interval of top-1(B) - top-1(A) under a
  bootstrap over images (both models' results of an image travel together).

Over seeds (one value per training seed):

* :func:`t_interval` -- mean, sample std and the Student-t interval mean ± t_{n-1} s / sqrt(n).
* :func:`paired_t_interval` -- the same on per-seed differences, with the paired t-test's p-value.

Many tests at once: :func:`holm` (Holm 1979, step-down; controls the family-wise error rate).

Fractions in, fractions out (accuracies, differences); the caller chooses the display unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _scipy_stats():
    from scipy import stats  # imported when a test runs: it costs ~0.25 s at every CLI start

    return stats


def check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"the confidence level must be in (0, 1), got {confidence:g}")
    return confidence


def percentile_interval(
    replicates: np.ndarray, confidence: float, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (Efron & Tibshirani 1993, Sec. 13.3): the (1 - c)/2 and
    (1 + c)/2 quantiles of the replicate values (numpy's default linear interpolation)."""
    a = (1.0 - check_confidence(confidence)) / 2.0
    lo, hi = np.quantile(replicates, [a, 1.0 - a], axis=axis)
    return lo, hi


# ------------------------------------------------------------------ over images
@dataclass(frozen=True)
class McNemarResult:
    only_a: int  # b: images A gets right and B gets wrong
    only_b: int  # c: images B gets right and A gets wrong
    p_value: float  # two-sided exact (binomial) p-value

    def as_dict(self) -> dict:
        return asdict(self)


def _paired_correct(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_a, bool).ravel(), np.asarray(correct_b, bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired results need one entry per sample in both: {a.size} vs {b.size}")
    if a.size == 0:
        raise ValueError("no samples to compare")
    return a, b


def mcnemar_exact(correct_a, correct_b) -> McNemarResult:
    """McNemar's exact test of equal accuracy from per-sample correctness (booleans) of two
    models on the same samples. Only discordant samples count: b = A right & B wrong,
    c = B right & A wrong; p = binomtest(b, b + c, 1/2), two-sided (1 when b + c = 0)."""
    a, b = _paired_correct(correct_a, correct_b)
    only_a, only_b = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(_scipy_stats().binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(only_a, only_b, p)


@dataclass(frozen=True)
class BootstrapDifference:
    difference: float  # top-1(B) - top-1(A), a fraction
    low: float
    high: float
    confidence: float
    replicates: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap_accuracy(
    correct_a, correct_b, replicates: int = 10000, seed: int = 0, confidence: float = 0.95
) -> BootstrapDifference:
    """Percentile interval of accuracy(B) - accuracy(A) under a paired bootstrap over samples.

    Resampling n samples with replacement, the difference of the two accuracies depends only on
    how many drawn samples are "B right, A wrong" (+1), "A right, B wrong" (-1) or concordant (0),
    so each replicate is drawn exactly as Multinomial(n; p+, p-, p0) counts of these three kinds
    (the same distribution as resampling the rows, at O(B) cost instead of O(B n))."""
    a, b = _paired_correct(correct_a, correct_b)
    replicates = _check_replicates(replicates)
    n = a.size
    plus, minus = int(np.count_nonzero(b & ~a)), int(np.count_nonzero(a & ~b))
    probs = np.array([plus, minus, n - plus - minus], np.float64) / n
    counts = np.random.default_rng(_check_seed(seed)).multinomial(n, probs, size=replicates)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    lo, hi = percentile_interval(diffs, confidence)
    return BootstrapDifference((plus - minus) / n, float(lo), float(hi), confidence, replicates)


# ------------------------------------------------------------------- over seeds
@dataclass(frozen=True)
class TInterval:
    mean: float
    std: float  # sample standard deviation (ddof = 1); 0 for one value
    n: int
    low: float  # Student-t interval; NaN for n = 1 (no spread to estimate)
    high: float
    confidence: float
    p_value: float | None = None  # paired: two-sided t-test of mean difference 0

    def as_dict(self) -> dict:
        return asdict(self)


def t_interval(values, confidence: float = 0.95) -> TInterval:
    """mean ± t_{n-1, (1+c)/2} · s / sqrt(n) of values over seeds (scipy.stats.t.ppf)."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        raise ValueError("no values")
    if not np.isfinite(x).all():
        raise ValueError("a value is not finite (NaN or inf)")
    confidence = check_confidence(confidence)
    mean = float(x.mean())
    if x.size == 1:
        return TInterval(mean, 0.0, 1, float("nan"), float("nan"), confidence)
    s = float(x.std(ddof=1))
    half = float(_scipy_stats().t.ppf((1.0 + confidence) / 2.0, x.size - 1)) * s / np.sqrt(x.size)
    return TInterval(mean, s, int(x.size), mean - half, mean + half, confidence)


def paired_t_interval(a, b, confidence: float = 0.95) -> TInterval:
    """t-interval of the per-seed difference b - a, and the paired t-test's two-sided p-value
    (scipy.stats.ttest_rel; NaN when there are fewer than two seeds or no spread)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds in both: {a.size} vs {b.size} values")
    r = t_interval(b - a, confidence)
    p = float("nan")
    if a.size > 1 and r.std > 0:
        p = float(_scipy_stats().ttest_rel(b, a).pvalue)
    elif a.size > 1:  # every seed has the same difference: 0 (p = 1) or a constant shift (p = 0)
        p = 1.0 if r.mean == 0 else 0.0
    return TInterval(r.mean, r.std, r.n, r.low, r.high, r.confidence, p)


# -------------------------------------------------------------- many tests
def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sort ascending, multiply the i-th
    smallest (i from 0) by m - i, take the running maximum, cap at 1; reject H_i at level a when
    the adjusted p_i <= a. Returned in the input order; NaN entries are left out of m and stay NaN."""
    p = np.asarray(p_values, np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


# ------------------------------------------------------------------ checks
def _check_replicates(replicates) -> int:
    if isinstance(replicates, bool) or int(replicates) != replicates or replicates < 1:
        raise ValueError(
            f"the number of bootstrap replicates must be a whole number >= 1, got {replicates!r}"
        )
    return int(replicates)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"the seed must be a whole number >= 0, got {seed!r}")
    return int(seed)
