"""Shared helpers of the tests/test_nmt_*.py files: a toy parallel corpus, a tiny Transformer
teacher trained on it by fairseq's own label_smoothed_cross_entropy, and fairseq runners.

Everything is built once per test session (cached in a module global) under a pytest temp dir.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = str(REPO / "nmt_plugin")
PY = sys.executable

TINY = (
    "--arch transformer --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 16 "
    "--decoder-embed-dim 16 --encoder-ffn-embed-dim 32 --decoder-ffn-embed-dim 32 "
    "--encoder-attention-heads 2 --decoder-attention-heads 2 --share-all-embeddings "
    "--optimizer adam --lr 1e-3 --max-tokens 1000 --max-epoch 1 --cpu --no-progress-bar "
    "--log-format json --log-interval 1 --num-workers 0 --no-epoch-checkpoints --seed 1 "
    "--required-batch-size-multiple 1"
).split()


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


# torch can abort in interpreter teardown (std::terminate: SIGABRT and this line on stderr) after
# fairseq-train has finished and saved; seen once in a parallel run of the suite. Its work is done and
# checked by the test, so that exit counts as success (the workflow's fairseq rules retry instead).
TEARDOWN_ABORT = "terminate called without an active exception"


def run(args, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env(), capture_output=True, text=True)
    if (
        proc.returncode == -signal.SIGABRT
        and TEARDOWN_ABORT in proc.stderr
        and "done training" in proc.stdout + proc.stderr
    ):
        proc.returncode = 0
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, args))}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def fairseq(tool: str, *args, check=True) -> subprocess.CompletedProcess:
    return run([PY, "-m", f"fairseq_cli.{tool}", *args], check=check)


def kd_args(teacher, user_dir=PLUGIN) -> list:
    """fairseq-train's arguments that train an ls_kd student of ``teacher`` (--task kd_translation)."""
    return [
        "--user-dir",
        user_dir,
        "--task",
        "kd_translation",
        "--teacher-path",
        teacher,
        "--criterion",
        "ls_kd",
    ]


def make_toy_text(out: Path, n: int = 300, seed: int = 0, vocab: int = 24, prefix: str = "w") -> None:
    """n sentence pairs: source words s<prefix>K, target = the mapped words t<prefix>K reversed."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": n, "valid": max(20, n // 10), "test": max(20, n // 10)}
    for split, m in splits.items():
        src, tgt = [], []
        for _ in range(m):
            words = [rng.randrange(vocab) for _ in range(rng.randint(2, 7))]
            src.append(" ".join(f"s{prefix}{w}" for w in words))
            tgt.append(" ".join(f"t{prefix}{w}" for w in reversed(words)))
        (out / f"{split}.de").write_text("\n".join(src) + "\n")
        (out / f"{split}.en").write_text("\n".join(tgt) + "\n")


def binarize(text: Path, dest: Path) -> Path:
    fairseq(
        "preprocess",
        "--source-lang",
        "de",
        "--target-lang",
        "en",
        "--trainpref",
        text / "train",
        "--validpref",
        text / "valid",
        "--testpref",
        text / "test",
        "--destdir",
        dest,
        "--joined-dictionary",
        "--workers",
        "1",
    )
    return dest


def train_teacher(data: Path, save: Path, alpha: float = 0.1, extra=()) -> Path:
    fairseq(
        "train",
        data,
        *TINY,
        "--user-dir",
        PLUGIN,
        "--criterion",
        "label_smoothed_cross_entropy",
        "--label-smoothing",
        str(alpha),
        "--save-dir",
        save,
        *extra,
    )
    return save / "checkpoint_best.pt"


_CACHE: dict = {}


def toy(tmp_path_factory) -> dict:
    """{'data': bin dir, 'teacher': checkpoint, 'other_data': a bin dir with another dictionary}."""
    if not _CACHE:
        root = tmp_path_factory.mktemp("nmt_toy")
        make_toy_text(root / "text")
        data = binarize(root / "text", root / "bin")
        make_toy_text(root / "text_other", n=60, seed=5, vocab=30, prefix="x")
        other = binarize(root / "text_other", root / "bin_other")
        teacher = train_teacher(data, root / "teacher")
        _CACHE.update(root=root, data=data, teacher=teacher, other_data=other)
    return _CACHE


def swapped_dictionaries(data: Path, dest: Path) -> Path:
    """A copy of the binarised data whose dictionaries list the same words in another order (the
    first two words of each swapped): the same sizes, so only a symbol-by-symbol check tells."""
    shutil.copytree(data, dest)
    for lang in ("de", "en"):
        lines = (dest / f"dict.{lang}.txt").read_text().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        (dest / f"dict.{lang}.txt").write_text("\n".join(lines) + "\n")
    return dest


def moved_checkpoint(ckpt: Path, dest: Path, **fields) -> Path:
    """A copy of a checkpoint with fields of its saved config changed, e.g. {"task.data": DIR}."""
    import torch
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    import nmt_plugin  # noqa: F401  (torch's safe globals for fairseq checkpoints)

    state = checkpoint_utils.load_checkpoint_to_cpu(str(ckpt))
    cfg = OmegaConf.to_container(state["cfg"])
    for key, value in fields.items():
        group, name = key.split(".")
        cfg[group][name] = value
    torch.save({**state, "cfg": cfg}, dest)
    return dest


def json_logs(text: str) -> list[dict]:
    """The JSON records of a fairseq-train --log-format json run."""
    import json

    out = []
    for line in text.splitlines():
        i = line.find("{")
        if i >= 0 and line.rstrip().endswith("}"):
            try:
                out.append(json.loads(line[i:]))
            except ValueError:
                pass
    return out


def toy_student(tmp_path_factory, T: float = 2.0) -> Path:
    """An ls_kd student of the toy teacher (built once)."""
    t = toy(tmp_path_factory)
    if "student" not in t:
        save = t["root"] / "student"
        fairseq(
            "train", t["data"], *TINY, *kd_args(t["teacher"]), "--kd-temperature", str(T), "--save-dir", save
        )
        t["student"] = save / "checkpoint_best.pt"
    return t["student"]
