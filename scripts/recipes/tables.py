"""Tables with mean ± std over seeds, from what the paper recipes' jobs wrote (the workflow's table rules,
scripts/workflow/rules/{paper_vision,eta,imagenet,cub}.smk, run it).

    python -m scripts.recipes.tables vision-accuracy --teachers DIR --students DIR [--official FEATURES]
        --out PREFIX
    python -m scripts.recipes.tables eta --inputs ETA.json ... [--agreement SIMILAR.json ... [--sets FILE]]
        --out PREFIX
    python -m scripts.recipes.tables entropy --inputs ENTROPY.json ... [--match MATCH.json ...]
        [--matched-entropy ENTROPY.json ...] --out PREFIX
    python -m scripts.recipes.tables counterexamples --match MATCH.json ... --students DIR --matched DIR
        --out PREFIX
    python -m scripts.recipes.tables per-class-accuracy --inputs ACC.json ... [--set NAME CLASSES]
        --out PREFIX
    python -m scripts.recipes.tables paired-accuracy --inputs COMPARE.json ... --out PREFIX
    python -m scripts.recipes.tables paired-bleu --inputs PAIRED.json ... --bleu BLEU.csv --out PREFIX

Each table command writes PREFIX.md (cells ``mean ± std (n)``, std = sample std over seeds, 0 for
one seed) and PREFIX.csv (one row per cell with ``*_mean``, ``*_std`` and ``n`` columns).

* ``vision-accuracy`` — paper Tables 2, 10, 11 (ImageNet), 5, 6, 9, 20 (CUB): top-1/top-5 of
  the final epoch, rows teacher and T, columns teacher α, one table per student model. Runs are
  found by walking the directories for ``metrics.jsonl`` (written by ``vision/distill.py``); model,
  α (a student's is its teacher's) and T come from the records, the seed from ``args.json``.
  Runs that stopped before their last epoch are left out with a warning. ``--official`` names the
  validation feature set of a teacher that was not trained here (official torchvision weights,
  vision/official.py): its top-1/top-5 are computed from that set's logits (or features and head)
  and the table says which teacher came from where.
* ``eta`` — Tables 3, 4 (centroid η) and 21 (η_pairwise, Supp. J; the inputs say which):
  η(T1, T2; π, S1/S2) on train and valid per target, from ``lskd-metrics eta --sets ... --format
  json`` outputs, grouped by the student model, α, T1 and T2 read from the ``--before`` feature
  set's meta.json. Markdown in percent (as the paper), CSV in fractions (as lskd-metrics).
  ``--agreement`` adds Table 12 (S1/S2 used for η vs the feature-space S1/S2) from ``lskd-metrics
  similar --format json`` outputs: their own agreement when they chose S1/S2 from a hierarchy, else
  |S ∩ S_feat| / |S| against the sets of ``--sets`` (e.g. the recipe's shipped Table 3 groups).
* ``entropy`` — Table 13: mean teacher target entropy (nats) per T and α, from
  ``lskd-metrics entropy --format json`` outputs; ``--match`` adds the entropy-matched temperatures
  and ``--matched-entropy`` (entropy outputs at those temperatures) the rows at T* (Table 13's
  T = 1.481 and 5.638): every teacher's entropy at the α = 0 teacher's matched temperature.
* ``counterexamples`` — Tables 14–16: students of the α = 0.1 teacher at T_ref against students of
  the α = 0 teacher at the temperature matching its entropy (``lskd-metrics match-temperature``).
* ``per-class-accuracy`` — Tables 17–19: top-1 accuracy of each target class, rows the classes of
  a set (plus their average, per seed), columns T (and split), one table per student model,
  teacher α and set; from ``lskd-metrics accuracy --classes ... --format json`` outputs, model, α, T,
  split and seed read from each feature set's meta.json. Markdown in percent, CSV in fractions
  (as lskd-metrics).
* ``paired-accuracy``, ``paired-bleu`` — the paired tests behind the accuracy and BLEU tables
  (scripts/recipes/paired.py): students of the same seed compared on the same images (``lskd-metrics
  compare``: McNemar's exact test) or test sentences (``nmt_plugin.bleu paired``: sacrebleu's paired
  bootstrap), and across seeds the paired t-interval of the per-seed differences, Holm-corrected
  within each family of comparisons.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from shared_metrics.errors import UserError, run_cli


class TableError(UserError):
    """Bad input to a table command (a missing or malformed job output)."""


# ----------------------------------------------------------------------------- helpers
def read_json(path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise TableError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise TableError(f"{path}: not JSON ({e})") from None


def mean_std(vals) -> tuple[float, float, int]:
    vals = [float(v) for v in vals]
    n = len(vals)
    if not n:
        return math.nan, math.nan, 0
    m = sum(vals) / n
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return m, s, n


def cell(vals, digits: int = 3, scale: float = 1.0, n: bool = True) -> str:
    m, s, k = mean_std([v * scale for v in vals])
    if not k:
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}" + (f" ({k})" if n else "")


def markdown(rows: list[list], header: list[str]) -> str:
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(prefix: Path, md: str, csv_rows: list[dict]) -> None:
    buf = io.StringIO()
    if csv_rows:
        w = csv.DictWriter(buf, fieldnames=list(csv_rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(csv_rows)
    write_atomic(prefix.with_name(prefix.name + ".md"), md)
    write_atomic(prefix.with_name(prefix.name + ".csv"), buf.getvalue())
    print(md)


def stats_columns(name: str, vals, scale: float = 1.0) -> dict:
    m, s, n = mean_std([v * scale for v in vals])
    return {f"{name}_mean": m, f"{name}_std": s}


def fnum(x) -> str:
    return "—" if x is None else f"{float(x):g}"


# ----------------------------------------------------------------------------- runs
def scan_runs(root: Path) -> list[dict]:
    """One dict per finished vision run under ``root`` (teacher or student at one T)."""
    runs = []
    if not root.is_dir():
        raise TableError(f"{root}: no such directory")
    for dirpath, _, files in sorted(os.walk(root)):
        if "metrics.jsonl" not in files:
            continue
        d = Path(dirpath)
        lines = [ln for ln in (d / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        if not lines:
            continue
        last = json.loads(lines[-1])
        args_file = d / "args.json" if (d / "args.json").exists() else d.parent / "args.json"
        args = read_json(args_file) if args_file.exists() else {}
        epochs = args.get("epochs")
        if epochs is not None and last["epoch"] + 1 < epochs:
            print(f"warning: {d} stopped at epoch {last['epoch'] + 1} of {epochs}; left out", file=sys.stderr)
            continue
        runs.append(
            {
                "dir": str(d),
                "mode": last.get("mode"),
                "model": last.get("model"),
                "alpha": float(last.get("alpha") or 0.0),
                "temperature": last.get("temperature"),
                "seed": args.get("seed"),
                "acc1": last["val_acc1"],
                "acc5": last["val_acc5"],
            }
        )
    return runs


def acc_cell(runs) -> str:
    if not runs:
        return "—"
    top1, top5 = (cell([r[k] for r in runs], n=False) for k in ("acc1", "acc5"))
    return f"{top1} / {top5} ({len(runs)})"


def topk_accuracy(features_dir: Path, ks=(1, 5), chunk: int = 8192) -> dict[int, float]:
    """Top-k accuracy (fractions) of a dumped feature set: its logits.npy, or features · Wᵀ + b from
    its head when the dump kept no logits; streamed in chunks of rows (memory-mapped arrays)."""
    d = Path(features_dir)
    try:
        labels = np.load(d / "labels.npy", mmap_mode="r")
        if (d / "logits.npy").exists():
            logits, head = np.load(d / "logits.npy", mmap_mode="r"), None
        else:
            logits = np.load(d / "features.npy", mmap_mode="r")
            head = (np.load(d / "head_weight.npy"), np.load(d / "head_bias.npy"))
    except (OSError, ValueError) as e:
        raise TableError(f"{d}: not a readable feature set ({e})") from None
    if len(labels) == 0 or len(logits) != len(labels):
        raise TableError(f"{d}: {len(logits)} rows of scores for {len(labels)} labels")
    hits = dict.fromkeys(ks, 0)
    for i in range(0, len(labels), chunk):
        z = np.asarray(logits[i : i + chunk], np.float32)
        if head is not None:
            z = z @ head[0].T.astype(np.float32) + head[1].astype(np.float32)
        y = np.asarray(labels[i : i + chunk])
        # rank of the true class: how many classes score strictly higher (ties count for the label)
        rank = (z > z[np.arange(len(y)), y][:, None]).sum(axis=1)
        for k in ks:
            hits[k] += int((rank < k).sum())
    return {k: hits[k] / len(labels) for k in ks}


def official_run(features_dir: Path) -> dict:
    """A teacher "run" for the accuracy table from the validation feature set of a teacher not
    trained here (vision/official.py): top-1/top-5 (%) from its dump, model and α from its meta.json."""
    meta = feature_meta(features_dir)
    if not meta:
        raise TableError(f"--official {features_dir}: no meta.json (not a feature set)")
    acc = topk_accuracy(features_dir)
    return {
        "dir": str(features_dir),
        "mode": "teacher",
        "model": meta.get("model"),
        "alpha": float(meta.get("alpha") or 0.0),
        "temperature": None,
        "seed": None,
        "acc1": 100.0 * acc[1],
        "acc5": 100.0 * acc[5],
        "source": "official torchvision weights",
    }


def cmd_vision_accuracy(a) -> None:
    teachers = [dict(r, source="trained here") for r in scan_runs(a.teachers) if r["mode"] == "teacher"]
    if a.official:
        official = official_run(a.official)
        if any(r["model"] == official["model"] and r["alpha"] == official["alpha"] for r in teachers):
            raise TableError(
                f"--official {a.official}: teachers {official['model']} α = {official['alpha']:g} were "
                f"trained under {a.teachers} too; give one or the other"
            )
        teachers.append(official)
    students = [r for r in scan_runs(a.students) if r["mode"] == "student"]
    if not students:
        raise TableError(f"no finished student runs under {a.students}")
    alphas = sorted({r["alpha"] for r in teachers + students})
    sources = {(r["model"], r["alpha"]): r["source"] for r in teachers}
    md = [
        f"# {a.title}\n",
        "Top-1 / top-5 validation accuracy (%) of the final epoch, mean ± sample std over seeds "
        "(n seeds in brackets).\n",
        "Teachers: "
        + "; ".join(f"{m} α = {al:g}: {src}" for (m, al), src in sorted(sources.items()))
        + (
            " (the official teacher's top-1 / top-5: from its dumped validation logits, for all seeds)."
            if a.official
            else "."
        )
        + "\n",
    ]
    rows_csv = []
    for model in sorted({r["model"] for r in students}):
        rows = []
        for tm in sorted({r["model"] for r in teachers}):
            rows.append(
                [f"Teacher: {tm}"]
                + [acc_cell([r for r in teachers if r["model"] == tm and r["alpha"] == al]) for al in alphas]
            )
            for al in alphas:
                sel = [r for r in teachers if r["model"] == tm and r["alpha"] == al]
                if sel:
                    rows_csv.append(
                        {
                            "student": model,
                            "row": f"teacher {tm}",
                            "alpha": al,
                            "temperature": "",
                            "source": sel[0]["source"],
                            "n": len(sel),
                            **stats_columns("top1", [r["acc1"] for r in sel]),
                            **stats_columns("top5", [r["acc5"] for r in sel]),
                        }
                    )
        mine = [r for r in students if r["model"] == model]
        for T in sorted({r["temperature"] for r in mine}):
            rows.append(
                [f"Student: {model} T = {fnum(T)}"]
                + [acc_cell([r for r in mine if r["temperature"] == T and r["alpha"] == al]) for al in alphas]
            )
            for al in alphas:
                sel = [r for r in mine if r["temperature"] == T and r["alpha"] == al]
                if sel:
                    rows_csv.append(
                        {
                            "student": model,
                            "row": f"T={fnum(T)}",
                            "alpha": al,
                            "temperature": T,
                            "source": "trained here",
                            "n": len(sel),
                            **stats_columns("top1", [r["acc1"] for r in sel]),
                            **stats_columns("top5", [r["acc5"] for r in sel]),
                        }
                    )
        md += [f"## Student {model}\n", markdown(rows, ["", *[f"α = {al:g}" for al in alphas]])]
    write_outputs(a.out, "\n".join(md), rows_csv)


# ----------------------------------------------------------------------------- η
def feature_meta(path) -> dict:
    p = Path(path) / "meta.json"
    return read_json(p) if p.exists() else {}


def cmd_eta(a) -> None:
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    distances = set()
    for f in a.inputs:
        data = read_json(f)
        if "targets" not in data:
            raise TableError(f"{f}: not an `lskd-metrics eta --sets ... --format json` output")
        meta = feature_meta(data["before"])
        key = (meta.get("model", "?"), meta.get("alpha"), data.get("T1"), data.get("T2"))
        distances.add(data.get("distance", "centroid"))
        for row in data["targets"]:
            groups[key][row["target"]].append(row)
    if not groups:
        raise TableError("no η inputs")
    if len(distances) > 1:
        raise TableError("the inputs mix centroid η and η_pairwise (--pairwise): one table each")
    what = (
        "η_pairwise(T1, T2; π, S) in percent (Supp. J: Eq. 1 with each centroid distance replaced by the "
        "mean pairwise distance of the two classes' features, projected onto their head rows)"
        if distances == {"pairwise"}
        else "η(T1, T2; π, S) in percent (paper Eq. 1)"
    )
    cols = [
        ("eta_similar", "S1 train"),
        ("eta_dissimilar", "S2 train"),
        ("eta_similar_valid", "S1 valid"),
        ("eta_dissimilar_valid", "S2 valid"),
    ]
    md = [
        f"# {a.title}\n",
        f"{what}, mean ± sample std over seeds (n). Systematic "
        "diffusion: η(S1) < 0 and η(S2) > 0; the last column counts the seeds where it holds "
        "(train, valid).\n",
    ]
    rows_csv = []
    for (model, alpha, t1, t2), targets in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        have = [c for c in cols if any(c[0] in r for rs in targets.values() for r in rs)]
        rows = []
        for target, rs in targets.items():
            sysd = [
                f"{sum(bool(r.get(k)) for r in rs)}/{len(rs)}"
                for k in ("systematic_diffusion", "systematic_diffusion_valid")
                if k in rs[0]
            ]
            rows.append(
                [target, *[cell([r[k] for r in rs if k in r], scale=100.0) for k, _ in have], ", ".join(sysd)]
            )
            rec = {"student": model, "alpha": alpha, "T1": t1, "T2": t2, "target": target, "n": len(rs)}
            for k, _ in have:
                rec.update(stats_columns(k, [r[k] for r in rs if k in r]))
            rows_csv.append(rec)
        md += [
            f"## Student {model}, teacher α = {fnum(alpha)}, T1 = {fnum(t1)} → T2 = {fnum(t2)}\n",
            markdown(rows, ["target", *[f"η {h} (%)" for _, h in have], "systematic (seeds)"]),
        ]
    if a.agreement:
        md += [agreement_table(a.agreement, read_sets(a.sets) if a.sets else None, a.agreement_note)]
    write_outputs(a.out, "\n".join(md), rows_csv)


def read_sets(path) -> dict:
    """An `lskd-metrics eta --sets` file: {target: {"similar": [...], "dissimilar": [...]}}."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("similar"), list) and isinstance(v.get("dissimilar"), list)
        for v in data.values()
    ):
        raise TableError(f'{path}: expected {{"target": {{"similar": [...], "dissimilar": [...]}}, ...}}')
    return data


def overlap(reference: list, other: list) -> float:
    """|reference ∩ other| / |reference| (Table 12's agreement, the η sets as the reference)."""
    if not reference:
        raise TableError("an empty S1 or S2 has no agreement")
    return len(set(reference) & set(other)) / len(reference)


def agreement_table(files, sets: dict | None, note: str = "") -> str:
    """Table 12: per target, how much of the S1/S2 that η used the feature-space S1/S2 (Supp. F.2)
    also holds, mean ± std over seeds, and the average over targets (taken per seed). The `similar`
    outputs carry the agreement when they chose S1/S2 from a hierarchy themselves; with ``sets`` (the
    sets file η read) it is computed here from their feature-space lists."""
    per_target: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for f in files:
        for row in read_json(f).get("targets", []):
            t = row.get("target")
            if sets is None and "agreement_similar" in row:
                per_target[t].append((row["agreement_similar"], row["agreement_dissimilar"]))
            elif sets is not None:
                if "similar_features" not in row or "dissimilar_features" not in row:
                    raise TableError(
                        f"{f}: no feature-space S1/S2 lists (`lskd-metrics similar` without --hierarchy "
                        "writes them) to compare with --sets"
                    )
                if t not in sets:
                    raise TableError(f"{f}: target {t!r} is not in the sets file")
                per_target[t].append(
                    (
                        overlap(sets[t]["similar"], row["similar_features"]),
                        overlap(sets[t]["dissimilar"], row["dissimilar_features"]),
                    )
                )
    if not per_target:
        raise TableError(f"no S1/S2 agreement in {', '.join(map(str, files))}")
    rows = [[t, cell([v[0] for v in vs]), cell([v[1] for v in vs])] for t, vs in per_target.items()]
    n_seeds = min(len(vs) for vs in per_target.values())
    per_seed = [[vs[i] for vs in per_target.values()] for i in range(n_seeds)]
    rows.append(
        [
            "Average",
            cell([sum(v[0] for v in s) / len(s) for s in per_seed]),
            cell([sum(v[1] for v in s) / len(s) for s in per_seed]),
        ]
    )
    return (
        "## S1/S2 of η vs feature-space S1/S2 (Table 12 layout)\n\n"
        + (f"{note}\n\n" if note else "")
        + "Feature space (Supp. F.2): the nearest 1 % (S1,feat) and farthest 90 % (S2,feat) of the other "
        "classes by centroid distance; Average: the mean over the targets, taken per seed.\n\n"
        + markdown(rows, ["target", "|S1 ∩ S1,feat| / |S1|", "|S2 ∩ S2,feat| / |S2|"])
    )


# ----------------------------------------------------------------------------- entropy
def teacher_label(path) -> tuple[str, float | None]:
    m = feature_meta(path)
    return m.get("model", Path(path).name), m.get("alpha")


def entropy_outputs(f) -> dict[str, dict[str, float]]:
    """{feature set path: {T as written: mean entropy}}: an `lskd-metrics entropy` output of several sets."""
    data = read_json(f)
    if not (isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values())):
        raise TableError(
            f"{f}: give `lskd-metrics entropy` outputs of several teachers (a JSON object per path)"
        )
    return data


def matched_rows(entropy_files, match_files) -> dict[float, dict]:
    """Table 13's rows at the matched temperatures: per T_ref, the per-seed T* (the α = 0 teacher's
    temperature with the reference teacher's entropy at T_ref) and every teacher's entropy at T*,
    from `lskd-metrics entropy` outputs at T*; each output is tied to its T_ref by its seed and T*."""
    matches = read_matches(match_files)
    out: dict[float, dict] = {}
    for f in entropy_files:
        for path, by_t in entropy_outputs(f).items():
            seed = feature_meta(path).get("seed")
            for t, h in by_t.items():
                T = float(t)
                hit = [
                    (ref, d)
                    for ref, ds in matches.items()
                    for d in ds
                    if d["seed"] == seed and abs(float(d["temperature"]) - T) <= 1e-9 * T
                ]
                if not hit:
                    raise TableError(
                        f"{f}: T = {t} (seed {seed}) is no matched temperature of the --match outputs"
                    )
                ref, d = hit[0]
                row = out.setdefault(ref, {"T": {}, "entropy": defaultdict(dict)})
                row["T"][seed] = T
                row["entropy"][teacher_label(path)][seed] = h
    return dict(sorted(out.items()))


def cmd_entropy(a) -> None:
    vals: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    temps: list[str] = []
    for f in a.inputs:
        for path, by_t in entropy_outputs(f).items():
            label = teacher_label(path)
            for t, h in by_t.items():
                vals[label][t].append(h)
                if t not in temps:
                    temps.append(t)
    if not vals:
        raise TableError("no entropy inputs")
    if a.matched_entropy and not a.match:
        raise TableError("--matched-entropy needs the --match outputs that name the matched temperatures")
    matched = matched_rows(a.matched_entropy, a.match) if a.matched_entropy else {}
    labels = sorted(vals, key=lambda x: (str(x[0]), x[1] if x[1] is not None else -1))
    head = ["T", *[f"{m} α = {fnum(al)}" for m, al in labels]]
    rows = [(float(t), [t, *[cell(vals[lb][t], digits=4) for lb in labels]]) for t in temps]
    rows_csv = [
        {
            "teacher": m,
            "alpha": al,
            "T": t,
            "matched_to_T_ref": "",
            "n": len(vals[(m, al)][t]),
            **stats_columns("entropy_nats", vals[(m, al)][t]),
        }
        for t in temps
        for m, al in labels
    ]
    for ref, r in matched.items():
        ts = list(r["T"].values())
        rows.append(
            (
                mean_std(ts)[0],
                [f"T* = {cell(ts, digits=4)} (matched to T_ref = {ref:g})"]
                + [cell(list(r["entropy"].get(lb, {}).values()), digits=4) for lb in labels],
            )
        )
        for m, al in labels:
            hs = list(r["entropy"].get((m, al), {}).values())
            rows_csv.append(
                {
                    "teacher": m,
                    "alpha": al,
                    "T": mean_std(ts)[0],
                    "matched_to_T_ref": ref,
                    "n": len(hs),
                    **stats_columns("entropy_nats", hs),
                }
            )
    md = [
        f"# {a.title}\n",
        "Mean entropy (nats) of the teachers' targets softmax(z/T) over the training "
        "set, mean ± sample std over seeds (n) (Table 13)."
        + (
            " T*: the α = 0 teacher's temperature whose entropy equals the reference teacher's at T_ref "
            "(per seed; mean ± std (n) over seeds), with every teacher's entropy at it."
            if matched
            else ""
        )
        + "\n",
        markdown([r for _, r in sorted(rows, key=lambda x: x[0])], head),
    ]
    if a.match:
        md += [match_table(a.match)]
    write_outputs(a.out, "\n".join(md), rows_csv)


def read_matches(files) -> dict[float, list[dict]]:
    by_ref: dict[float, list[dict]] = defaultdict(list)
    for f in files:
        d = read_json(f)
        if "temperature" not in d or "reference_temperature" not in d:
            raise TableError(f"{f}: not an `lskd-metrics match-temperature --reference ...` output")
        d["seed"] = feature_meta(d["features"]).get("seed")
        by_ref[float(d["reference_temperature"])].append(d)
    return dict(sorted(by_ref.items()))


def match_table(files) -> str:
    rows = []
    for ref, ds in read_matches(files).items():
        m0, m1 = teacher_label(ds[0]["features"]), teacher_label(ds[0]["reference"])
        rows.append(
            [
                f"{m1[0]} α = {fnum(m1[1])} at T = {ref:g}",
                cell([d["entropy"] for d in ds], digits=4),
                f"{m0[0]} α = {fnum(m0[1])} at T = {cell([d['temperature'] for d in ds], digits=4)}",
            ]
        )
    return "## Entropy-matched temperatures\n\n" + markdown(
        rows, ["reference teacher", "entropy (nats)", "teacher with the same entropy"]
    )


# ----------------------------------------------------------------------------- counterexamples
def cmd_counterexamples(a) -> None:
    matches = read_matches(a.match)
    main = [r for r in scan_runs(a.students) if r["mode"] == "student"]
    matched = [r for r in scan_runs(a.matched) if r["mode"] == "student"] if a.matched.is_dir() else []
    models = sorted({r["model"] for r in main})
    rows, rows_csv = [], []
    for ref, ds in matches.items():
        ref_alpha = teacher_label(ds[0]["reference"])[1]
        alpha = teacher_label(ds[0]["features"])[1]
        ent = cell([d["entropy"] for d in ds], digits=4)
        for model in models:
            ls = [
                r for r in main if r["model"] == model and r["alpha"] == ref_alpha and r["temperature"] == ref
            ]
            other, temps = [], []
            for d in ds:
                T = float(d["temperature"])
                pool = matched + main
                hit = [
                    r
                    for r in pool
                    if r["model"] == model
                    and r["alpha"] == alpha
                    and r["seed"] == d["seed"]
                    and r["temperature"] is not None
                    and abs(r["temperature"] - T) <= 1e-6 * T
                ]
                if not hit and ref >= 64:  # the paper compares T = 64 with T = 64 (both near uniform)
                    hit = [
                        r
                        for r in main
                        if r["model"] == model
                        and r["alpha"] == alpha
                        and r["seed"] == d["seed"]
                        and r["temperature"] == ref
                    ]
                if hit:
                    other.append(hit[0])
                    temps.append(hit[0]["temperature"])
            rows.append(
                [f"T_ref = {ref:g}", model, f"α = {fnum(ref_alpha)} / T = {ref:g}", ent, acc_cell(ls)]
            )
            rows.append(
                [
                    "",
                    model,
                    f"α = {fnum(alpha)} / T = {cell(temps, digits=4, n=False) if temps else '—'}",
                    ent,
                    acc_cell(other),
                ]
            )
            for lab, sel, al in (("reference", ls, ref_alpha), ("matched", other, alpha)):
                rows_csv.append(
                    {
                        "T_ref": ref,
                        "student": model,
                        "role": lab,
                        "alpha": al,
                        "temperature_mean": mean_std([r["temperature"] for r in sel])[0] if sel else math.nan,
                        "entropy_mean": mean_std([d["entropy"] for d in ds])[0],
                        "n": len(sel),
                        **stats_columns("top1", [r["acc1"] for r in sel]),
                        **stats_columns("top5", [r["acc5"] for r in sel]),
                    }
                )
    md = [
        f"# {a.title}\n",
        "Same mean target entropy, different teachers (Tables 14–16): students of the LS teacher at "
        "T_ref against students of the α = 0 teacher at the temperature with the same entropy "
        "(per seed). Top-1 / top-5 (%), mean ± sample std over seeds (n). At T_ref = 64 both teachers "
        "are near uniform and the paper compares T = 64 with T = 64; that is used when no student "
        "was trained at the matched T.\n",
        markdown(rows, ["case", "student", "α / T", "entropy (nats)", "top-1 / top-5"]),
    ]
    write_outputs(a.out, "\n".join(md), rows_csv)


# ----------------------------------------------------------------------------- per-class accuracy
def accuracy_entries(files) -> list[dict]:
    """One dict per feature set of ``lskd-metrics accuracy --format json`` outputs, with its meta.json."""
    entries = []
    for f in files:
        data = read_json(f)
        sets = data.get("sets", [data]) if isinstance(data, dict) else None
        if not sets or not all(isinstance(e, dict) and "per_class" in e and "features" in e for e in sets):
            raise TableError(f"{f}: not an `lskd-metrics accuracy --format json` output")
        for e in sets:
            meta = feature_meta(e["features"])
            entries.append(
                {
                    "per_class": e["per_class"],
                    "model": meta.get("model", "?"),
                    "alpha": meta.get("alpha"),
                    "temperature": meta.get("temperature"),
                    "split": meta.get("split", "?"),
                    "seed": meta.get("seed"),
                }
            )
    if not entries:
        raise TableError("no accuracy inputs")
    return entries


def parse_set(spec: str) -> list[tuple[str, str]]:
    """``CLASS[=LABEL],...`` -> [(class as in meta.json, label to print)]."""
    pairs = []
    for item in spec.split(","):
        name, _, label = item.strip().partition("=")
        if not name:
            raise TableError(f"--set: empty class name in {spec!r}")
        pairs.append((name, label or name))
    return pairs


def class_sets(a, entries) -> list[tuple[str, list[tuple[str, str]]]]:
    if a.sets:
        return [(name, parse_set(spec)) for name, spec in a.sets]
    seen = list(dict.fromkeys(c for e in entries for c in e["per_class"]))
    return [("target classes", [(c, c) for c in seen])]


def set_average(entry: dict, classes) -> float | None:
    vals = [entry["per_class"][c] for c in classes if entry["per_class"].get(c) is not None]
    return sum(vals) / len(vals) if vals else None


def cmd_per_class_accuracy(a) -> None:
    entries = accuracy_entries(a.inputs)
    sets = class_sets(a, entries)
    splits = [sp for sp in ("train", "valid") if any(e["split"] == sp for e in entries)]
    splits += sorted({e["split"] for e in entries} - set(splits))
    key = lambda x: (str(x[0]), -1 if x[1] is None else float(x[1]))  # noqa: E731
    md = [
        f"# {a.title}\n",
        "Top-1 accuracy (%) of each class on its own samples (Tables 17–19 layout), mean ± sample std "
        "over seeds (n); Average: the mean over the set's classes, taken per seed. Few samples per class "
        "make single cells noisy; read the trend of the average.\n",
    ]
    rows_csv = []
    for model, alpha in sorted({(e["model"], e["alpha"]) for e in entries}, key=key):
        mine = [e for e in entries if e["model"] == model and e["alpha"] == alpha]
        temps = sorted({e["temperature"] for e in mine}, key=lambda t: -1 if t is None else float(t))
        cols = [
            (T, sp)
            for T in temps
            for sp in splits
            if any(e["temperature"] == T and e["split"] == sp for e in mine)
        ]
        for set_name, classes in sets:
            rows = []
            names = [c for c, _ in classes]
            for cls, label in [*classes, (None, "Average")]:
                row = [label]
                for T, sp in cols:
                    sel = [e for e in mine if e["temperature"] == T and e["split"] == sp]
                    vals = [
                        v
                        for v in (e["per_class"].get(cls) if cls else set_average(e, names) for e in sel)
                        if v is not None
                    ]
                    row.append(cell(vals, scale=100.0))
                    if vals:
                        rows_csv.append(
                            {
                                "student": model,
                                "alpha": alpha,
                                "set": set_name,
                                "class": cls or "Average",
                                "T": T,
                                "split": sp,
                                "n": len(vals),
                                **stats_columns("top1_fraction", vals),
                            }
                        )
                rows.append(row)
            head = [
                "class",
                *[f"T = {fnum(T)} {sp} (%)" if len(splits) > 1 else f"T = {fnum(T)} (%)" for T, sp in cols],
            ]
            md += [f"## Student {model}, teacher α = {fnum(alpha)}: {set_name}\n", markdown(rows, head)]
    write_outputs(a.out, "\n".join(md), rows_csv)


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m scripts.recipes.tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("vision-accuracy", help="α × T accuracy per student model (Tables 2, 5, 6, 9-11, 20)")
    p.add_argument("--teachers", type=Path, required=True, help="directory holding the teacher runs")
    p.add_argument("--students", type=Path, required=True, help="directory holding the student sweeps")
    p.add_argument(
        "--official",
        type=Path,
        help="validation feature set of a teacher not trained here (official torchvision weights)",
    )
    p.add_argument("--title", default="Knowledge distillation accuracy")
    p.set_defaults(func=cmd_vision_accuracy)

    p = sub.add_parser("eta", help="η per target, train and valid (Tables 3, 4, 21; 12 with --agreement)")
    p.add_argument("--inputs", nargs="+", required=True, help="lskd-metrics eta --format json outputs")
    p.add_argument("--agreement", nargs="*", default=[], help="lskd-metrics similar --format json outputs")
    p.add_argument(
        "--sets",
        type=Path,
        help="the sets file η read: Table 12 compares its S1/S2 with the --agreement outputs' feature-space "
        "lists (default: the agreement the --agreement outputs computed against their hierarchy)",
    )
    p.add_argument(
        "--agreement-note", default="", help="a line under Table 12's heading (e.g. whose features)"
    )
    p.add_argument("--title", default="Diffusion index η")
    p.set_defaults(func=cmd_eta)

    p = sub.add_parser("entropy", help="teacher target entropy per T and α (Table 13)")
    p.add_argument("--inputs", nargs="+", required=True, help="lskd-metrics entropy --format json outputs")
    p.add_argument(
        "--match", nargs="*", default=[], help="lskd-metrics match-temperature --format json outputs"
    )
    p.add_argument(
        "--matched-entropy",
        nargs="*",
        default=[],
        help="lskd-metrics entropy --format json outputs at the --match temperatures (Table 13's T* rows)",
    )
    p.add_argument("--title", default="Smoothness of the teachers' targets")
    p.set_defaults(func=cmd_entropy)

    p = sub.add_parser("counterexamples", help="entropy-matched students (Tables 14-16)")
    p.add_argument(
        "--match", nargs="+", required=True, help="lskd-metrics match-temperature --format json outputs"
    )
    p.add_argument("--students", type=Path, required=True, help="the main student sweeps")
    p.add_argument("--matched", type=Path, required=True, help="the students at the matched temperatures")
    p.add_argument("--title", default="Same smoothness, different students")
    p.set_defaults(func=cmd_counterexamples)

    p = sub.add_parser(
        "per-class-accuracy", help="top-1 of each target class per T, per teacher α (Tables 17-19)"
    )
    p.add_argument("--inputs", nargs="+", required=True, help="lskd-metrics accuracy --format json outputs")
    p.add_argument(
        "--set",
        nargs=2,
        action="append",
        dest="sets",
        default=[],
        metavar=("NAME", "CLASSES"),
        help="one table per set: NAME and CLASS[=LABEL],... (class as in meta.json; LABEL printed); "
        "repeatable; default one set of every class in the inputs",
    )
    p.add_argument("--title", default="Per-class accuracy of the target classes")
    p.set_defaults(func=cmd_per_class_accuracy)

    from . import paired  # its table code uses this module's helpers

    paired.add_parsers(sub)
    for p in (
        sub.choices[c]
        for c in (
            "vision-accuracy",
            "eta",
            "entropy",
            "counterexamples",
            "per-class-accuracy",
            "paired-accuracy",
            "paired-bleu",
        )
    ):
        p.add_argument("--out", type=Path, required=True, help="write OUT.md and OUT.csv")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return run_cli("tables", a.func, a)


if __name__ == "__main__":
    sys.exit(main())
