"""``lskd-metrics``: η, target entropy, stability, accuracy, S1/S2 selection, the projection and
soft-target figures and the Supp. D isotropy count from feature sets (also ``python -m shared_metrics``).

Units: η and accuracies are fractions in JSON and CSV, percent in markdown (the paper's tables);
entropies are in nats. Every command exits 2 with a one-line message on bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .centroids import class_centroids, per_class_accuracy, require_classes_present, top1_correct
from .diffusion import check_sets, diffusion_index, diffusion_index_pairwise
from .entropy import check_temperature, match_temperature, mean_entropy
from .errors import UserError, run_cli
from .eta_bootstrap import bootstrap_eta, check_bootstrap_args, check_memory, gather_class_rows, summarise
from .featureset import FeatureSet, FeatureSetError
from .isotropy import check_ratio, negligible_classes
from .report import FORMATS, atomic_write_text, csv_table, markdown_table, read_json, tmp_name, to_json
from .selection import agreement, load_hierarchy, select_from_features, select_from_hierarchy
from .soft_targets import class_mean_soft_targets, plot_soft_targets, soft_target_profiles
from .stability import VARIANTS, stability
from .stats import holm, mcnemar_exact, paired_bootstrap_accuracy, paired_t_interval, t_interval

PROG = "lskd-metrics"


class UsageError(UserError):
    """A bad combination or value of ``lskd-metrics`` options."""


# ----------------------------------------------------------------- helpers
class Temperature(float):
    """A temperature that remembers how it was written ("1", "64"), for JSON keys."""

    text: str


def _positive_float(text: str) -> Temperature:
    try:
        t = Temperature(check_temperature(float(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"temperature must be a positive number, got {text!r}") from None
    t.text = text.strip()
    return t


def _class_list(fs: FeatureSet, text: str | None) -> list[int]:
    if not text:
        return []
    return [fs.class_index(c.strip()) for c in text.split(",") if c.strip()]


def _class_names_file(path: str, fs: FeatureSet) -> list[int]:
    """Class indices of the names in a text file, one per line (names may hold commas), each once;
    blank lines are skipped, a name not in meta.json's classes is an error (a line of digits too:
    these are names, not indices)."""
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the class list ({e.__class__.__name__}: {e})") from None
    index = {c: i for i, c in enumerate(fs.classes)}
    unknown = next((n for n in names if n.strip() and n not in index), None)
    if unknown is not None:
        raise UsageError(f"{path}: unknown class {unknown!r} (not in {fs.path}/meta.json 'classes')")
    return list(dict.fromkeys(index[n] for n in names if n.strip()))


def _open(path) -> FeatureSet:
    return FeatureSet.open(path)


def _same_classes(a: FeatureSet, b: FeatureSet) -> None:
    if a.classes != b.classes:
        raise FeatureSetError(
            f"{b.path}: its classes differ from {a.path}'s "
            f"({a.num_classes} vs {b.num_classes} classes, or another order)"
        )


def _same_samples(a: FeatureSet, b: FeatureSet) -> None:
    """η compares one model's features at T1 with another's at T2 on the same samples."""
    if a.num_samples != b.num_samples or not np.array_equal(a.labels, b.labels):
        detail = (
            f"{a.num_samples} vs {b.num_samples} rows"
            if a.num_samples != b.num_samples
            else f"labels differ from row {int(np.argmax(a.labels != b.labels))}"
        )
        raise FeatureSetError(
            f"{a.path} and {b.path} are not the same samples ({detail}): "
            "give feature sets of one split dumped alike"
        )
    for key in ("split", "dataset"):
        if a.meta.get(key) is not None and b.meta.get(key) is not None and a.meta[key] != b.meta[key]:
            raise FeatureSetError(
                f"{a.path} and {b.path} are of different {key}s ({a.meta[key]!r} vs {b.meta[key]!r})"
            )


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {text!r}")
    return v


def _hierarchy(spec: str, classes: list[str]):
    """load_hierarchy, and a warning line for classes the hierarchy does not hold (a typo in a
    JSON hierarchy would otherwise drop them from S1 and S2 silently)."""
    h, nodes = load_hierarchy(spec, classes)
    missing = [c for c, node in zip(classes, nodes) if node not in h]
    if missing:
        print(
            f"{PROG}: warning: {len(missing)} of {len(classes)} classes are not in the hierarchy "
            f"{h.source} (e.g. {missing[0]!r}); they can be in neither S1 nor S2",
            file=sys.stderr,
        )
    return h, nodes


def _pct(v):
    return None if v is None else 100.0 * v


def _emit(args, payload, rows, columns, pct_columns=()):
    """Print (or write to --output) the payload as JSON, or the rows as a markdown/CSV table.
    Columns in ``pct_columns`` are fractions; markdown shows them in percent."""
    if args.format == "json":
        text = to_json(payload)
    elif args.format == "csv":
        text = csv_table(rows, columns)
    else:
        md_rows = [{c: (_pct(r.get(c)) if c in pct_columns else r.get(c)) for c in columns} for r in rows]
        header = [c.replace("(fraction)", "(%)") if c in pct_columns else c for c in columns]
        md_rows = [{h: r[c] for h, c in zip(header, columns)} for r in md_rows]
        text = markdown_table(md_rows, header)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)


# ------------------------------------------------------------------- η
def _read_sets_file(path) -> dict:
    data = read_json(path, UsageError, "sets file")
    if (
        not isinstance(data, dict)
        or not data
        or not all(
            isinstance(v, dict)
            and isinstance(v.get("similar"), list)
            and isinstance(v.get("dissimilar"), list)
            for v in data.values()
        )
    ):
        raise UsageError(f'{path}: expected {{"target": {{"similar": [...], "dissimilar": [...]}}, ...}}')
    return data


def _eta_splits(args) -> dict:
    """{"train": (T1 set, T2 set)[, "valid": (...)]}, checked to be the same samples, classes and
    temperature order."""
    splits = [("train", args.before, args.after)]
    if args.before_valid or args.after_valid:
        if not (args.before_valid and args.after_valid):
            raise UsageError("give both --before-valid and --after-valid")
        splits.append(("valid", args.before_valid, args.after_valid))
    opened = {s: (_open(b), _open(a)) for s, b, a in splits}
    ref = opened["train"][0]
    for b, a in opened.values():
        _same_classes(ref, b), _same_classes(ref, a)
        _same_samples(b, a)
        tb, ta = b.meta.get("temperature"), a.meta.get("temperature")
        if tb is not None and ta is not None and float(tb) > float(ta):
            raise UsageError(
                f"--before is at T = {tb:g} and --after at T = {ta:g}: η(T1, T2) takes the "
                "lower temperature first (--before T1, --after T2)"
            )
    return opened


def _eta_targets(args, ref: FeatureSet) -> list[tuple[int, list[int], list[int]]]:
    """(target, S1, S2) class indices from --sets, or --target with --similar/--dissimilar,
    --hierarchy or --select-by-features."""
    if args.sets:
        if args.target or args.similar or args.dissimilar:
            raise UsageError("--sets replaces --target/--similar/--dissimilar; give one or the other")
        targets = [
            (
                ref.class_index(t),
                [ref.class_index(c) for c in v["similar"]],
                [ref.class_index(c) for c in v["dissimilar"]],
            )
            for t, v in _read_sets_file(args.sets).items()
        ]
    else:
        if not args.target:
            raise UsageError(
                "give --target NAME (with --similar/--dissimilar or --hierarchy), or --sets FILE.json"
            )
        t = ref.class_index(args.target)
        s1, s2 = _class_list(ref, args.similar), _class_list(ref, args.dissimilar)
        chosen = [
            name
            for name, on in (
                ("--similar/--dissimilar", s1 or s2),
                ("--hierarchy", args.hierarchy),
                ("--select-by-features", args.select_by_features),
            )
            if on
        ]
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} each choose S1/S2: give one")
        if bool(s1) != bool(s2):
            raise UsageError("give both --similar and --dissimilar")
        if not (s1 and s2):
            if args.hierarchy:
                h, nodes = _hierarchy(args.hierarchy, ref.classes)
                s1, s2 = select_from_hierarchy(h, nodes, t, args.k, args.n, args.seed)
            elif args.select_by_features:
                s1, s2 = select_from_features(class_centroids(ref), t)
            else:
                raise UsageError("give --similar and --dissimilar, or --hierarchy, or --select-by-features")
        targets = [(t, s1, s2)]
    for t, s1, s2 in targets:
        check_sets(t, s1, s2)
    return targets


def _eta_compute(args, opened: dict, targets) -> list[dict]:
    """One row per target: η(S1), η(S2) and the systematic-diffusion verdict per split; with
    --bootstrap, their percentile intervals, the significance verdict and its p-value (Holm-
    adjusted over the targets of a split)."""
    ref = opened["train"][0]
    needed = sorted({k for t, s1, s2 in targets for k in (t, *s1, *s2)})
    for fb, fa in opened.values():
        for fs in (fb, fa):
            require_classes_present(fs, needed)
    results = [
        {
            "target": ref.classes[t],
            "target_index": t,
            "similar": [ref.classes[k] for k in s1],
            "dissimilar": [ref.classes[k] for k in s2],
        }
        for t, s1, s2 in targets
    ]
    for split_id, (split, (fb, fa)) in enumerate(opened.items()):
        suffix = "" if split == "train" else "_valid"
        rows = None
        if args.bootstrap:
            check_memory([fb, fa], needed, targets, args.bootstrap)
            rows = gather_class_rows([fb, fa], needed)
            centroids = rows.centroids(ref.num_classes)
        elif not args.pairwise:
            centroids = [class_centroids(fs, classes=needed) for fs in (fb, fa)]
        for row, (t, s1, s2) in zip(results, targets):
            if args.pairwise:
                r = diffusion_index_pairwise(
                    fb,
                    fa,
                    t,
                    s1,
                    s2,
                    projection=args.projection,
                    max_per_class=args.max_per_class,
                    seed=args.seed,
                )
            else:
                r = diffusion_index(centroids[0], centroids[1], t, s1, s2)
            row[f"eta_similar{suffix}"] = r.eta_similar
            row[f"eta_dissimilar{suffix}"] = r.eta_dissimilar
            row[f"systematic_diffusion{suffix}"] = bool(r.eta_similar < 0 < r.eta_dissimilar)
        if rows is not None:
            _eta_add_bootstrap(args, results, rows, targets, split_id, suffix)
            del rows
    return results


def _eta_add_bootstrap(args, results: list[dict], rows, targets, split_id: int, suffix: str) -> None:
    """Add one split's bootstrap columns to each target's row: the percentile intervals and
    verdict of eta_bootstrap.summarise, and the p-value Holm-adjusted over the targets."""
    reps = bootstrap_eta(rows, targets, args.bootstrap, args.seed, split=split_id)
    for row, rep in zip(results, reps):
        summary = summarise(
            row[f"eta_similar{suffix}"],
            row[f"eta_dissimilar{suffix}"],
            rep.similar,
            rep.dissimilar,
            args.confidence,
        )
        row.update({f"{k}{suffix}": v for k, v in summary.items()})
    adjusted = holm([row[f"p_systematic_diffusion{suffix}"] for row in results])
    for row, p in zip(results, adjusted):
        row[f"p_systematic_diffusion_holm{suffix}"] = float(p)
        row[f"significant_systematic_diffusion_holm{suffix}"] = bool(p < 1.0 - args.confidence)


def _eta_payload(args, opened: dict, results: list[dict]) -> dict:
    """The JSON result (fractions): one target at the top level unless --sets, else a "targets" list."""
    common = {
        "unit": "fraction",
        "distance": "pairwise" if args.pairwise else "centroid",
        "T1": opened["train"][0].meta.get("temperature"),
        "T2": opened["train"][1].meta.get("temperature"),
        "before": str(args.before),
        "after": str(args.after),
    }
    if args.bootstrap:
        common["bootstrap"] = {
            "replicates": args.bootstrap,
            "confidence": args.confidence,
            "seed": args.seed,
            "method": "paired stratified bootstrap over samples (T1 and T2 share the resampled rows, each "
            "class keeps its size); percentile intervals",
            "significant": "S1 interval entirely below 0 and S2 interval entirely above 0",
            "multiple_testing": f"Holm over the {len(results)} target(s) of each split, on "
            "p_systematic_diffusion (the larger of the S1 and S2 bootstrap p-values)",
        }
    if len(results) == 1 and not args.sets:
        return {**common, **results[0]}
    return {**common, "targets": results}


def _eta_columns(args, splits: int) -> list[tuple]:
    """The Table 3 columns: (key in the row, or (key, interval end); CSV header; markdown header;
    is a fraction), train then valid, η over S1 and S2, with interval bounds under --bootstrap."""
    pct = f"{100 * args.confidence:g}" if args.bootstrap else None
    columns = []
    for sfx in [""] + (["_valid"] if splits > 1 else []):
        v = " valid" if sfx else ""
        for key, sym in (("eta_similar", "S1"), ("eta_dissimilar", "S2")):
            columns.append((f"{key}{sfx}", f"{key}{sfx} (fraction)", f"η {sym}{v} (fraction)", True))
            if args.bootstrap:
                for end, word in ((0, "low"), (1, "high")):
                    columns.append(
                        (
                            (f"{key}_ci{sfx}", end),
                            f"{key}_ci_{word}{sfx} (fraction)",
                            f"η {sym}{v} {pct}% CI {word} (fraction)",
                            True,
                        )
                    )
        if args.bootstrap:
            key = f"significant_systematic_diffusion{sfx}"
            columns.append((key, key, f"significant{v}", False))
            key = f"p_systematic_diffusion_holm{sfx}"
            columns.append((key, key, f"p Holm{v}", False))
    return columns


def _eta_emit(args, opened: dict, results: list[dict]) -> None:
    """The JSON payload, or the Table 3 layout: one row per target (yes/no verdicts in markdown)."""
    columns = _eta_columns(args, len(opened))
    csv = args.format == "csv"
    table_rows = []
    for r in results:
        cells = {"target": r["target"]}
        for key, csv_head, md_head, _ in columns:
            value = r[key[0]][key[1]] if isinstance(key, tuple) else r[key]
            cells[csv_head if csv else md_head] = (
                ("yes" if value else "no") if isinstance(value, bool) and not csv else value
            )
        table_rows.append(cells)
    headers = ["target"] + [c[1] if csv else c[2] for c in columns]
    pct_columns = set() if csv else {c[2] for c in columns if c[3]}
    _emit(args, _eta_payload(args, opened, results), table_rows, headers, pct_columns=pct_columns)


def cmd_eta(args) -> None:
    if args.bootstrap is not None:
        args.bootstrap, args.confidence = check_bootstrap_args(args.bootstrap, args.confidence)
        if args.pairwise:
            raise UsageError(
                "--bootstrap gives intervals for centroid η; it does not combine with --pairwise"
            )
        if args.seed < 0:
            raise UsageError(f"--seed must be >= 0 with --bootstrap, got {args.seed}")
    opened = _eta_splits(args)
    targets = _eta_targets(args, opened["train"][0])
    _eta_emit(args, opened, _eta_compute(args, opened, targets))


# -------------------------------------------------------------- entropy
def cmd_entropy(args) -> None:
    sets = [_open(p) for p in args.features]
    result = {str(fs.path): {T.text: mean_entropy(fs.logits, T) for T in args.temperature} for fs in sets}
    payload = result[str(sets[0].path)] if len(sets) == 1 else result
    labels = _unique_labels(sets)
    rows = [
        {"T": T.text, **{f"{lab} (nats)": result[str(fs.path)][T.text] for fs, lab in zip(sets, labels)}}
        for T in args.temperature
    ]
    rows.append(
        {"T": "max ln K", **{f"{lab} (nats)": float(np.log(fs.num_classes)) for fs, lab in zip(sets, labels)}}
    )
    _emit(args, payload, rows, list(rows[0]))


def _unique_labels(sets) -> list[str]:
    """Table column names: the sets' labels, with the path added where two would be the same."""
    labels = [_label(fs) for fs in sets]
    return [f"{lab} ({fs.path})" if labels.count(lab) > 1 else lab for fs, lab in zip(sets, labels)]


def _label(fs: FeatureSet) -> str:
    m = fs.meta
    parts = [str(m[k]) for k in ("model",) if m.get(k)]
    if m.get("alpha") is not None:
        parts.append(f"α={m['alpha']}")
    if m.get("temperature") is not None:
        parts.append(f"T={m['temperature']}")
    return " ".join(parts) or fs.path.name


def cmd_match_temperature(args) -> None:
    fs = _open(args.features)
    if (args.entropy is None) == (args.reference is None):
        raise UsageError("give exactly one of --entropy VALUE or --reference DIR")
    if args.reference is not None:
        ref = _open(args.reference)
        _same_classes(fs, ref)
        target = mean_entropy(ref.logits, args.reference_temperature)
    else:
        target = args.entropy
    T = match_temperature(fs.logits, target)
    payload = {"temperature": T, "entropy": target, "unit": "nats", "features": str(fs.path)}
    if args.reference is not None:
        payload.update(reference=str(args.reference), reference_temperature=args.reference_temperature)
    _emit(
        args,
        payload,
        [{"features": _label(fs), "entropy (nats)": target, "matching T": T}],
        ["features", "entropy (nats)", "matching T"],
    )


# -------------------------------------------------------------- similar
def _similar_candidates(args, fs: FeatureSet) -> list[int] | None:
    """The classes feature space may draw S1/S2 from: those whose name matches --candidates and/or
    those listed in --candidate-list (both: the intersection); None when neither is given."""
    candidates = None
    if args.candidates is not None:
        try:
            pattern = re.compile(args.candidates)
        except re.error as e:
            raise UsageError(f"--candidates: not a regular expression ({e}): {args.candidates!r}") from None
        candidates = [i for i, c in enumerate(fs.classes) if pattern.fullmatch(c)]
        if len(candidates) < 3:
            raise UsageError(
                f"--candidates {args.candidates!r} matches {len(candidates)} classes; need at least 3"
            )
    if args.candidate_list is not None:
        listed = _class_names_file(args.candidate_list, fs)
        allowed = set(listed)
        candidates = listed if candidates is None else [i for i in candidates if i in allowed]
        if len(candidates) < 3:
            raise UsageError(
                f"--candidate-list {args.candidate_list}"
                f"{' with --candidates' if args.candidates is not None else ''} leaves "
                f"{len(candidates)} classes; need at least 3"
            )
    return candidates


def _similar_row(args, fs: FeatureSet, t: int, centroids, hier, candidates) -> tuple[dict, dict]:
    """One target's row (feature-space S1, and the hierarchy's S1/S2 with their agreement when a
    hierarchy is given) and its `eta --sets` entry (the hierarchy's sets, else feature space's)."""
    require_classes_present(fs, [t])
    f1, f2 = select_from_features(centroids, t, args.near, args.far, candidates)
    names = lambda ks: [fs.classes[k] for k in ks]  # noqa: E731
    row = {"target": fs.classes[t], "similar_features": names(f1), "dissimilar_features_count": len(f2)}
    if not hier:
        row["dissimilar_features"] = names(f2)
        return row, {"similar": row["similar_features"], "dissimilar": row["dissimilar_features"]}
    h1, h2 = select_from_hierarchy(*hier, t, args.k, args.n, args.seed)
    row.update(
        similar_hierarchy=names(h1),
        dissimilar_hierarchy=names(h2),
        agreement_similar=agreement(h1, f1),
        agreement_dissimilar=agreement(h2, f2),
    )
    return row, {"similar": row["similar_hierarchy"], "dissimilar": row["dissimilar_hierarchy"]}


def cmd_similar(args) -> None:
    """Supp. F, Table 12: S1/S2 of each target from a hierarchy and from feature space (centroid
    distances), their agreement, and optionally the chosen sets as an `eta --sets` file."""
    fs = _open(args.features)
    targets = _class_list(fs, args.target)
    if not targets:
        raise UsageError("give --target NAME[,NAME...]")
    hier = _hierarchy(args.hierarchy, fs.classes) if args.hierarchy else None
    candidates = _similar_candidates(args, fs)
    if args.near + args.far > 1.0:
        raise UsageError(f"--near {args.near:g} + --far {args.far:g} is over 1: S1 and S2 would overlap")
    centroids = class_centroids(fs)
    rows, sets_out = [], {}
    for t in targets:
        row, sets_out[fs.classes[t]] = _similar_row(args, fs, t, centroids, hier, candidates)
        rows.append(row)
    if args.write_sets:
        atomic_write_text(args.write_sets, to_json(sets_out))
    columns = (
        ["target", "similar_hierarchy", "similar_features", "agreement_similar", "agreement_dissimilar"]
        if hier
        else ["target", "similar_features", "dissimilar_features_count"]
    )
    rule = {k: getattr(args, k) for k in ("near", "far", "k", "n", "seed", "hierarchy")}
    _emit(args, {"targets": rows, "rule": rule}, rows, columns)


# -------------------------------------------------------------- project
def cmd_project(args) -> None:
    from .projection import plot_projection_grid

    sets = [_open(p) for p in args.features]
    for fs in sets[1:]:
        _same_classes(sets[0], fs)
    classes = _class_list(sets[0], args.classes)
    if len(classes) != 3 or len(set(classes)) != 3:
        raise UsageError("--classes needs exactly three distinct classes, e.g. Pullover,Coat,Sneaker")
    for fs in sets:
        require_classes_present(fs, classes)
    row_key = lambda fs: (fs.meta.get("model"), fs.meta.get("alpha"), fs.meta.get("role", ""))  # noqa: E731
    col_key = lambda fs: (fs.meta.get("temperature") or 0, fs.meta.get("split") or "")  # noqa: E731
    rows_k = list(dict.fromkeys(row_key(fs) for fs in sets))
    cols_k = sorted(dict.fromkeys(col_key(fs) for fs in sets), key=lambda k: (float(k[0]), k[1]))
    grid = [[None] * len(cols_k) for _ in rows_k]
    for fs in sets:
        i, j = rows_k.index(row_key(fs)), cols_k.index(col_key(fs))
        if grid[i][j] is not None:
            raise UsageError(
                f"{grid[i][j].path} and {fs.path} would share one panel (same model, α, role, "
                "temperature and split in meta.json): give one of them"
            )
        grid[i][j] = fs
    row_labels = [
        " ".join(x for x in (str(m or ""), f"α={a}" if a is not None else "", r) if x) for m, a, r in rows_k
    ]
    col_labels = [" ".join(x for x in (f"T={float(t):g}" if t else "teacher", s) if x) for t, s in cols_k]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    plot_projection_grid(
        grid,
        classes,
        tmp,
        row_labels=row_labels,
        col_labels=col_labels,
        max_per_class=args.max_per_class,
        seed=args.seed,
        title=" / ".join(sets[0].classes[k] for k in classes),
    )
    os.replace(tmp, out)
    payload = {
        "figure": str(out),
        "classes": [sets[0].classes[k] for k in classes],
        "rows": row_labels,
        "columns": col_labels,
        "features": [str(fs.path) for fs in sets],
    }
    _emit(args, payload, [{"figure": str(out), "panels": len(sets)}], ["figure", "panels"])


def cmd_soft_targets(args) -> None:
    """Figure 2: the mean soft targets of one class's samples per T, as a bar figure and a table."""
    fs = _open(args.features)
    target = fs.class_index(args.target)
    similar = list(dict.fromkeys(k for k in _class_list(fs, args.similar) if k != target))
    profiles = soft_target_profiles(fs, target, similar, args.temperature)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    plot_soft_targets(fs, target, similar, profiles, tmp)
    os.replace(tmp, out)
    payload = {
        "figure": str(out),
        "target": fs.classes[target],
        "similar": [fs.classes[k] for k in similar],
        "samples": int(fs.label_counts()[target]),
        "logits": fs.logits_source,
        "mean_soft_targets": {T.text: profiles[T] for T in args.temperature},
    }
    names = list(profiles[args.temperature[0]])
    rows = [{"class": c, **{f"T={T.text}": profiles[T][c] for T in args.temperature}} for c in names]
    _emit(args, payload, rows, list(rows[0]))


def _isotropy_rows(fs: FeatureSet, targets: list[int], means, ratio: float) -> list[dict]:
    """One row per target of the Supp. D count on its mean probability vector."""
    counts = fs.label_counts()
    rows = []
    for t, p in zip(targets, means):
        r = negligible_classes(p, t, ratio)
        rows.append(
            {
                "target": fs.classes[t],
                "samples": int(counts[t]),
                "p_target": float(p[t]),
                "target_is_largest": r.target_is_largest,
                "second": fs.classes[r.reference],
                "p_second": float(p[r.reference]),
                "negligible": r.negligible,
                "others": r.others,
                "not_negligible": [fs.classes[k] for k in r.not_negligible],
                "p_not_negligible": [float(p[k]) for k in r.not_negligible],
            }
        )
    return rows


def cmd_isotropy(args) -> None:
    """Supp. D: per target, how many of the other K - 1 mean probabilities are at least --ratio
    times smaller than the largest of them, and which classes are not (shared_metrics.isotropy)."""
    ratio = check_ratio(args.ratio)
    fs = _open(args.features)
    targets = list(dict.fromkeys(_class_list(fs, args.target)))
    if not targets:
        raise UsageError("give --target NAME[,NAME...]")
    means = class_mean_soft_targets(fs, targets, [args.temperature])[:, 0]
    rows = _isotropy_rows(fs, targets, means, ratio)
    payload = {
        "features": str(fs.path),
        "logits": fs.logits_source,
        "temperature": args.temperature,
        "ratio": ratio,
        "definition": "mean over the target's samples of softmax(z/T); p_second = the largest non-target "
        "probability; negligible = non-target classes with p <= p_second / ratio, out of the K - 1 others",
        "targets": rows,
    }
    table = [
        {
            "target": r["target"],
            "samples": r["samples"],
            "p target": r["p_target"],
            "target largest": "yes" if r["target_is_largest"] else "no",
            "second largest": r["second"],
            "p second": r["p_second"],
            f"{ratio:g}x smaller": r["negligible"],
            "of K - 1": r["others"],
            "not negligible": r["not_negligible"],
        }
        for r in rows
    ]
    _emit(args, payload, table, list(table[0]))


# ------------------------------------------------------ stability, accuracy
def cmd_stability(args) -> None:
    rows = []
    for path in args.features:
        fs = _open(path)
        r = stability(fs.logits, fs.labels, args.temperature, args.variant)
        rows.append({"features": str(fs.path), "label": _label(fs), **r})
    payload = {"temperature": args.temperature, "variant": args.variant, "sets": rows}
    _emit(args, payload, rows, ["label", "stability", "inter_class_stability", "classes_used"])


def cmd_accuracy(args) -> None:
    rows, payload = [], {"unit": "fraction", "sets": []}
    for path in args.features:
        fs = _open(path)
        correct, count = per_class_accuracy(fs)
        chosen = _class_list(fs, args.classes) or list(range(fs.num_classes))
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = correct / count
        entry = {
            "features": str(fs.path),
            "label": _label(fs),
            "top1": float(correct.sum() / count.sum()),
            "per_class": {fs.classes[k]: (None if count[k] == 0 else float(acc[k])) for k in chosen},
        }
        payload["sets"].append(entry)
        rows.append(
            {
                "set": _label(fs),
                "top-1 (fraction)": entry["top1"],
                **{f"{fs.classes[k]} (fraction)": entry["per_class"][fs.classes[k]] for k in chosen},
            }
        )
    if len(payload["sets"]) == 1:
        payload = {"unit": "fraction", **payload["sets"][0]}
    columns = list(rows[0])
    _emit(args, payload, rows, columns, pct_columns=set(columns[1:]))


# --------------------------------------------------- paired tests and seeds
def cmd_compare(args) -> None:
    """Two models' top-1 on the same samples: both accuracies, B - A, McNemar's exact p-value and a
    paired bootstrap interval of the difference (shared_metrics.stats)."""
    replicates, confidence = check_bootstrap_args(args.bootstrap, args.confidence)
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    a, b = _open(args.a), _open(args.b)
    _same_classes(a, b)
    _same_samples(a, b)
    hit_a, hit_b = top1_correct(a), top1_correct(b)
    test = mcnemar_exact(hit_a, hit_b)
    boot = paired_bootstrap_accuracy(hit_a, hit_b, replicates, args.seed, confidence)
    significant = test.p_value < 1.0 - confidence
    payload = {
        "unit": "fraction",
        "a": str(a.path),
        "b": str(b.path),
        "label_a": _label(a),
        "label_b": _label(b),
        "samples": a.num_samples,
        "top1_a": float(hit_a.mean()),
        "top1_b": float(hit_b.mean()),
        "difference": boot.difference,
        "difference_ci": [boot.low, boot.high],
        "mcnemar": test.as_dict(),
        "significant": bool(significant),
        "confidence": confidence,
        "bootstrap": {
            "replicates": replicates,
            "seed": args.seed,
            "method": "paired bootstrap over samples, percentile interval of top-1(B) - top-1(A)",
        },
        "test": "McNemar's exact test (two-sided binomial on the discordant samples)",
    }
    level = f"{100 * confidence:g}%"
    row = {
        "A": _label(a),
        "B": _label(b),
        "top-1 A (fraction)": payload["top1_a"],
        "top-1 B (fraction)": payload["top1_b"],
        "B - A (fraction)": boot.difference,
        f"{level} CI low (fraction)": boot.low,
        f"{level} CI high (fraction)": boot.high,
        "McNemar p": test.p_value,
        "only A right": test.only_a,
        "only B right": test.only_b,
    }
    if args.format == "csv":
        row["significant"] = bool(significant)
    else:
        row["verdict"] = f"significant at {level}" if significant else "not distinguishable at this scale"
    columns = list(row)
    _emit(args, payload, [row], columns, pct_columns={c for c in columns if c.endswith("(fraction)")})


def _dig(data, key: str):
    """The number at a dotted path (``mcnemar.p_value``) of a JSON result, or None."""
    for part in key.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def _json_results(paths, key: str) -> tuple[list[dict[str, float]], str | None]:
    """Per file (one seed each): {group: value} -- one group named after the key, or, for a result
    with a "targets" (eta --sets) or "sets" (accuracy of many sets) list, one per entry. Also the
    files' common "unit"."""
    seen, texts, out, units = {}, {}, [], set()
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{path} is given twice (one results file per seed)")
        seen[real] = path
        data = read_json(path, UsageError, "results file")
        text = to_json(data)
        if text in texts:
            raise UsageError(f"{path} and {texts[text]} hold the same results: the same seed given twice?")
        texts[text] = path
        value = _dig(data, key)
        if value is not None:
            groups = {key: value}
        else:
            entries = next(
                (
                    (data[k], n)
                    for k, n in (("targets", "target"), ("sets", "label"))
                    if isinstance(data, dict) and isinstance(data.get(k), list)
                ),
                None,
            )
            groups = {}
            for entry in entries[0] if entries else ():
                v = _dig(entry, key)
                if v is not None:
                    groups[str(entry.get(entries[1]))] = v
            if not groups:
                raise UsageError(
                    f"{path}: no number at {key!r} (a dotted path into the JSON, e.g. top1, "
                    "eta_similar, mcnemar.p_value)"
                )
        if isinstance(data, dict) and data.get("unit"):
            units.add(data["unit"])
        out.append(groups)
    return out, (units.pop() if len(units) == 1 else None)


def _csv_results(
    path, value: str, by: list[str], seed_column: str, condition: str | None = None
) -> dict[tuple, dict]:
    """{(by values..., [condition value]): {seed: value}} from a CSV of per-seed results; a seed
    twice in one group is an error."""
    import csv as _csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = _csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, _csv.Error) as e:
        raise UsageError(f"{path}: cannot read the CSV ({e.__class__.__name__}: {e})") from None
    wanted = [value, seed_column, *by, *([condition] if condition else [])]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UsageError(f"{path}: no column {missing[0]!r} (columns: {', '.join(header)})")
    groups: dict[tuple, dict] = {}
    for line, r in enumerate(rows, start=2):
        key = tuple(r[c] for c in by) + ((r[condition],) if condition else ())
        try:
            v = float(r[value])
        except (TypeError, ValueError):
            raise UsageError(f"{path}: line {line}: {value} = {r[value]!r} is not a number") from None
        seeds = groups.setdefault(key, {})
        if r[seed_column] in seeds:
            where = ", ".join(f"{c}={k}" for c, k in zip(by + ([condition] if condition else []), key))
            raise UsageError(
                f"{path}: line {line}: seed {r[seed_column]} given twice" + (f" for {where}" if where else "")
            )
        seeds[r[seed_column]] = v
    if not groups:
        raise UsageError(f"{path}: no rows")
    return groups


def _interval_row(name: dict, r, unit: str | None) -> dict:
    level = f"{100 * r.confidence:g}%"
    u = f" ({unit})" if unit else ""
    row = {
        **name,
        f"mean{u}": r.mean,
        f"std{u}": r.std,
        "n": r.n,
        f"{level} t-interval low{u}": r.low,
        f"{level} t-interval high{u}": r.high,
    }
    if r.p_value is not None:
        row["paired t p"] = r.p_value
    return row


def _emit_intervals(args, rows: list[dict], unit: str | None, payload: dict) -> None:
    columns = list(rows[0])
    pct = {c for c in columns if c.endswith("(fraction)")} if unit == "fraction" else set()
    _emit(args, payload, rows, columns, pct_columns=pct)


def _split_list(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def cmd_seeds(args) -> None:
    """mean ± std (n) and the t-interval over seeds, per group."""
    confidence = check_bootstrap_args(1, args.confidence)[1]
    if bool(args.files) == bool(args.csv):
        raise UsageError("give results files (one JSON per seed) with --key, or --csv FILE with --value")
    if args.files:
        if not args.key:
            raise UsageError("give --key: the number to summarise in each JSON (e.g. top1, eta_similar)")
        per_seed, unit = _json_results(args.files, args.key)
        names = list(dict.fromkeys(g for groups in per_seed for g in groups))
        values = {(g,): [groups[g] for groups in per_seed if g in groups] for g in names}
        by = ["target" if names != [args.key] else "key"]
    else:
        if not args.value:
            raise UsageError("give --value: the CSV column holding the per-seed number")
        by = _split_list(args.by)
        values = {
            k: list(v.values()) for k, v in _csv_results(args.csv, args.value, by, args.seed_column).items()
        }
        unit = args.unit
    unit = args.unit or unit
    rows, out = [], []
    for key, vals in values.items():
        r = t_interval(vals, confidence)
        name = dict(zip(by, key))
        rows.append(_interval_row(name, r, unit))
        out.append({**name, **r.as_dict()})
    _emit_intervals(
        args,
        rows,
        unit,
        {
            "unit": unit,
            "method": "Student-t interval of the mean over seeds (sample std, n - 1 degrees of freedom)",
            "groups": out,
        },
    )


def _paired_from_csv(args) -> tuple[dict, list[str], str | None]:
    """({group: (A values, B values) in seed order}, group columns, unit) from --csv."""
    if not (args.value and args.condition and args.a_value is not None and args.b_value is not None):
        raise UsageError("--csv needs --value, --condition, --a-value and --b-value")
    by = _split_list(args.by)
    groups = _csv_results(args.csv, args.value, by, args.seed_column, args.condition)
    pairs = {}
    for key in dict.fromkeys(k[:-1] for k in groups):
        sa, sb = groups.get(key + (args.a_value,)), groups.get(key + (args.b_value,))
        where = ", ".join(f"{c}={k}" for c, k in zip(by, key)) or "the file"
        if sa is None or sb is None:
            raise UsageError(
                f"{args.csv}: {where} has no rows with {args.condition} = "
                f"{args.a_value if sa is None else args.b_value}"
            )
        if set(sa) != set(sb):
            odd = sorted(set(sa) ^ set(sb))[0]
            raise UsageError(
                f"{args.csv}: {where}: seed {odd} is in only one of {args.condition} = "
                f"{args.a_value} and {args.b_value} (a paired test needs the same seeds)"
            )
        seeds = sorted(sa)
        pairs[key] = ([sa[s] for s in seeds], [sb[s] for s in seeds])
    return pairs, by, args.unit


def _paired_from_json(args) -> tuple[dict, list[str], str | None]:
    """({group: (A values, B values) in file order}, group columns, unit) from --a/--b JSON files."""
    if not args.key:
        raise UsageError("give --key: the number to compare in each JSON (e.g. top1, eta_similar)")
    if len(args.a_files or []) != len(args.b_files or []):
        raise UsageError(
            f"--a has {len(args.a_files or [])} files and --b {len(args.b_files or [])}: "
            "give one file per seed for each, in the same seed order"
        )
    a, unit_a = _json_results(args.a_files, args.key)
    b, unit_b = _json_results(args.b_files, args.key)
    overlap = set(map(os.path.realpath, args.a_files)) & set(map(os.path.realpath, args.b_files))
    if overlap:
        raise UsageError(f"{sorted(overlap)[0]} is given in both --a and --b")
    names = list(dict.fromkeys(g for groups in a for g in groups))
    for i, (ga, gb) in enumerate(zip(a, b)):
        if set(ga) != set(gb):
            raise UsageError(f"{args.a_files[i]} and {args.b_files[i]} hold different targets")
    pairs = {(g,): ([x[g] for x in a], [x[g] for x in b]) for g in names}
    by = ["target" if names != [args.key] else "key"]
    return pairs, by, unit_a if unit_a == unit_b else None


def cmd_paired_seeds(args) -> None:
    """Per-seed difference B - A between two conditions: mean, t-interval and the paired t-test."""
    confidence = check_bootstrap_args(1, args.confidence)[1]
    if bool(args.a_files or args.b_files) == bool(args.csv):
        raise UsageError(
            "give --a FILE... --b FILE... (JSON, one per seed, in the same seed order) with --key, "
            "or --csv FILE with --value, --condition, --a-value and --b-value"
        )
    pairs, by, unit = _paired_from_csv(args) if args.csv else _paired_from_json(args)
    unit = args.unit or unit
    rows, out = [], []
    for key, (va, vb) in pairs.items():
        r = paired_t_interval(va, vb, confidence)
        name = dict(zip(by, key))
        row = _interval_row(name, r, unit)
        row = {(k.replace("mean", "mean B - A", 1) if k.startswith("mean") else k): v for k, v in row.items()}
        significant = r.p_value is not None and r.p_value == r.p_value and r.p_value < 1.0 - confidence
        row["verdict"] = (
            f"significant at {100 * confidence:g}%" if significant else "not distinguishable at this scale"
        )
        rows.append(row)
        out.append({**name, **r.as_dict(), "significant": bool(significant)})
    _emit_intervals(
        args,
        rows,
        unit,
        {
            "unit": unit,
            "difference": "B - A, per seed",
            "method": "paired t-interval of the per-seed differences; two-sided "
            "paired t-test (scipy.stats.ttest_rel)",
            "groups": out,
        },
    )


# --------------------------------------------------------------- parser
def _add_eta_command(add) -> None:
    """eta: η of Eq. 1, η_pairwise (Supp. J), the bootstrap intervals."""
    sp = add(
        "eta",
        cmd_eta,
        "diffusion index η(T1, T2; π, S) of paper Eq. 1 (a fraction; markdown tables print percent)",
    )
    sp.add_argument("--before", required=True, help="feature set of the student at T1 (train split)")
    sp.add_argument("--after", required=True, help="feature set of the student at T2 (train split)")
    sp.add_argument("--before-valid", help="feature set at T1, validation split (adds valid columns)")
    sp.add_argument("--after-valid", help="feature set at T2, validation split")
    sp.add_argument("--target", help="target class π (name in meta.json or index)")
    sp.add_argument("--similar", help="S1: comma-separated classes semantically similar to the target")
    sp.add_argument("--dissimilar", help="S2: comma-separated dissimilar classes")
    sp.add_argument(
        "--sets", help='JSON {"target": {"similar": [...], "dissimilar": [...]}} for many targets'
    )
    sp.add_argument(
        "--hierarchy", help="choose S1/S2 from a hierarchy: a JSON file, 'wordnet' or 'fashion-mnist'"
    )
    sp.add_argument(
        "--select-by-features",
        action="store_true",
        help="choose S1/S2 from the --before set's centroids (nearest 1%%, farthest 90%%)",
    )
    sp.add_argument(
        "--k", type=_positive_int, default=4, help="hierarchy: number of similar classes (default 4)"
    )
    sp.add_argument(
        "--n", type=_positive_int, default=20, help="hierarchy: number of dissimilar classes (default 20)"
    )
    sp.add_argument("--seed", type=int, default=0, help="seed for random choices and subsampling")
    sp.add_argument(
        "--pairwise",
        action="store_true",
        help="η_pairwise (Supp. J): mean pairwise feature distance instead of centroids",
    )
    sp.add_argument(
        "--projection",
        choices=("head", "none"),
        default="head",
        help="η_pairwise: project onto the span of the classes' head rows (default) or not",
    )
    sp.add_argument(
        "--max-per-class", type=_positive_int, default=500, help="η_pairwise: samples per class (default 500)"
    )
    sp.add_argument(
        "--bootstrap",
        metavar="B",
        help="add percentile intervals from B paired bootstrap replicates over samples (each class "
        "resampled with replacement, the same rows for T1 and T2) and the significance verdict",
    )
    sp.add_argument(
        "--confidence",
        default="0.95",
        help="confidence level of the --bootstrap intervals, in (0, 1) (default 0.95)",
    )


def _add_entropy_commands(add) -> None:
    """entropy and match-temperature (Supp. G, Table 13)."""
    sp = add("entropy", cmd_entropy, "mean entropy (nats) of softmax(logits/T) per temperature (Table 13)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument("--temperature", nargs="+", required=True, type=_positive_float, metavar="T")

    sp = add(
        "match-temperature",
        cmd_match_temperature,
        "temperature at which a teacher's mean target entropy equals a value or another teacher's",
    )
    sp.add_argument("--features", required=True, help="feature set (with logits.npy) of the teacher to tune")
    sp.add_argument("--entropy", type=float, help="the entropy to match, in nats")
    sp.add_argument("--reference", help="another teacher's feature set whose entropy to match")
    sp.add_argument(
        "--reference-temperature",
        type=_positive_float,
        default=1.0,
        help="temperature of the reference teacher (default 1)",
    )


def _add_similar_command(add) -> None:
    """similar: S1/S2 from a hierarchy and from feature space (Supp. F, Table 12)."""
    sp = add(
        "similar",
        cmd_similar,
        "similar/dissimilar classes from a hierarchy and from feature space, "
        "and their agreement (Supp. F, Table 12)",
    )
    sp.add_argument("--features", required=True, help="feature set whose centroids define feature space")
    sp.add_argument("--target", required=True, help="target class(es), comma-separated")
    sp.add_argument("--hierarchy", help="a JSON hierarchy, 'wordnet' or 'fashion-mnist'")
    sp.add_argument("--k", type=_positive_int, default=4, help="hierarchy: similar classes (default 4)")
    sp.add_argument("--n", type=_positive_int, default=20, help="hierarchy: dissimilar classes (default 20)")
    sp.add_argument(
        "--near", type=_fraction, default=0.01, help="feature space: nearest fraction = S1 (default 0.01)"
    )
    sp.add_argument(
        "--far", type=_fraction, default=0.90, help="feature space: farthest fraction = S2 (default 0.9)"
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--write-sets", help="write the chosen sets as an `eta --sets` JSON file")
    sp.add_argument(
        "--candidates",
        metavar="REGEX",
        help="feature space: draw S1/S2 only from classes whose whole name matches this regular "
        "expression (e.g. '[a-z]{3,}': letters only; a BPE vocabulary's word-final pieces "
        "match too, see --candidate-list)",
    )
    sp.add_argument(
        "--candidate-list",
        metavar="FILE",
        help="feature space: draw S1/S2 only from the classes named in FILE, one per line (e.g. "
        "the tokens that stand as whole words in the BPE text); with --candidates, both apply",
    )


def _add_figure_commands(add) -> None:
    """project (Figures 1, 4), soft-targets (Figure 2) and isotropy (Supp. D)."""
    sp = add("project", cmd_project, "projection figure of three classes (Supp. E; grid = Figure 1 layout)")
    sp.add_argument(
        "--features",
        nargs="+",
        required=True,
        help="feature sets; rows by model/α, columns by temperature/split from meta.json",
    )
    sp.add_argument("--classes", required=True, help="three classes, e.g. Pullover,Coat,Sneaker")
    sp.add_argument("--out", required=True, help="PNG file to write")
    sp.add_argument(
        "--max-per-class",
        type=_positive_int,
        default=150,
        help="points per class (default 150, as the paper)",
    )
    sp.add_argument("--seed", type=int, default=0)

    sp = add(
        "soft-targets",
        cmd_soft_targets,
        "mean soft targets softmax(z/T) of one class's samples, per T (Figure 2 layout)",
    )
    sp.add_argument(
        "--features",
        required=True,
        help="teacher feature set (train split): its logits.npy, or features and head where it has none",
    )
    sp.add_argument("--target", required=True, help="the class whose samples are averaged")
    sp.add_argument("--similar", help="classes to show right after the target (comma-separated)")
    sp.add_argument(
        "--temperature", nargs="+", type=_positive_float, default=None, required=True, metavar="T"
    )
    sp.add_argument("--out", required=True, help="PNG file to write")

    sp = add(
        "isotropy",
        cmd_isotropy,
        "Supp. D: how many of a class's other K - 1 mean soft targets are at least RATIO times "
        "smaller than the largest of them (systematic, not isotropic diffusion), and which are not",
    )
    sp.add_argument(
        "--features",
        required=True,
        help="teacher feature set (train split): its logits.npy, or features and head where it has none",
    )
    sp.add_argument("--target", required=True, help="target class(es), comma-separated")
    sp.add_argument(
        "--temperature",
        type=_positive_float,
        default=1.0,
        help="softmax temperature (default 1, the paper's)",
    )
    sp.add_argument(
        "--ratio", type=float, default=100.0, help="how many times smaller is negligible (default 100)"
    )


def _add_model_commands(add) -> None:
    """stability, accuracy and compare: per-model scores from the logits."""
    sp = add("stability", cmd_stability, "Shen et al.'s stability (Eq. 2) and inter-class stability (Eq. 5)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument(
        "--temperature", type=_positive_float, default=1.0, help="softmax temperature (default 1)"
    )
    sp.add_argument(
        "--variant",
        choices=VARIANTS,
        default="eq2",
        help="eq2: Eq. 2 as printed (default); target-std: their Appendix C code",
    )

    sp = add("accuracy", cmd_accuracy, "top-1 and per-class accuracy from logits (Tables 17-19)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument("--classes", help="only these classes (comma-separated); default all")

    sp = add(
        "compare",
        cmd_compare,
        "two models' top-1 on the same samples: accuracies, B - A, McNemar's exact "
        "test and a paired bootstrap interval of the difference",
    )
    sp.add_argument(
        "--a", required=True, help="feature set (with logits.npy, or features and head) of model A"
    )
    sp.add_argument("--b", required=True, help="feature set of model B, the same samples as --a")
    sp.add_argument(
        "--bootstrap",
        default="10000",
        metavar="B",
        help="replicates of the paired bootstrap interval (default 10000)",
    )
    sp.add_argument("--confidence", default="0.95", help="confidence level, in (0, 1) (default 0.95)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")


def _add_seed_commands(add) -> None:
    """seeds and paired-seeds: intervals over seeds."""

    def seed_csv(sp):
        sp.add_argument("--csv", help="a CSV of per-seed results instead of JSON files")
        sp.add_argument("--value", help="--csv: the column holding the number")
        sp.add_argument(
            "--by", help="--csv: comma-separated columns that name a group (e.g. alpha,temperature)"
        )
        sp.add_argument(
            "--seed-column", default="seed", help="--csv: the column naming the seed (default seed)"
        )
        sp.add_argument(
            "--key",
            help="JSON: dotted path of the number in each file (e.g. top1, eta_similar, "
            "mcnemar.p_value); eta --sets files give one group per target",
        )
        sp.add_argument(
            "--unit",
            help="unit of the values (default: the JSON's 'unit'); 'fraction' prints percent in markdown",
        )
        sp.add_argument("--confidence", default="0.95", help="confidence level, in (0, 1) (default 0.95)")

    sp = add("seeds", cmd_seeds, "mean ± std (n) over seeds and the Student-t interval of the mean")
    sp.add_argument(
        "files", nargs="*", metavar="FILE", help="JSON results, one per seed (e.g. accuracy or eta output)"
    )
    seed_csv(sp)

    sp = add(
        "paired-seeds",
        cmd_paired_seeds,
        "difference B - A between two conditions over the same seeds: "
        "mean, paired t-interval and paired t-test",
    )
    sp.add_argument(
        "--a", dest="a_files", nargs="+", metavar="FILE", help="JSON results of condition A, one per seed"
    )
    sp.add_argument(
        "--b",
        dest="b_files",
        nargs="+",
        metavar="FILE",
        help="JSON results of condition B, one per seed, in the same seed order as --a",
    )
    sp.add_argument("--condition", help="--csv: the column that tells the conditions apart (e.g. alpha)")
    sp.add_argument("--a-value", help="--csv: the --condition value of A")
    sp.add_argument("--b-value", help="--csv: the --condition value of B")
    seed_csv(sp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        sp.add_argument(
            "--format",
            choices=FORMATS,
            default="json",
            help="output format (default: json; markdown prints η/accuracy in percent)",
        )
        sp.add_argument("-o", "--output", help="write the result to this file (atomically) instead of stdout")
        return sp

    _add_eta_command(add)
    _add_entropy_commands(add)
    _add_similar_command(add)
    _add_figure_commands(add)
    _add_model_commands(add)
    _add_seed_commands(add)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # the math modules report bad input (an empty class, a set listed twice, ...) as ValueError
    return run_cli(f"{PROG} {args.command}", args.func, args, bad_input=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
