"""Datasets and transforms: ImageFolder (ImageNet, CUB-200), Fashion-MNIST (IDX files) and
scikit-learn's digits.

Small grey images (Fashion-MNIST 28x28, digits 8x8) are adapted to the torchvision models by one
rule: the single channel is replicated to 3 channels, and the images are resized once, bilinearly
with antialiasing, to ``--image-size`` (default 32; use 8 with digits for the fastest tests).
They are normalised with the whole training split's own pixel mean and std. Training augmentation is a
random crop with zero padding of size/8 pixels, plus a horizontal flip for Fashion-MNIST only
(a flipped digit is not the same digit). Small images also want ``--small-input`` (see
``distill.adapt_small_input``): an ImageNet stem would shrink a 32 px image to 8 px at once.

``--dataset imagefolder --data ROOT`` reads ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``.
Recipes (the paper's augmentations): ``imagenet``: random resized crop + horizontal flip;
``cub``: the same plus a random rotation (15 degrees) and colour jitter (0.4, 0.4, 0.4).
Evaluation: resize to 256/224 of the crop size, then a centre crop.

``--backend`` (imagefolder; the names of torchvision's classification reference): ``pil`` reads
each file with PIL and augments PIL images with ``torchvision.transforms``; ``tensor`` decodes
it with ``torchvision.io.decode_image`` (libjpeg-turbo for JPEG, greyscale and CMYK converted to
RGB; PIL for the formats it does not read, such as BMP and TIFF) and augments the uint8 tensor
with the same transforms of ``torchvision.transforms.v2``. Both draw the same random numbers in
the same order, so a seeded image gets the same crop, flip, angle and jitter factors whichever
backend; the pixels differ by the resampling and colour arithmetic only (a few levels of 255).
"""

from __future__ import annotations

import gzip
import os
import struct
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from vision.utils import VisionError, check_at_least

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DATASETS = ("imagefolder", "fashion-mnist", "digits")
BACKENDS = ("pil", "tensor")
DEFAULT_IMAGE_SIZE = {"imagefolder": 224, "fashion-mnist": 32, "digits": 32}


# ----------------------------------------------------------------------------- IDX / digits
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise VisionError(f"{path}: not an IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_IDX_DTYPES[code], offset=4 + 4 * ndim).copy()
    if arr.size != int(np.prod(shape)):
        raise VisionError(f"{path}: truncated IDX file")
    return arr.reshape(shape)


def load_fashion_mnist(root=None):
    root = root or FASHION_MNIST_DIR

    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(root, name)):
                return os.path.join(root, name)
        raise FileNotFoundError(
            f"Fashion-MNIST file {stem}[.gz] not found in {root} "
            "(install Debian's dataset-fashion-mnist or pass --data DIR)"
        )

    x_tr = read_idx(find("train-images-idx3-ubyte"))
    y_tr = read_idx(find("train-labels-idx1-ubyte"))
    x_va = read_idx(find("t10k-images-idx3-ubyte"))
    y_va = read_idx(find("t10k-labels-idx1-ubyte"))
    return (x_tr, y_tr.astype(np.int64)), (x_va, y_va.astype(np.int64)), list(FASHION_CLASSES)


def load_digits_split():
    """scikit-learn's 1,797 8x8 digits, split 80/20 by a fixed permutation (seed 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(y))
    n_tr = int(round(0.8 * len(y)))
    tr, va = perm[:n_tr], perm[n_tr:]
    return (x[tr], y[tr]), (x[va], y[va]), [str(i) for i in range(10)]


def image_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one image's augmentation draws in one epoch."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % 2**63


class PerImageSeeds(torch.utils.data.Dataset):
    """A dataset whose transforms draw from torch's global RNG (torchvision's transforms), made to
    draw from a generator seeded by (seed, epoch, index) only, as GreyImages does: each image is
    augmented alike whatever the rank, the loader worker or the order, and every rank of a DDP
    run draws independently (one global seed per epoch would give the k-th image of every rank
    the same crop and flip)."""

    def __init__(self, dataset):
        self.dataset, self.epoch, self.seed = dataset, 0, 0

    def __len__(self):
        return len(self.dataset)

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        self.epoch, self.seed = epoch, seed

    def __getitem__(self, i):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(image_seed(self.seed, self.epoch, i))
            return self.dataset[i]


# ----------------------------------------------------------------------------- grey datasets
class GreyImages(torch.utils.data.Dataset):
    """uint8 grey images [N, H, W] resized once to size x size; items are normalised float
    [3, size, size] (channel replicated) and int labels."""

    def __init__(self, images, labels, size: int, mean: float, std: float, train: bool, flip: bool = False):
        x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = torch.cat(
                [
                    F.interpolate(
                        c.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
                    )
                    .round()
                    .clamp(0, 255)
                    .to(torch.uint8)
                    for c in x.split(8192)
                ]
            )
        self.images, self.targets = x, torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.size, self.mean, self.std, self.train, self.flip = size, mean, std, train, flip
        self.pad = size // 8
        self.epoch = self.seed = 0

    def __len__(self):
        return len(self.targets)

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Augmentation draws depend only on (seed, epoch, index): not on the process, the
        worker or the order, so a DDP run augments each image as a 1-process run does."""
        self.epoch, self.seed = epoch, seed

    def __getitem__(self, i):
        img = (self.images[i].float() / 255.0 - self.mean) / self.std
        if self.train:
            g = torch.Generator().manual_seed(image_seed(self.seed, self.epoch, i))
            if self.pad:
                p = self.pad
                img = F.pad(img, (p, p, p, p))
                dy, dx = torch.randint(0, 2 * p + 1, (2,), generator=g).tolist()
                img = img[:, dy : dy + self.size, dx : dx + self.size]
            if self.flip and torch.rand((), generator=g) < 0.5:
                img = img.flip(-1)
        return img.expand(3, -1, -1).contiguous(), int(self.targets[i])


# ----------------------------------------------------------------------------- ImageFolder
def imagefolder_transforms(size: int, recipe: str, backend: str = "pil"):
    """(train, eval) transforms of the paper's recipes for the ``backend``'s images: PIL images
    (torchvision.transforms) or uint8 [3, H, W] tensors (torchvision.transforms.v2, whose random
    parameters are drawn as v1 draws them: RandomResizedCrop's scale/ratio/offsets, the flip's
    coin, the rotation's angle, ColorJitter's order and factors)."""
    if backend not in BACKENDS:
        raise VisionError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "tensor":
        from torchvision.transforms import v2 as T

        to_float = T.ToDtype(torch.float32, scale=True)  # uint8 / 255, as ToTensor
    else:
        from torchvision import transforms as T

        to_float = T.ToTensor()
    train = [T.RandomResizedCrop(size, antialias=True), T.RandomHorizontalFlip()]
    if recipe == "cub":
        train += [T.RandomRotation(15), T.ColorJitter(0.4, 0.4, 0.4)]
    tail = [to_float, T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    evaluate = [T.Resize(int(round(size * 256 / 224)), antialias=True), T.CenterCrop(size)]
    return T.Compose(train + tail), T.Compose(evaluate + tail)


def read_rgb_tensor(path: str) -> torch.Tensor:
    """An image file as a uint8 RGB tensor [3, H, W] (the tensor backend's ImageFolder loader):
    torchvision.io.decode_image (JPEG via libjpeg-turbo, greyscale and CMYK converted to RGB;
    PNG, GIF, WebP), PIL for what it does not read (BMP, TIFF, ...; PIL raises on a broken file)."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(path, mode=ImageReadMode.RGB)
    except RuntimeError:  # an unsupported format (or a broken file: PIL then says why)
        from torchvision.datasets.folder import pil_loader
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(pil_loader(path))


def _spread_subset(ds, limit):
    """``limit`` images spread evenly over ``ds`` (ImageFolder lists its files class by class:
    the first N would keep only the first classes)."""
    if limit is None or limit >= len(ds):
        return ds
    return torch.utils.data.Subset(ds, [i * len(ds) // limit for i in range(limit)])


def build_datasets(
    name: str,
    data=None,
    image_size=None,
    recipe: str = "imagenet",
    limit_train=None,
    limit_val=None,
    backend: str = "pil",
):
    """Returns a namespace: train (augmented), train_eval (train split, eval transforms, for
    feature dumps), val, classes, image_size.

    ``backend``: how an ImageFolder's files are decoded and augmented (pil or tensor, see the
    module's docstring); the grey sets are tensors already and ignore it.

    ``--limit-train/--limit-val N``: the first N images of the grey sets; N images spread evenly
    over an ImageFolder's class-ordered files. The grey sets are normalised with the pixel mean
    and std of the whole training split, whatever the limits (so a dump with other limits sees
    the images as training saw them)."""
    if name not in DATASETS:
        raise VisionError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    for dest, value in (
        ("image_size", image_size),
        ("limit_train", limit_train),
        ("limit_val", limit_val),
    ):  # x[:-3] would silently drop the last 3
        check_at_least(dest, value, 1)
    size = image_size or DEFAULT_IMAGE_SIZE[name]
    if name == "imagefolder":
        from torchvision.datasets import ImageFolder

        if not data:
            raise FileNotFoundError("--dataset imagefolder needs --data ROOT (with train/ and val/)")
        for split in ("train", "val"):
            if not os.path.isdir(os.path.join(data, split)):
                raise FileNotFoundError(f"data path {os.path.join(data, split)} not found")
        t_train, t_eval = imagefolder_transforms(size, recipe, backend)
        kw = {"loader": read_rgb_tensor} if backend == "tensor" else {}  # else PIL's
        train = ImageFolder(os.path.join(data, "train"), t_train, **kw)
        train_eval = ImageFolder(os.path.join(data, "train"), t_eval, **kw)
        val = ImageFolder(os.path.join(data, "val"), t_eval, **kw)
        if val.classes != train.classes:
            raise VisionError(f"{data}: train/ and val/ have different class folders")
        classes = list(train.classes)
        train = PerImageSeeds(_spread_subset(train, limit_train))
        train_eval = _spread_subset(train_eval, limit_train)
        val = _spread_subset(val, limit_val)
    else:
        if name == "fashion-mnist":
            if data is not None and not os.path.isdir(data):
                raise FileNotFoundError(f"data path {data} not found")
            (x_tr, y_tr), (x_va, y_va), classes = load_fashion_mnist(data)
        else:
            if data is not None:
                raise VisionError("--dataset digits is scikit-learn's bundled set: drop --data")
            (x_tr, y_tr), (x_va, y_va), classes = load_digits_split()
        hist = np.bincount(x_tr.ravel(), minlength=256).astype(np.float64)  # no big temporaries
        levels = np.arange(256) / 255.0
        mean = float((hist * levels).sum() / hist.sum())
        std = float(np.sqrt((hist * (levels - mean) ** 2).sum() / hist.sum())) or 1.0
        if limit_train is not None:
            x_tr, y_tr = x_tr[:limit_train], y_tr[:limit_train]
        if limit_val is not None:
            x_va, y_va = x_va[:limit_val], y_va[:limit_val]
        flip = name == "fashion-mnist"
        train = GreyImages(x_tr, y_tr, size, mean, std, train=True, flip=flip)
        train_eval = GreyImages(x_tr, y_tr, size, mean, std, train=False)
        val = GreyImages(x_va, y_va, size, mean, std, train=False)
    return SimpleNamespace(train=train, train_eval=train_eval, val=val, classes=classes, image_size=size)


# ----------------------------------------------------------------------------- samplers
class ShardSampler(torch.utils.data.Sampler):
    """Evaluation sampler: rank r takes indices r, r+W, r+2W, ... in order, with NO padding, so
    summing counts over ranks counts every sample exactly once (DistributedSampler pads)."""

    def __init__(self, n: int, num_replicas: int = 1, rank: int = 0):
        self.indices = list(range(rank, n, num_replicas))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)
