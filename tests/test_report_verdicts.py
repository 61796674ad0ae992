"""The report's across-seed verdicts (scripts/workflow/verdicts.py) on hand-made per-seed values.

With n = 3 seeds the t-tests have 2 degrees of freedom, whose distribution has a closed form,
F(t) = 1/2 + t / (2 sqrt(2 + t²)), so a two-sided p is 1 − |t| / sqrt(2 + t²): the golden values
below come from it, not from scipy."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "workflow"))
import verdicts  # noqa: E402


def p_df2(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    return 1 - abs(t) / math.sqrt(2 + t * t)


def eta_row(target, s1, s2, boot=False):
    return {
        "target": target,
        "similar": ["x"],
        "dissimilar": ["y"],
        "eta_similar": s1,
        "eta_dissimilar": s2,
        "significant_systematic_diffusion_holm": boot,
    }


def test_eta_over_seeds_tests_both_signs_and_holm_corrects_over_the_targets():
    # target A diffuses in every seed: S1 = -2.5 % ± 0.5, S2 = +1.1 % ± 0.1;
    # t(S1) = -0.025 / (0.005 / sqrt 3) = -8.660 (t² = 75): p = 1 - 8.660 / sqrt 77 = 0.013072
    # t(S2) = 0.011 / (0.001 / sqrt 3) = 19.053 (t² = 363): p = 1 - sqrt(363 / 365) = 0.0027435
    # target B has S1 > 0 (the wrong sign): p = 1. Holm over 2: 2 x 0.013072 = 0.026144; then 1.
    seeds = [
        [eta_row("A", -0.02, 0.010, True), eta_row("B", 0.01, 0.02)],
        [eta_row("A", -0.03, 0.012, True), eta_row("B", 0.02, 0.01)],
        [eta_row("A", -0.025, 0.011), eta_row("B", 0.03, 0.03)],
    ]
    assert p_df2([-0.02, -0.03, -0.025]) == pytest.approx(0.013072, abs=1e-6)
    assert p_df2([0.010, 0.012, 0.011]) == pytest.approx(0.0027435, abs=1e-6)
    a, b = verdicts.eta_over_seeds(seeds)
    assert a["p"] == pytest.approx(0.013072, abs=1e-6) and a["p_holm"] == pytest.approx(0.026144, abs=1e-6)
    assert a["significant"] and a["sign"] and a["bootstrap_significant"] == 2 and a["n"] == 3
    assert a["s1"].mean == pytest.approx(-0.025) and a["s1"].high < 0 < a["s2"].low
    assert b["p"] == 1.0 and b["p_holm"] == 1.0 and not b["significant"] and not b["sign"]
    line = verdicts.diffusion_line("Teacher α = 0.1", [a, b])
    assert "significant at 95 % for 1 of 2 targets** (A)" in line and "in 2 of 6 (target, seed) pairs" in line


def test_one_seed_gives_no_test_and_says_so():
    (row,) = verdicts.eta_over_seeds([[eta_row("A", -0.02, 0.01)]])
    assert math.isnan(row["p"]) and not row["significant"]
    assert verdicts.verdict(float("nan")).startswith("not distinguishable at this scale (too few seeds")
    assert verdicts.cell([0.5]) == "0.50 ± 0.00 (1)"


def test_paired_lines_use_the_per_seed_differences():
    # per-seed top-1 (fractions): LS best T = 2 (0.80, 0.82, 0.84), plain best T = 1 (0.70, 0.71, 0.72);
    # differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, t = 0.11 / (0.01 / sqrt 3) = 19.053: p = 0.0027435
    scores = {
        0.0: {1: [0.70, 0.71, 0.72], 2: [0.60, 0.61, 0.62]},
        0.1: {1: [0.75, 0.75, 0.75], 2: [0.80, 0.82, 0.84]},
    }
    line = verdicts.best_line("student top-1", scores, "percent", 100)
    assert (
        "plain teacher (α = 0) at T = 1: 71.00 ± 1.00 (3)" in line and "LS teacher (α = 0.1) at T = 2" in line
    )
    assert "+11.00 [" in line and "p = 0.003" in line and "**significant at 95 %**" in line
    d = verdicts.paired([0.70, 0.71, 0.72], [0.80, 0.82, 0.84])
    assert d.p_value == pytest.approx(p_df2([0.10, 0.11, 0.12]), abs=1e-6)
    # from T = 1 to T = 2: plain -0.10 in every seed; LS +0.05, +0.07, +0.09 (gap +0.15, +0.17, +0.19)
    line = verdicts.temperature_line("Top-1", scores, "points", 100, 1, 2)
    assert "LS teacher's change minus the plain teacher's: +17.00 [" in line
    assert line.endswith(f"(p = {p_df2([0.15, 0.17, 0.19]):.3f}): **significant at 95 %**.")


def test_an_effect_within_the_noise_is_not_distinguishable():
    # differences +0.04, -0.04, +0.01: mean 0.0033, sd 0.0404, t = 0.143 (2 df): p = 0.90
    d = verdicts.paired([0.70, 0.75, 0.72], [0.74, 0.71, 0.73])
    assert d.p_value == pytest.approx(p_df2([0.04, -0.04, 0.01]), abs=1e-6)
    assert verdicts.verdict(d.p_value) == "not distinguishable at this scale"
    assert verdicts.interval(d, 100, signed=True).startswith("+0.33 [")
