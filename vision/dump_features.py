"""Dump penultimate feature sets (docs/design.md's contract) from a model or any saved checkpoint.

    python vision/dump_features.py OUTPUT/checkpoint.pt --output OUTPUT/features
        [--dataset digits|fashion-mnist|imagefolder] [--data PATH] [--splits train valid]

writes OUTPUT/features/train/ and OUTPUT/features/valid/: the input of the final nn.Linear (the
global-pool output feeding the classifier), its weight and bias, the logits (float32, when N*K
is at most 1e8 values), the labels, and meta.json. The train split is read with evaluation
transforms (no augmentation). Dataset, image size and model come from the checkpoint unless
given; a plain state dict (e.g. torchvision weights) needs --model NAME and --dataset (its classes
are the data's). Under ``torchrun --nproc_per_node N`` every process dumps a slice of each split
and rank 0 joins them (see :func:`dump_all`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys

if __package__ in (None, ""):  # run as a script: make `import vision.x` work
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

from shared_metrics.errors import run_cli
from shared_metrics.featureset import FeatureSetWriter, concatenate_feature_sets
from vision import data as vdata
from vision import utils
from vision.models import (
    VisionError,
    check_checkpoint_classes,
    checkpoint_meta,
    find_head,
    load_checkpoint,
    model_from_checkpoint,
    model_name_of,
)

CREATED_BY = "lskd-vision 0.1.0"
MAX_LOGIT_VALUES = 100_000_000  # logits.npy (float32) only when N * K is at most this
FP16_MAX = float(np.finfo(np.float16).max)
AUTO_FP16_VALUES = 2**28
SPLIT_DIRS = {"train": "train", "valid": "valid"}


def feature_meta(ckpt: dict, classes, split: str, dataset: str) -> dict:
    args = ckpt.get("args", {})
    return {
        "classes": list(classes),
        "task": "vision",
        "model": ckpt.get("model_name"),
        "alpha": ckpt.get("alpha"),
        "temperature": ckpt.get("temperature"),
        "split": split,
        "dataset": dataset,
        "seed": args.get("seed"),
        "mode": ckpt.get("mode"),
        "beta": args.get("beta") if ckpt.get("mode") == "student" else None,
        "epoch": ckpt.get("epoch"),
        "created_by": CREATED_BY,
    }


@torch.no_grad()
def dump_split(
    models,
    dataset,
    paths,
    metas,
    *,
    num_classes: int,
    device,
    batch_size=256,
    workers=0,
    autocast=contextlib.nullcontext,
    channels_last=False,
    dtype=None,
    overwrite=True,
    header="features",
    images_per_iter=None,
    split_size=None,
):
    """Run every model of ``models`` (unwrapped; in eval mode while dumping) over ``dataset`` in
    order and write one feature set per model at ``paths[i]`` with ``metas[i]``. The models
    share each batch: one pass over the data for all the students of a sweep.
    dtype None ("auto"): float32, or float16 when the split has more than 2**28 feature values
    (1 GiB as float32, e.g. ImageNet train); logits when it has at most 1e8. Both are decided on
    ``split_size`` (default: this dataset's size), the whole split when ``dataset`` is a slice,
    so that every rank's slice is written alike."""
    heads = [find_head(m, num_classes) for m in models]
    n = len(dataset)
    total = split_size or n
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda"
    )
    mf = torch.channels_last if channels_last else torch.contiguous_format
    log = utils.MetricLogger()
    captured = [[] for _ in models]
    with contextlib.ExitStack() as stack:  # hooks removed, modes restored, half-written sets removed
        for head, cap in zip(heads, captured):
            stack.callback(head.register_forward_hook(lambda m, inp, out, c=cap: c.append(inp[0])).remove)
        for m in models:
            stack.callback(m.train, m.training)
        writers = [
            stack.enter_context(writer)
            for writer in feature_writers(heads, paths, metas, n, total, num_classes, dtype, overwrite)
        ]
        for m in models:
            m.eval()
        per_iter = images_per_iter or batch_size
        for images, target in log.log_every(loader, max(1, len(loader) // 10), header, per_iter):
            images = images.to(device, non_blocking=True, memory_format=mf)
            labels = target.numpy()
            for model, cap, w, path in zip(models, captured, writers, paths):
                cap.clear()
                with autocast():
                    logits = model(images)
                feats = cap[-1].float().flatten(1).cpu().numpy()
                if w.dtype == np.float16 and np.abs(feats).max(initial=0) > FP16_MAX:
                    raise VisionError(
                        f"{path}: a feature exceeds the float16 range; dump with --feature-dtype float32"
                    )
                w.append(feats, labels, logits.float().cpu().numpy())
    return paths


def feature_writers(heads, paths, metas, n: int, total: int, num_classes: int, dtype, overwrite: bool):
    """One FeatureSetWriter per model (its ``head``: the Linear classifier) for ``n`` samples of a
    split of ``total``: features in ``dtype`` (None: float16 above AUTO_FP16_VALUES values, else
    float32), logits when the split has at most MAX_LOGIT_VALUES of them."""
    writers = []
    for head, path, meta in zip(heads, paths, metas):
        dt = dtype or (np.float16 if total * head.in_features > AUTO_FP16_VALUES else np.float32)
        bias = head.bias.detach().float().cpu().numpy() if head.bias is not None else None
        writers.append(
            FeatureSetWriter(
                path,
                num_samples=n,
                dim=head.in_features,
                head_weight=head.weight.detach().float().cpu().numpy(),
                head_bias=bias,
                meta=meta,
                dtype=dt,
                logits=total * num_classes <= MAX_LOGIT_VALUES,
                logits_dtype=np.float32,
                overwrite=overwrite,
            )
        )
    return writers


def _part_path(final: str, rank: int, world: int) -> str:
    head, tail = os.path.split(final)
    return os.path.join(head, f".{tail}.part{rank:05d}-of-{world:05d}")


def _settle(error, leftovers, device, what: str) -> None:
    """Every rank says whether ``what`` failed on it; if it failed anywhere, every rank removes
    its ``leftovers`` and raises (its own error, or one naming how many other ranks failed)."""
    failed = int(utils.reduce_across_processes(float(error is not None), device).item())
    if failed:
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)
        if error is not None:
            raise error
        raise VisionError(f"{what} failed on {failed} other rank(s); see their error")


def dump_split_in_parts(models, ds, finals, metas, split: str, rank: int, world: int, *, num_classes, **kw):
    """The distributed dump of one split: each rank its contiguous slice into a hidden part set
    beside each final one, then rank 0 joins the parts in order; a rank that fails makes every
    rank fail (_settle), leaving nothing under the final names."""
    n = len(ds)
    lo, hi = n * rank // world, n * (rank + 1) // world
    mine = [_part_path(f, rank, world) for f in finals]
    error = None
    try:
        if hi > lo:
            dump_split(
                models,
                torch.utils.data.Subset(ds, range(lo, hi)),
                mine,
                [dict(m, part=f"{rank}/{world}") for m in metas],
                num_classes=num_classes,
                header=f"features {split}",
                split_size=n,
                images_per_iter=kw.get("batch_size", 256) * world,
                **kw,
            )
    except Exception as e:  # every rank must reach the vote below, or the others hang
        error = e
    _settle(error, mine, kw.get("device"), f"the feature dump of the {split} split")
    error, parts = None, []
    if rank == 0:
        bounds = [(n * r // world, n * (r + 1) // world) for r in range(world)]
        try:
            for final, meta in zip(finals, metas):
                parts = [_part_path(final, r, world) for r, (a, b) in enumerate(bounds) if b > a]
                concatenate_feature_sets(parts, final, meta=meta, overwrite=kw.get("overwrite", True))
                for p in parts:
                    shutil.rmtree(p, ignore_errors=True)
        except Exception as e:
            error = e
            parts = [_part_path(f, r, world) for f in finals for r in range(world)]
    _settle(error, parts, kw.get("device"), f"joining the {split} split's parts")


def remove_stale_parts(finals) -> None:
    """Remove the part sets a killed distributed dump left beside the final sets."""
    for final in finals:
        head, tail = os.path.split(final)
        for name in os.listdir(head or "."):
            if re.fullmatch(rf"\.{re.escape(tail)}\.part\d+-of-\d+", name):
                shutil.rmtree(os.path.join(head, name), ignore_errors=True)


def dump_all(
    models, datasets, out_dirs, *, num_classes, ckpt_metas, dataset_name, splits=("train", "valid"), **kw
):
    """Dump the train (eval transforms) and valid splits of each model under
    ``out_dirs[i]/{train,valid}``, one pass over each split for all the models.

    Called by every process of a distributed run: each rank dumps a contiguous slice of the
    split into hidden part sets beside the final ones, then rank 0 concatenates them in order
    (the output directory must be shared by the ranks, as for --resume). A rank that fails makes
    every rank fail, and nothing appears under the final names. The caller holds the outputs'
    lock (utils.lock_output): rank 0 also removes part sets that a killed dump left there."""
    rank, world = utils.get_rank(), utils.get_world_size()
    paths = []
    for split in splits:
        ds = datasets.train_eval if split == "train" else datasets.val
        finals = [os.path.join(d, SPLIT_DIRS[split]) for d in out_dirs]
        metas = [feature_meta(m, datasets.classes, split, dataset_name) for m in ckpt_metas]
        n = len(ds)
        header = f"features {split}"
        if world == 1:
            dump_split(models, ds, finals, metas, num_classes=num_classes, header=header, **kw)
        else:
            dump_split_in_parts(models, ds, finals, metas, split, rank, world, num_classes=num_classes, **kw)
        if rank == 0:  # part sets a killed distributed dump left (the caller holds the output's lock)
            remove_stale_parts(finals)
        for final in finals:
            print(f"features: wrote {final} ({n} samples)", flush=True)
        paths += finals
    return paths


def feature_dtype(name: str):
    return None if name == "auto" else np.dtype(name)


def get_args_parser():
    p = argparse.ArgumentParser(
        prog="dump_features.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint.pt written by vision/distill.py, or a plain "
        "state dict (e.g. torchvision weights) with --model and --dataset",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="the architecture of a plain state dict (default: the checkpoint's; its classes are the data's)",
    )
    p.add_argument(
        "--small-input",
        action="store_true",
        default=None,
        help="a plain state dict of a --small-input model (default: the checkpoint's)",
    )
    p.add_argument("--output", required=True, help="directory that gets train/ and valid/")
    p.add_argument("--dataset", choices=vdata.DATASETS, help="default: the checkpoint's")
    p.add_argument("--data", help="data path (default: the checkpoint's)")
    p.add_argument("--image-size", type=int, help="default: the checkpoint's")
    p.add_argument(
        "--backend",
        type=str.lower,
        choices=vdata.BACKENDS,
        help="imagefolder decoding: pil or tensor (default: the checkpoint's, else pil)",
    )
    p.add_argument("--splits", nargs="+", choices=("train", "valid"), default=["train", "valid"])
    p.add_argument(
        "--limit-train",
        type=int,
        help="dump only N training samples (the first N of a "
        "grey set, N spread evenly over an imagefolder's classes)",
    )
    p.add_argument("--limit-val", type=int, help="dump only N validation samples (as --limit-train)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument(
        "--feature-dtype",
        choices=("auto", "float16", "float32"),
        default="auto",
        help="auto: float32, float16 above 2**28 values (default)",
    )
    p.add_argument("--dist-timeout", type=int, default=120, help="process-group timeout, minutes")
    return p


def main(args):
    utils.check_data_args(args)  # the checks vision/distill.py makes of the same flags
    loaded = load_checkpoint(args.checkpoint)
    meta = checkpoint_meta(args.checkpoint, loaded)
    model_name_of(args.checkpoint, meta, args.model, "--model")  # before the data is read
    cargs = meta.get("args") or {}
    name = args.dataset or cargs.get("dataset")
    if name is None:
        raise VisionError("the checkpoint does not say its dataset: pass --dataset")
    datasets = vdata.build_datasets(
        name,
        args.data or (cargs.get("data") if name == cargs.get("dataset") else None),
        args.image_size or cargs.get("image_size"),
        cargs.get("recipe", "imagenet"),
        args.limit_train,
        args.limit_val,
        backend=args.backend or cargs.get("backend") or "pil",
    )
    model, ckpt = model_from_checkpoint(
        args.checkpoint,
        args.model,
        args.small_input,
        num_classes=len(datasets.classes),
        flag="--model",
        ckpt=loaded,
    )
    del loaded
    check_checkpoint_classes(str(args.checkpoint), ckpt, datasets.classes, name)
    utils.init_distributed_mode(args)
    device = torch.device("cuda", args.gpu) if args.device == "cuda" else torch.device("cpu")
    lock = utils.lock_output(args.output, "--output", device)  # one dump per --output (rank 0 holds it)
    try:
        model.to(device)
        amp = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
            if args.amp
            else contextlib.nullcontext
        )
        dump_all(
            [model],
            datasets,
            [args.output],
            num_classes=ckpt["num_classes"],
            ckpt_metas=[ckpt],
            dataset_name=name,
            splits=args.splits,
            device=device,
            batch_size=args.batch_size,
            workers=args.workers,
            autocast=amp,
            dtype=feature_dtype(args.feature_dtype),
        )
    finally:
        if lock is not None:
            lock.release()
    if args.distributed:
        torch.distributed.destroy_process_group()


def cli(argv=None):
    rc = run_cli("dump_features.py", main, get_args_parser().parse_args(argv))
    if rc:
        sys.exit(rc)


if __name__ == "__main__":
    cli()
