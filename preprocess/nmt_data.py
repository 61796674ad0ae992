"""The text pipeline of fairseq's ``examples/translation/prepare-iwslt14.sh``, in Python.

Moses tokenisation (sacremoses, with Moses' default escaping of ``& < > ' " [ ] |``),
``clean-corpus-n.perl``-style cleaning by length and ratio (training data only), lowercasing,
joint BPE learnt on the concatenated training source and target (subword-nmt, 10k merges
by default), then ``fairseq-preprocess --joined-dictionary``.

Output directory layout, shared by :mod:`preprocess.bible` and :mod:`preprocess.iwslt14`::

    OUT/tok/{train,valid,test}.{src,tgt}   tokenised, cleaned, lowercased text
    OUT/text/{train,valid,test}.{src,tgt}  the same after BPE (what fairseq binarises)
    OUT/text/code                          the BPE codes
    OUT/bin/                               fairseq-preprocess output: the DATA of fairseq-train
    OUT/manifest.json                      what was done, with sentence counts
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from multiprocessing import Pool
from pathlib import Path

from shared_metrics.errors import UserError

SPLITS = ("train", "valid", "test")


def log(msg: str) -> None:
    print(f"[preprocess] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ tokenise
_TOKENIZERS: dict = {}


def _tokenize_chunk(args) -> list[str]:
    lang, lines = args
    from sacremoses import MosesTokenizer

    tok = _TOKENIZERS.get(lang)
    if tok is None:
        tok = _TOKENIZERS[lang] = MosesTokenizer(lang=lang)
    # tokenizer.perl defaults: escaping on, no aggressive hyphen splitting.
    return [tok.tokenize(line, return_str=True, escape=True) for line in lines]


def moses_tokenize(lines: Sequence[str], lang: str, workers: int = 1) -> list[str]:
    lines = list(lines)
    if workers <= 1 or len(lines) < 2000:
        return _tokenize_chunk((lang, lines))
    size = (len(lines) + workers * 4 - 1) // (workers * 4)
    chunks = [(lang, lines[i : i + size]) for i in range(0, len(lines), size)]
    with Pool(workers) as pool:
        out = pool.map(_tokenize_chunk, chunks)
    return [line for part in out for line in part]


def lowercase(lines: Iterable[str]) -> list[str]:
    return [line.lower() for line in lines]


def normalise_space(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


# --------------------------------------------------------------------- clean
def clean_corpus(
    src: Sequence[str],
    tgt: Sequence[str],
    ratio: float = 1.5,
    min_len: int = 1,
    max_len: int = 175,
    max_word_length: int = 1000,
) -> tuple[list[str], list[str]]:
    """Moses ``clean-corpus-n.perl -ratio R CORPUS L1 L2 OUT MIN MAX`` on tokenised lines:
    drop '|', squeeze whitespace, then drop pairs with an empty side, a side outside
    [min_len, max_len] words, a word longer than max_word_length, or a length ratio > R."""
    if len(src) != len(tgt):
        raise UserError(f"source and target have different line counts ({len(src)} vs {len(tgt)})")
    out_s, out_t = [], []
    long_word = re.compile(rf"[^\s|]{{{max_word_length + 1}}}")
    for s, t in zip(src, tgt):
        s = normalise_space(s.replace("|", ""))
        t = normalise_space(t.replace("|", ""))
        if not s or not t:
            continue
        ns, nt = len(s.split(" ")), len(t.split(" "))
        if ns > max_len or nt > max_len or ns < min_len or nt < min_len:
            continue
        if long_word.search(s) or long_word.search(t):
            continue
        if ns / nt > ratio or nt / ns > ratio:
            continue
        out_s.append(s)
        out_t.append(t)
    return out_s, out_t


# ----------------------------------------------------------------------- BPE
def learn_joint_bpe(
    train_src: Sequence[str], train_tgt: Sequence[str], merges: int, codes_path: Path
) -> None:
    """``learn_bpe.py -s MERGES < train.src+train.tgt > code`` (the two sides concatenated)."""
    from subword_nmt.learn_bpe import learn_bpe

    text = io.StringIO("".join(line + "\n" for line in list(train_src) + list(train_tgt)))
    with open(codes_path, "w", encoding="utf-8") as out:
        learn_bpe(text, out, merges)


def apply_bpe(codes_path: Path, lines: Sequence[str]) -> list[str]:
    from subword_nmt.apply_bpe import BPE

    with open(codes_path, encoding="utf-8") as f:
        bpe = BPE(f)
    return [bpe.process_line(line) for line in lines]


def whole_word_types(lines: Iterable[str], min_share: float = 0.5, separator: str = "@@") -> set[str]:
    """Token types of a BPE-segmented text (subword-nmt's ``@@ `` convention) that stand as a whole
    word in at least ``min_share`` of their occurrences: not ending in ``@@`` and not following a
    token that does. A word-final piece (``ing`` of ``go@@ ing``) looks like a word in a
    dictionary but is not one; this tells them apart from the text itself."""
    whole: dict[str, int] = {}
    total: dict[str, int] = {}
    for line in lines:
        continued = False  # the previous token ended in @@: this one finishes a word
        for tok in line.split():
            total[tok] = total.get(tok, 0) + 1
            piece = tok.endswith(separator)
            if not piece and not continued:
                whole[tok] = whole.get(tok, 0) + 1
            continued = piece
    return {t for t, n in whole.items() if n >= min_share * total[t]}


# ---------------------------------------------------------------------- files
def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line.rstrip("\n") + "\n")
    os.replace(tmp, path)


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def binarize(text_dir: Path, src: str, tgt: str, dest: Path, workers: int = 1) -> None:
    """``fairseq-preprocess --joined-dictionary`` on OUT/text into OUT/bin."""
    if dest.exists():
        shutil.rmtree(dest)
    cmd = [
        sys.executable,
        "-m",
        "fairseq_cli.preprocess",
        "--source-lang",
        src,
        "--target-lang",
        tgt,
        "--trainpref",
        str(text_dir / "train"),
        "--validpref",
        str(text_dir / "valid"),
        "--testpref",
        str(text_dir / "test"),
        "--destdir",
        str(dest),
        "--joined-dictionary",
        "--workers",
        str(max(1, workers)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise UserError("fairseq-preprocess failed: " + " | ".join(tail))


# ------------------------------------------------------------------ pipeline
def tokenise_splits(splits, src, tgt, workers, clean_splits, clean_ratio, min_len, max_len):
    """({split: (source, target) lines}, {split: {"raw", "kept"}}): Moses-tokenised, cleaned
    (the ``clean_splits``; in the others only pairs with an empty side are dropped) and lowercased."""
    counts: dict = {}
    tok: dict[str, tuple[list[str], list[str]]] = {}
    for split, (s_lines, t_lines) in splits.items():
        if len(s_lines) != len(t_lines):
            raise UserError(f"{split}: {len(s_lines)} source lines but {len(t_lines)} target lines")
        log(f"{split}: tokenising {len(s_lines)} sentence pairs ({src}, {tgt})")
        s_tok = moses_tokenize(s_lines, src, workers)
        t_tok = moses_tokenize(t_lines, tgt, workers)
        raw = len(s_tok)
        if split in clean_splits:
            s_tok, t_tok = clean_corpus(s_tok, t_tok, clean_ratio, min_len, max_len)
        else:  # like the script: no cleaning, but an empty side would make an empty example
            kept = [(a, b) for a, b in zip(s_tok, t_tok) if a.strip() and b.strip()]
            s_tok, t_tok = [a for a, _ in kept], [b for _, b in kept]
        tok[split] = (lowercase(s_tok), lowercase(t_tok))
        counts[split] = {"raw": raw, "kept": len(s_tok)}
    return tok, counts


def split_off_valid(tok: dict, counts: dict, n: int) -> None:
    """Every ``n``th line of the tokenised training data becomes the validation split (as
    prepare-iwslt14.sh does with n = 23); ``tok`` and ``counts`` are updated in place."""
    s_all, t_all = tok["train"]
    tok["valid"] = (
        [line for i, line in enumerate(s_all, 1) if i % n == 0],
        [line for i, line in enumerate(t_all, 1) if i % n == 0],
    )
    tok["train"] = (
        [line for i, line in enumerate(s_all, 1) if i % n != 0],
        [line for i, line in enumerate(t_all, 1) if i % n != 0],
    )
    counts["valid"] = {
        "raw": len(tok["valid"][0]),
        "kept": len(tok["valid"][0]),
        "from": f"every {n}th cleaned training line",
    }
    counts["train"]["kept"] = len(tok["train"][0])


def bpe_and_binarise(tok: dict, src: str, tgt: str, out: Path, bpe_merges: int, workers: int) -> int:
    """Joint BPE learnt on the training split and applied to all (OUT/text), then
    fairseq-preprocess --joined-dictionary (OUT/bin); returns the dictionary's size."""
    text_dir = out / "text"
    codes = text_dir / "code"
    text_dir.mkdir(parents=True, exist_ok=True)
    log(f"learning joint BPE ({bpe_merges} merges) on {len(tok['train'][0])} training pairs")
    learn_joint_bpe(tok["train"][0], tok["train"][1], bpe_merges, codes)
    for split in SPLITS:
        for lang, lines in ((src, tok[split][0]), (tgt, tok[split][1])):
            write_lines(text_dir / f"{split}.{lang}", apply_bpe(codes, lines))
    log("binarising with fairseq-preprocess --joined-dictionary")
    binarize(text_dir, src, tgt, out / "bin", workers)
    with open(out / "bin" / f"dict.{src}.txt", encoding="utf-8") as f:
        return sum(1 for _ in f) + 4  # + <s> <pad> </s> <unk>


def run_pipeline(
    splits: dict[str, tuple[list[str], list[str]]],
    src: str,
    tgt: str,
    out: Path,
    bpe_merges: int = 10000,
    workers: int = 1,
    clean_ratio: float = 1.5,
    min_len: int = 1,
    max_len: int = 175,
    clean_splits: Sequence[str] = ("train",),
    extra_manifest: dict | None = None,
    valid_from_train_every: int = 0,
) -> dict:
    """Raw parallel text per split -> OUT/{tok,text,bin}. Returns the manifest.

    ``valid_from_train_every=23`` reproduces prepare-iwslt14.sh: after cleaning and
    lowercasing, every 23rd training line becomes validation data (``splits`` then needs no
    'valid')."""
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    tok, counts = tokenise_splits(splits, src, tgt, workers, clean_splits, clean_ratio, min_len, max_len)
    if valid_from_train_every:
        split_off_valid(tok, counts, valid_from_train_every)
    missing = [s for s in SPLITS if s not in tok or not tok[s][0]]
    if missing:
        raise UserError(f"no sentence pairs left in split(s) {', '.join(missing)}")
    for split in SPLITS:
        write_lines(out / "tok" / f"{split}.{src}", tok[split][0])
        write_lines(out / "tok" / f"{split}.{tgt}", tok[split][1])
    vocab = bpe_and_binarise(tok, src, tgt, out, bpe_merges, workers)
    manifest = {
        "source_lang": src,
        "target_lang": tgt,
        "bpe_merges": bpe_merges,
        "clean": {"ratio": clean_ratio, "min_len": min_len, "max_len": max_len, "splits": list(clean_splits)},
        "lowercase": True,
        "joined_dictionary": True,
        "dictionary_size": vocab,
        "sentences": counts,
        "data_bin": str((out / "bin").resolve()),
        "seconds": round(time.time() - t0, 1),
    }
    manifest.update(extra_manifest or {})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    log(f"done in {manifest['seconds']} s: {out / 'bin'} (joined dictionary, {vocab} symbols)")
    return manifest
