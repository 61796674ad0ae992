"""BLEU of translation checkpoints, and the α × T table of students (the paper's Tables 7-8).

``score``: ``fairseq-generate`` (beam 5, ``--remove-bpe``, ``--required-batch-size-multiple 1``
so no sentence is dropped) on one checkpoint; hypotheses and references are Moses-detokenised
and scored with sacrebleu, whose signature is printed.

``table``: scores many checkpoints and prints rows = teacher α, columns = T, cells = mean ± std
BLEU over seeds (sample std, n in brackets). α, T and the seed are read from each checkpoint:
a student (criterion ls_kd) has its T in ``--kd-temperature`` and its teacher's α in the
teacher checkpoint it names; a teacher (label_smoothed_cross_entropy) goes in the "teacher"
column with its own label smoothing as α. Scores are cached next to ``--out`` so re-running
after adding seeds only decodes the new checkpoints; the detokenised hypotheses and references
are kept under ``OUT.hyps/``.

``paired``: sacrebleu's own paired bootstrap resampling (``sacrebleu --paired-bs``,
``sacrebleu.significance.PairedTest``) of systems against a baseline on the same references,
with Holm's correction over the systems; systems scored on other references are refused.

    python -m nmt_plugin.bleu score runs/kd/a0.1_T2_s1/checkpoint_best.pt --data DATA_BIN
    python -m nmt_plugin.bleu table runs/kd/*/checkpoint_best.pt --data DATA_BIN --out runs/kd/bleu
    python -m nmt_plugin.bleu paired --table runs/kd/bleu --baseline runs/kd/a0_T2_s1/checkpoint_best.pt \
        --system runs/kd/a0.1_T2_s1/checkpoint_best.pt
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared_metrics.report import atomic_write_text

from . import PLUGIN_DIR
from .errors import LskdConfigError


def generate(
    checkpoint: str,
    data: str,
    split: str = "test",
    beam: int = 5,
    max_tokens: int = 4096,
    cpu: bool = False,
    fp16: bool = False,
    lenpen: float = 1.0,
    extra=(),
    threads: int | None = None,
) -> tuple[list[str], list[str]]:
    """(hypotheses, references) in corpus order, BPE removed, still Moses-tokenised."""
    if os.path.isdir(checkpoint):
        raise LskdConfigError(f"checkpoint {checkpoint} is a directory, not a checkpoint file")
    if not os.path.isfile(checkpoint):
        raise LskdConfigError(f"checkpoint not found: {checkpoint}")
    if not os.path.isdir(data):
        raise LskdConfigError(f"data directory not found: {data}")
    cmd = [
        sys.executable,
        "-m",
        "fairseq_cli.generate",
        data,
        "--user-dir",
        PLUGIN_DIR,
        "--task",
        "translation",
        "--path",
        checkpoint,
        "--gen-subset",
        split,
        "--beam",
        str(beam),
        "--lenpen",
        str(lenpen),
        "--remove-bpe",
        "--required-batch-size-multiple",
        "1",
        "--max-tokens",
        str(max_tokens),
        "--no-progress-bar",
        *extra,
    ]
    if cpu:
        cmd.append("--cpu")
    if fp16:
        cmd.append("--fp16")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(PLUGIN_DIR).parent) + os.pathsep + env.get("PYTHONPATH", "")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
        raise LskdConfigError(f"fairseq-generate failed on {checkpoint}: " + " | ".join(tail))
    hyps, refs = {}, {}
    for line in proc.stdout.splitlines():
        if line.startswith("H-"):
            i, _, text = line[2:].split("\t", 2)
            hyps[int(i)] = text
        elif line.startswith("T-"):
            i, text = line[2:].split("\t", 1)
            refs[int(i)] = text
    if not hyps or set(hyps) != set(refs):
        raise LskdConfigError(f"fairseq-generate gave {len(hyps)} hypotheses for {len(refs)} references")
    expected = _split_size(data, split)
    if expected is not None and len(hyps) != expected:
        raise LskdConfigError(
            f"fairseq-generate translated {len(hyps)} of the {expected} sentences of {split}"
        )
    order = sorted(hyps)
    return [hyps[i] for i in order], [refs[i] for i in order]


def _split_size(data: str, split: str):
    for name in os.listdir(data):
        m = re.fullmatch(rf"{re.escape(split)}\.([a-z_]+)-([a-z_]+)\.([a-z_]+)\.idx", name)
        if m and m.group(3) == m.group(2):
            from fairseq.data import data_utils

            ds = data_utils.load_indexed_dataset(os.path.join(data, name[:-4]), None)
            return len(ds) if ds is not None else None
    return None


def _target_lang(data: str, split: str) -> str:
    for name in sorted(os.listdir(data)):
        m = re.fullmatch(rf"{re.escape(split)}\.([a-z_]+)-([a-z_]+)\.([a-z_]+)\.idx", name)
        if m:
            return m.group(2)
    raise LskdConfigError(f"no binarised split {split!r} in {data}")


def detokenise(lines: list[str], lang: str) -> list[str]:
    """Moses-detokenised lines (what sacrebleu scores)."""
    from sacremoses import MosesDetokenizer

    md = MosesDetokenizer(lang=lang)
    return [md.detokenize(line.split()) for line in lines]


def detok_bleu(hyps: list[str], refs: list[str], lang: str, keep: str | None = None):
    """sacrebleu BLEU of Moses-detokenised hypotheses against detokenised references; with
    ``keep``, the detokenised lines are also written there (:func:`keep_translations`)."""
    from sacrebleu.metrics import BLEU

    d_h, d_r = detokenise(hyps, lang), detokenise(refs, lang)
    bleu = BLEU()
    score, sig = bleu.corpus_score(d_h, [d_r]), bleu.get_signature()
    if keep:
        return score, sig, keep_translations(keep, d_h, d_r)
    return score, sig


def check_fits_data(checkpoint: str, data: str, checkpoint_data: str | None = None) -> None:
    """Refuse (LskdConfigError) a checkpoint whose dictionaries are not those fairseq-generate
    reads from ``data``: it would translate with the wrong words, silently (see
    nmt_plugin.checks.check_data_dictionaries; ``checkpoint_data`` = --checkpoint-data)."""
    from fairseq.tasks.translation import TranslationConfig

    from .checks import check_checkpoint_dictionaries, load_checkpoint_state, setup_translation_data

    state, cfg = load_checkpoint_state(checkpoint)
    task = setup_translation_data(TranslationConfig(data=data))  # as fairseq-generate --task translation
    check_checkpoint_dictionaries(task, checkpoint, cfg, state["model"], checkpoint_data)


def score_checkpoint(
    checkpoint: str,
    data: str,
    split: str = "test",
    checkpoint_data: str | None = None,
    keep: str | None = None,
    **kw,
) -> dict:
    """BLEU of one checkpoint; with ``keep`` (a file name), its detokenised hypotheses are kept
    there and the references beside them, for ``paired`` (their paths are in the result)."""
    check_fits_data(checkpoint, data, checkpoint_data)
    hyps, refs = generate(checkpoint, data, split, **kw)
    score, sig, *kept = detok_bleu(hyps, refs, _target_lang(data, split), keep=keep)
    return {
        "checkpoint": os.path.abspath(checkpoint),
        "split": split,
        "bleu": round(score.score, 2),
        "sentences": len(hyps),
        "detail": str(score),
        "signature": str(sig),
        **(kept[0] if kept else {}),
    }


# ---------------------------------------------------------------------- table
def checkpoint_info(checkpoint: str) -> dict:
    """α, T, seed and role of a checkpoint, from its saved config."""
    from .checks import cfg_get as _get
    from .checks import load_checkpoint_state, teacher_alpha

    _, cfg = load_checkpoint_state(checkpoint)
    crit, task = _get(cfg, "criterion"), _get(cfg, "task")
    seed = _get(_get(cfg, "common"), "seed")
    if _get(crit, "_name") == "ls_kd":
        tpath = _get(task, "teacher_path")
        alpha = teacher_alpha(tpath)
        if alpha is None:
            raise LskdConfigError(f"{checkpoint}: cannot read its teacher {tpath} to learn the teacher's α")
        return {
            "role": "student",
            "alpha": alpha,
            "temperature": float(_get(task, "kd_temperature")),
            "seed": seed,
        }
    eps = _get(crit, "label_smoothing")
    return {"role": "teacher", "alpha": float(eps or 0.0), "temperature": None, "seed": seed}


def _fmt_t(t) -> str:
    return "teacher" if t is None else f"T={t:g}"


def make_table(rows: list[dict]) -> str:
    """Markdown: rows α, columns T (teacher first), cells mean ± std (n)."""
    alphas = sorted({r["alpha"] for r in rows})
    temps = sorted({r["temperature"] for r in rows}, key=lambda t: (t is not None, t or 0))
    head = "| α | " + " | ".join(_fmt_t(t) for t in temps) + " |"
    lines = [head, "|" + "---|" * (len(temps) + 1)]
    for a in alphas:
        cells = []
        for t in temps:
            vals = [r["bleu"] for r in rows if r["alpha"] == a and r["temperature"] == t]
            if not vals:
                cells.append("–")
                continue
            mean = sum(vals) / len(vals)
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            cells.append(f"{mean:.2f} ± {std:.2f} ({len(vals)})")
        lines.append(f"| {a:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def data_fingerprint(data, split: str) -> str:
    """The data folder and the size and mtime of its dictionaries and the split's files: a score
    cached for one data set is not reused for another (or for a re-preprocessed one)."""
    files = sorted(glob.glob(os.path.join(data, "dict.*.txt")) + glob.glob(os.path.join(data, f"{split}.*")))
    stamp = [os.path.abspath(data)] + [
        f"{os.path.basename(f)}:{os.stat(f).st_mtime_ns}:{os.stat(f).st_size}" for f in files
    ]
    return hashlib.sha1("\n".join(stamp).encode()).hexdigest()[:16]


# --------------------------------------------------------------------- paired
def _write_lines(path: Path, lines: list[str]) -> None:
    """One sentence per line, written to a temporary name (unique per thread: `table --jobs`
    decodes side by side) and renamed into place."""
    if any("\n" in line for line in lines):
        raise LskdConfigError(f"{path}: a line holds a newline; cannot keep it one sentence per line")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


def _read_lines(path) -> list[str]:
    try:
        text = Path(path).read_bytes().decode("utf-8")  # no newline translation: a \r stays in its sentence
    except (OSError, UnicodeDecodeError) as e:
        raise LskdConfigError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if text and not text.endswith("\n"):
        text += "\n"
    return text[:-1].split("\n") if text else []


def _sha1_lines(lines: list[str]) -> str:
    return hashlib.sha1("".join(line + "\n" for line in lines).encode()).hexdigest()


def keep_translations(path, hyps: list[str], refs: list[str]) -> dict:
    """Write the detokenised hypotheses to ``path`` (one sentence per line) and the references
    beside it as ``ref-<sha1>.txt`` (one file per reference set, shared by all its systems)."""
    path = Path(path)
    sha = _sha1_lines(refs)
    ref_path = path.parent / f"ref-{sha[:16]}.txt"
    _write_lines(path, hyps)
    if not ref_path.exists():
        _write_lines(ref_path, refs)
    return {"hypotheses": str(path.resolve()), "references": str(ref_path.resolve()), "references_sha1": sha}


def _resolve_system(spec: str, cache: dict, references: str | None) -> dict:
    """{name, hypotheses (lines), references (lines), references_sha1, bleu?} of a checkpoint scored
    by ``table`` (looked up in its cache) or of a hypothesis file (with the cache or --references)."""
    real = os.path.realpath(spec)
    entries = [
        r
        for r in cache.values()
        if real
        in (
            os.path.realpath(r.get("checkpoint", "")),
            os.path.realpath(r.get("hypotheses", "") or "/nonexistent"),
        )
    ]
    if entries:
        kept = [r for r in entries if r.get("hypotheses")]
        if not kept:
            raise LskdConfigError(
                f"{spec}: scored by an older `table` that kept no hypotheses: run `table --out` again "
                "(it decodes what lacks its kept translations)"
            )
        if len({r["hypotheses"] for r in kept}) > 1:
            raise LskdConfigError(
                f"{spec}: scored several times in this table (other splits, beams or data): give its "
                "hypothesis file (under OUT.hyps/) instead of the checkpoint"
            )
        r = kept[0]
        hyps, refs = _read_lines(r["hypotheses"]), _read_lines(r["references"])
        if _sha1_lines(refs) != r["references_sha1"]:
            raise LskdConfigError(f"{r['references']}: changed since `table` wrote it")
        name = spec if not spec.endswith(".txt") else r.get("checkpoint", spec)
        return {
            "name": name,
            "hypotheses": hyps,
            "references": refs,
            "references_sha1": r["references_sha1"],
            "references_file": r["references"],
            "cached_bleu": r.get("bleu"),
            "info": r,
        }
    if spec.endswith(".pt"):
        raise LskdConfigError(
            f"{spec}: not in the table's cache (give --table OUT of the `table` run that scored it)"
        )
    if references is None:
        raise LskdConfigError(
            f"{spec}: a hypothesis file outside a `table` cache needs --references REF_FILE"
        )
    refs = _read_lines(references)
    return {
        "name": spec,
        "hypotheses": _read_lines(spec),
        "references": refs,
        "references_sha1": _sha1_lines(refs),
        "references_file": references,
        "cached_bleu": None,
        "info": {},
    }


def paired_bootstrap(
    baseline: dict, systems: list[dict], replicates: int = 1000, seed: int = 12345
) -> list[dict]:
    """sacrebleu's paired bootstrap resampling test (``sacrebleu --paired-bs``: significance.PairedTest,
    Koehn 2004) of each system against the baseline, on detokenised text with the table's BLEU().

    Returns per system (baseline first): BLEU, the bootstrap mean and 95 % half-width (sacrebleu's
    estimate_ci), and the p-value against the baseline. A system whose hypotheses equal the
    baseline's gets p = 1 (sacrebleu's statistic, |Δ| of the resamples minus their mean, would
    otherwise call a zero difference significant)."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    if seed < 1:
        raise LskdConfigError(f"--seed must be >= 1 (sacrebleu treats seed 0 as 'no seed'), got {seed}")
    if replicates < 1:
        raise LskdConfigError(f"--bootstrap must be a whole number >= 1, got {replicates}")
    for s in systems:
        if s["references_sha1"] != baseline["references_sha1"]:
            raise LskdConfigError(
                f"{s['name']} and {baseline['name']} were scored on different references "
                f"({s['references_file']} vs {baseline['references_file']}): a paired test needs "
                "the same sentences"
            )
        if len(s["hypotheses"]) != len(baseline["references"]):
            raise LskdConfigError(
                f"{s['name']}: {len(s['hypotheses'])} hypotheses for {len(baseline['references'])} references"
            )
    if len(baseline["hypotheses"]) != len(baseline["references"]):
        raise LskdConfigError(
            f"{baseline['name']}: {len(baseline['hypotheses'])} hypotheses for "
            f"{len(baseline['references'])} references"
        )
    named = [(baseline["name"], baseline["hypotheses"])] + [(s["name"], s["hypotheses"]) for s in systems]
    if len({n for n, _ in named}) != len(named):
        raise LskdConfigError("a system is given twice (or as the baseline too)")
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)  # PairedTest reads its seed from here
    try:
        test = PairedTest(
            named,
            {"BLEU": BLEU(references=[baseline["references"]])},
            references=None,
            test_type="bs",
            n_samples=replicates,
        )
        signatures, scores = test()
    finally:
        if old is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = old
    ((metric, results),) = [(k, v) for k, v in scores.items() if k != "System"]
    out = []
    for i, ((name, hyps), res) in enumerate(zip(named, results)):
        p = None if i == 0 else (1.0 if hyps == baseline["hypotheses"] else float(res.p_value))
        out.append(
            {
                "system": name,
                "bleu": float(res.score),
                "bootstrap_mean": float(res.mean),
                "ci95_half_width": float(res.ci),
                "p_value": p,
                "signature": signatures[metric].format(),
            }
        )
    return out


def paired_text(payload: dict, fmt: str) -> str:
    """The paired test's result as JSON, CSV or a markdown table (one row per system)."""
    rows = payload["systems"]
    if fmt == "json":
        return json.dumps(payload, indent=1) + "\n"
    cells = [
        [
            r["system"],
            f"{r['bleu']:.2f}",
            f"{r['bootstrap_mean']:.2f}",
            f"{r['ci95_half_width']:.2f}",
            "" if r["p_value"] is None else f"{r['p_value']:.4f}",
            "" if r["p_holm"] is None else f"{r['p_holm']:.4f}",
            r["verdict"],
        ]
        for r in rows
    ]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["system", "bleu", "bootstrap_mean", "ci95_half_width", "p_value", "p_holm", "verdict"])
        w.writerows(cells)
        return buf.getvalue()
    head = ["system", "BLEU", "bootstrap mean", "95% CI ±", "p", "p Holm", "verdict"]
    return (
        "| "
        + " | ".join(head)
        + " |\n|"
        + "---|" * len(head)
        + "\n"
        + "".join("| " + " | ".join(c) + " |\n" for c in cells)
        + f"\nsacrebleu paired bootstrap, {payload['replicates']} resamples, seed {payload['seed']}; "
        f"BLEU points; signature: {rows[0]['signature']}\n"
    )


def cmd_paired(args) -> int:
    cache = {}
    if args.table is not None:
        cache_path = Path(f"{args.table}.cache.json")
        if not cache_path.exists():
            raise LskdConfigError(
                f"{cache_path}: not found (the score cache `table --out {args.table}` writes)"
            )
        cache = json.loads(cache_path.read_text())
    baseline = _resolve_system(args.baseline, cache, args.references)
    systems = [_resolve_system(s, cache, args.references) for s in args.system]
    rows = paired_bootstrap(baseline, systems, args.bootstrap, args.seed)
    from shared_metrics.stats import holm

    adjusted = holm([r["p_value"] if r["p_value"] is not None else float("nan") for r in rows])
    level = 1.0 - args.confidence
    for r, p in zip(rows, adjusted):
        r["p_holm"] = None if r["p_value"] is None else float(p)
        r["verdict"] = (
            "baseline"
            if r["p_value"] is None
            else f"significant at {100 * args.confidence:g}%"
            if p < level
            else "not distinguishable at this scale"
        )
    payload = {
        "test": "sacrebleu paired bootstrap resampling (--paired-bs)",
        "replicates": args.bootstrap,
        "seed": args.seed,
        "unit": "BLEU points",
        "sentences": len(baseline["references"]),
        "multiple_testing": f"Holm over the {len(rows) - 1} system(s) compared to the baseline",
        "baseline": baseline["name"],
        "systems": rows,
    }
    text = paired_text(payload, args.format)
    if args.output:
        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m nmt_plugin.bleu",
        description="sacrebleu BLEU of fairseq translation checkpoints (beam 5, "
        "--remove-bpe, detokenised) and the α × T table of students.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "paired",
        help="sacrebleu's paired bootstrap test of systems against a baseline",
        description="sacrebleu's paired bootstrap resampling (--paired-bs) of each --system against "
        "--baseline on the same references, with Holm's correction over the systems. "
        "A system is a checkpoint scored by `table --out OUT` (give --table OUT) or a "
        "file of detokenised hypotheses, one sentence per line (with --references).",
    )
    p.add_argument("--baseline", required=True, help="checkpoint (with --table) or hypothesis file")
    p.add_argument("--system", required=True, nargs="+", help="checkpoint(s) or hypothesis file(s) to test")
    p.add_argument(
        "--table",
        type=Path,
        help="the OUT of a `table --out OUT` run (its cache names the kept hypotheses and references)",
    )
    p.add_argument("--references", help="detokenised reference file, for hypothesis files outside a table")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000, as sacrebleu)"
    )
    p.add_argument("--seed", type=int, default=12345, help="sacrebleu's SACREBLEU_SEED (default 12345; >= 1)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the verdicts (default 0.95)")
    p.add_argument("--format", choices=("markdown", "json", "csv"), default="markdown")
    p.add_argument("-o", "--output", help="write the result to this file (atomically) instead of stdout")
    for name, hlp in (("score", "BLEU of one checkpoint"), ("table", "α × T table over many checkpoints")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("checkpoints", nargs="+" if name == "table" else 1, help="fairseq checkpoint(s)")
        p.add_argument("--data", required=True, help="binarised data dir (fairseq-preprocess output)")
        p.add_argument(
            "--checkpoint-data",
            default=None,
            help="folder with the dict.*.txt the checkpoint(s) were trained with, to check "
            "--data's against (default: the data folder each checkpoint's config names)",
        )
        p.add_argument("--split", default="test", help="split to translate (default test)")
        p.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
        p.add_argument("--lenpen", type=float, default=1.0, help="length penalty (default 1)")
        p.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch for generation")
        p.add_argument("--cpu", action="store_true", help="decode on CPU")
        p.add_argument("--fp16", action="store_true", help="decode in fp16 (CUDA)")
        if name == "table":
            p.add_argument(
                "--out",
                type=Path,
                default=None,
                help="write OUT.md, OUT.csv, the score cache OUT.cache.json and the detokenised "
                "hypotheses and references under OUT.hyps/ (for `paired`)",
            )
            p.add_argument(
                "--jobs",
                type=int,
                default=1,
                help="checkpoints decoded side by side (CPU threads shared among them; default 1)",
            )
            p.add_argument(
                "--reuse",
                nargs="+",
                default=[],
                metavar="CACHE",
                help="score caches (OUT.cache.json) of earlier tables: a checkpoint scored there with "
                "the same settings, data and file, its kept translations still present, is not decoded "
                "again (e.g. one table per checkpoint as each finishes training, then one gathering them)",
            )
    return ap


def main(argv=None) -> int:
    from shared_metrics.errors import run_cli

    return run_cli("", run, build_parser().parse_args(argv))


def run(args) -> int:
    if args.cmd == "paired":
        if not 0.0 < args.confidence < 1.0:
            raise LskdConfigError(f"--confidence must be in (0, 1), got {args.confidence:g}")
        return cmd_paired(args)
    if args.cmd == "score":
        return cmd_score(args)
    return cmd_table(args)


def _decode_options(args) -> dict:
    return dict(
        beam=args.beam,
        max_tokens=args.max_tokens,
        cpu=args.cpu,
        fp16=args.fp16,
        lenpen=args.lenpen,
        checkpoint_data=args.checkpoint_data,
    )


def cmd_score(args) -> int:
    r = score_checkpoint(args.checkpoints[0], args.data, args.split, **_decode_options(args))
    print(r["detail"])
    print(f"signature: {r['signature']}")
    return 0


def cache_keys(args) -> dict:
    """{checkpoint: the key of its score in the cache}: the file (path, mtime, size), the decoding
    settings and the data's fingerprint, so that a changed one is scored again."""
    keys = {}
    for ck in args.checkpoints:
        st = os.stat(ck) if os.path.isfile(ck) else None
        if st is None:
            raise LskdConfigError(
                f"checkpoint {ck} is a directory, not a checkpoint file"
                if os.path.isdir(ck)
                else f"checkpoint not found: {ck}"
            )
        keys[ck] = (
            f"{os.path.abspath(ck)}|{st.st_mtime_ns}|{st.st_size}|{args.split}|{args.beam}|"
            f"{args.lenpen}|fp16={args.fp16}|{data_fingerprint(args.data, args.split)}"
        )
    return keys


def reused_scores(caches: list[str], wanted: set[str]) -> dict:
    """The entries of other tables' score caches whose key (file, settings, data) is ``wanted``."""
    found = {}
    for path in caches:
        try:
            entries = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LskdConfigError(f"--reuse {path}: not a score cache of `bleu table --out` ({e})") from None
        if not isinstance(entries, dict):
            raise LskdConfigError(f"--reuse {path}: not a score cache of `bleu table --out`")
        found.update({k: v for k, v in entries.items() if k in wanted})
    return found


def score_uncached(args, cache: dict, keys: dict, cache_path: Path | None) -> None:
    """Score the checkpoints not in ``cache`` yet (``--jobs`` side by side) and add them to it,
    saving it to ``cache_path`` as each finishes: a re-run decodes only the rest."""
    kw = _decode_options(args)

    def cached(ck) -> bool:
        """Scored before with these settings, and (with --out) its kept translations still there
        (a cache entry without kept translations, or whose files went missing, decodes again)."""
        r = cache.get(keys[ck])
        return r is not None and (
            not args.out
            or (
                bool(r.get("hypotheses"))
                and os.path.isfile(r["hypotheses"])
                and os.path.isfile(r.get("references", ""))
            )
        )

    todo = [ck for ck in dict.fromkeys(args.checkpoints) if not cached(ck)]
    jobs = max(1, min(args.jobs, len(todo)))
    if jobs > 1:
        kw["threads"] = max(1, (os.cpu_count() or 1) // jobs)

    def score(ck):
        keep = (
            str(Path(f"{args.out}.hyps") / f"{hashlib.sha1(keys[ck].encode()).hexdigest()[:16]}.txt")
            if args.out
            else None
        )
        r = score_checkpoint(ck, args.data, args.split, keep=keep, **kw)
        r.update(checkpoint_info(ck))
        return ck, r

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for ck, r in pool.map(score, todo):
            cache[keys[ck]] = r
            if cache_path:
                atomic_write_text(cache_path, json.dumps(cache, indent=1))


def write_table_files(out: Path, rows: list[dict], table: str, signature: str) -> None:
    """OUT.csv (one row per checkpoint) and OUT.md (the α × T table and sacrebleu's signature)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    columns = ["alpha", "temperature", "seed", "role", "bleu", "sentences", "checkpoint"]
    w.writerow(columns)
    w.writerows([r[c] for c in columns] for r in rows)
    atomic_write_text(Path(f"{out}.csv"), buf.getvalue())
    atomic_write_text(Path(f"{out}.md"), table + f"\n\nsacrebleu signature: {signature}\n")


def cmd_table(args) -> int:
    cache_path = Path(f"{args.out}.cache.json") if args.out else None
    cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
    if args.jobs < 1:
        raise LskdConfigError("--jobs must be at least 1")
    keys = cache_keys(args)
    reused = reused_scores(args.reuse, set(keys.values()))
    if reused:
        cache.update(reused)
        if cache_path:  # this table's cache names them too (`paired --table OUT` reads it)
            atomic_write_text(cache_path, json.dumps(cache, indent=1))
    score_uncached(args, cache, keys, cache_path)
    rows = [cache[keys[ck]] for ck in args.checkpoints]
    for ck, r in zip(args.checkpoints, rows):
        print(
            f"{r['bleu']:6.2f}  α={r['alpha']:g} {_fmt_t(r['temperature'])} seed={r['seed']}  {ck}",
            file=sys.stderr,
        )
    signature = rows[-1]["signature"]
    table = make_table(rows)
    print(table)
    print(f"\nBLEU: sacrebleu on Moses-detokenised output, beam {args.beam}; signature: {signature}")
    if args.out:
        write_table_files(args.out, rows, table, signature)
    return 0


if __name__ == "__main__":
    sys.exit(main())
