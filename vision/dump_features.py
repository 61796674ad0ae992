"""Dump penultimate feature sets (DESIGN.md contract) from a model or any saved checkpoint.

    python vision/dump_features.py OUTPUT/checkpoint.pt --output OUTPUT/features
        [--dataset digits|fashion-mnist|imagefolder] [--data PATH] [--splits train valid]

writes OUTPUT/features/train/ and OUTPUT/features/valid/: the input of the final nn.Linear (the
global-pool output feeding the classifier), its weight and bias, the logits (float32, when N*K
is at most 1e8 values), the labels, and meta.json. The train split is read with evaluation
transforms (no augmentation). Dataset, image size and model come from the checkpoint unless
given.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

if __package__ in (None, ""):  # run as a script: make `import vision.x` work
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

from shared_metrics.featureset import FeatureSetError, FeatureSetWriter
from vision import data as vdata
from vision.models import VisionError, find_head, model_from_checkpoint

CREATED_BY = "lskd-vision 0.1.0"
MAX_LOGIT_VALUES = 100_000_000  # logits.npy (float32) only when N * K is at most this
FP16_MAX = float(np.finfo(np.float16).max)
AUTO_FP16_VALUES = 2**28
SPLIT_DIRS = {"train": "train", "valid": "valid"}


def feature_meta(ckpt: dict, classes, split: str, dataset: str) -> dict:
    args = ckpt.get("args", {})
    return {"classes": list(classes), "task": "vision", "model": ckpt.get("model_name"),
            "alpha": ckpt.get("alpha"), "temperature": ckpt.get("temperature"), "split": split,
            "dataset": dataset, "seed": args.get("seed"), "mode": ckpt.get("mode"),
            "beta": args.get("beta") if ckpt.get("mode") == "student" else None,
            "epoch": ckpt.get("epoch"), "created_by": CREATED_BY}


@torch.no_grad()
def dump_split(model, dataset, path, *, num_classes: int, meta: dict, device, batch_size=256,
               workers=0, autocast=contextlib.nullcontext, channels_last=False,
               dtype=None, overwrite=True):
    """Run ``model`` (unwrapped, eval mode) over ``dataset`` in order and write a feature set.
    dtype None ("auto"): float32, or float16 when the split has more than 2**28 feature values
    (1 GiB as float32, e.g. ImageNet train)."""
    head = find_head(model, num_classes)
    if dtype is None:
        dtype = np.float16 if len(dataset) * head.in_features > AUTO_FP16_VALUES else np.float32
    captured = []
    hook = head.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
    was_training = model.training
    model.eval()
    n = len(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=workers, pin_memory=device.type == "cuda")
    mf = torch.channels_last if channels_last else torch.contiguous_format
    bias = head.bias.detach().float().cpu().numpy() if head.bias is not None else None
    try:
        with FeatureSetWriter(path, num_samples=n, dim=head.in_features,
                              head_weight=head.weight.detach().float().cpu().numpy(),
                              head_bias=bias, meta=meta, dtype=dtype,
                              logits=n * num_classes <= MAX_LOGIT_VALUES,
                              logits_dtype=np.float32, overwrite=overwrite) as w:
            for images, target in loader:
                images = images.to(device, non_blocking=True, memory_format=mf)
                captured.clear()
                with autocast():
                    logits = model(images)
                feats = captured[-1].float().flatten(1).cpu().numpy()
                if np.dtype(dtype) == np.float16 and np.abs(feats).max(initial=0) > FP16_MAX:
                    raise VisionError(f"{path}: a feature exceeds the float16 range; "
                                      "dump with --feature-dtype float32")
                w.append(feats, target.numpy(), logits.float().cpu().numpy())
    finally:
        hook.remove()
        model.train(was_training)
    return path


def dump_all(model, datasets, out_dir, *, num_classes, ckpt_meta, dataset_name,
             splits=("train", "valid"), **kw):
    """Dump the train (eval transforms) and valid splits under out_dir/{train,valid}."""
    paths = []
    for split in splits:
        ds = datasets.train_eval if split == "train" else datasets.val
        meta = feature_meta(ckpt_meta, datasets.classes, split, dataset_name)
        paths.append(dump_split(model, ds, os.path.join(out_dir, SPLIT_DIRS[split]),
                                num_classes=num_classes, meta=meta, **kw))
        print(f"features: wrote {paths[-1]} ({len(ds)} samples)", flush=True)
    return paths


def feature_dtype(name: str):
    return None if name == "auto" else np.dtype(name)


def get_args_parser():
    p = argparse.ArgumentParser(prog="dump_features.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint.pt written by vision/distill.py")
    p.add_argument("--output", required=True, help="directory that gets train/ and valid/")
    p.add_argument("--dataset", choices=vdata.DATASETS, help="default: the checkpoint's")
    p.add_argument("--data", help="data path (default: the checkpoint's)")
    p.add_argument("--image-size", type=int, help="default: the checkpoint's")
    p.add_argument("--splits", nargs="+", choices=("train", "valid"), default=["train", "valid"])
    p.add_argument("--limit-train", type=int, help="dump only the first N training samples")
    p.add_argument("--limit-val", type=int, help="dump only the first N validation samples")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   choices=("cpu", "cuda"))
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--feature-dtype", choices=("auto", "float16", "float32"), default="auto",
                   help="auto: float32, float16 above 2**28 values (default)")
    return p


def main(args):
    model, ckpt = model_from_checkpoint(args.checkpoint)
    cargs = ckpt.get("args", {})
    name = args.dataset or cargs.get("dataset")
    if name is None:
        raise VisionError("the checkpoint does not say its dataset: pass --dataset")
    datasets = vdata.build_datasets(
        name, args.data or (cargs.get("data") if name == cargs.get("dataset") else None),
        args.image_size or cargs.get("image_size"), cargs.get("recipe", "imagenet"),
        args.limit_train, args.limit_val)
    if len(datasets.classes) != ckpt["num_classes"]:
        raise VisionError(f"{args.checkpoint} has {ckpt['num_classes']} classes, the data "
                          f"{len(datasets.classes)}")
    device = torch.device(args.device)
    model.to(device)
    amp = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp
           else contextlib.nullcontext)
    dump_all(model, datasets, args.output, num_classes=ckpt["num_classes"], ckpt_meta=ckpt,
             dataset_name=name, splits=args.splits, device=device, batch_size=args.batch_size,
             workers=args.workers, autocast=amp, dtype=feature_dtype(args.feature_dtype))


def cli(argv=None):
    args = get_args_parser().parse_args(argv)
    try:
        main(args)
    except (VisionError, FeatureSetError, FileNotFoundError) as e:
        msg = " ".join(str(e).split())
        print(f"dump_features.py: error: {msg}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
