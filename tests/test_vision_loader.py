"""The ImageFolder loader's two backends (vision/data.py, ``--backend pil|tensor``): the same
files, the same seeded augmentation draws, pixels equal within the resampling arithmetic's
tolerance; and the trainer, its --resume and the loader bench with the flag. Tiny images, CPU."""

import json
import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402
from torchvision import transforms as T1  # noqa: E402
from torchvision.datasets.folder import pil_loader  # noqa: E402
from torchvision.transforms.functional import pil_to_tensor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from vision_helpers import TINY_LOADER_BENCH  # noqa: E402

from bench.vision_loader_throughput import main as loader_bench  # noqa: E402
from bench.vision_loader_throughput import natural_image  # noqa: E402
from vision import data as vdata  # noqa: E402
from vision import distill, dump_features  # noqa: E402
from vision.utils import VisionError  # noqa: E402

MEAN = torch.tensor(vdata.IMAGENET_MEAN)[:, None, None]
STD = torch.tensor(vdata.IMAGENET_STD)[:, None, None]
CLASSES = ("a", "b", "c")
# torchvision 0.29 (the pinned version) deprecates torchvision.io's decoders in favour of
# TorchCodec; they work, and warn at every call
pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def levels(x):
    """Normalised images back to 0-255 levels (what the tolerances are stated in)."""
    return x * STD * 255 + MEAN * 255


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    """An ImageFolder of 64 x 48 JPEGs (quality 90; gradient + smooth field + noise, so that any
    other crop or flip gives other pixels): 3 classes, 3 train and 1 val image each."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 1)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                natural_image(rng, 64, 48).save(root / split / c / f"{i}.jpg", quality=90)
    return root


# ----------------------------------------------------------------------------- decoding
def test_tensor_reader_reads_what_pil_reads(tmp_path):
    """decode_image with mode RGB for JPEG (RGB, greyscale, CMYK) and PNG (palette), PIL's own
    reader for BMP: uint8 [3, H, W] RGB like PIL's convert("RGB"). JPEG decoders may round
    differently (both are libjpeg-turbo here, and agree exactly); tolerance 2 levels. PNG and BMP
    are lossless: exact. A file that is no image is PIL's OSError, as with the PIL backend."""
    img = natural_image(np.random.default_rng(1), 40, 30)
    files = {
        "rgb.jpg": img,
        "grey.jpg": img.convert("L"),
        "cmyk.jpg": img.convert("CMYK"),
        "palette.png": img.convert("P"),
        "rgb.bmp": img,
    }
    for name, im in files.items():
        im.save(tmp_path / name, **({"quality": 90} if name.endswith(".jpg") else {}))
        got = vdata.read_rgb_tensor(str(tmp_path / name))
        want = pil_to_tensor(pil_loader(str(tmp_path / name)))
        assert got.dtype == torch.uint8 and got.shape == (3, 30, 40), name
        tol = 2 if name.endswith(".jpg") else 0
        assert (got.int() - want.int()).abs().max() <= tol, name
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(OSError):
        vdata.read_rgb_tensor(str(tmp_path / "junk.jpg"))


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("recipe", ["imagenet", "cub"])
def test_train_items_agree_between_backends(jpegs, recipe):
    """Every (seed, epoch, image) of both backends: shape [3, 32, 32] float32, the same label,
    values inside the normalised range of [0, 1] pixels, and the same pixels within tolerance --
    which other crop boxes or flips could not give on these textured images.

    Tolerances (levels of 255), from what the arithmetic allows: imagenet (crop + antialiased
    bilinear resize + flip: torchvision's tensor kernel is written to match PIL's, and rounds
    alike within 1 level) at most 2 everywhere; cub adds a 15-degree nearest-neighbour rotation
    (PIL and grid_sample can pick the other neighbour where a sample falls on a pixel edge: a
    few pixels differ by a lot) and colour jitter (PIL's and torch's integer/float blends: up to
    ~3 levels): 99% of values within 3 levels and a mean difference under 0.5."""
    sets = {b: vdata.build_datasets("imagefolder", str(jpegs), 32, recipe, backend=b) for b in vdata.BACKENDS}
    lo, hi = ((0 - MEAN) / STD).flatten(), ((1 - MEAN) / STD).flatten()  # e.g. R: -2.118 .. 2.249
    seen = []
    for seed, epoch in ((0, 0), (0, 1), (5, 0)):
        for b in vdata.BACKENDS:
            sets[b].train.set_epoch(epoch, seed)
        for i in range(len(sets["pil"].train)):
            (a, ya), (t, yt) = sets["pil"].train[i], sets["tensor"].train[i]
            assert ya == yt == i // 3
            assert a.shape == t.shape == (3, 32, 32) and a.dtype == t.dtype == torch.float32
            for x in (a, t):
                assert (x.amin((1, 2)) >= lo - 1e-5).all() and (x.amax((1, 2)) <= hi + 1e-5).all()
            d = (levels(a) - levels(t)).abs()
            if recipe == "imagenet":
                assert d.max() <= 2.0 + 1e-3, (seed, epoch, i, float(d.max()))
            else:
                assert (d <= 3.0 + 1e-3).float().mean() >= 0.99 and d.mean() < 0.5, (seed, epoch, i)
            seen.append(a)
    # the draws do depend on the seed and epoch (else agreeing would prove little)
    n = len(sets["pil"].train)
    assert not torch.equal(seen[0], seen[n]) and not torch.equal(seen[0], seen[2 * n])


def box_from_ramp(x, size: int, width: int, height: int):
    """(top, left, height, width, flipped) of the crop that made ``x`` from the ramp image
    R = 255 x / (width - 1), G = 255 y / (height - 1). An antialiased bilinear resize keeps a
    linear ramp linear away from the crop's edges: output column c (centre c + 0.5, in output
    pixels) holds source column  left - 0.5 + (c + 0.5) w / size,  so a least-squares line
    through the inner columns has slope w / size and intercept left - 0.5. A flipped row holds
    column size - 1 - c there: slope -w / size, intercept left - 0.5 + w. Rows alike with G."""
    px = levels(x)
    u = np.arange(2, size - 2) + 0.5  # inner columns/rows: the filter (1 output pixel) fits
    found = []
    for ch, extent, axis in ((1, height, 1), (0, width, 0)):  # rows from G, columns from R
        profile = px[ch].mean(axis).numpy()[2 : size - 2] * (extent - 1) / 255.0
        slope, icpt = np.polyfit(u, profile, 1)
        flipped = bool(slope < 0)
        if flipped:
            slope, icpt = -slope, icpt + slope * size  # the old slope: icpt - w
        found.append((icpt + 0.5, slope * size, flipped))
    (top, h, _), (left, w, flipped) = found
    return top, left, h, w, flipped


@pytest.mark.parametrize("backend", vdata.BACKENDS)
def test_seeded_crop_box_is_the_pil_transforms_draw(tmp_path, backend):
    """The crop box and flip each backend applies, read back from the pixels of a coordinate
    ramp, are the ones torchvision's v1 RandomResizedCrop.get_params (scale 0.08-1, ratio
    3/4-4/3) and RandomHorizontalFlip's coin (torch.rand(1) < 0.5) draw after
    torch.manual_seed(image_seed(seed, epoch, i)): the PIL path's draws, so a run augments alike
    whichever backend. Within 1 pixel (the ramp is quantised to 255/199 levels a pixel)."""
    W, H, size = 200, 150, 32
    y, x = np.mgrid[0:H, 0:W]
    ramp = np.stack(
        [np.round(255 * x / (W - 1)), np.round(255 * y / (H - 1)), np.full_like(x, 128)], -1
    ).astype(np.uint8)
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(ramp).save(tmp_path / split / "a" / "0.png")
    train = vdata.build_datasets("imagefolder", str(tmp_path), size, backend=backend).train
    checked = 0
    for epoch in range(12):
        train.set_epoch(epoch, seed=7)
        torch.manual_seed(vdata.image_seed(7, epoch, 0))
        i, j, h, w = T1.RandomResizedCrop.get_params(Image.fromarray(ramp), (0.08, 1.0), (3 / 4, 4 / 3))
        flip = bool(torch.rand(1) < 0.5)
        top, left, hh, ww, flipped = box_from_ramp(train[0][0], size, W, H)
        assert flipped == flip, epoch
        assert abs(hh - h) < 1 and abs(ww - w) < 1 and abs(top - i) < 1 and abs(left - j) < 1, (
            epoch,
            (i, j, h, w),
            (top, left, hh, ww),
        )
        checked += flip
    assert 0 < checked < 12  # both coin sides were seen


def test_eval_items_agree_and_constant_colour_is_normalised_exactly(jpegs, tmp_path):
    """Evaluation (resize to 32 * 256/224 = 36.57 -> 37 px on the short side, centre crop 32):
    the two backends within 2 levels on the JPEGs. A constant (128, 64, 200) PNG stays constant
    through every transform but rotation, so its items are exactly (v/255 - mean)/std, by hand:
    R (0.501961 - 0.485)/0.229 = 0.074065, G (0.250980 - 0.456)/0.224 = -0.915266,
    B (0.784314 - 0.406)/0.225 = 1.681394."""
    sets = {b: vdata.build_datasets("imagefolder", str(jpegs), 32, backend=b) for b in vdata.BACKENDS}
    for i in range(len(sets["pil"].val)):
        a, t = sets["pil"].val[i][0], sets["tensor"].val[i][0]
        assert a.shape == t.shape == (3, 32, 32)
        assert (levels(a) - levels(t)).abs().max() <= 2.0 + 1e-3
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.new("RGB", (50, 40), (128, 64, 200)).save(tmp_path / split / "a" / "0.png")
    want = torch.tensor([0.074065, -0.915266, 1.681394])[:, None, None].expand(3, 32, 32)
    for b in vdata.BACKENDS:
        ds = vdata.build_datasets("imagefolder", str(tmp_path), 32, backend=b)
        for x in (ds.train[0][0], ds.val[0][0], ds.train_eval[0][0]):
            torch.testing.assert_close(x, want, atol=1e-4, rtol=0)


def test_unknown_backend_is_refused(jpegs, capsys):
    with pytest.raises(VisionError, match="unknown backend 'jpeg'"):
        vdata.build_datasets("imagefolder", str(jpegs), 32, backend="jpeg")
    with pytest.raises(SystemExit) as e:
        distill.get_args_parser().parse_args(["--backend", "jpeg"])
    assert e.value.code == 2 and "invalid choice: 'jpeg'" in capsys.readouterr().err
    assert distill.get_args_parser().parse_args(["--backend", "Tensor"]).backend == "tensor"


# ----------------------------------------------------------------------------- the trainer
def test_training_with_the_tensor_backend_and_resume_with_pil(jpegs, tmp_path, monkeypatch):
    """distill.py --backend tensor trains (one loader worker: the reader runs in a worker) and
    writes its backend into args.json; --resume may switch to pil (the same files, draws and
    loss: accepted); dump_features.py reads with the checkpoint's backend unless given."""
    out = tmp_path / "out"
    common = [
        "--dataset",
        "imagefolder",
        "--data",
        str(jpegs),
        "--image-size",
        "32",
        "--batch-size",
        "3",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
        "--print-freq",
        "100",
    ]
    distill.main(
        distill.get_args_parser().parse_args(
            [*common, "--epochs", "1", "--backend", "tensor", "--workers", "1"]
        )
    )
    assert json.loads((out / "args.json").read_text())["backend"] == "tensor"
    distill.main(
        distill.get_args_parser().parse_args(
            [*common, "--epochs", "2", "--backend", "pil", "--workers", "0", "--resume"]
        )
    )
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [0, 1] and all(r["train_samples"] == 9 for r in recs)
    assert all(math.isfinite(r["train_loss"]) for r in recs) and recs[-1]["val_samples"] == 3
    ck = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 2 and ck["args"]["backend"] == "pil"

    used = []
    real = vdata.build_datasets
    monkeypatch.setattr(vdata, "build_datasets", lambda *a, **k: used.append(k["backend"]) or real(*a, **k))
    for extra, want in (([], "pil"), (["--backend", "tensor"], "tensor")):
        dump_features.main(
            dump_features.get_args_parser().parse_args(
                [
                    str(out / "checkpoint.pt"),
                    "--output",
                    str(tmp_path / f"f{want}"),
                    "--workers",
                    "0",
                    "--device",
                    "cpu",
                    "--splits",
                    "valid",
                    *extra,
                ]
            )
        )
        assert used[-1] == want and (tmp_path / f"f{want}" / "valid" / "meta.json").exists()


def test_loader_bench_writes_both_backends_per_worker_count(tmp_path):
    """The bench on 6 of its own 500 x 375 JPEGs: images/s for each backend and worker count,
    the ratio being tensor / pil of those rates."""
    r = loader_bench(
        [*TINY_LOADER_BENCH, "--work", str(tmp_path / "jpg"), "--json", str(tmp_path / "loader.json")]
    )
    assert json.loads((tmp_path / "loader.json").read_text()) == json.loads(json.dumps(r))
    assert r["images"] == 6 and r["workers"] == [0, 1]
    for w in ("0", "1"):
        assert r["images_per_s"]["pil"][w] > 0 and r["images_per_s"]["tensor"][w] > 0
        assert r["ratio_tensor_over_pil"][w] == pytest.approx(
            r["images_per_s"]["tensor"][w] / r["images_per_s"]["pil"][w]
        )
    files = sorted((tmp_path / "jpg" / "train").glob("c*/*.jpg"))
    assert len(files) == 6 and Image.open(files[0]).size == (500, 375)
