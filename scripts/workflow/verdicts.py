"""Across-seed summaries and the report's verdicts, each with its interval or p-value.

Every number a verdict rests on comes with its uncertainty, from shared_metrics.stats:

* a cell over seeds is mean ± sample std (n);
* a difference between two conditions (the LS teacher's students against the plain teacher's, or a
  T against T = 1) is paired by seed: the mean of the per-seed differences with its Student-t
  interval and the two-sided paired t-test (n − 1 degrees of freedom), next to the per-seed tests
  on the same images or sentences (McNemar's exact test for top-1, sacrebleu's paired bootstrap for
  BLEU), read from the workflow's lskd-metrics / nmt_plugin.bleu outputs;
* η over seeds: the t-interval of η(S1) and of η(S2) per target; a target shows *significant*
  systematic diffusion when the one-sample t-tests of η(S1) < 0 and η(S2) > 0 both reject at the
  confidence level after Holm's correction over the targets (p_target = the larger of the two
  p-values, 1 when a mean has the wrong sign);
* a verdict reads "significant at 95 %" or "not distinguishable at this scale"; no hand-set
  thresholds.
"""

from __future__ import annotations

from shared_metrics.stats import holm, paired_t_interval, t_interval

CONFIDENCE = 0.95


def level() -> str:
    return f"{100 * CONFIDENCE:g} %"


def verdict(p: float | None) -> str:
    if p is None or p != p:
        return "not distinguishable at this scale (too few seeds for a test)"
    return f"significant at {level()}" if p < 1 - CONFIDENCE else "not distinguishable at this scale"


def cell(values, scale: float = 1.0, digits: int = 2) -> str:
    """mean ± std (n) of per-seed values, times ``scale`` (100: fractions as percent)."""
    if not values:
        return "–"
    r = t_interval(values, CONFIDENCE)
    return f"{scale * r.mean:.{digits}f} ± {scale * r.std:.{digits}f} ({r.n})"


def interval(r, scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    """'m [low, high]' of a TInterval, times ``scale``."""
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if r.low != r.low:
        return fmt.format(scale * r.mean) + " [n = 1: no interval]"
    return f"{fmt.format(scale * r.mean)} [{fmt.format(scale * r.low)}, {fmt.format(scale * r.high)}]"


def p_text(p) -> str:
    return "–" if p is None or p != p else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def paired(a: list[float], b: list[float]):
    """TInterval of the per-seed differences b − a (seeds in the same order)."""
    return paired_t_interval(a, b, CONFIDENCE)


def one_sample_p(values: list[float]) -> float:
    """Two-sided p of the one-sample t-test of mean 0 (the paired test against zeros)."""
    return paired_t_interval([0.0] * len(values), values, CONFIDENCE).p_value


def eta_over_seeds(per_seed: list[list[dict]], suffix: str = "") -> list[dict]:
    """Per target: η(S1) and η(S2) over seeds (t-intervals), the one-sided evidence of systematic
    diffusion, Holm over the targets, and in how many seeds the per-seed paired bootstrap (Holm)
    found it significant. ``per_seed``: each seed's `lskd-metrics eta --bootstrap` targets."""
    targets = [r["target"] for r in per_seed[0]]
    rows = []
    for t in targets:
        recs = [next(r for r in seed if r["target"] == t) for seed in per_seed]
        s1 = [r[f"eta_similar{suffix}"] for r in recs]
        s2 = [r[f"eta_dissimilar{suffix}"] for r in recs]
        i1, i2 = t_interval(s1, CONFIDENCE), t_interval(s2, CONFIDENCE)
        if len(recs) > 1 and i1.mean < 0 < i2.mean:
            p = max(one_sample_p(s1), one_sample_p(s2))
        else:
            p = 1.0 if len(recs) > 1 else float("nan")
        boot = sum(bool(r.get(f"significant_systematic_diffusion_holm{suffix}")) for r in recs)
        rows.append(
            {
                "target": t,
                "similar": recs[0]["similar"],
                "dissimilar": recs[0]["dissimilar"],
                "s1": i1,
                "s2": i2,
                "p": p,
                "bootstrap_significant": boot,
                "n": len(recs),
                "sign": i1.mean < 0 < i2.mean,
            }
        )
    adjusted = holm([r["p"] for r in rows]) if len(per_seed) > 1 else [float("nan")] * len(rows)
    for r, q in zip(rows, adjusted):
        r["p_holm"] = float(q)
        r["significant"] = bool(q == q and q < 1 - CONFIDENCE)
    return rows


def diffusion_line(who: str, rows: list[dict], what: str = "targets") -> str:
    sig = [r["target"] for r in rows if r["significant"]]
    sign = [r["target"] for r in rows if r["sign"]]
    n = rows[0]["n"] if rows else 0
    boot = sum(r["bootstrap_significant"] for r in rows)
    return (
        f"- {who}: systematic diffusion from T1 to T2 **significant at {level()} for {len(sig)} of "
        f"{len(rows)} "
        f"{what}**{' (' + ', '.join(sig) + ')' if sig else ''} (one-sample t-tests over {n} seeds, Holm over "
        f"the {len(rows)} {what}); the mean η has the sign pattern (S1 < 0 < S2) for {len(sign)}; the "
        "per-seed "
        f"paired bootstrap (Holm) found it in {boot} of {len(rows) * n} (target, seed) pairs."
    )


def best_line(metric: str, scores: dict, unit: str, scale: float) -> str:
    """Which T gave each teacher's best student (by mean over seeds), and the LS teacher's best
    against the plain teacher's, paired by seed. ``scores``: {α: {T: [per-seed values]}}."""
    alphas = list(scores)
    best = {a: max(scores[a], key=lambda T: sum(scores[a][T]) / len(scores[a][T])) for a in alphas}
    a0, a1 = alphas
    d = paired(scores[a0][best[a0]], scores[a1][best[a1]])
    return (
        f"- Best {metric} ({unit}, mean ± std (n) over seeds): plain teacher (α = {a0:g}) at T = "
        f"{best[a0]:g}: "
        f"{cell(scores[a0][best[a0]], scale)}; LS teacher (α = {a1:g}) at T = {best[a1]:g}: "
        f"{cell(scores[a1][best[a1]], scale)}. LS − plain: {interval(d, scale, signed=True)} "
        f"({level()} paired t-interval over seeds, p = {p_text(d.p_value)}): **{verdict(d.p_value)}**."
    )


def temperature_line(metric: str, scores: dict, unit: str, scale: float, T_low, T_high) -> str:
    """Each teacher's change from T_low to T_high, and whether the LS teacher's students lost more
    (the per-seed difference of the two changes)."""
    a0, a1 = list(scores)
    ch = {a: paired(scores[a][T_low], scores[a][T_high]) for a in (a0, a1)}
    gap = paired(
        [x - y for x, y in zip(scores[a0][T_high], scores[a0][T_low])],
        [x - y for x, y in zip(scores[a1][T_high], scores[a1][T_low])],
    )
    return (
        f"- {metric} change from T = {T_low:g} to T = {T_high:g} ({unit}): α = {a0:g}: "
        f"{interval(ch[a0], scale, signed=True)} (p = {p_text(ch[a0].p_value)}, {verdict(ch[a0].p_value)}); "
        f"α = {a1:g}: {interval(ch[a1], scale, signed=True)} (p = {p_text(ch[a1].p_value)}, "
        f"{verdict(ch[a1].p_value)}). LS teacher's change minus the plain teacher's: "
        f"{interval(gap, scale, signed=True)} (p = {p_text(gap.p_value)}): **{verdict(gap.p_value)}**."
    )


def t_critical_note(n: int) -> str:
    """How wide n seeds make a t-interval: t_{n−1, (1+c)/2} (scipy)."""
    if n < 2:
        return "one seed: no across-seed interval or test is possible"
    from scipy.stats import t

    return (
        f"with n = {n} seeds a {level()} t-interval is ± {t.ppf((1 + CONFIDENCE) / 2, n - 1):.2f} standard "
        f"errors wide (t with {n - 1} degrees of freedom), so only large, consistent effects reach "
        "significance"
    )
