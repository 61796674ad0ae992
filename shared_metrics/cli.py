"""``lskd-metrics``: η, target entropy, stability, accuracy, S1/S2 selection and the projection
figure from feature sets (also ``python -m shared_metrics``).

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
from .centroids import class_centroids, per_class_accuracy, require_classes_present
from .diffusion import check_sets, diffusion_index, diffusion_index_pairwise
from .entropy import check_temperature, match_temperature, mean_entropy
from .featureset import FeatureSet, FeatureSetError
from .report import FORMATS, atomic_write_text, csv_table, markdown_table, read_json, tmp_name, to_json
from .selection import HierarchyError, agreement, load_hierarchy, select_from_features, select_from_hierarchy
from .stability import VARIANTS, stability

PROG = "lskd-metrics"


class UsageError(ValueError):
    pass


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
        raise FeatureSetError(f"{b.path}: its classes differ from {a.path}'s "
                              f"({a.num_classes} vs {b.num_classes} classes, or another order)")


def _same_samples(a: FeatureSet, b: FeatureSet) -> None:
    """η compares one model's features at T1 with another's at T2 on the same samples."""
    if a.num_samples != b.num_samples or not np.array_equal(a.labels, b.labels):
        detail = (f"{a.num_samples} vs {b.num_samples} rows" if a.num_samples != b.num_samples else
                  f"labels differ from row {int(np.argmax(a.labels != b.labels))}")
        raise FeatureSetError(f"{a.path} and {b.path} are not the same samples ({detail}): "
                              "give feature sets of one split dumped alike")
    for key in ("split", "dataset"):
        if a.meta.get(key) is not None and b.meta.get(key) is not None and a.meta[key] != b.meta[key]:
            raise FeatureSetError(f"{a.path} and {b.path} are of different {key}s "
                                  f"({a.meta[key]!r} vs {b.meta[key]!r})")


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
        print(f"{PROG}: warning: {len(missing)} of {len(classes)} classes are not in the hierarchy "
              f"{h.source} (e.g. {missing[0]!r}); they can be in neither S1 nor S2", file=sys.stderr)
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
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, dict) and isinstance(v.get("similar"), list) and isinstance(v.get("dissimilar"), list)
            for v in data.values()):
        raise UsageError(f'{path}: expected {{"target": {{"similar": [...], "dissimilar": [...]}}, ...}}')
    return data


def cmd_eta(args) -> None:
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
            raise UsageError(f"--before is at T = {tb:g} and --after at T = {ta:g}: η(T1, T2) takes the "
                             "lower temperature first (--before T1, --after T2)")

    # Targets and their S1/S2.
    if args.sets:
        if args.target or args.similar or args.dissimilar:
            raise UsageError("--sets replaces --target/--similar/--dissimilar; give one or the other")
        targets = [(ref.class_index(t), [ref.class_index(c) for c in v["similar"]],
                    [ref.class_index(c) for c in v["dissimilar"]]) for t, v in _read_sets_file(args.sets).items()]
    else:
        if not args.target:
            raise UsageError("give --target NAME (with --similar/--dissimilar or --hierarchy), or --sets FILE.json")
        t = ref.class_index(args.target)
        s1, s2 = _class_list(ref, args.similar), _class_list(ref, args.dissimilar)
        chosen = [name for name, on in (("--similar/--dissimilar", s1 or s2), ("--hierarchy", args.hierarchy),
                                        ("--select-by-features", args.select_by_features)) if on]
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

    results = []
    needed = sorted({k for t, s1, s2 in targets for k in (t, *s1, *s2)})
    centroids = {}  # per set, only the classes some target needs
    for t, s1, s2 in targets:
        row = {"target": ref.classes[t], "target_index": t,
               "similar": [ref.classes[k] for k in s1], "dissimilar": [ref.classes[k] for k in s2]}
        for split, (fb, fa) in opened.items():
            for fs in (fb, fa):
                require_classes_present(fs, [t, *s1, *s2])
            if args.pairwise:
                r = diffusion_index_pairwise(fb, fa, t, s1, s2, projection=args.projection,
                                             max_per_class=args.max_per_class, seed=args.seed)
            else:
                for fs in (fb, fa):
                    if fs.path not in centroids:
                        centroids[fs.path] = class_centroids(fs, classes=needed)
                r = diffusion_index(centroids[fb.path], centroids[fa.path], t, s1, s2)
            suffix = "" if split == "train" else "_valid"
            row[f"eta_similar{suffix}"] = r.eta_similar
            row[f"eta_dissimilar{suffix}"] = r.eta_dissimilar
            row[f"systematic_diffusion{suffix}"] = bool(r.eta_similar < 0 < r.eta_dissimilar)
        results.append(row)

    common = {"unit": "fraction", "distance": "pairwise" if args.pairwise else "centroid",
              "T1": opened["train"][0].meta.get("temperature"), "T2": opened["train"][1].meta.get("temperature"),
              "before": str(args.before), "after": str(args.after)}
    payload = {**common, **results[0]} if len(results) == 1 and not args.sets else {**common, "targets": results}
    # Table 3 layout: one row per target, train (and valid) η over S1 and S2.
    keys = [f"{k}{sfx}" for sfx in [""] + (["_valid"] if len(opened) > 1 else [])
            for k in ("eta_similar", "eta_dissimilar")]
    if args.format == "csv":
        rows = [{"target": r["target"], **{f"{k} (fraction)": r[k] for k in keys}} for r in results]
        _emit(args, payload, rows, ["target"] + [f"{k} (fraction)" for k in keys])
    else:
        named = [k.replace("eta_similar", "η S1").replace("eta_dissimilar", "η S2").replace("_valid", " valid")
                 + " (fraction)" for k in keys]
        rows = [{"target": r["target"], **{n: r[k] for n, k in zip(named, keys)}} for r in results]
        _emit(args, payload, rows, ["target"] + named, pct_columns=set(named))


# -------------------------------------------------------------- entropy
def cmd_entropy(args) -> None:
    sets = [_open(p) for p in args.features]
    result = {str(fs.path): {T.text: mean_entropy(fs.logits, T) for T in args.temperature} for fs in sets}
    payload = result[str(sets[0].path)] if len(sets) == 1 else result
    labels = _unique_labels(sets)
    rows = [{"T": T.text, **{f"{lab} (nats)": result[str(fs.path)][T.text] for fs, lab in zip(sets, labels)}}
            for T in args.temperature]
    rows.append({"T": "max ln K", **{f"{lab} (nats)": float(np.log(fs.num_classes))
                                     for fs, lab in zip(sets, labels)}})
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
    _emit(args, payload, [{"features": _label(fs), "entropy (nats)": target, "matching T": T}],
          ["features", "entropy (nats)", "matching T"])


# -------------------------------------------------------------- similar
def cmd_similar(args) -> None:
    fs = _open(args.features)
    targets = _class_list(fs, args.target)
    if not targets:
        raise UsageError("give --target NAME[,NAME...]")
    centroids = class_centroids(fs)
    hier = _hierarchy(args.hierarchy, fs.classes) if args.hierarchy else None
    candidates = None
    if args.candidates is not None:
        try:
            pattern = re.compile(args.candidates)
        except re.error as e:
            raise UsageError(f"--candidates: not a regular expression ({e}): {args.candidates!r}") from None
        candidates = [i for i, c in enumerate(fs.classes) if pattern.fullmatch(c)]
        if len(candidates) < 3:
            raise UsageError(f"--candidates {args.candidates!r} matches {len(candidates)} classes; need at least 3")
    if args.candidate_list is not None:
        listed = _class_names_file(args.candidate_list, fs)
        allowed = set(listed)
        candidates = listed if candidates is None else [i for i in candidates if i in allowed]
        if len(candidates) < 3:
            raise UsageError(f"--candidate-list {args.candidate_list}"
                             f"{' with --candidates' if args.candidates is not None else ''} leaves "
                             f"{len(candidates)} classes; need at least 3")
    if args.near + args.far > 1.0:
        raise UsageError(f"--near {args.near:g} + --far {args.far:g} is over 1: S1 and S2 would overlap")
    rows, sets_out = [], {}
    for t in targets:
        require_classes_present(fs, [t])
        f1, f2 = select_from_features(centroids, t, args.near, args.far, candidates)
        row = {"target": fs.classes[t], "similar_features": [fs.classes[k] for k in f1],
               "dissimilar_features_count": len(f2)}
        if hier:
            h1, h2 = select_from_hierarchy(*hier, t, args.k, args.n, args.seed)
            row.update(similar_hierarchy=[fs.classes[k] for k in h1],
                       dissimilar_hierarchy=[fs.classes[k] for k in h2],
                       agreement_similar=agreement(h1, f1), agreement_dissimilar=agreement(h2, f2))
            sets_out[fs.classes[t]] = {"similar": row["similar_hierarchy"], "dissimilar": row["dissimilar_hierarchy"]}
        else:
            row["dissimilar_features"] = [fs.classes[k] for k in f2]
            sets_out[fs.classes[t]] = {"similar": row["similar_features"], "dissimilar": row["dissimilar_features"]}
        rows.append(row)
    if args.write_sets:
        atomic_write_text(args.write_sets, to_json(sets_out))
    columns = (["target", "similar_hierarchy", "similar_features", "agreement_similar", "agreement_dissimilar"]
               if hier else ["target", "similar_features", "dissimilar_features_count"])
    _emit(args, {"targets": rows, "rule": {"near": args.near, "far": args.far, "k": args.k, "n": args.n,
                                           "seed": args.seed, "hierarchy": args.hierarchy}}, rows, columns)


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
            raise UsageError(f"{grid[i][j].path} and {fs.path} would share one panel (same model, α, role, "
                             "temperature and split in meta.json): give one of them")
        grid[i][j] = fs
    row_labels = [" ".join(x for x in (str(m or ""), f"α={a}" if a is not None else "", r) if x) for m, a, r in rows_k]
    col_labels = [" ".join(x for x in (f"T={float(t):g}" if t else "teacher", s) if x) for t, s in cols_k]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    plot_projection_grid(grid, classes, tmp, row_labels=row_labels, col_labels=col_labels,
                         max_per_class=args.max_per_class, seed=args.seed,
                         title=" / ".join(sets[0].classes[k] for k in classes))
    os.replace(tmp, out)
    payload = {"figure": str(out), "classes": [sets[0].classes[k] for k in classes],
               "rows": row_labels, "columns": col_labels, "features": [str(fs.path) for fs in sets]}
    _emit(args, payload, [{"figure": str(out), "panels": len(sets)}], ["figure", "panels"])


def cmd_soft_targets(args) -> None:
    from .soft_targets import plot_soft_targets

    fs = _open(args.features)
    target = fs.class_index(args.target)
    similar = [k for k in _class_list(fs, args.similar) if k != target]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    profile = plot_soft_targets(fs, target, similar, args.temperature, tmp)
    os.replace(tmp, out)
    payload = {"figure": str(out), "target": fs.classes[target],
               "mean_soft_targets": {T.text: profile[T] for T in args.temperature}}
    names = list(profile[args.temperature[0]])
    rows = [{"class": c, **{f"T={T.text}": profile[T][c] for T in args.temperature}} for c in names]
    _emit(args, payload, rows, list(rows[0]))


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
        entry = {"features": str(fs.path), "label": _label(fs), "top1": float(correct.sum() / count.sum()),
                 "per_class": {fs.classes[k]: (None if count[k] == 0 else float(acc[k])) for k in chosen}}
        payload["sets"].append(entry)
        rows.append({"set": _label(fs), "top-1 (fraction)": entry["top1"],
                     **{f"{fs.classes[k]} (fraction)": entry["per_class"][fs.classes[k]] for k in chosen}})
    if len(payload["sets"]) == 1:
        payload = {"unit": "fraction", **payload["sets"][0]}
    columns = list(rows[0])
    _emit(args, payload, rows, columns, pct_columns=set(columns[1:]))


# --------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        sp.add_argument("--format", choices=FORMATS, default="json",
                        help="output format (default: json; markdown prints η/accuracy in percent)")
        sp.add_argument("-o", "--output", help="write the result to this file (atomically) instead of stdout")
        return sp

    sp = add("eta", cmd_eta, "diffusion index η(T1, T2; π, S) of paper Eq. 1 (a fraction; markdown tables print percent)")
    sp.add_argument("--before", required=True, help="feature set of the student at T1 (train split)")
    sp.add_argument("--after", required=True, help="feature set of the student at T2 (train split)")
    sp.add_argument("--before-valid", help="feature set at T1, validation split (adds valid columns)")
    sp.add_argument("--after-valid", help="feature set at T2, validation split")
    sp.add_argument("--target", help="target class π (name in meta.json or index)")
    sp.add_argument("--similar", help="S1: comma-separated classes semantically similar to the target")
    sp.add_argument("--dissimilar", help="S2: comma-separated dissimilar classes")
    sp.add_argument("--sets", help='JSON {"target": {"similar": [...], "dissimilar": [...]}} for many targets')
    sp.add_argument("--hierarchy", help="choose S1/S2 from a hierarchy: a JSON file, 'wordnet' or 'fashion-mnist'")
    sp.add_argument("--select-by-features", action="store_true",
                    help="choose S1/S2 from the --before set's centroids (nearest 1%%, farthest 90%%)")
    sp.add_argument("--k", type=_positive_int, default=4, help="hierarchy: number of similar classes (default 4)")
    sp.add_argument("--n", type=_positive_int, default=20, help="hierarchy: number of dissimilar classes (default 20)")
    sp.add_argument("--seed", type=int, default=0, help="seed for random choices and subsampling")
    sp.add_argument("--pairwise", action="store_true",
                    help="η_pairwise (Supp. J): mean pairwise feature distance instead of centroids")
    sp.add_argument("--projection", choices=("head", "none"), default="head",
                    help="η_pairwise: project onto the span of the classes' head rows (default) or not")
    sp.add_argument("--max-per-class", type=_positive_int, default=500,
                    help="η_pairwise: samples per class (default 500)")

    sp = add("entropy", cmd_entropy, "mean entropy (nats) of softmax(logits/T) per temperature (Table 13)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument("--temperature", nargs="+", required=True, type=_positive_float, metavar="T")

    sp = add("match-temperature", cmd_match_temperature,
             "temperature at which a teacher's mean target entropy equals a value or another teacher's")
    sp.add_argument("--features", required=True, help="feature set (with logits.npy) of the teacher to tune")
    sp.add_argument("--entropy", type=float, help="the entropy to match, in nats")
    sp.add_argument("--reference", help="another teacher's feature set whose entropy to match")
    sp.add_argument("--reference-temperature", type=_positive_float, default=1.0,
                    help="temperature of the reference teacher (default 1)")

    sp = add("similar", cmd_similar, "similar/dissimilar classes from a hierarchy and from feature space, "
                                     "and their agreement (Supp. F, Table 12)")
    sp.add_argument("--features", required=True, help="feature set whose centroids define feature space")
    sp.add_argument("--target", required=True, help="target class(es), comma-separated")
    sp.add_argument("--hierarchy", help="a JSON hierarchy, 'wordnet' or 'fashion-mnist'")
    sp.add_argument("--k", type=_positive_int, default=4, help="hierarchy: similar classes (default 4)")
    sp.add_argument("--n", type=_positive_int, default=20, help="hierarchy: dissimilar classes (default 20)")
    sp.add_argument("--near", type=_fraction, default=0.01, help="feature space: nearest fraction = S1 (default 0.01)")
    sp.add_argument("--far", type=_fraction, default=0.90, help="feature space: farthest fraction = S2 (default 0.9)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--write-sets", help="write the chosen sets as an `eta --sets` JSON file")
    sp.add_argument("--candidates", metavar="REGEX",
                    help="feature space: draw S1/S2 only from classes whose whole name matches this regular "
                         "expression (e.g. '[a-z]{3,}': letters only; a BPE vocabulary's word-final pieces "
                         "match too, see --candidate-list)")
    sp.add_argument("--candidate-list", metavar="FILE",
                    help="feature space: draw S1/S2 only from the classes named in FILE, one per line (e.g. "
                         "the tokens that stand as whole words in the BPE text); with --candidates, both apply")

    sp = add("project", cmd_project, "projection figure of three classes (Supp. E; grid = Figure 1 layout)")
    sp.add_argument("--features", nargs="+", required=True,
                    help="feature sets; rows by model/α, columns by temperature/split from meta.json")
    sp.add_argument("--classes", required=True, help="three classes, e.g. Pullover,Coat,Sneaker")
    sp.add_argument("--out", required=True, help="PNG file to write")
    sp.add_argument("--max-per-class", type=_positive_int, default=150,
                    help="points per class (default 150, as the paper)")
    sp.add_argument("--seed", type=int, default=0)

    sp = add("soft-targets", cmd_soft_targets,
             "mean soft targets softmax(z/T) of one class's samples, per T (Figure 2 layout)")
    sp.add_argument("--features", required=True, help="teacher feature set with logits.npy (train split)")
    sp.add_argument("--target", required=True, help="the class whose samples are averaged")
    sp.add_argument("--similar", help="classes to show right after the target (comma-separated)")
    sp.add_argument("--temperature", nargs="+", type=_positive_float, default=None, required=True, metavar="T")
    sp.add_argument("--out", required=True, help="PNG file to write")

    sp = add("stability", cmd_stability, "Shen et al.'s stability (Eq. 2) and inter-class stability (Eq. 5)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument("--temperature", type=_positive_float, default=1.0, help="softmax temperature (default 1)")
    sp.add_argument("--variant", choices=VARIANTS, default="eq2",
                    help="eq2: Eq. 2 as printed (default); target-std: their Appendix C code")

    sp = add("accuracy", cmd_accuracy, "top-1 and per-class accuracy from logits (Tables 17-19)")
    sp.add_argument("--features", nargs="+", required=True, help="feature set(s) with logits.npy")
    sp.add_argument("--classes", help="only these classes (comma-separated); default all")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (FeatureSetError, HierarchyError, UsageError, ValueError, OSError) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG} {args.command}: error: out of memory", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as e:  # never a raw traceback at the user
        if os.environ.get("LSKD_DEBUG"):
            raise
        print(f"{PROG} {args.command}: internal error: {type(e).__name__}: {e} "
              "(set LSKD_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
