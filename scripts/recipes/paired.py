"""The paired tests behind the recipes' mean ± std tables (``python -m scripts.recipes.tables
paired-accuracy | paired-bleu``; the workflow's paired_table rules run them).

Two students of the same seed, scored on the same images or test sentences, are compared

* per seed, by the job that scored them: ``lskd-metrics compare`` (McNemar's exact test on the
  validation images; the difference of top-1) or ``nmt_plugin.bleu paired`` (sacrebleu's paired
  bootstrap resampling on the test sentences; the difference of BLEU);
* across seeds, here: the mean of the per-seed differences B − A with its Student-t interval and the
  two-sided paired t-test (``shared_metrics.stats.paired_t_interval``, n − 1 degrees of freedom).

The comparisons are those of the demo's report: the students of each other teacher α against the
α = 0 teacher's at each T, and each other T against the lowest T (T = 1 in the paper) per teacher α.
Each family (one student model and the α comparisons over T; one student model and teacher α and
its T comparisons) is Holm-corrected over its rows (``shared_metrics.stats.holm``), and a row's
verdict reads the Holm-adjusted paired-t p-value at the confidence level: "significant at 95 %" or
"not distinguishable at this scale". The per-seed p-values are shown as the scoring job gave them
(uncorrected).
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict

from shared_metrics.stats import holm, paired_t_interval

from .tables import TableError, feature_meta, fnum, markdown, read_json, write_outputs


def _key(x) -> float:
    return -1.0 if x is None else float(x)


def classify(where, a: dict, b: dict) -> tuple[tuple, str, tuple]:
    """The family, row label and sort key of comparing ``a`` with ``b`` (dicts with model, alpha, T,
    seed): the same seed and model, and either the same T (α comparison) or the same α (T one)."""
    if a["seed"] != b["seed"]:
        raise TableError(
            f"{where}: compares seeds {a['seed']} and {b['seed']}: a paired test needs students of one seed"
        )
    if a["model"] != b["model"]:
        raise TableError(f"{where}: compares a {a['model']} with a {b['model']} student")
    if a["alpha"] != b["alpha"] and a["T"] == b["T"]:
        label = f"α = {fnum(b['alpha'])} − α = {fnum(a['alpha'])} at T = {fnum(a['T'])}"
        return ("alpha", a["model"], None), label, (_key(a["alpha"]), _key(b["alpha"]), _key(a["T"]))
    if a["alpha"] == b["alpha"] and a["T"] != b["T"]:
        label = f"T = {fnum(b['T'])} − T = {fnum(a['T'])}"
        return ("T", a["model"], a["alpha"]), label, (_key(a["T"]), _key(b["T"]))
    raise TableError(
        f"{where}: compares α = {fnum(a['alpha'])}, T = {fnum(a['T'])} with α = {fnum(b['alpha'])}, "
        f"T = {fnum(b['T'])}: a paired row changes either α or T"
    )


def accuracy_pairs(files) -> list[dict]:
    """One record per `lskd-metrics compare --format json` output: family, label, seed, top-1 of A and
    B (fractions) and McNemar's p; model, α, T and seed read from the compared sets' meta.json."""
    out = []
    for f in files:
        d = read_json(f)
        if not all(k in d for k in ("a", "b", "top1_a", "top1_b", "mcnemar")):
            raise TableError(f"{f}: not an `lskd-metrics compare --format json` output")
        side = []
        for path in (d["a"], d["b"]):
            m = feature_meta(path)
            side.append(
                {
                    "model": m.get("model"),
                    "alpha": m.get("alpha"),
                    "T": m.get("temperature"),
                    "seed": m.get("seed"),
                }
            )
        family, label, order = classify(f, *side)
        out.append(
            {
                "family": family,
                "label": label,
                "order": order,
                "a": side[0],
                "b": side[1],
                "seed": side[0]["seed"],
                "score_a": float(d["top1_a"]),
                "score_b": float(d["top1_b"]),
                "p": d["mcnemar"]["p_value"],
                "where": str(f),
            }
        )
    return out


def bleu_checkpoints(path) -> dict[str, dict]:
    """{checkpoint path (absolute: the CSV may hold either): {alpha, T, seed, role}} from an `nmt_plugin.bleu
    table` CSV."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise TableError(f"{path} not found") from None
    if not rows or not {"alpha", "temperature", "seed", "checkpoint"} <= set(rows[0]):
        raise TableError(f"{path}: not an `nmt_plugin.bleu table` CSV")
    info = {}
    for r in rows:
        T = r["temperature"]
        info[os.path.abspath(r["checkpoint"])] = {
            "model": "student" if T not in ("", "None") else "teacher",
            "alpha": float(r["alpha"]),
            "T": float(T) if T not in ("", "None") else None,
            "seed": int(r["seed"]) if r["seed"] not in ("", "None") else None,
        }
    return info


def bleu_pairs(files, bleu_csv) -> list[dict]:
    """One record per system of each `nmt_plugin.bleu paired --format json` output, against its
    baseline: BLEU of both and sacrebleu's paired-bootstrap p; α, T and seed from the BLEU table."""
    info = bleu_checkpoints(bleu_csv)

    def lookup(f, name):
        hit = info.get(os.path.abspath(name))
        if hit is None:
            raise TableError(f"{f}: {name} is not in {bleu_csv}")
        return hit

    out = []
    for f in files:
        d = read_json(f)
        systems = d.get("systems") if isinstance(d, dict) else None
        if not systems or "baseline" not in d:
            raise TableError(f"{f}: not an `nmt_plugin.bleu paired --format json` output")
        base = next((s for s in systems if s["system"] == d["baseline"]), None)
        if base is None:
            raise TableError(f"{f}: its baseline {d['baseline']} has no score")
        a = lookup(f, d["baseline"])
        for s in systems:
            if s is base:
                continue
            b = lookup(f, s["system"])
            family, label, order = classify(f, a, b)
            out.append(
                {
                    "family": family,
                    "label": label,
                    "order": order,
                    "a": a,
                    "b": b,
                    "seed": a["seed"],
                    "score_a": float(base["bleu"]),
                    "score_b": float(s["bleu"]),
                    "p": s.get("p_value"),
                    "where": str(f),
                }
            )
    return out


def summarise(records: list[dict], confidence: float) -> list[dict]:
    """Per (family, row): the seeds' scores, the paired t-interval of B − A over seeds, and the
    Holm-adjusted p-value within the family. A seed twice in a row is an error."""
    rows: dict[tuple, dict] = {}
    for r in records:
        row = rows.setdefault(
            (r["family"], r["label"]),
            {**{k: r[k] for k in ("family", "label", "order", "a", "b")}, "seeds": {}},
        )
        if r["seed"] in row["seeds"]:
            raise TableError(f"{r['where']}: seed {r['seed']} of {r['label']} is given twice")
        row["seeds"][r["seed"]] = (r["score_a"], r["score_b"], r["p"])
    out = sorted(rows.values(), key=lambda r: (tuple(map(str, r["family"])), r["order"]))
    for r in out:
        seeds = sorted(r["seeds"], key=_key)
        r["seed_order"] = seeds
        r["values_a"] = [r["seeds"][s][0] for s in seeds]
        r["values_b"] = [r["seeds"][s][1] for s in seeds]
        r["per_seed_p"] = [r["seeds"][s][2] for s in seeds]
        r["test"] = paired_t_interval(r["values_a"], r["values_b"], confidence)
    by_family = defaultdict(list)
    for r in out:
        by_family[r["family"]].append(r)
    for fam in by_family.values():
        ps = [r["test"].p_value if r["test"].p_value is not None else math.nan for r in fam]
        for r, p in zip(fam, holm(ps)):
            r["p_holm"] = float(p)
    return out


def _num(x, scale: float, digits: int = 2, signed: bool = False) -> str:
    return "–" if x is None or x != x else f"{scale * x:{'+' if signed else ''}.{digits}f}"


def _p(p) -> str:
    return "–" if p is None or p != p else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def verdict(p_holm: float, n: int, confidence: float) -> str:
    if n < 2 or p_holm != p_holm:
        return "not distinguishable at this scale (fewer than two seeds: no across-seed test)"
    return (
        f"significant at {100 * confidence:g} %"
        if p_holm < 1 - confidence
        else "not distinguishable at this scale"
    )


def family_title(family: tuple, what: str) -> str:
    kind, model, alpha = family
    who = f"{what} {model}" if model not in (None, "student") else what
    if kind == "alpha":
        return f"{who}: each teacher α against α = 0, at each T"
    return f"{who}, teacher α = {fnum(alpha)}: each T against the lowest"


def write_tables(a, rows: list[dict], scale: float, unit: str, per_seed_test: str, what: str) -> None:
    level = f"{100 * a.confidence:g} %"
    md = [
        f"# {a.title}\n",
        f"A and B are students of the same seed (B − A: the row's difference). B − A: the mean of the "
        f"per-seed differences with its {level} paired t-interval and the two-sided paired t-test over "
        f"seeds; Holm: that p-value Holm-corrected over the rows of the table; the verdict reads the Holm "
        f"p-value. Per seed, {per_seed_test} (p per seed, in seed order, uncorrected). {unit}.\n",
    ]
    rows_csv = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        body = []
        for r in (r for r in rows if r["family"] == fam):
            t = r["test"]
            ci = (
                ""
                if t.low != t.low
                else f" [{_num(t.low, scale, signed=True)}, {_num(t.high, scale, signed=True)}]"
            )
            body.append(
                [
                    r["label"],
                    f"{_num(sum(r['values_a']) / t.n, scale)} ({t.n})",
                    f"{_num(sum(r['values_b']) / t.n, scale)} ({t.n})",
                    _num(t.mean, scale, signed=True) + ci,
                    _p(t.p_value),
                    _p(r["p_holm"]),
                    ", ".join(_p(p) for p in r["per_seed_p"]),
                    verdict(r["p_holm"], t.n, a.confidence),
                ]
            )
            rows_csv.append(
                {
                    "family": fam[0],
                    "student": fam[1],
                    "comparison": r["label"],
                    "alpha_a": r["a"]["alpha"],
                    "T_a": r["a"]["T"],
                    "alpha_b": r["b"]["alpha"],
                    "T_b": r["b"]["T"],
                    "n": t.n,
                    "seeds": ";".join(map(str, r["seed_order"])),
                    "a_mean": sum(r["values_a"]) / t.n,
                    "b_mean": sum(r["values_b"]) / t.n,
                    "difference_mean": t.mean,
                    "difference_std": t.std,
                    "difference_low": t.low,
                    "difference_high": t.high,
                    "confidence": a.confidence,
                    "p_paired_t": t.p_value,
                    "p_holm": r["p_holm"],
                    "per_seed_p": ";".join(_p(p) for p in r["per_seed_p"]),
                    "significant": bool(t.n > 1 and r["p_holm"] < 1 - a.confidence),
                }
            )
        md += [
            f"## {family_title(fam, what)}\n",
            markdown(
                body,
                [
                    "comparison",
                    "A",
                    "B",
                    f"B − A [{level} CI]",
                    "paired t p",
                    "Holm p",
                    "per-seed p",
                    "verdict",
                ],
            ),
        ]
    write_outputs(a.out, "\n".join(md), rows_csv)


def cmd_paired_accuracy(a) -> None:
    a.confidence = _confidence(a.confidence)
    rows = summarise(accuracy_pairs(a.inputs), a.confidence)
    write_tables(
        a,
        rows,
        100.0,
        "Top-1 in percent, differences in percentage points (the CSV in fractions)",
        "McNemar's exact test on the validation images (`lskd-metrics compare`)",
        "Student",
    )


def cmd_paired_bleu(a) -> None:
    a.confidence = _confidence(a.confidence)
    rows = summarise(bleu_pairs(a.inputs, a.bleu), a.confidence)
    write_tables(
        a,
        rows,
        1.0,
        "BLEU points",
        "sacrebleu's paired bootstrap resampling on the test sentences (`nmt_plugin.bleu paired`)",
        "Students",
    )


def _confidence(text: str) -> float:
    try:
        c = float(text)
    except ValueError:
        c = math.nan
    if not 0.0 < c < 1.0:
        raise TableError(f"--confidence must be in (0, 1), got {text}")
    return c


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "paired-accuracy", help="paired tests of students' top-1 (lskd-metrics compare outputs)"
    )
    p.add_argument("--inputs", nargs="+", required=True, help="lskd-metrics compare --format json outputs")
    p.set_defaults(func=cmd_paired_accuracy, title="Paired tests of the students' top-1")
    p = sub.add_parser("paired-bleu", help="paired tests of students' BLEU (nmt_plugin.bleu paired outputs)")
    p.add_argument("--inputs", nargs="+", required=True, help="nmt_plugin.bleu paired --format json outputs")
    p.add_argument(
        "--bleu", required=True, help="the `nmt_plugin.bleu table` CSV that scored the checkpoints"
    )
    p.set_defaults(func=cmd_paired_bleu, title="Paired tests of the students' BLEU")
    for name in ("paired-accuracy", "paired-bleu"):
        q = sub.choices[name]
        q.add_argument("--confidence", default="0.95", help="confidence level, in (0, 1) (default 0.95)")
        q.add_argument("--title", default=q.get_default("title"))
