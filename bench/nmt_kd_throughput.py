#!/usr/bin/env python
"""Target words/s of ls_kd training vs fairseq's label_smoothed_cross_entropy, same student.

Both runs train the same Transformer student on the same synthetic corpus in this one
invocation; the KD run also queries a frozen teacher as large as the student (as in the paper).
The ratio kd_wps / ce_wps is what matters (goal on CUDA with --fp16: >= 0.75). Each run builds
task, model, criterion and fairseq's Trainer in-process from fairseq-train arguments and times
``Trainer.train_step`` (forward, backward, optimizer step; teacher forward for KD) over the same
batches after 3 warm-up updates. The two runs alternate in blocks of --block updates, so both see the
same machine load.

    python bench/nmt_kd_throughput.py                 # CPU: small model, small vocabulary
    python bench/nmt_kd_throughput.py --fp16          # CUDA: transformer_iwslt_de_en, 10k vocab
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = str(REPO / "nmt_plugin")

PRESETS = {
    # the paper's IWSLT student/teacher (transformer_iwslt_de_en), IWSLT-like vocabulary and batch
    "cuda": dict(
        arch=["--arch", "transformer_iwslt_de_en", "--share-all-embeddings"],
        vocab=10000,
        sentences=60000,
        max_tokens=4096,
        updates=300,
        log_interval=25,
    ),
    # small enough for 2 CPU cores
    "cpu": dict(
        arch=[
            "--arch",
            "transformer",
            "--encoder-layers",
            "2",
            "--decoder-layers",
            "2",
            "--encoder-embed-dim",
            "64",
            "--decoder-embed-dim",
            "64",
            "--encoder-ffn-embed-dim",
            "128",
            "--decoder-ffn-embed-dim",
            "128",
            "--encoder-attention-heads",
            "4",
            "--decoder-attention-heads",
            "4",
            "--share-all-embeddings",
        ],
        vocab=2000,
        sentences=3000,
        max_tokens=2048,
        updates=30,
        log_interval=5,
    ),
}


def sh(cmd, **kw) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **kw)
    if proc.returncode != 0:
        sys.exit(f"error: command failed: {' '.join(map(str, cmd[:4]))} ...\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def make_corpus(root: Path, vocab: int, sentences: int, seed: int = 0) -> Path:
    """Zipf-distributed words, 5-40 per sentence; target = a word mapping of the source."""
    rng = random.Random(seed)
    weights = [1.0 / (r + 1) for r in range(vocab // 2)]
    text = root / "text"
    text.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", sentences), ("valid", 200), ("test", 10)):
        src, tgt = [], []
        for _ in range(n):
            ws = rng.choices(range(vocab // 2), weights, k=rng.randint(5, 40))
            src.append(" ".join(f"s{w}" for w in ws))
            tgt.append(" ".join(f"t{(w * 7) % (vocab // 2)}" for w in ws))
        (text / f"{split}.src").write_text("\n".join(src) + "\n")
        (text / f"{split}.tgt").write_text("\n".join(tgt) + "\n")
    sh(
        [
            sys.executable,
            "-m",
            "fairseq_cli.preprocess",
            "--source-lang",
            "src",
            "--target-lang",
            "tgt",
            "--trainpref",
            text / "train",
            "--validpref",
            text / "valid",
            "--testpref",
            text / "test",
            "--destdir",
            root / "bin",
            "--joined-dictionary",
            "--workers",
            "2",
        ]
    )
    return root / "bin"


def train_args(data: Path, preset: dict) -> list:
    """The fairseq-train arguments the teacher and both timed runs share: data, model, optimizer."""
    model = [str(data), *preset["arch"], "--user-dir", PLUGIN]
    return model + ["--optimizer", "adam", "--lr", "5e-4", "--max-tokens", str(preset["max_tokens"])]


def build(data: Path, preset: dict, args, extra, n_batches: int):
    """fairseq's Trainer (task, model, criterion, optimizer, --fp16 wrapper) built exactly as
    fairseq-train builds it from these arguments, and n_batches training batches."""
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    argv = [
        *train_args(data, preset),
        "--dropout",
        "0.1",
        "--seed",
        "1",
        "--num-workers",
        "0",
        *map(str, extra),
    ]
    argv += ["--cpu"] if args.device == "cpu" else []
    argv += ["--fp16"] if args.fp16 else []
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    utils.import_user_module(cfg.common)
    utils.set_torch_seed(1)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    itr = task.get_batch_iterator(
        dataset=task.dataset("train"),
        max_tokens=cfg.dataset.max_tokens,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        seed=1,
    ).next_epoch_itr(shuffle=True)
    return trainer, [next(itr) for _ in range(min(len(itr), n_batches))]


def measure(runs: dict, updates: int, block: int, device: str) -> dict:
    """Time Trainer.train_step (forward, backward, optimizer step; plus the teacher forward for KD)
    of each run over the same batches, interleaving blocks of `block` updates between the runs so
    that both see the same machine load; 3 warm-up updates each are not timed."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    stats = {name: {"tokens": 0, "seconds": 0.0, "updates": 0, "blocks": []} for name in runs}
    for trainer, batches in runs.values():
        for sample in batches[:3]:
            trainer.train_step([sample])
    timed = min(len(b) for _, b in runs.values()) - 3
    timed = min(timed, updates)
    for start in range(3, 3 + timed, block):
        for name, (trainer, batches) in runs.items():
            chunk = batches[start : min(start + block, 3 + timed)]
            sync()
            t0 = time.perf_counter()
            for sample in chunk:
                trainer.train_step([sample])
            sync()
            st = stats[name]
            st["seconds"] += time.perf_counter() - t0
            st["tokens"] += sum(s["ntokens"] for s in chunk)
            st["updates"] += len(chunk)
            st["blocks"].append(sum(s["ntokens"] for s in chunk) / (time.perf_counter() - t0))
    for st in stats.values():
        st["wps"] = st["tokens"] / st["seconds"]
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument(
        "--fp16", action="store_true", help="fairseq --fp16 (CUDA; --bf16 would mean TPU in fairseq)"
    )
    ap.add_argument("--updates", type=int, default=None, help="updates per timed run (preset default)")
    ap.add_argument("--repeats", type=int, default=1, help="timed rounds (default 1)")
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads (default 1: steadier on a shared machine)"
    )
    ap.add_argument("--block", type=int, default=5, help="updates per interleaved block (default 5)")
    ap.add_argument("--temperature", type=float, default=2.0, help="T of the KD run (default 2)")
    ap.add_argument("--topk", type=int, default=0, help="--teacher-topk of the KD run (default 0 = full)")
    ap.add_argument(
        "--work", type=Path, default=None, help="keep data and teacher here (default: a temp dir)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but CUDA is not available")
    if args.fp16 and args.device != "cuda":
        sys.exit("error: --fp16 needs CUDA")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    preset = dict(PRESETS[args.device])
    updates = args.updates or preset["updates"]
    work = args.work or Path(tempfile.mkdtemp(prefix="lskd_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = work / "bin"
    if not (data / "dict.src.txt").exists():
        data = make_corpus(work, preset["vocab"], preset["sentences"])
    teacher = work / "teacher" / "checkpoint_last.pt"
    if not teacher.exists():  # a teacher as large as the student (its weights barely matter for speed)
        cmd = [
            sys.executable,
            "-m",
            "fairseq_cli.train",
            *train_args(data, preset),
            "--max-update",
            "2",
            "--criterion",
            "label_smoothed_cross_entropy",
            "--label-smoothing",
            "0.1",
            "--disable-validation",
            "--save-dir",
            work / "teacher",
            "--no-progress-bar",
            "--num-workers",
            "0",
        ]
        cmd += ["--cpu"] if args.device == "cpu" else []
        sh(cmd)
    vocab = sum(1 for _ in open(data / "dict.src.txt")) + 4
    print(
        f"device {args.device}{' fp16' if args.fp16 else ''}, vocab {vocab}, "
        f"max-tokens {preset['max_tokens']}, "
        f"{updates} updates per run, setup {time.time() - t0:.0f} s",
        flush=True,
    )
    ce_args = ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
    kd_args = [
        "--task",
        "kd_translation",
        "--teacher-path",
        teacher,
        "--kd-temperature",
        str(args.temperature),
        "--criterion",
        "ls_kd",
        "--teacher-topk",
        str(args.topk),
    ]
    runs = {
        "ce": build(data, preset, args, ce_args, updates + 3),
        "kd": build(data, preset, args, kd_args, updates + 3),
    }
    ratios, rounds = [], []
    for r in range(args.repeats):
        res = measure(runs, updates, args.block, args.device)
        for name in ("ce", "kd"):
            m = res[name]
            print(
                f"round {r + 1}: {name:2s} {m['wps']:10.0f} target words/s  ({m['updates']} updates, "
                f"{m['tokens']} target tokens, {m['seconds']:.1f} s)",
                flush=True,
            )
        block_ratios = [k / c for k, c in zip(res["kd"]["blocks"], res["ce"]["blocks"])]
        ratios.append(statistics.median(block_ratios))
        rounds.append(
            {name: {k: res[name][k] for k in ("wps", "updates", "tokens", "seconds")} for name in res}
        )
        overall = res["kd"]["wps"] / res["ce"]["wps"]
        print(
            f"round {r + 1}: ls_kd / label_smoothed_cross_entropy = {overall:.3f} "
            f"overall, {ratios[-1]:.3f} median of {len(block_ratios)} interleaved blocks",
            flush=True,
        )
    mean = statistics.mean(ratios)
    goal = " (goal on CUDA --fp16: >= 0.75)" if args.device == "cuda" else " (CPU: informative only)"
    print(
        f"ratio ls_kd / label_smoothed_cross_entropy (median over blocks, mean over rounds): {mean:.3f}{goal}"
    )
    if args.json:
        result = {
            "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "fp16": args.fp16,
            "vocab": vocab,
            "max_tokens": preset["max_tokens"],
            "updates": updates,
            "temperature": args.temperature,
            "topk": args.topk,
            "rounds": rounds,
            "ratio_kd_over_ce": mean,
            "goal": 0.75 if args.device == "cuda" else None,
        }
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
