"""torchvision classification models by name, the small-input adaptation, the classifier head,
and checkpoint / pretrained-weights loading (``torch.load(weights_only=True)`` throughout)."""
from __future__ import annotations

import os

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
    raise VisionError(f"--small-input supports the resnet, resnext, wide_resnet, mobilenet and "
                      f"efficientnet families, not {name}; use a larger --image-size instead")


def build_model(name: str, num_classes: int, small_input: bool = False, model_kwargs=None):
    if name not in classification_models():
        raise VisionError(f"unknown model {name!r}: use a torchvision classification model "
                          "(e.g. resnet18, resnet50, mobilenet_v2, efficientnet_b0, convnext_tiny)")
    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes,
                                             **(model_kwargs or {}))
    except (TypeError, ValueError) as e:
        raise VisionError(f"{name}: bad --model-arg ({' '.join(str(e).split())})") from None
    return adapt_small_input(model, name) if small_input else model


def check_checkpoint_classes(what: str, ckpt: dict, classes, dataset: str, role: str = "model") -> None:
    """A checkpoint (``what``: e.g. "teacher PATH"; ``role``: "teacher", "model") must have the
    data's classes, in its order."""
    if ckpt["num_classes"] != len(classes):
        raise VisionError(f"{what} has {ckpt['num_classes']} classes but the {dataset} data has {len(classes)}")
    if ckpt.get("classes") and list(ckpt["classes"]) != list(classes):
        i = next(i for i, (a, b) in enumerate(zip(ckpt["classes"], classes)) if a != b)
        raise VisionError(f"{what} has other classes than the {dataset} data: class {i} is "
                          f"{ckpt['classes'][i]!r} for the {role}, {classes[i]!r} in the data")


def find_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """The classifier: the last nn.Linear producing num_classes outputs (model.fc,
    model.classifier[-1], model.heads.head, ...). Its input is the penultimate feature."""
    head = None
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == num_classes:
            head = m
    if head is None:
        raise VisionError(f"{type(model).__name__}: no nn.Linear layer with {num_classes} outputs "
                          "(a convolutional classifier has no penultimate feature to dump)")
    return head


def load_checkpoint(path) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, non-torch files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VisionError(f"{path}: not a readable checkpoint ({msg})") from None


def state_dict_of(obj) -> dict:
    """The model weights inside our checkpoint or a plain (torchvision) state dict."""
    sd = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise VisionError("checkpoint holds no model state dict")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in sd.items()}


def load_pretrained(model: nn.Module, path) -> list[str]:
    """Start from local weights (e.g. ImageNet weights for CUB); tensors whose shape differs
    (the classifier, when the class count differs) are left as initialised. Returns them."""
    sd = state_dict_of(load_checkpoint(path))
    own = model.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    keep = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in keep and k not in skipped]
    if len(keep) == 0:
        raise VisionError(f"{path}: no tensor matches the model (wrong architecture?)")
    model.load_state_dict(keep, strict=False)
    return skipped + missing


def model_from_checkpoint(path, model_name=None, small_input=None):
    """Rebuild the model saved in one of our checkpoints (name, classes, small-input and
    model kwargs come from the checkpoint), or from a plain state dict given model_name.
    Returns (model, checkpoint dict)."""
    ckpt = load_checkpoint(path)
    sd = state_dict_of(ckpt)
    meta = ckpt if isinstance(ckpt, dict) and "model" in ckpt else {}
    saved = meta.get("model_name")
    if model_name and saved and model_name != saved:
        raise VisionError(f"{path} holds a {saved}, not a {model_name}")
    name = model_name or saved
    if not name:
        raise VisionError(f"{path} is a plain state dict: say which model it is (--teacher-model)")
    args = meta.get("args", {})
    if "num_classes" in meta:
        num_classes = int(meta["num_classes"])
    else:
        heads = [v for k, v in sd.items() if k.endswith("weight") and v.ndim == 2]
        if not heads:
            raise VisionError(f"{path}: cannot tell the number of classes")
        num_classes = int(heads[-1].shape[0])
    small = args.get("small_input", False) if small_input is None else small_input
    model = build_model(name, num_classes, small, args.get("model_kwargs"))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise VisionError(f"{path} does not fit {name}: {' '.join(first[:2])[:300]}") from None
    meta = dict(meta, model_name=name, num_classes=num_classes)
    return model, meta
