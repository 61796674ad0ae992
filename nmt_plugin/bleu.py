"""BLEU of translation checkpoints, and the α × T table of students (the paper's Tables 7-8).

``score``: ``fairseq-generate`` (beam 5, ``--remove-bpe``, ``--required-batch-size-multiple 1``
so no sentence is dropped) on one checkpoint; hypotheses and references are Moses-detokenised
and scored with sacrebleu, whose signature is printed.

``table``: scores many checkpoints and prints rows = teacher α, columns = T, cells = mean ± std
BLEU over seeds (sample std, n in brackets). α, T and the seed are read from each checkpoint:
a student (criterion ls_kd) has its T in ``--kd-temperature`` and its teacher's α in the
teacher checkpoint it names; a teacher (label_smoothed_cross_entropy) goes in the "teacher"
column with its own label smoothing as α. Scores are cached next to ``--out`` so re-running
after adding seeds only decodes the new checkpoints.

    python -m nmt_plugin.bleu score runs/kd/a0.1_T2_s1/checkpoint_best.pt --data DATA_BIN
    python -m nmt_plugin.bleu table runs/kd/*/checkpoint_best.pt --data DATA_BIN --out runs/kd/bleu
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import PLUGIN_DIR
from .errors import LskdConfigError


class BleuError(LskdConfigError):
    pass


def generate(checkpoint: str, data: str, split: str = "test", beam: int = 5, max_tokens: int = 4096,
             cpu: bool = False, fp16: bool = False, lenpen: float = 1.0, extra=(),
             threads: int | None = None) -> tuple[list[str], list[str]]:
    """(hypotheses, references) in corpus order, BPE removed, still Moses-tokenised."""
    if os.path.isdir(checkpoint):
        raise BleuError(f"checkpoint {checkpoint} is a directory, not a checkpoint file")
    if not os.path.isfile(checkpoint):
        raise BleuError(f"checkpoint not found: {checkpoint}")
    if not os.path.isdir(data):
        raise BleuError(f"data directory not found: {data}")
    cmd = [sys.executable, "-m", "fairseq_cli.generate", data, "--user-dir", PLUGIN_DIR,
           "--task", "translation", "--path", checkpoint, "--gen-subset", split, "--beam", str(beam),
           "--lenpen", str(lenpen), "--remove-bpe", "--required-batch-size-multiple", "1",
           "--max-tokens", str(max_tokens), "--no-progress-bar", *extra]
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
        tail = [l for l in proc.stderr.strip().splitlines() if l.strip()][-3:]
        raise BleuError(f"fairseq-generate failed on {checkpoint}: " + " | ".join(tail))
    hyps, refs = {}, {}
    for line in proc.stdout.splitlines():
        if line.startswith("H-"):
            i, _, text = line[2:].split("\t", 2)
            hyps[int(i)] = text
        elif line.startswith("T-"):
            i, text = line[2:].split("\t", 1)
            refs[int(i)] = text
    if not hyps or set(hyps) != set(refs):
        raise BleuError(f"fairseq-generate gave {len(hyps)} hypotheses for {len(refs)} references")
    expected = _split_size(data, split)
    if expected is not None and len(hyps) != expected:
        raise BleuError(f"fairseq-generate translated {len(hyps)} of the {expected} sentences of {split}")
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
    raise BleuError(f"no binarised split {split!r} in {data}")


def detok_bleu(hyps: list[str], refs: list[str], lang: str):
    """sacrebleu BLEU of Moses-detokenised hypotheses against detokenised references."""
    from sacremoses import MosesDetokenizer
    from sacrebleu.metrics import BLEU
    md = MosesDetokenizer(lang=lang)
    d_h = [md.detokenize(h.split()) for h in hyps]
    d_r = [md.detokenize(r.split()) for r in refs]
    bleu = BLEU()
    return bleu.corpus_score(d_h, [d_r]), bleu.get_signature()


def check_fits_data(checkpoint: str, data: str, checkpoint_data: str | None = None) -> None:
    """Refuse (LskdConfigError) a checkpoint whose dictionaries are not those fairseq-generate
    reads from ``data``: it would translate with the wrong words, silently (see
    kd_translation.check_data_dictionaries; ``checkpoint_data`` = --checkpoint-data)."""
    from fairseq.tasks.translation import TranslationConfig
    from .kd_translation import check_data_dictionaries, load_checkpoint_state, setup_translation_data
    state, cfg = load_checkpoint_state(checkpoint)
    task = setup_translation_data(TranslationConfig(data=data))  # as fairseq-generate --task translation
    check_data_dictionaries(task, checkpoint, cfg, state["model"], who="checkpoint",
                            dict_dir=checkpoint_data, dict_flag="--checkpoint-data")


def score_checkpoint(checkpoint: str, data: str, split: str = "test", checkpoint_data: str | None = None,
                     **kw) -> dict:
    check_fits_data(checkpoint, data, checkpoint_data)
    hyps, refs = generate(checkpoint, data, split, **kw)
    score, sig = detok_bleu(hyps, refs, _target_lang(data, split))
    return {"checkpoint": os.path.abspath(checkpoint), "split": split, "bleu": round(score.score, 2),
            "sentences": len(hyps), "detail": str(score), "signature": str(sig)}


# ---------------------------------------------------------------------- table
def checkpoint_info(checkpoint: str) -> dict:
    """α, T, seed and role of a checkpoint, from its saved config."""
    from .kd_translation import _get, load_checkpoint_state, teacher_alpha
    _, cfg = load_checkpoint_state(checkpoint)
    crit, task = _get(cfg, "criterion"), _get(cfg, "task")
    seed = _get(_get(cfg, "common"), "seed")
    if _get(crit, "_name") == "ls_kd":
        tpath = _get(task, "teacher_path")
        alpha = teacher_alpha(tpath)
        if alpha is None:
            raise BleuError(f"{checkpoint}: cannot read its teacher {tpath} to learn the teacher's α")
        return {"role": "student", "alpha": alpha, "temperature": float(_get(task, "kd_temperature")), "seed": seed}
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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def data_fingerprint(data, split: str) -> str:
    """The data folder and the size and mtime of its dictionaries and the split's files: a score
    cached for one data set is not reused for another (or for a re-preprocessed one)."""
    files = sorted(glob.glob(os.path.join(data, "dict.*.txt")) + glob.glob(os.path.join(data, f"{split}.*")))
    stamp = [os.path.abspath(data)] + [f"{os.path.basename(f)}:{os.stat(f).st_mtime_ns}:{os.stat(f).st_size}"
                                       for f in files]
    return hashlib.sha1("\n".join(stamp).encode()).hexdigest()[:16]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nmt_plugin.bleu",
                                 description="sacrebleu BLEU of fairseq translation checkpoints (beam 5, "
                                             "--remove-bpe, detokenised) and the α × T table of students.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, hlp in (("score", "BLEU of one checkpoint"), ("table", "α × T table over many checkpoints")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("checkpoints", nargs="+" if name == "table" else 1, help="fairseq checkpoint(s)")
        p.add_argument("--data", required=True, help="binarised data dir (fairseq-preprocess output)")
        p.add_argument("--checkpoint-data", default=None,
                       help="folder with the dict.*.txt the checkpoint(s) were trained with, to check "
                            "--data's against (default: the data folder each checkpoint's config names)")
        p.add_argument("--split", default="test", help="split to translate (default test)")
        p.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
        p.add_argument("--lenpen", type=float, default=1.0, help="length penalty (default 1)")
        p.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch for generation")
        p.add_argument("--cpu", action="store_true", help="decode on CPU")
        p.add_argument("--fp16", action="store_true", help="decode in fp16 (CUDA)")
        if name == "table":
            p.add_argument("--out", type=Path, default=None,
                           help="write OUT.md, OUT.csv and the score cache OUT.cache.json")
            p.add_argument("--jobs", type=int, default=1,
                           help="checkpoints decoded side by side (CPU threads shared among them; default 1)")
    args = ap.parse_args(argv)
    kw = dict(beam=args.beam, max_tokens=args.max_tokens, cpu=args.cpu, fp16=args.fp16, lenpen=args.lenpen,
              checkpoint_data=args.checkpoint_data)
    try:
        if args.cmd == "score":
            r = score_checkpoint(args.checkpoints[0], args.data, args.split, **kw)
            print(r["detail"])
            print(f"signature: {r['signature']}")
            return 0
        cache_path = Path(f"{args.out}.cache.json") if args.out else None
        cache = json.loads(cache_path.read_text()) if cache_path and cache_path.exists() else {}
        if args.jobs < 1:
            raise BleuError("--jobs must be at least 1")
        keys = {}
        for ck in args.checkpoints:
            st = os.stat(ck) if os.path.isfile(ck) else None
            if st is None:
                raise BleuError(f"checkpoint {ck} is a directory, not a checkpoint file" if os.path.isdir(ck)
                                else f"checkpoint not found: {ck}")
            keys[ck] = (f"{os.path.abspath(ck)}|{st.st_mtime_ns}|{st.st_size}|{args.split}|{args.beam}|"
                        f"{args.lenpen}|fp16={args.fp16}|{data_fingerprint(args.data, args.split)}")
        todo = [ck for ck in dict.fromkeys(args.checkpoints) if keys[ck] not in cache]
        jobs = max(1, min(args.jobs, len(todo)))
        if jobs > 1:
            kw["threads"] = max(1, (os.cpu_count() or 1) // jobs)

        def score(ck):
            r = score_checkpoint(ck, args.data, args.split, **kw)
            r.update(checkpoint_info(ck))
            return ck, r

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for ck, r in pool.map(score, todo):  # cached as each finishes: a re-run decodes only the rest
                cache[keys[ck]] = r
                if cache_path:
                    _write_atomic(cache_path, json.dumps(cache, indent=1))
        rows, signature = [], None
        for ck in args.checkpoints:
            r = cache[keys[ck]]
            signature = r["signature"]
            print(f"{r['bleu']:6.2f}  α={r['alpha']:g} {_fmt_t(r['temperature'])} seed={r['seed']}  {ck}",
                  file=sys.stderr)
            rows.append(r)
        table = make_table(rows)
        print(table)
        print(f"\nBLEU: sacrebleu on Moses-detokenised output, beam {args.beam}; signature: {signature}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["alpha", "temperature", "seed", "role", "bleu", "sentences", "checkpoint"])
            for r in rows:
                w.writerow([r["alpha"], r["temperature"], r["seed"], r["role"], r["bleu"], r["sentences"],
                            r["checkpoint"]])
            _write_atomic(Path(f"{args.out}.csv"), buf.getvalue())
            _write_atomic(Path(f"{args.out}.md"), table + f"\n\nsacrebleu signature: {signature}\n")
    except LskdConfigError as e:  # BleuError included
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
