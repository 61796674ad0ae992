#!/usr/bin/env python
"""IWSLT14 translation recipe: the paper's Tables 7 (English–German) and 8 (English–Russian), BLEU.

    python scripts/recipes/iwslt.py --raw-de-en de-en.tgz --raw-en-ru 2014-01.tgz --nproc 4 [--amp]
    python scripts/recipes/iwslt.py ... --dry-run          # print every command
    python scripts/recipes/iwslt.py --toy                  # tiny CPU run on the built-in Bible corpus

The archives are the raw IWSLT14 files (fairseq's de-en.tgz, the official 2014-01.tgz, or the
extracted folders); nothing is downloaded. Steps, per language pair:

1. ``python -m preprocess.iwslt14`` (fairseq's prepare-iwslt14.sh: Moses tokenisation, cleaning,
   lowercasing, joint BPE 10k, joined dictionary) -> OUT/data/<pair>/bin;
2. teachers, per seed: plain ``fairseq-train`` Transformer (transformer_iwslt_de_en, shared
   embeddings) with ``label_smoothed_cross_entropy`` α ∈ {0, 0.1};
3. students, per seed, teacher α and T ∈ {1, 2, 3, 64}: the same Transformer distilled from the
   seed's teacher (``--task kd_translation --criterion ls_kd --kd-temperature T``, β = 1);
4. ``python -m nmt_plugin.bleu table`` over the teachers' and students' checkpoint_best.pt:
   α × T BLEU (beam 5, sacrebleu on the test set), mean ± std over seeds -> OUT/tables/bleu_<pair>.

A re-run skips finished runs, and fairseq continues an interrupted one from checkpoint_last.pt; a
run whose command changed (or whose data or teacher re-ran) starts afresh in an emptied --save-dir.

Hyper-parameters from the paper (after Shen et al., 2021): Adam, lr 5e-4, dropout 0.3, weight decay
0, max tokens 4096. Where the paper leaves something open we use fairseq's IWSLT14 example: Adam
betas (0.9, 0.98), inverse-sqrt schedule with 4,000 warm-up updates, no gradient clipping. Two
differences from that example: the data has one joined dictionary (joint BPE, as the toolkit's
preprocessing makes it), so the Transformer shares all embeddings (``--share-all-embeddings``; the
example has two dictionaries and ``--share-decoder-input-output-embed``), and the best checkpoint is
chosen by validation NLL of the data (``--best-checkpoint-metric nll_loss``; the example decodes
the validation set for BLEU each epoch): the training loss itself is not comparable across runs
(label-smoothed for the α = 0.1 teachers, T²·H(p_t, p_s) for the students: at T = 64 the best
"loss" is the epoch closest to a nearly flat teacher). Training length is not given: 50 epochs
(--max-epoch, overridable).
With --nproc N, fairseq runs N GPU processes and each gets --max-tokens 4096/N, so an update still
holds 4,096 tokens as in the paper (N at most 16: a process needs room for a long sentence). β = 1
(pure KD, the toolkit's reading of the paper; Shen et al. mixed in the hard labels for NMT without
giving the weight: try --kd-beta). Directions: English→German and English→Russian, as the paper
writes throughout (Sec. 1, Supp. B.2, the captions of Tables 7 and 8; its teachers' 26.5 BLEU fits
en→de on IWSLT14, where de→en Transformers reach about 34); ``--pairs de-en`` gives Shen et al.'s
direction.

``--toy``: the built-in Bible corpus (``preprocess.bible``, first 40 chapters), a 1-layer 16-dim
Transformer, 1 epoch, one seed, CPU decoding — it checks the plumbing; its BLEU means nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.recipes.common import (Recipe, RecipeError, add_common_args, alpha_tag, fmt, main,  # noqa: E402
                                    require_path, tool)

ALPHAS = (0.0, 0.1)
TEMPERATURES = (1, 2, 3, 64)
MAX_TOKENS = 4096
MIN_TOKENS = 256   # per process: room for the longest sentences after BPE
#: paper + fairseq's IWSLT14 example (see the docstring)
MODEL = ["--arch", "transformer_iwslt_de_en", "--share-all-embeddings", "--dropout", "0.3"]
OPTIM = ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0", "--lr", "5e-4",
         "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4000", "--weight-decay", "0"]
TOY_MODEL = ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
             "--encoder-embed-dim", "16", "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
             "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
             "--share-all-embeddings", "--dropout", "0.1"]
TOY_OPTIM = ["--optimizer", "adam", "--lr", "1e-3", "--weight-decay", "0"]
TOY_CHAPTERS = 40


def build(args) -> Recipe:
    r = Recipe(args, "iwslt")
    out = args.out
    pairs = []
    for p in args.pairs:
        src, _, tgt = p.partition("-")
        langs = {src, tgt}
        if langs not in ({"de", "en"}, {"en", "ru"}):
            raise RecipeError(f"--pairs: {p} is not one of de-en, en-de, en-ru, ru-en")
        if (src, tgt) in pairs:
            raise RecipeError(f"--pairs: {p} is given twice")
        pairs.append((src, tgt))
    if not args.toy and MAX_TOKENS // args.nproc < MIN_TOKENS:
        raise RecipeError(f"--nproc {args.nproc} leaves each process {MAX_TOKENS // args.nproc} of the paper's "
                          f"{MAX_TOKENS} tokens an update (fewer than {MIN_TOKENS}): use at most "
                          f"{MAX_TOKENS // MIN_TOKENS} processes")
    if args.max_epoch < 1:
        raise RecipeError("--max-epoch must be at least 1")
    if not 0 <= args.kd_beta <= 1:
        raise RecipeError(f"--kd-beta must be in [0, 1] (got {args.kd_beta})")
    raw = {}
    if not args.toy:
        for src, tgt in pairs:
            flag, value = ("--raw-de-en", args.raw_de_en) if "de" in (src, tgt) else ("--raw-en-ru", args.raw_en_ru)
            raw[(src, tgt)] = require_path(value, flag, "IWSLT14 archive or folder")
    model, optim = (TOY_MODEL, TOY_OPTIM) if args.toy else (MODEL, OPTIM)
    dist = ["--distributed-world-size", str(args.nproc)] if args.nproc > 1 else []
    max_tokens = 1000 if args.toy else MAX_TOKENS // args.nproc
    common = [*model, *optim, "--max-tokens", str(max_tokens), "--max-epoch", str(1 if args.toy else args.max_epoch),
              "--best-checkpoint-metric", "nll_loss",   # comparable across α and T (docstring)
              "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "100", *dist]
    if args.amp:
        common.append("--fp16")
    if args.toy:
        common += ["--cpu", "--num-workers", "0", "--required-batch-size-multiple", "1"]

    for src, tgt in pairs:
        pair = f"{src}-{tgt}"
        data = out / "data" / pair
        bin_dir = data / "bin"
        if args.toy:
            prep = r.python("-m", "preprocess.bible", "--pair", pair, "--max-chapters", str(TOY_CHAPTERS),
                            "--bpe-merges", "500", "--out", data)
        else:
            prep = r.python("-m", "preprocess.iwslt14", "--raw", raw[(src, tgt)], "--src", src, "--tgt", tgt,
                            "--out", data)
        r.add(f"data-{pair}", prep, [bin_dir / "dict.{}.txt".format(src), bin_dir / f"train.{src}-{tgt}.{tgt}.bin"])
        ckpts = []
        for seed in args.seeds:
            for alpha in ALPHAS:
                d = out / "nmt" / pair / f"teacher_{alpha_tag(alpha)}_s{seed}"
                r.add(f"teacher-{pair}-{alpha_tag(alpha)}-s{seed}",
                      [tool("fairseq-train"), bin_dir, "--user-dir", "nmt_plugin",
                       "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", fmt(alpha),
                       *common, "--seed", seed, "--save-dir", d],
                      [d / "checkpoint_best.pt"], resume_dir=d)
                ckpts.append(d / "checkpoint_best.pt")
        for seed in args.seeds:
            for alpha in ALPHAS:
                teacher = out / "nmt" / pair / f"teacher_{alpha_tag(alpha)}_s{seed}" / "checkpoint_best.pt"
                for T in TEMPERATURES:
                    d = out / "nmt" / pair / f"student_{alpha_tag(alpha)}_T{T}_s{seed}"
                    r.add(f"student-{pair}-{alpha_tag(alpha)}-T{T}-s{seed}",
                          [tool("fairseq-train"), bin_dir, "--user-dir", "nmt_plugin",
                           "--task", "kd_translation", "--teacher-path", teacher, "--kd-temperature", str(T),
                           "--criterion", "ls_kd", "--kd-beta", fmt(args.kd_beta), "--label-smoothing", "0",
                           *common, "--seed", seed, "--save-dir", d],
                          [d / "checkpoint_best.pt"], resume_dir=d)
                    ckpts.append(d / "checkpoint_best.pt")
        table = out / "tables" / f"bleu_{pair}"
        bleu = r.python("-m", "nmt_plugin.bleu", "table", *ckpts, "--data", bin_dir, "--out", table)
        if args.toy:
            bleu.append("--cpu")
        elif args.amp:
            bleu.append("--fp16")
        r.add(f"table-bleu-{pair}", bleu, [table.with_name(table.name + ".md"), table.with_name(table.name + ".csv")])
    return r


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iwslt.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw-de-en", type=Path, help="IWSLT14 de-en archive or folder (de-en.tgz, 2014-01.tgz)")
    ap.add_argument("--raw-en-ru", type=Path, help="IWSLT14 en-ru archive or folder (2014-01.tgz)")
    ap.add_argument("--pairs", nargs="+", default=["en-de", "en-ru"], metavar="SRC-TGT",
                    help="translation directions (default en-de en-ru, as the paper; de-en / ru-en also work)")
    ap.add_argument("--max-epoch", type=int, default=50, help="fairseq --max-epoch of every run (default 50)")
    ap.add_argument("--kd-beta", type=float, default=1.0, help="β of ls_kd (default 1: pure KD)")
    add_common_args(ap, "runs/iwslt")
    return ap


if __name__ == "__main__":
    sys.exit(main(build, parser()))
