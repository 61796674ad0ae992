#!/usr/bin/env python
"""η at ImageNet-train scale: streamed centroids + η (and its bootstrap) for 10 targets, against a plain
np.load floor.

Writes two synthetic feature sets of 1,281,167 x 512 float16 with 1000 classes (the "T1" and
"T2" students; 1.3 GB each), then in the same run times, as separate processes:

  ours   `python -m shared_metrics eta --before T1 --after T2 --sets SETS` for the paper's ten
         ImageNet targets (five retrievers, five snakes) with WordNet S1/S2 (k=4, n=20): validation,
         streamed class centroids of both sets, η;
  boot   the same with `--bootstrap 1000` (paired bootstrap intervals, issue 12): gathering the
         rows of the 50 classes the ten targets need, 1000 replicate centroids of each, η per replicate;
  floor  `python -c "np.load(T1/features.npy); np.load(T2/features.npy)"`: just reading the data.

and prints wall time, peak RSS and the ratios. Goals on the 2-core CPU machine: ours <= 3x the
floor, boot <= 4x the floor, both with peak RSS <= 1.5 GB. All read from the page cache (the
files were just written); each is run --repeat times and the fastest is kept.

    python bench/eta_scale.py [--rows 1281167] [--dim 512] [--bootstrap 1000] \\
        [--workdir /tmp/lskd_eta_scale] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared_metrics.featureset import FeatureSet, FeatureSetError, FeatureSetWriter  # noqa: E402
from shared_metrics.selection import imagenet_wnids, load_hierarchy, select_from_hierarchy  # noqa: E402

TARGETS = [
    "n02099849",
    "n02099429",
    "n02099267",
    "n02099601",
    "n02099712",  # retrievers (Table 3, A)
    "n01728572",
    "n01728920",
    "n01729322",
    "n01737021",
    "n01734418",
]  # snakes (Table 3, B)


LABEL_SEED = 0  # both sets hold the same samples (labels), as η requires; features differ by seed


def write_set(path: Path, rows: int, dim: int, seed: int, centers: np.ndarray, chunk: int = 65536) -> None:
    rng, label_rng = np.random.default_rng(seed), np.random.default_rng(LABEL_SEED)
    K = centers.shape[0]
    W = rng.standard_normal((K, dim), dtype=np.float32) / np.sqrt(dim)
    meta = {
        "classes": imagenet_wnids(),
        "task": "vision",
        "model": "synthetic",
        "seed": seed,
        "label_seed": LABEL_SEED,
        "created_by": "bench/eta_scale.py",
    }
    with FeatureSetWriter(path, num_samples=rows, dim=dim, head_weight=W, meta=meta, overwrite=True) as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            y = label_rng.integers(0, K, n)
            x = centers[y] + rng.standard_normal((n, dim), dtype=np.float32)
            w.append(x.astype(np.float16), y)


def reusable(path: Path, rows: int, dim: int) -> bool:
    """A set left by an earlier run of this size and layout (else it is written again)."""
    try:
        fs = FeatureSet.open(path)
    except FeatureSetError:
        return False
    return fs.num_samples == rows and fs.dim == dim and fs.meta.get("label_seed") == LABEL_SEED


def peak_rss_of(cmd: list[str]) -> tuple[float, float]:
    # ru_maxrss of RUSAGE_CHILDREN is the max over all children so far: measure each command in
    # its own helper process so the figures do not mix.
    code = (
        "import resource, subprocess, sys, time, json; t=time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(json.dumps([time.perf_counter()-t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024**2]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True, cwd=ROOT
    )
    wall, rss = json.loads(out.stdout)
    return wall, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_281_167)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--workdir", default="/tmp/lskd_eta_scale")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=1000, help="replicates of the boot run (0: skip it)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic sets afterwards")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    centers = np.random.default_rng(0).standard_normal((1000, args.dim), dtype=np.float32) * 2
    t0 = time.perf_counter()
    for name, seed in (("T1", 1), ("T2", 2)):
        if not reusable(work / name, args.rows, args.dim):
            write_set(work / name, args.rows, args.dim, seed, centers)
    gb = sum((work / n / "features.npy").stat().st_size for n in ("T1", "T2")) / 1e9
    print(
        f"data: 2 sets x {args.rows:,} x {args.dim} float16 = {gb:.2f} GB "
        f"(ready in {time.perf_counter() - t0:.0f} s)"
    )

    h, nodes = load_hierarchy("wordnet", imagenet_wnids())
    sets = {}
    for wnid in TARGETS:
        s1, s2 = select_from_hierarchy(h, nodes, nodes.index(wnid), k=4, n=20, seed=0)
        sets[wnid] = {"similar": [nodes[i] for i in s1], "dissimilar": [nodes[i] for i in s2]}
    (work / "sets.json").write_text(json.dumps(sets))

    ours_cmd = [
        sys.executable,
        "-m",
        "shared_metrics",
        "eta",
        "--before",
        str(work / "T1"),
        "--after",
        str(work / "T2"),
        "--sets",
        str(work / "sets.json"),
        "--format",
        "json",
    ]
    floor_cmd = [
        sys.executable,
        "-c",
        "import numpy as np, sys; [np.load(p) for p in sys.argv[1:]]",
        str(work / "T1" / "features.npy"),
        str(work / "T2" / "features.npy"),
    ]
    ours = min((peak_rss_of(ours_cmd) for _ in range(args.repeat)), key=lambda r: r[0])
    boot = None
    if args.bootstrap:
        boot_cmd = ours_cmd + ["--bootstrap", str(args.bootstrap), "--seed", "0"]
        boot = min((peak_rss_of(boot_cmd) for _ in range(args.repeat)), key=lambda r: r[0])
    floor = min((peak_rss_of(floor_cmd) for _ in range(args.repeat)), key=lambda r: r[0])
    print(f"{'':34s}{'wall s':>9s}{'peak RSS GB':>13s}")
    print(f"{'ours (centroids + η, 10 t.)':34s}{ours[0]:9.2f}{ours[1]:13.2f}")
    if boot:
        print(f"{f'boot (+ --bootstrap {args.bootstrap})':34s}{boot[0]:9.2f}{boot[1]:13.2f}")
    print(f"{'floor (np.load both files)':34s}{floor[0]:9.2f}{floor[1]:13.2f}")
    print(
        f"ratio ours/floor: {ours[0] / floor[0]:.2f}x (goal <= 3x); "
        f"peak RSS {ours[1]:.2f} GB (goal <= 1.5 GB)"
    )
    if boot:
        print(
            f"ratio boot/floor: {boot[0] / floor[0]:.2f}x (goal <= 4x); peak RSS {boot[1]:.2f} GB "
            f"(goal <= 1.5 GB)"
        )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
