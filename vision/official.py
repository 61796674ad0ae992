"""A local torchvision weights file (e.g. ResNet-50 IMAGENET1K_V1, the paper's "official ResNet-50",
Supp. F.2 and Table 2's α = 0 row) as a teacher checkpoint of vision/distill.py; nothing is downloaded.

    python -m vision.official WEIGHTS.pth --model resnet50 --num-classes 1000 --dataset imagefolder \\
        [--data PATH] [--image-size N] [--recipe imagenet] [--imagenet-classes] --out OUT/model.pt

:func:`check_official_weights` refuses, in one line, a file that is no state dict of ``--model``
(missing or unexpected tensors, other shapes) or whose classifier has another class count; it runs
before anything else (the ImageNet recipe calls it when its configuration is checked). The
checkpoint written records mode teacher, α = 0, the model, class count and the data flags (as a
trained teacher's does), ``source: official torchvision weights`` and the file's SHA-256;
``--imagenet-classes`` records the 1000 ImageNet wnids in torchvision's class order (the sorted
wnids, shared_metrics/data/imagenet_wnids.txt), so that a student or a dump on data with other
class folders is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

if __package__ in (None, ""):  # run as a script: make `import vision.x` work
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from shared_metrics.errors import run_cli
from vision import utils
from vision.models import VisionError, build_model, find_head, load_checkpoint, state_dict_of

SOURCE = "official torchvision weights"


def _shape(t) -> str:
    return " x ".join(map(str, t.shape)) or "scalar"


def check_official_weights(path, model: str, num_classes: int) -> dict:
    """The state dict in ``path`` if it is a ``model`` with ``num_classes`` outputs, else VisionError
    (one line): tensors missing or unexpected (another architecture), the classifier's rows (another
    class count), then any other shape."""
    sd = state_dict_of(load_checkpoint(path), path)
    net = build_model(model, num_classes)
    own = net.state_dict()
    missing, unexpected = [k for k in own if k not in sd], [k for k in sd if k not in own]
    if missing or unexpected:
        what = ", ".join(
            ([f"{len(missing)} tensors missing (e.g. {missing[0]})"] if missing else [])
            + ([f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else [])
        )
        raise VisionError(f"{path} is not a torchvision {model} state dict: {what}")
    head = next(n for n, m in net.named_modules() if m is find_head(net, num_classes))
    rows = sd[f"{head}.weight"].shape[0] if sd[f"{head}.weight"].ndim == 2 else None
    if rows != num_classes:
        raise VisionError(
            f"{path}: its classifier {head}.weight is {_shape(sd[f'{head}.weight'])}: "
            f"{rows if rows is not None else 'no'} classes, the recipe's data has {num_classes}"
        )
    for k, v in own.items():
        if sd[k].shape != v.shape:
            raise VisionError(
                f"{path} is not a torchvision {model} state dict: {k} is {_shape(sd[k])}, "
                f"a {model}'s is {_shape(v)}"
            )
    return sd


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def official_checkpoint(args) -> dict:
    """The teacher checkpoint of ``args.weights`` (checked), in vision/distill.py's layout."""
    sd = check_official_weights(args.weights, args.model, args.num_classes)
    classes = None
    if args.imagenet_classes:
        from shared_metrics.selection import imagenet_wnids

        classes = imagenet_wnids()
        if len(classes) != args.num_classes:
            raise VisionError(f"--imagenet-classes lists 1000 classes, not --num-classes {args.num_classes}")
    return {
        "model": sd,
        "epoch": None,
        "args": {
            "dataset": args.dataset,
            "data": args.data,
            "image_size": args.image_size,
            "recipe": args.recipe,
            "seed": None,
        },
        "model_name": args.model,
        "num_classes": args.num_classes,
        "classes": classes,
        "mode": "teacher",
        "alpha": 0.0,
        "temperature": None,
        "label_smoothing": 0.0,
        "source": SOURCE,
        "weights": os.path.abspath(args.weights),
        "weights_sha256": sha256(args.weights),
    }


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vision.official",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("weights", help="a torchvision state dict (.pth), e.g. resnet50-0676ba61.pth")
    p.add_argument("--model", required=True, help="its torchvision architecture, e.g. resnet50")
    p.add_argument("--num-classes", type=int, required=True, help="the classes of the recipe's data")
    p.add_argument("--dataset", required=True, help="the data the students learn on (distill.py --dataset)")
    p.add_argument("--data", help="its path (distill.py --data)")
    p.add_argument("--image-size", type=int, help="its image size (distill.py --image-size)")
    p.add_argument("--recipe", default="imagenet", help="distill.py --recipe (default imagenet)")
    p.add_argument(
        "--imagenet-classes", action="store_true", help="record the 1000 ImageNet wnids as the classes"
    )
    p.add_argument("--out", required=True, help="the checkpoint to write (atomically)")
    return p


def main(args) -> None:
    if args.num_classes < 1:
        raise VisionError(f"--num-classes must be >= 1, got {args.num_classes}")
    ckpt = official_checkpoint(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    utils.atomic_save(ckpt, args.out)
    print(f"{args.out}: {args.model}, {args.num_classes} classes, {SOURCE} ({args.weights})")


def cli(argv=None) -> int:
    return run_cli("vision/official.py", main, get_args_parser().parse_args(argv))


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(cli())
