"""torchvision classification models by name, the small-input adaptation, the classifier head,
and checkpoint / pretrained-weights loading (``torch.load(weights_only=True)`` throughout)."""

from __future__ import annotations

import math
import os
import re
import warnings

import torch
import torchvision
from torch import nn

from vision.utils import VisionError


def classification_models() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def adapt_small_input(model: nn.Module, name: str) -> nn.Module:
    """``--small-input``: keep full resolution in the stem, for 8-32 px images.

    ResNet family (resnet*, resnext*, wide_resnet*): conv1 becomes a 3x3 stride-1 convolution
    and the max-pool is dropped (the CIFAR ResNet stem). MobileNet and EfficientNet: the first
    convolution gets stride 1. Other models are refused; give them larger ``--image-size``."""
    if hasattr(model, "conv1") and hasattr(model, "maxpool") and isinstance(model.conv1, nn.Conv2d):
        out = model.conv1.out_channels
        model.conv1 = nn.Conv2d(3, out, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
        return model
    if name.startswith(("mobilenet", "efficientnet")):
        conv = model.features[0][0]
        conv.stride = (1, 1)
        return model
    raise VisionError(
        f"--small-input supports the resnet, resnext, wide_resnet, mobilenet and "
        f"efficientnet families, not {name}; use a larger --image-size instead"
    )


def build_model(name: str, num_classes: int, small_input: bool = False, model_kwargs=None):
    if name not in classification_models():
        raise VisionError(
            f"unknown model {name!r}: use a torchvision classification model "
            "(e.g. resnet18, resnet50, mobilenet_v2, efficientnet_b0, convnext_tiny)"
        )
    try:
        model = torchvision.models.get_model(
            name, weights=None, num_classes=num_classes, **(model_kwargs or {})
        )
    except (TypeError, ValueError) as e:
        raise VisionError(f"{name}: bad --model-arg ({' '.join(str(e).split())})") from None
    return adapt_small_input(model, name) if small_input else model


def check_checkpoint_classes(what: str, ckpt: dict, classes, dataset: str, role: str = "model") -> None:
    """A checkpoint (``what``: e.g. "teacher PATH"; ``role``: "teacher", "model") must have the
    data's classes, in its order."""
    if ckpt["num_classes"] != len(classes):
        raise VisionError(
            f"{what} has {ckpt['num_classes']} classes but the {dataset} data has {len(classes)}"
        )
    if ckpt.get("classes") and list(ckpt["classes"]) != list(classes):
        i = next(i for i, (a, b) in enumerate(zip(ckpt["classes"], classes)) if a != b)
        raise VisionError(
            f"{what} has other classes than the {dataset} data: class {i} is "
            f"{ckpt['classes'][i]!r} for the {role}, {classes[i]!r} in the data"
        )


def find_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """The classifier: the last nn.Linear producing num_classes outputs (model.fc,
    model.classifier[-1], model.heads.head, ...). Its input is the penultimate feature."""
    head = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == num_classes:
            head = m
    if head is None:
        raise VisionError(
            f"{type(model).__name__}: no nn.Linear layer with {num_classes} outputs "
            "(a convolutional classifier has no penultimate feature to dump)"
        )
    return head


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # torch bolds part of its weights-only error
ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"  # torch.save's zip archive; a legacy pickle


def one_line(text, limit: int = 300) -> str:
    """``text`` without terminal escape codes, its whitespace runs made single spaces, cut."""
    out = " ".join(_ANSI.sub("", str(text)).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def load_checkpoint(path):
    """torch.load(weights_only=True) on the CPU; a file torch cannot read is a one-line VisionError
    that says what is wrong with it (a directory, empty, not a torch file, truncated, "refused:
    unsafe object"). ``weights_only=True`` is passed explicitly, so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    cannot turn it off (torch applies that override only where weights_only was left unset)."""
    if os.path.isdir(path):
        raise VisionError(f"{path} is a directory, not a checkpoint file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise VisionError(f"{path}: not a torch checkpoint (the file is empty)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": not for the one-line error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, non-torch files
        if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
            raise VisionError(
                f"{path}: not a torch checkpoint (torch.save writes a zip archive "
                f"or a pickle; this file starts with {head[:4]!r})"
            ) from None
        text = _ANSI.sub("", str(e))
        if text.startswith("Weights only load failed"):  # what the pickle asked for is not allowed
            blocked = re.search(r"unsupported GLOBAL ([\w.]+) whose module ([\w.]+) is blocked", text)
            unknown = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            refused = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", text, re.S)
            why = (
                f"GLOBAL {blocked.group(1)}: its module {blocked.group(2)} is blocked"
                if blocked
                else f"GLOBAL {unknown.group(1)} is not an allowed global"
                if unknown
                else one_line(refused.group(1).split(". ")[0])
                if refused
                else "an object it does not allow"
            )
            raise VisionError(
                f"{path}: refused: unsafe object ({why} in a weights-only load; the file "
                "would run code or build arbitrary objects if unpickled in full: load it "
                "only if you trust it)"
            ) from None
        first = one_line(text.strip().split(". ")[0] if text.strip() else "", 200)
        why = f"{type(e).__name__}: {first}" if first else type(e).__name__
        if head.startswith(ZIP_MAGIC):
            raise VisionError(f"{path}: truncated or corrupted torch checkpoint ({why})") from None
        raise VisionError(f"{path}: not a readable torch checkpoint ({why})") from None


def state_dict_of(obj, path="checkpoint") -> dict:
    """The model weights inside our checkpoint or a plain (torchvision) state dict."""
    sd = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise VisionError(f"{path}: holds no model state dict")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in sd.items()}


def _is_int(v, least: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: the metadata fields of our checkpoints (and of their "args") that are read back, with what
#: each must be when present and not None
META_TYPES = {
    "model_name": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "num_classes": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "classes": (
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v),
        "a list of class names",
    ),
    "args": (lambda v: isinstance(v, dict), "a dict of the run's arguments"),
    "mode": (lambda v: v in ("teacher", "student"), "teacher or student"),
    "alpha": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "temperature": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "epoch": (lambda v: _is_int(v, 0), "a whole number >= 0"),
}
ARGS_TYPES = {
    "dataset": (lambda v: isinstance(v, str), "a dataset name"),
    "data": (lambda v: isinstance(v, str), "a path"),
    "image_size": (lambda v: _is_int(v, 1), "a whole number >= 1"),
    "recipe": (lambda v: isinstance(v, str), "a recipe name"),
    "small_input": (lambda v: isinstance(v, bool), "true or false"),
    "model_kwargs": (lambda v: isinstance(v, dict), "a dict"),
}


def checkpoint_meta(path, ckpt) -> dict:
    """The metadata of one of our checkpoints ({} for a plain state dict), the fields read back
    checked: a hand-edited field is a one-line error here rather than a traceback later."""
    if not (isinstance(ckpt, dict) and "model" in ckpt):
        return {}
    for where, fields, types in (("", ckpt, META_TYPES), ("args.", ckpt.get("args") or {}, ARGS_TYPES)):
        for key, (ok, want) in types.items():
            if fields.get(key) is not None and not ok(fields[key]):
                raise VisionError(
                    f"{path}: checkpoint field {where}{key} is {one_line(repr(fields[key]), 60)}, not {want}"
                )
    classes, k = ckpt.get("classes"), ckpt.get("num_classes")
    if classes is not None and k is not None and len(classes) != k:
        raise VisionError(f"{path}: checkpoint lists {len(classes)} classes but says num_classes {k}")
    return ckpt


def model_name_of(path, meta: dict, model_name=None, flag: str = "--model") -> str:
    """The architecture: the checkpoint's, or ``model_name`` (the caller's ``flag``) for a plain
    state dict; both given must agree."""
    saved = meta.get("model_name")
    if model_name and saved and model_name != saved:
        raise VisionError(f"{path} holds a {saved}, not a {model_name}")
    if not (model_name or saved):
        raise VisionError(f"{path} is a plain state dict: say which model it is ({flag} NAME)")
    return model_name or saved


def load_pretrained(model: nn.Module, path) -> list[str]:
    """Start from local weights (e.g. ImageNet weights for CUB); tensors whose shape differs
    (the classifier, when the class count differs) are left as initialised. Returns them."""
    sd = state_dict_of(load_checkpoint(path), path)
    own = model.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    keep = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in keep and k not in skipped]
    if len(keep) == 0:
        raise VisionError(f"{path}: no tensor matches the model (wrong architecture?)")
    model.load_state_dict(keep, strict=False)
    return skipped + missing


def model_from_checkpoint(
    path, model_name=None, small_input=None, *, num_classes=None, flag: str = "--model", ckpt=None
):
    """Rebuild the model saved in one of our checkpoints (name, classes, small-input and
    model kwargs come from the checkpoint), or from a plain state dict given model_name (the
    caller's ``flag``), ``num_classes`` (the data's; else the last 2-D weight's rows) and
    ``small_input``. ``ckpt``: the file's content when already loaded.
    Returns (model, checkpoint metadata)."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    sd = state_dict_of(ckpt, path)
    meta = checkpoint_meta(path, ckpt)
    name = model_name_of(path, meta, model_name, flag)
    args = meta.get("args") or {}
    if meta.get("num_classes") is not None:
        num_classes = meta["num_classes"]
    elif num_classes is None:
        heads = [v for k, v in sd.items() if k.endswith("weight") and v.ndim == 2]
        if not heads:
            raise VisionError(f"{path}: cannot tell the number of classes")
        num_classes = int(heads[-1].shape[0])
    saved_small = args.get("small_input")
    if small_input is not None and saved_small is not None and bool(small_input) != saved_small:
        raise VisionError(
            f"{path} was trained {'with' if saved_small else 'without'} --small-input: "
            f"{'add' if saved_small else 'drop'} --small-input"
        )
    small = bool(saved_small if small_input is None else small_input)
    model = build_model(name, num_classes, small, args.get("model_kwargs"))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise VisionError(f"{path} does not fit {name}: {' '.join(first[:2])[:300]}") from None
    meta = dict(meta, model_name=name, num_classes=num_classes, args=args)
    return model, meta
