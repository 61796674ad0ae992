"""Golden values for the paired tests, the intervals and η's bootstrap (shared_metrics.stats,
shared_metrics.eta_bootstrap). Expected numbers are worked out by hand, from printed tables or a
closed-form formula in the comments, never by the code under test."""

import math

import numpy as np
import pytest

from shared_metrics.diffusion import diffusion_index
from shared_metrics.eta_bootstrap import (
    ClassRows,
    bootstrap_eta,
    check_bootstrap_args,
    diffusion_p_value,
    gather_class_rows,
    summarise,
)
from shared_metrics.featureset import FeatureSet
from shared_metrics.stats import (
    holm,
    mcnemar_exact,
    paired_bootstrap_accuracy,
    paired_t_interval,
    percentile_interval,
    t_interval,
)


def _pairs(both, only_a, only_b, neither):
    """Per-sample correctness of A and B with the given counts of each kind."""
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return np.array(a), np.array(b)


# ------------------------------------------------------------------ McNemar
def test_mcnemar_exact_by_hand():
    # b = 1 (A right only), c = 6 (B right only): 7 discordant pairs ~ Binomial(7, 1/2) under H0.
    # P(X <= 1) = (C(7,0) + C(7,1)) / 2^7 = (1 + 7)/128 = 8/128; two-sided = 2 * 8/128 = 0.125.
    a, b = _pairs(both=10, only_a=1, only_b=6, neither=3)
    r = mcnemar_exact(a, b)
    assert (r.only_a, r.only_b) == (1, 6)
    assert r.p_value == pytest.approx(0.125, abs=1e-12)
    # b = 0, c = 5: two-sided 2 * (1/2)^5 = 0.0625; symmetric in A and B.
    assert mcnemar_exact(*_pairs(4, 0, 5, 1)).p_value == pytest.approx(0.0625, abs=1e-12)
    assert mcnemar_exact(*_pairs(4, 5, 0, 1)[::-1]).p_value == pytest.approx(0.0625, abs=1e-12)
    # b = c: the observed split is the most likely one, every outcome is as extreme: p = 1.
    assert mcnemar_exact(*_pairs(4, 3, 3, 0)).p_value == pytest.approx(1.0)
    # no discordant pair at all: nothing to test, p = 1.
    assert mcnemar_exact(*_pairs(4, 0, 0, 2)).p_value == 1.0
    with pytest.raises(ValueError, match="one entry per sample"):
        mcnemar_exact([True, False], [True])


# ------------------------------------------------- paired bootstrap of accuracy
def test_paired_bootstrap_matches_the_normal_interval_on_a_large_set():
    # n = 200,000 images: 6 % only B right, 4 % only A right, the rest concordant.
    # d_i in {+1, -1, 0}: mean d = 0.06 - 0.04 = 0.02; Var d_i = 0.06 + 0.04 - 0.02^2 = 0.0996;
    # se = sqrt(0.0996 / 200000) = 7.05691e-4; 95 %: 0.02 ± 1.959964 * 7.05691e-4 = 0.02 ± 1.38313e-3
    # -> [0.0186169, 0.0213831]. Monte Carlo sd of a 2.5 % quantile with B = 20000:
    # sqrt(0.025 * 0.975 / 20000) / phi(1.96) * se = 0.0189 se = 1.3e-5; tolerance 5e-5.
    n = 200_000
    a, b = _pairs(both=150_000, only_a=8_000, only_b=12_000, neither=n - 170_000)
    r = paired_bootstrap_accuracy(a, b, replicates=20_000, seed=3)
    assert r.difference == pytest.approx(0.02, abs=1e-15)
    assert r.low == pytest.approx(0.0186169, abs=5e-5)
    assert r.high == pytest.approx(0.0213831, abs=5e-5)
    # the same seed gives the same interval; another seed moves it a little
    assert paired_bootstrap_accuracy(a, b, 20_000, seed=3) == r
    assert paired_bootstrap_accuracy(a, b, 20_000, seed=4).low != r.low


def test_percentile_interval_by_hand():
    # 101 values 0..100: the 2.5 % and 97.5 % quantiles (linear interpolation) are 2.5 and 97.5.
    lo, hi = percentile_interval(np.arange(101.0), 0.95)
    assert (lo, hi) == pytest.approx((2.5, 97.5))


# ------------------------------------------------------------ over seeds
def test_t_interval_by_hand():
    # 1, 2, 3, 4, 5: mean 3; s^2 = (4 + 1 + 0 + 1 + 4)/4 = 2.5, s = 1.581139; se = s/sqrt(5) = 0.707107.
    # t_{4, 0.975} = 2.776445 (printed t table) -> half-width 1.963243 -> [1.036757, 4.963243].
    r = t_interval([1, 2, 3, 4, 5])
    assert (r.mean, r.std, r.n) == pytest.approx((3.0, 1.581139, 5), abs=1e-6)
    assert (r.low, r.high) == pytest.approx((1.036757, 4.963243), abs=1e-6)
    # 90 %: t_{4, 0.95} = 2.131847 -> half-width 1.507443.
    r = t_interval([1, 2, 3, 4, 5], 0.90)
    assert (r.low, r.high) == pytest.approx((3 - 1.507443, 3 + 1.507443), abs=1e-6)
    one = t_interval([0.7])
    assert one.n == 1 and one.std == 0 and math.isnan(one.low)


def test_paired_t_interval_by_hand():
    # per-seed differences b - a = 0.03, 0.02, 0.04: mean 0.03, s = 0.01, se = 0.01/sqrt(3) = 0.0057735;
    # t_{2, 0.975} = 4.302653 -> half-width 0.0248414 -> [0.0051586, 0.0548414].
    # t statistic 0.03/0.0057735 = 5.196152; with 2 df the t CDF is 1/2 + t/(2 sqrt(2 + t^2)), so
    # p = 2 (1/2 - 5.196152/(2 sqrt(29))) = 1 - 5.196152/5.385165 = 0.035098.
    r = paired_t_interval([0.70, 0.72, 0.71], [0.73, 0.74, 0.75])
    assert (r.mean, r.std, r.n) == pytest.approx((0.03, 0.01, 3), abs=1e-9)
    assert (r.low, r.high) == pytest.approx((0.0051586, 0.0548414), abs=1e-7)
    assert r.p_value == pytest.approx(0.035098, abs=1e-6)
    with pytest.raises(ValueError, match="same seeds"):
        paired_t_interval([1, 2], [1, 2, 3])


# ------------------------------------------------------------------- Holm
def test_holm_by_hand():
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005, 0.01, 0.03, 0.04, times 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04; running max: 0.02, 0.03, 0.06, 0.06. Back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # a NaN (no test) is not counted in m: p = 0.2, 0.6 with m = 2 -> 0.2 * 2 = 0.4, 0.6 * 1 = 0.6
    out = holm([0.2, float("nan"), 0.6])
    assert out[0] == pytest.approx(0.4) and out[2] == pytest.approx(0.6) and math.isnan(out[1])
    # capped at 1: 0.7 * 2 = 1.4 -> 1; then max(1, 0.9 * 1) = 1
    assert holm([0.9, 0.7]).tolist() == [1.0, 1.0]


# ------------------------------------------------------------- η bootstrap
def rows_from(x1, x2, y, K) -> ClassRows:
    """ClassRows of two in-memory sets (the layout gather_class_rows builds from files)."""
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=K)
    return ClassRows(
        list(range(K)),
        np.concatenate([[0], np.cumsum(counts)]),
        (x1[order].astype(np.float32), x2[order].astype(np.float32)),
    )


def test_eta_bootstrap_is_paired():
    # T2 = 2 * T1 on the same samples, plus a zero column: every distance doubles in every replicate,
    # R doubles too, so each replicate's η is exactly 0 when T1 and T2 share the resampled rows
    # (an unpaired resample would scatter it around 0).
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x1 = rng.standard_normal((120, 3)) + 3 * np.eye(4, 3)[y]
    x2 = np.hstack([2 * x1, np.zeros((120, 1))])
    (rep,) = bootstrap_eta(rows_from(x1, x2, y, 4), [(0, [1], [2, 3])], 300, seed=1)
    assert np.abs(rep.similar).max() < 1e-6 and np.abs(rep.dissimilar).max() < 1e-6


def test_eta_bootstrap_against_the_normal_interval():
    # 1-D features, n = 4000 rows per class. Target π: all 0. S1 = {a}: all 1 (T1 and T2).
    # S2 = {b}: T1 all 2; T2 alternately 3 and 5 (mean m = 4, plug-in sd 1).
    # T1: distances 1, 2 -> d = 1/3, 2/3. T2: distances 1, m* -> d = 1/(1 + m*), m*/(1 + m*).
    # η(S1) = (1/(1+m*) - 1/3)/(1/3) = 3/(1 + m*) - 1 (decreasing in m*);
    # η(S2) = (m*/(1+m*) - 2/3)/(2/3) = 1.5 m*/(1 + m*) - 1 (increasing in m*).
    # The bootstrap mean m* of b's T2 rows is ~ Normal(4, 1/sqrt(4000) = 0.0158114): its 2.5 % / 97.5 %
    # quantiles are 4 ∓ 1.959964 * 0.0158114 = 3.969010, 4.030990, so
    # η(S1) interval = [3/5.030990 - 1, 3/4.969010 - 1] = [-0.403696, -0.396259]
    # η(S2) interval = [1.5*3.969010/4.969010 - 1, 1.5*4.030990/5.030990 - 1] = [0.198129, 0.201848].
    # Point: m = 4 -> η(S1) = -0.4, η(S2) = 0.2. Monte Carlo error of the bounds with B = 4000: ~1e-4.
    n = 4000
    y = np.repeat(np.arange(3), n)
    x1 = np.concatenate([np.zeros(n), np.ones(n), np.full(n, 2.0)])[:, None]
    x2 = np.concatenate([np.zeros(n), np.ones(n), np.tile([3.0, 5.0], n // 2)])[:, None]
    rows = rows_from(x1, x2, y, 3)
    c1, c2 = rows.centroids(3)
    point = diffusion_index(c1, c2, 0, [1], [2])
    assert (point.eta_similar, point.eta_dissimilar) == pytest.approx((-0.4, 0.2), abs=1e-12)
    (rep,) = bootstrap_eta(rows, [(0, [1], [2])], 4000, seed=0)
    s = summarise(point.eta_similar, point.eta_dissimilar, rep.similar, rep.dissimilar, 0.95)
    assert s["eta_similar_ci"] == pytest.approx([-0.403696, -0.396259], abs=3e-4)
    assert s["eta_dissimilar_ci"] == pytest.approx([0.198129, 0.201848], abs=3e-4)
    assert s["significant_systematic_diffusion"] is True
    # every replicate is on the diffusion side: p = 2 (0 + 1)/(4000 + 1)
    assert s["p_systematic_diffusion"] == pytest.approx(2 / 4001)


def _noisy_pair(seed, n, K=5, D=4, noise=0.3, centers_seed=5):
    """Two 'dumps' of the same samples: shared features plus independent noise (a null pair)."""
    centers = np.random.default_rng(centers_seed).standard_normal((K, D)) * 1.5
    rng = np.random.default_rng([7, seed])
    y = np.repeat(np.arange(K), n)
    x = centers[y] + rng.standard_normal((K * n, D))
    return x + noise * rng.standard_normal(x.shape), x + noise * rng.standard_normal(x.shape), y


def test_eta_bootstrap_seeds_propagate_and_intervals_widen_with_fewer_samples():
    x1, x2, y = _noisy_pair(0, 400)
    rows = rows_from(x1, x2, y, 5)
    target = [(0, [1, 2], [3, 4])]
    (a,) = bootstrap_eta(rows, target, 300, seed=11)
    (b,) = bootstrap_eta(rows, target, 300, seed=11)
    (c,) = bootstrap_eta(rows, target, 300, seed=12)
    assert np.array_equal(a.similar, b.similar) and np.array_equal(a.dissimilar, b.dissimilar)
    assert not np.allclose(a.similar, c.similar)
    # replicates are drawn per block of 128 from keyed generators: the first 300 of 1000 are the same
    # 300 draws (equal up to float32 rounding of the differently sized products, ~1e-8 here; other
    # draws would differ by ~1e-3, the replicates' spread)
    (longer,) = bootstrap_eta(rows, target, 1000, seed=11)
    assert np.allclose(longer.similar[:300], a.similar, rtol=0, atol=1e-6)
    # 50 instead of 400 samples per class: the interval's width grows ~ sqrt(8) = 2.8x; ask for > 1.5x
    keep = np.concatenate([np.flatnonzero(y == k)[:50] for k in range(5)])
    (small,) = bootstrap_eta(rows_from(x1[keep], x2[keep], y[keep], 5), target, 300, seed=11)
    width = lambda r: np.diff(percentile_interval(r.similar, 0.95))[0]  # noqa: E731
    assert width(small) > 1.5 * width(a)


def test_eta_bootstrap_null_pair_is_significant_at_about_the_nominal_rate():
    # 600 null pairs (same features, independent noise in each dump; true η = 0), 150 samples per class,
    # B = 200: a 95 % interval should miss 0 about 5 % of the time (binomial sd over 600 pairs: 0.9 %).
    # "Significant" needs both S1 < 0 and S2 > 0, so at most about that rate. An unpaired resample
    # (T1, T2 drawn apart) would make the intervals ~2x too wide and the miss rate ~0.
    R, miss1, miss2, significant = 600, 0, 0, 0
    for r in range(R):
        x1, x2, y = _noisy_pair(r, 150)
        rows = rows_from(x1, x2, y, 5)
        c1, c2 = rows.centroids(5)
        point = diffusion_index(c1, c2, 0, [1, 2], [3, 4])
        (rep,) = bootstrap_eta(rows, [(0, [1, 2], [3, 4])], 200, seed=r)
        s = summarise(point.eta_similar, point.eta_dissimilar, rep.similar, rep.dissimilar, 0.95)
        miss1 += not (s["eta_similar_ci"][0] <= 0 <= s["eta_similar_ci"][1])
        miss2 += not (s["eta_dissimilar_ci"][0] <= 0 <= s["eta_dissimilar_ci"][1])
        significant += s["significant_systematic_diffusion"]
    assert 0.02 <= miss1 / R <= 0.09 and 0.02 <= miss2 / R <= 0.09
    assert significant / R <= 0.05


def test_diffusion_p_value_by_hand():
    # B = 9: S1 has 1 replicate >= 0 -> 2 (1 + 1)/10 = 0.4; S2 has 0 replicates <= 0 -> 2 (0 + 1)/10 = 0.2;
    # the intersection-union p-value is the larger: 0.4.
    s1 = np.array([-3, -2, -1, -1, -2, -3, -1, -2, 0.5])
    s2 = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3.0])
    assert diffusion_p_value(s1, s2) == pytest.approx(0.4)


def test_gather_class_rows_streams_and_groups(make_set):
    # 7 rows of classes 0..3, T2 = T1 + 10; keep classes 1 and 3, read 2 rows at a time.
    y = np.array([1, 0, 3, 1, 2, 3, 1])
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    a = FeatureSet.open(make_set("a", x, y, classes=["p", "q", "r", "s"]))
    b = FeatureSet.open(make_set("b", x + 10, y, classes=["p", "q", "r", "s"]))
    rows = gather_class_rows([a, b], [3, 1], chunk_rows=2)
    assert rows.classes == [1, 3] and rows.dims == (2, 2)
    # class 1 = file rows 0, 3, 6; class 3 = file rows 2, 5 (file order kept within a class)
    assert [x.tolist() for x in rows.of(1)] == [[[0, 1], [6, 7], [12, 13]], [[10, 11], [16, 17], [22, 23]]]
    assert [x.tolist() for x in rows.of(3)] == [[[4, 5], [10, 11]], [[14, 15], [20, 21]]]
    c1, c2 = rows.centroids(4)
    assert c1[1].tolist() == [6, 7] and c2[3].tolist() == [17, 18] and np.isnan(c1[0]).all()


def test_bootstrap_argument_checks():
    assert check_bootstrap_args("1000", "0.9") == (1000, 0.9)
    for bad in ("0", "-3", "abc", "2.5"):
        with pytest.raises(ValueError, match="--bootstrap must be"):
            check_bootstrap_args(bad, "0.95")
    for bad in ("0", "1", "1.5", "-0.1", "x"):
        with pytest.raises(ValueError, match=r"--confidence must be a level in \(0, 1\)"):
            check_bootstrap_args("10", bad)
