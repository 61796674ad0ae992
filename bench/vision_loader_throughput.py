"""Images/s of the vision trainer's training loader, PIL backend against the tensor backend
(``vision/distill.py --backend pil|tensor``), per loader worker count, measured in one run.

    python bench/vision_loader_throughput.py                          # 512 JPEGs, workers 0 1 2
    python bench/vision_loader_throughput.py --workers 0 8 16 --images 2048 --json loader.json

Real JPEGs: the script writes an ImageFolder of --images 500 x 375 JPEGs (about an ImageNet
photo; smooth random colour gradients plus noise, saved by PIL at quality 90) in a temporary
directory, and reads its train split through vision.data.build_datasets (the trainer's
ImageFolder, transforms and per-image augmentation seeds) with the DataLoader the trainer makes
(a DistributedSampler, --batch-size, --workers, pinned memory on CUDA), the batches moved to
--device. For each worker count in turn, the backends alternate in --rounds rounds (the same
epoch for both, so the same crops); the median round is reported, and --json is rewritten after
each worker count (a run cut short keeps the counts it finished).

images/s is the steady rate of an epoch: the images after the first max(1, W) batches over the
time from the first batch to the last (W workers start together, so when the first batch
arrives about W are done). Worker start-up, which an ImageNet epoch amortises over 1.28M
images, is reported apart (startup_s: loader creation to the first batch).

--threads (default 1) is torch's intra-op thread count in the main process, which decodes when
--workers is 0; a loader worker always runs one (PyTorch sets it), so every column is per core
but the 0-worker one also carries the main process's own work.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch
from PIL import Image

from vision import data as vdata

WIDTH, HEIGHT = 500, 375


def natural_image(rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """A photo-like RGB image: a linear colour gradient in a random direction, a smooth random
    field (a 6 x 8 grid upsampled bicubically) and Gaussian noise (σ = 6 levels)."""
    x = np.arange(width, dtype=np.float32)[None, :, None]
    y = np.arange(height, dtype=np.float32)[:, None, None]
    angle = rng.uniform(0, 2 * np.pi)
    t = (x * np.cos(angle) + y * np.sin(angle)) / np.hypot(width, height)  # in [-1, 1]
    lo, hi = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    gradient = lo + (hi - lo) * (t + 1) / 2
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
    pixels = 0.5 * gradient + 0.5 * field + 6 * rng.standard_normal((height, width, 3), dtype=np.float32)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _write_one(job) -> None:
    path, seed, i = job
    natural_image(np.random.default_rng([seed, i])).save(path, quality=90)


def make_imagefolder(root: str, n: int, classes: int = 8, seed: int = 0) -> None:
    """n JPEGs in train/c00 ... (and one a class in val/), quality 90; image i is drawn from
    the generator seeded (seed, i), so the files do not depend on how many processes write them."""
    classes = min(classes, n)  # every class folder in train/ and val/ alike
    jobs = []
    for split, count, offset in (("train", n, 0), ("val", classes, n)):
        for i in range(count):
            d = os.path.join(root, split, f"c{i % classes:02d}")
            os.makedirs(d, exist_ok=True)
            jobs.append((os.path.join(d, f"{i:06d}.jpg"), seed, offset + i))
    procs = min(len(jobs) // 64 + 1, os.cpu_count() or 1)
    if procs == 1:
        for job in jobs:
            _write_one(job)
    else:
        with concurrent.futures.ProcessPoolExecutor(procs) as pool:
            list(pool.map(_write_one, jobs, chunksize=32))


def train_loader(train, batch_size: int, workers: int, pin: bool, seed: int = 0):
    """The DataLoader vision/distill.py makes for its training set (one process)."""
    sampler = torch.utils.data.DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=seed)
    return sampler, torch.utils.data.DataLoader(
        train, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin
    )


def one_pass(train, epoch: int, batch_size: int, workers: int, device) -> tuple[float, float]:
    """(steady images/s, start-up seconds) of one epoch of the trainer's loader."""
    train.set_epoch(epoch, 0)  # what the trainer calls each epoch: per-image augmentation seeds
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    sampler, loader = train_loader(train, batch_size, workers, pin=device.type == "cuda")
    sampler.set_epoch(epoch)
    skip = max(1, workers)  # batches made (about) by the time the first one arrives
    seen, t_first = 0, None
    for k, (images, target) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if k == 0:
            sync()
            t_first = time.perf_counter()
        if k >= skip:
            seen += len(target)
    sync()
    return seen / (time.perf_counter() - t_first), t_first - t0


def write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=512, help="JPEGs to write and read (default 512)")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="loader worker counts to time (default 0 1 2)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="default 32 (the trainer's is 256)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--recipe", choices=("imagenet", "cub"), default="imagenet")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="main-process torch threads (default 1)")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where the batches go (pinned memory on CUDA, as the trainer)",
    )
    p.add_argument("--work", help="keep the JPEGs here (default: a temporary directory)")
    p.add_argument("--json", help="also write the results to this file (images/s)")
    args = p.parse_args(argv)
    for name in ("images", "batch_size", "image_size", "rounds", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.workers) < 0:
        p.error(f"--workers must be >= 0, got {min(args.workers)}")
    need = max(1, max(args.workers)) * args.batch_size
    if args.images <= need:
        p.error(
            f"--images must exceed max(1, workers) x --batch-size = {need} (the batches "
            "made while the workers start are not timed)"
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available (use --device cpu)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with contextlib.ExitStack() as stack:
        work = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="lskd-loader-bench-"))
        if not os.path.isdir(os.path.join(work, "train")):
            t0 = time.perf_counter()
            make_imagefolder(work, args.images)
            print(
                f"wrote {args.images} JPEGs ({WIDTH} x {HEIGHT}, quality 90) to {work} in "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        trains = {
            b: vdata.build_datasets("imagefolder", work, args.image_size, args.recipe, backend=b).train
            for b in vdata.BACKENDS
        }
        n = len(trains["pil"])
        if n <= need:
            p.error(f"{work}/train has {n} images; it needs more than {need}")
        for path, _ in trains["pil"].dataset.samples:  # warm-up: the files in the page cache
            with open(path, "rb") as f:
                f.read()
        for train in trains.values():  # and the lazy imports
            train[0]
        print(
            f"{n} JPEGs {WIDTH} x {HEIGHT} -> {args.image_size}², recipe {args.recipe}, batch "
            f"{args.batch_size}, device {args.device}, {os.cpu_count()} CPUs, main-process threads "
            f"{args.threads}; steady images/s, median of {args.rounds} epoch(s)"
        )
        print(
            f"{'workers':>8s} {'pil':>9s} {'tensor':>9s} {'tensor/pil':>10s} "
            f"{'start-up s (pil, tensor)':>26s}",
            flush=True,
        )
        result = {
            "images": n,
            "width": WIDTH,
            "height": HEIGHT,
            "image_size": args.image_size,
            "recipe": args.recipe,
            "batch_size": args.batch_size,
            "device": args.device,
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "rounds": args.rounds,
            "workers": [],
            "images_per_s": {b: {} for b in vdata.BACKENDS},
            "startup_s": {b: {} for b in vdata.BACKENDS},
            "ratio_tensor_over_pil": {},
        }
        for w in args.workers:  # one worker count after the other, each (re)written at once
            runs = {b: [] for b in vdata.BACKENDS}
            for r in range(args.rounds):
                for b in vdata.BACKENDS:  # alternating: both see the same machine load
                    runs[b].append(one_pass(trains[b], r, args.batch_size, w, device))
            for b in vdata.BACKENDS:
                result["images_per_s"][b][str(w)] = statistics.median(x[0] for x in runs[b])
                result["startup_s"][b][str(w)] = statistics.median(x[1] for x in runs[b])
            rate = {b: result["images_per_s"][b][str(w)] for b in vdata.BACKENDS}
            result["ratio_tensor_over_pil"][str(w)] = rate["tensor"] / rate["pil"]
            result["workers"].append(w)
            print(
                f"{w:8d} {rate['pil']:9.1f} {rate['tensor']:9.1f} "
                f"{result['ratio_tensor_over_pil'][str(w)]:10.2f} {result['startup_s']['pil'][str(w)]:12.2f} "
                f"{result['startup_s']['tensor'][str(w)]:6.2f}",
                flush=True,
            )
            if args.json:
                write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
