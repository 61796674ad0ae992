"""Feature dumps of a temperature sweep: one shared pass over the data for all the students
(what vision/distill.py --dump-features does) against one pass per student, in one run.

    python bench/vision_dump_throughput.py                 # CUDA: bf16, channels_last, 224²
    python bench/vision_dump_throughput.py --device cpu --images 96 --image-size 64 --workers 1

Real JPEG decoding: the script writes an ImageFolder of --images JPEGs (400 x 350, about the
size of an ImageNet photo) and reads it with the ImageNet evaluation transforms
(vision.data.build_datasets), so data loading costs what it costs on ImageNet. The students
are --students resnet18s (random weights: the work does not depend on them).

  shared / per-student   student-images/s   expected up to --students x where data loading
                                             dominates (GPU), near 1x where the forward does (CPU)

Each mode is timed in --rounds alternating rounds; the median round is reported.
"""

from __future__ import annotations

import argparse
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
import torchvision
from PIL import Image

from bench.speed_flags import add_speed_flags, resolve_speed_flags
from vision import data as vdata
from vision.dump_features import dump_split


def make_imagefolder(root: str, n: int, classes: int = 10, seed: int = 0) -> None:
    """n smooth random 400 x 350 JPEGs (quality 90) in train/ and val/ class folders."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for i in range(n if split == "train" else classes):
            d = os.path.join(root, split, f"c{i % classes:02d}")
            os.makedirs(d, exist_ok=True)
            small = rng.integers(0, 256, (35, 40, 3), dtype=np.uint8)  # upsampled: photo-like
            img = Image.fromarray(small).resize((400, 350), Image.BICUBIC)
            img.save(os.path.join(d, f"{i:06d}.jpg"), quality=90)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--students", type=int, default=4)
    p.add_argument(
        "--images",
        type=int,
        default=8192,
        help="JPEGs to write and read (default 8192: many batches per loader worker, so a "
        "pass measures steady decoding, not worker start-up)",
    )
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--rounds", type=int, default=3)
    add_speed_flags(p)
    p.add_argument("--work", help="keep the JPEGs here (default: a temporary directory)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("vision_dump_throughput.py: error: no CUDA device (use --device cpu)")
    device = torch.device(args.device)
    amp, channels_last, autocast = resolve_speed_flags(args, device)

    with contextlib.ExitStack() as stack:
        work = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="lskd-dump-bench-"))
        if not os.path.isdir(os.path.join(work, "train")):
            t0 = time.perf_counter()
            make_imagefolder(work, args.images)
            print(f"wrote {args.images} JPEGs to {work} in {time.perf_counter() - t0:.1f} s", flush=True)
        datasets = vdata.build_datasets("imagefolder", work, args.image_size, "imagenet")
        ds, classes = datasets.train_eval, datasets.classes
        n, K = len(ds), len(classes)
        models = []
        for s in range(args.students):
            torch.manual_seed(s)
            m = torchvision.models.resnet18(num_classes=K).to(device)
            models.append(m.to(memory_format=torch.channels_last) if channels_last else m)
        kw = dict(
            num_classes=K,
            device=device,
            batch_size=args.batch_size,
            workers=args.workers,
            autocast=autocast,
            channels_last=channels_last,
            dtype=np.float16,
        )
        out = stack.enter_context(tempfile.TemporaryDirectory(prefix="lskd-dump-out-"))
        paths = [os.path.join(out, f"s{s}") for s in range(args.students)]
        metas = [{"classes": list(classes), "task": "vision"} for _ in models]

        def shared():
            dump_split(models, ds, paths, metas, **kw)

        def per_student():
            for m, path, meta in zip(models, paths, metas):
                dump_split([m], ds, [path], [meta], **kw)

        times = {"shared": [], "per_student": []}
        with contextlib.redirect_stdout(open(os.devnull, "w")):  # dump_split's progress lines
            dump_split(
                models[:1],
                torch.utils.data.Subset(ds, range(min(n, args.batch_size))),
                paths[:1],
                metas[:1],
                **kw,
            )  # warm-up: workers, cuDNN autotune
            for _ in range(args.rounds):
                for name, fn in (("shared", shared), ("per_student", per_student)):
                    if cuda:
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    fn()
                    if cuda:
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.students * n / t for k, t in med.items()}
    ratio = rate["shared"] / rate["per_student"]
    print(
        f"device {args.device}, {args.students} resnet18 students, {n} JPEGs at {args.image_size}², "
        f"batch {args.batch_size}, {args.workers} workers, amp {amp}, channels_last {channels_last}"
    )
    for k in ("shared", "per_student"):
        print(f"{k:12s} {rate[k]:9.1f} student-images/s  (median of {args.rounds}: {med[k]:.2f} s)")
    print(
        f"ratio shared / per-student: {ratio:.2f}  (expected up to {args.students}x when "
        f"data loading dominates){'' if cuda else ' (CPU: informative only)'}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": args.device,
                    "students": args.students,
                    "images": n,
                    "image_size": args.image_size,
                    "batch_size": args.batch_size,
                    "workers": args.workers,
                    "amp": amp,
                    "channels_last": channels_last,
                    "student_images_per_s": rate,
                    "ratio_shared_per_student": ratio,
                },
                f,
                indent=1,
            )
    return ratio


if __name__ == "__main__":
    main()
