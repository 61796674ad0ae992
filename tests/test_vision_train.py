"""End-to-end runs of vision/distill.py on scikit-learn's digits (32 px, a few hundred images):
temperature-sweep equivalence, resume, 2-process DDP == 1 process, feature dumps."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from vision_helpers import assert_features_give_the_logits, dump, metrics, weights  # noqa: E402

from shared_metrics.featureset import FeatureSet  # noqa: E402
from vision import data as vdata  # noqa: E402
from vision import distill  # noqa: E402
from vision.models import build_model, find_head, load_pretrained  # noqa: E402

DATA = "--dataset digits --limit-train 128 --limit-val 101 --workers 0 --device cpu --print-freq 100".split()
#: the data of the DDP feature-dump test: splits of 50 and 37 images, which two ranks halve unevenly
ODD_LIMITS = "--limit-train 50 --limit-val 37 --workers 0 --device cpu".split()
ODD_DATA = ["--dataset", "digits", *ODD_LIMITS]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a small shared CPU, OpenMP threads spinning against other work
    made these runs ten times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(*argv):
    args = distill.get_args_parser().parse_args([*DATA, *argv])
    distill.main(args)
    return args


def assert_same_weights(a, b, atol=0.0):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A resnet18 teacher with label smoothing 0.1 (two short epochs), its features dumped."""
    out = tmp_path_factory.mktemp("teacher")
    run(
        *"--mode teacher --model resnet18 --label-smoothing 0.1 --epochs 2 --batch-size 32 --lr 0.02".split(),
        "--output-dir",
        str(out),
        "--dump-features",
        "--feature-dtype",
        "float32",
    )
    return out


def test_teacher_outputs_and_feature_dump(teacher):
    recs = metrics(teacher / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [0, 1]
    assert recs[-1]["val_samples"] == 101 and len(recs[-1]["val_per_class_acc1"]) == 10
    ck = torch.load(teacher / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["model_name"] == "resnet18" and ck["num_classes"] == 10 and ck["alpha"] == 0.1
    assert ck["epoch"] == 2 and ck["classes"] == [str(i) for i in range(10)]
    for split, n in (("train", 128), ("valid", 101)):
        fs = FeatureSet.open(teacher / "features" / split)
        assert fs.num_samples == n and fs.dim == 512 and fs.num_classes == 10
        assert fs.meta["alpha"] == 0.1 and fs.meta["temperature"] is None
        assert fs.meta["split"] == split and fs.meta["model"] == "resnet18"
        assert fs.meta["task"] == "vision" and fs.meta["seed"] == 0
        assert_features_give_the_logits(fs, rtol=1e-2, atol=1e-2)


def test_standalone_dump_matches_and_test_only(teacher, tmp_path, capsys):
    out = tmp_path / "feats"
    dump(
        str(teacher / "checkpoint.pt"),
        "--output",
        str(out),
        *"--limit-train 128 --limit-val 101 --workers 0 --device cpu --feature-dtype float32".split(),
    )
    for split in ("train", "valid"):
        a, b = FeatureSet.open(out / split), FeatureSet.open(teacher / "features" / split)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
        assert np.array_equal(a.labels, b.labels) and a.meta == b.meta
    capsys.readouterr()
    run("--mode", "teacher", "--model", "resnet18", "--output-dir", str(teacher), "--test-only")
    acc = metrics(teacher / "metrics.jsonl")[-1]["val_acc1"]
    assert f"test: acc1 {acc:.3f}" in capsys.readouterr().out


def test_test_only_checks_the_architecture_and_dumps_what_was_trained(teacher, tmp_path):
    """--test-only --dump-features records the checkpoint's α and seed, not this command's; a
    checkpoint that does not fit the model these arguments build is a one-line error."""
    import shutil

    shutil.copy(teacher / "checkpoint.pt", tmp_path / "checkpoint.pt")
    with pytest.raises(distill.VisionError, match="does not fit the model built from these arguments"):
        run(
            *"--mode teacher --model resnet18 --small-input --output-dir".split(),
            str(tmp_path),
            "--test-only",
        )
    run(
        *"--mode teacher --model resnet18 --output-dir".split(),
        str(tmp_path),
        *"--test-only --dump-features --seed 5 --feature-dtype float32".split(),
    )
    fs = FeatureSet.open(tmp_path / "features" / "valid")
    ref = FeatureSet.open(teacher / "features" / "valid")
    assert fs.meta == ref.meta and fs.meta["alpha"] == 0.1 and fs.meta["seed"] == 0
    np.testing.assert_allclose(fs.features, ref.features, rtol=1e-5, atol=1e-5)


def test_grey_normalisation_does_not_depend_on_the_limits():
    full, few = vdata.build_datasets("digits"), vdata.build_datasets("digits", limit_train=16)
    assert len(few.train) == 16 and torch.equal(full.val[3][0], few.val[3][0])


def test_sweep_student_equals_single_temperature_run(teacher, tmp_path):
    """mobilenet_v2 has dropout: each student keeps its own RNG stream, so the T=4 student of a
    T in {1, 4} sweep is the very student a T=4 run trains alone (same init, data, masks)."""
    common = [
        *"--mode student --model mobilenet_v2 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--epochs 1 --batch-size 32 --lr 0.02 --seed 5 --beta 0.7".split(),
    ]
    run(*common, "--temperature", "1", "4", "--output-dir", str(tmp_path / "sweep"), "--dump-features")
    run(*common, "--temperature", "4", "--output-dir", str(tmp_path / "single"))
    assert sorted(os.listdir(tmp_path / "sweep")) == ["T1", "T4"]
    assert_same_weights(tmp_path / "sweep/T4/checkpoint.pt", tmp_path / "single/T4/checkpoint.pt")
    assert metrics(tmp_path / "sweep/T4/metrics.jsonl") == metrics(tmp_path / "single/T4/metrics.jsonl")
    with pytest.raises(AssertionError):  # and the temperature does change the student
        assert_same_weights(tmp_path / "sweep/T1/checkpoint.pt", tmp_path / "sweep/T4/checkpoint.pt")
    for T in ("T1", "T4"):  # the sweep's one shared pass == a pass per student
        dump(
            str(tmp_path / "sweep" / T / "checkpoint.pt"),
            "--output",
            str(tmp_path / "alone" / T),
            *"--splits valid --limit-val 101 --workers 0 --device cpu".split(),
        )
        a = FeatureSet.open(tmp_path / "alone" / T / "valid")
        b = FeatureSet.open(tmp_path / "sweep" / T / "features/valid")
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5, atol=1e-5)
        assert np.array_equal(a.labels, b.labels) and a.meta == b.meta
    fs = FeatureSet.open(tmp_path / "sweep/T4/features/valid")
    assert fs.meta["temperature"] == 4.0 and fs.meta["alpha"] == 0.1
    assert fs.meta["model"] == "mobilenet_v2" and fs.dim == 1280
    ck = torch.load(tmp_path / "sweep/T1/checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["temperature"] == 1.0 and ck["alpha"] == 0.1 and ck["mode"] == "student"


def test_resume_ends_where_an_uninterrupted_run_ends(teacher, tmp_path, monkeypatch):
    common = [
        *"--mode student --model mobilenet_v2 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 2 --batch-size 32 --lr 0.02 --lr-step 1 --lr-gamma 0.5".split(),
    ]
    run(*common, "--epochs", "2", "--output-dir", str(tmp_path / "straight"))
    # the same run, interrupted in the middle of its second epoch (4 steps an epoch)
    real_step, calls = distill.kd.train_step, []

    def dying_step(*a, **kw):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_step(*a, **kw)

    monkeypatch.setattr(distill.kd, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run(*common, "--epochs", "2", "--output-dir", str(tmp_path / "stop"))
    monkeypatch.undo()
    ck = torch.load(tmp_path / "stop/T2/checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 1
    with pytest.raises(distill.VisionError, match="--resume"):  # no silent restart
        run(*common, "--epochs", "2", "--output-dir", str(tmp_path / "stop"))
    run(*common, "--epochs", "2", "--output-dir", str(tmp_path / "stop"), "--resume")
    assert_same_weights(tmp_path / "straight/T2/checkpoint.pt", tmp_path / "stop/T2/checkpoint.pt")
    a = metrics(tmp_path / "straight/T2/metrics.jsonl")
    b = metrics(tmp_path / "stop/T2/metrics.jsonl")
    assert a == b and [r["lr"] for r in a] == [0.02, 0.01]
    # a resume continues the same training: another loss or data is refused (more epochs are not)
    with pytest.raises(distill.VisionError, match=r"trained with --beta 1.0 \(now 0.5\)"):
        run(*common, "--epochs", "3", "--output-dir", str(tmp_path / "stop"), "--resume", "--beta", "0.5")
    with pytest.raises(distill.VisionError, match=r"--limit-train 128 \(now 64\)"):
        run(
            *common,
            "--epochs",
            "3",
            "--output-dir",
            str(tmp_path / "stop"),
            "--resume",
            "--limit-train",
            "64",
        )


@pytest.mark.parametrize("die_at,epochs", [(4, [2, 1]), (2, [1, None])])
def test_sweep_killed_between_student_checkpoints_catches_up(teacher, tmp_path, monkeypatch, die_at, epochs):
    """The students of a sweep save one after the other: killed in between, one student is an
    epoch ahead; --resume trains the one behind alone and ends where the straight sweep ends."""
    common = [
        "--mode",
        "student",
        "--model",
        "resnet18",  # the teacher's 32 px images
        "--teacher",
        str(teacher / "checkpoint.pt"),
        *"--temperature 1 4 --batch-size 32 --lr 0.02 --epochs 2".split(),
    ]
    run(*common, "--output-dir", str(tmp_path / "straight"))
    real_save, calls = distill.utils.save_on_master, []

    def dying_save(*a, **kw):
        calls.append(1)
        if len(calls) == die_at:  # 4: epoch 2, T1 saved, killed before T4; 2: the same in epoch 1
            raise KeyboardInterrupt
        return real_save(*a, **kw)

    monkeypatch.setattr(distill.utils, "save_on_master", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(*common, "--output-dir", str(tmp_path / "stop"))
    monkeypatch.undo()
    saved = [tmp_path / f"stop/T{t}/checkpoint.pt" for t in (1, 4)]
    assert [torch.load(p, weights_only=True)["epoch"] if p.exists() else None for p in saved] == epochs
    run(*common, "--output-dir", str(tmp_path / "stop"), "--resume")
    for t in (1, 4):
        assert_same_weights(tmp_path / f"straight/T{t}/checkpoint.pt", tmp_path / f"stop/T{t}/checkpoint.pt")
        assert metrics(tmp_path / f"straight/T{t}/metrics.jsonl") == metrics(
            tmp_path / f"stop/T{t}/metrics.jsonl"
        )


def test_divergence_stops_before_saving(tmp_path):
    with pytest.raises(distill.VisionError, match="diverged in epoch 0"):
        run(
            *"--mode teacher --model resnet18 --small-input --image-size 8 --batch-size 32".split(),
            *("--epochs", "2", "--lr", "1e30", "--output-dir", str(tmp_path / "t")),
        )
    assert not (tmp_path / "t/checkpoint.pt").exists()


def torchrun(*argv, nproc=2, script="distill.py"):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--standalone",
            os.path.join(ROOT, "vision", script),
            *argv,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    return out


def test_two_process_ddp_equals_one_process(teacher, tmp_path):
    """torchrun --nproc_per_node 2 with batch 32 each == one process with batch 64, for both
    students of a 2-temperature sweep (one DDP wrapper per student, one teacher forward). squeezenet
    without dropout has no BatchNorm (per-process batch statistics would differ; SyncBatchNorm
    has no CPU kernels) and no random layer."""
    common = [
        *"--mode student --model squeezenet1_1 --model-arg dropout=0.0 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 2 4 --epochs 2 --lr 0.01 --seed 3 --label-smoothing 0.1 --beta 0.5".split(),
    ]
    torchrun(*DATA, *common, "--batch-size", "32", "--output-dir", str(tmp_path / "ddp"))
    run(*common, "--batch-size", "64", "--output-dir", str(tmp_path / "one"))
    for T in ("T2", "T4"):
        assert_same_weights(
            tmp_path / f"ddp/{T}/checkpoint.pt", tmp_path / f"one/{T}/checkpoint.pt", atol=1e-4
        )
        a, b = metrics(tmp_path / f"ddp/{T}/metrics.jsonl"), metrics(tmp_path / f"one/{T}/metrics.jsonl")
        assert len(a) == len(b) == 2
        for ra, rb in zip(a, b):
            assert ra["val_samples"] == rb["val_samples"] == 101  # no padded sample counted twice
            assert ra["train_samples"] == rb["train_samples"] == 128
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
            assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=1e-3)
    # the two temperatures really train different students
    assert metrics(tmp_path / "one/T2/metrics.jsonl")[-1]["train_loss"] != pytest.approx(
        metrics(tmp_path / "one/T4/metrics.jsonl")[-1]["train_loss"], rel=1e-3
    )


def test_ddp_feature_dump_covers_the_whole_split(tmp_path, capsys):
    """Under DDP each rank dumps half of each split and rank 0 joins the halves; both ranks hold
    the checkpointed model then (BatchNorm running statistics broadcast from rank 0), so the
    dump and the logged validation equal one process's on the saved checkpoint."""
    out = torchrun(
        *ODD_DATA,
        *"--mode teacher --epochs 1 --batch-size 16 --output-dir".split(),
        str(tmp_path),
        "--dump-features",
    )
    assert "img/s" in out and "eta:" in out and "| distributed: gloo, world size 2" in out
    assert FeatureSet.open(tmp_path / "features/train").num_samples == 50
    assert FeatureSet.open(tmp_path / "features/valid").num_samples == 37
    assert metrics(tmp_path / "metrics.jsonl")[0]["val_samples"] == 37
    assert sorted(os.listdir(tmp_path / "features")) == ["train", "valid"]  # no part left
    # each rank dumped half of each split; rank 0 joined them: the same as one process
    dump(str(tmp_path / "checkpoint.pt"), "--output", str(tmp_path / "alone"), *ODD_LIMITS)
    for split in ("train", "valid"):
        a, b = FeatureSet.open(tmp_path / "alone" / split), FeatureSet.open(tmp_path / "features" / split)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-4, atol=1e-5)
        assert np.array_equal(a.labels, b.labels) and a.meta == b.meta
    capsys.readouterr()
    distill.main(
        distill.get_args_parser().parse_args(
            [*ODD_DATA, *"--mode teacher --output-dir".split(), str(tmp_path), "--test-only"]
        )
    )
    rec = metrics(tmp_path / "metrics.jsonl")[-1]
    assert f"acc1 {rec['val_acc1']:.3f}" in capsys.readouterr().out


def test_standalone_dump_under_torchrun(teacher, tmp_path):
    """vision/dump_features.py under torchrun: two ranks, one slice each, joined by rank 0."""
    out = torchrun(
        str(teacher / "checkpoint.pt"),
        "--output",
        str(tmp_path),
        *"--limit-train 128 --limit-val 101 --workers 0 --device cpu --feature-dtype float32".split(),
        script="dump_features.py",
    )
    assert "| distributed: gloo, world size 2" in out and "img/s" in out
    assert sorted(os.listdir(tmp_path)) == ["train", "valid"]
    for split in ("train", "valid"):
        a, b = FeatureSet.open(tmp_path / split), FeatureSet.open(teacher / "features" / split)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
        assert np.array_equal(a.labels, b.labels) and a.meta == b.meta


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_small_input_keeps_resolution(name):
    torch.manual_seed(0)
    model = build_model(name, 10, small_input=True).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    if name == "resnet18":
        assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)


def test_pretrained_weights_skip_a_classifier_of_another_size(tmp_path):
    torch.manual_seed(1)
    imagenet_like = build_model("resnet18", 1000)
    torch.save(imagenet_like.state_dict(), tmp_path / "r18.pth")
    model = build_model("resnet18", 10)
    left = load_pretrained(model, str(tmp_path / "r18.pth"))
    assert left == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, imagenet_like.conv1.weight)


def test_imagefolder_cub_recipe_channels_last(tmp_path):
    """A tiny ImageFolder (train/ and val/ class folders of PNGs) through the CUB augmentations,
    channels_last, fine-tuning from --pretrained weights."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for cls in ("001.Albatross", "002.Auklet", "003.Cowbird"):
            d = tmp_path / "cub" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")
    torch.save(build_model("resnet18", 1000).state_dict(), tmp_path / "r18.pth")
    args = distill.get_args_parser().parse_args(
        [
            "--dataset",
            "imagefolder",
            "--data",
            str(tmp_path / "cub"),
            *"--recipe cub --image-size 32 --epochs 1 --batch-size 4 --workers 0 --device cpu".split(),
            *"--channels-last --label-smoothing 0.1 --pretrained".split(),
            str(tmp_path / "r18.pth"),
            "--output-dir",
            str(tmp_path / "out"),
            "--dump-features",
            "--feature-dtype",
            "float32",
        ]
    )
    distill.main(args)
    assert args.lr == 0.01  # the CUB recipe's default
    rec = metrics(tmp_path / "out/metrics.jsonl")[0]
    assert rec["train_samples"] == 18 and rec["val_samples"] == 9
    fs = FeatureSet.open(tmp_path / "out/features/train")
    assert fs.classes == ["001.Albatross", "002.Auklet", "003.Cowbird"] and fs.num_samples == 18
    # augmentation draws depend on (seed, epoch, image) only, not on torch's global RNG (which
    # is left as it was): every rank of a DDP run augments its own images independently
    ds = vdata.build_datasets("imagefolder", str(tmp_path / "cub"), 32, "cub", limit_train=3)
    assert [ds.train[i][1] for i in range(3)] == [0, 1, 2]  # spread over the class folders
    ds.train.set_epoch(0, seed=3)
    state = torch.get_rng_state()
    a = ds.train[2][0]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    assert torch.equal(ds.train[2][0], a)
    ds.train.set_epoch(1, seed=3)
    assert not torch.equal(ds.train[2][0], a)


@pytest.mark.skipif(
    not os.path.exists(os.path.join(vdata.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_idx_files():
    ds = vdata.build_datasets("fashion-mnist", limit_train=64, limit_val=32, image_size=28)
    assert len(ds.train) == 64 and len(ds.val) == 32 and ds.classes[0] == "T-shirt/top"
    x, y = ds.val[0]
    assert x.shape == (3, 28, 28) and 0 <= y < 10
    labels = vdata.read_idx(os.path.join(vdata.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert labels.shape == (10000,) and np.bincount(labels).tolist() == [1000] * 10


@pytest.mark.parametrize(
    "name,dim",
    [
        ("resnet18", 512),
        ("resnet50", 2048),
        ("mobilenet_v2", 1280),
        ("efficientnet_b0", 1280),
        ("convnext_tiny", 768),
    ],
)
def test_head_input_is_the_penultimate_feature(name, dim):
    """The dumped feature is the input of the last Linear with K outputs: W f + b = logits."""
    torch.manual_seed(0)
    model = build_model(name, 7).eval()
    head = find_head(model, 7)
    assert head.in_features == dim
    seen = []
    head.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(seen[0] @ head.weight.T + head.bias, logits)


def test_student_with_amp_and_channels_last_on_cpu(teacher, tmp_path):
    """--amp (bf16 autocast) and --channels-last through the whole trainer on CPU: the weights
    stay float32, the loss finite, and the dumped features still reproduce the logits."""
    run(
        *"--mode student --model resnet18 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 1 4 --epochs 1 --batch-size 32 --lr 0.01 --amp --channels-last --output-dir".split(),
        str(tmp_path),
        "--dump-features",
    )
    for t in ("T1", "T4"):
        rec = metrics(tmp_path / t / "metrics.jsonl")[-1]
        assert np.isfinite(rec["train_loss"]) and rec["val_samples"] == 101
        assert all(
            v.dtype == torch.float32
            for v in weights(tmp_path / t / "checkpoint.pt").values()
            if v.is_floating_point()
        )
        fs = FeatureSet.open(tmp_path / t / "features" / "valid")
        assert_features_give_the_logits(fs, rtol=0.05, atol=0.1)


def test_teacher_with_other_class_names_is_refused(teacher, tmp_path):
    ck = torch.load(teacher / "checkpoint.pt", map_location="cpu", weights_only=True)
    ck["classes"] = [*ck["classes"][:3], "three", *ck["classes"][4:]]
    torch.save(ck, tmp_path / "renamed.pt")
    with pytest.raises(distill.VisionError, match=r"class 3 is 'three' for the teacher, '3' in the data"):
        run(
            *"--mode student --model resnet18 --teacher".split(),
            str(tmp_path / "renamed.pt"),
            *"--temperature 2 --epochs 1 --output-dir".split(),
            str(tmp_path / "s"),
        )


def test_teacher_trained_on_other_images_is_refused(teacher, tmp_path):
    """The teacher learned from 32 px digits: a student fed 8 px images is refused before any
    work (the teacher would score near chance on them); other limits, epochs, lr or batch size
    change nothing the teacher sees, and are accepted."""
    common = [
        *"--mode student --model resnet18 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 2 --epochs 1".split(),
    ]
    with pytest.raises(
        distill.VisionError,
        match=r"checkpoint.pt was trained with --image-size 32 "
        r"\(this run: 8\)",
    ):
        run(*common, "--image-size", "8", "--small-input", "--output-dir", str(tmp_path / "s8"))
    assert not (tmp_path / "s8").exists()
    run(
        *common,
        *"--limit-train 32 --limit-val 20 --lr 0.05 --batch-size 16 --output-dir".split(),
        str(tmp_path / "ok"),
    )
    rec = metrics(tmp_path / "ok/T2/metrics.jsonl")[0]
    assert rec["train_samples"] == 32 and rec["val_samples"] == 20


def test_dump_of_a_plain_state_dict_with_model(teacher, tmp_path):
    """A .pt holding only a state dict (as torchvision's weights): --model names the architecture,
    the classes come from the data; the features are the full checkpoint's."""
    torch.save(weights(teacher / "checkpoint.pt"), tmp_path / "plain.pt")
    argv = [
        str(tmp_path / "plain.pt"),
        "--output",
        str(tmp_path / "f"),
        *"--dataset digits --splits valid --limit-val 101 --workers 0 --device cpu".split(),
        *("--feature-dtype", "float32"),
    ]
    with pytest.raises(
        distill.VisionError, match=r"plain state dict: say which model it is \(--model NAME\)"
    ):
        dump(*argv)
    dump(*argv, "--model", "resnet18")
    a, b = FeatureSet.open(tmp_path / "f/valid"), FeatureSet.open(teacher / "features/valid")
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
    assert np.array_equal(a.labels, b.labels) and a.classes == b.classes
    assert a.meta["model"] == "resnet18" and a.meta["alpha"] is None  # a state dict records no α
    with pytest.raises(distill.VisionError, match="was trained without --small-input"):
        dump(str(teacher / "checkpoint.pt"), "--small-input", *argv[1:])


def test_lr_warmup_rises_linearly_per_iteration_then_follows_the_steps(tmp_path, monkeypatch):
    seen, real = [], distill.kd.train_step

    def spy(slots, *a, **k):
        seen.append(slots[0].optimizer.param_groups[0]["lr"])
        return real(slots, *a, **k)

    monkeypatch.setattr(distill.kd, "train_step", spy)
    run(
        *"--mode teacher --model resnet18 --epochs 3 --lr 0.1 --lr-step 2 --lr-warmup-epochs 1".split(),
        *("--batch-size", "32", "--output-dir", str(tmp_path)),
    )
    # 128 images / 32 = 4 iterations an epoch: 0.1 * (1..4)/4, then 0.1, then 0.1 * 0.1 from epoch 2
    assert seen == pytest.approx([0.025, 0.05, 0.075, 0.1] + [0.1] * 4 + [0.01] * 4)


def test_compiled_sweep_on_cpu_matches_eager(teacher, tmp_path):
    """--compile (torch.compile of the students and the teacher; inductor's CPU backend) trains the
    same students as eager mode up to float reassociation, and writes plain checkpoints (no
    ``_orig_mod.`` prefix) and feature sets that reproduce the logits."""
    common = (
        *"--mode student --model resnet18 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 1 2 --epochs 1 --batch-size 32 --lr 0.01".split(),
    )
    run(*common, "--output-dir", str(tmp_path / "eager"))
    run(*common, "--compile", "--output-dir", str(tmp_path / "compiled"), "--dump-features")
    for t in ("T1", "T2"):
        e, c = (metrics(tmp_path / d / t / "metrics.jsonl")[-1] for d in ("eager", "compiled"))
        assert c["train_loss"] == pytest.approx(e["train_loss"], rel=1e-2)
        # the logged KD terms (nats, no T²): kd_loss = kl + teacher entropy, and at β = 1 loss = T²·kd_loss
        T2 = float(t[1:]) ** 2
        assert e["train_kd_loss"] == pytest.approx(e["train_kl"] + e["train_teacher_entropy"], rel=1e-6)
        assert e["train_loss"] == pytest.approx(T2 * e["train_kd_loss"], rel=1e-5)
        assert c["train_teacher_entropy"] == pytest.approx(e["train_teacher_entropy"], rel=1e-3)
        # (validation loss is left out: after 4 steps eval-mode BatchNorm makes it ~100 and chaotic)
        e_w, c_w = (
            weights(tmp_path / "eager" / t / "checkpoint.pt"),
            weights(tmp_path / "compiled" / t / "checkpoint.pt"),
        )
        assert e_w.keys() == c_w.keys()
        for k in e_w:
            torch.testing.assert_close(
                c_w[k], e_w[k], rtol=1e-2, atol=1e-2, msg=lambda m, t=t, k=k: f"{t} {k}: {m}"
            )
        fs = FeatureSet.open(tmp_path / "compiled" / t / "features" / "valid")
        assert_features_give_the_logits(fs, rtol=1e-3, atol=1e-3)
    assert "train_kl" not in metrics(teacher / "metrics.jsonl")[-1]  # no KD terms for a teacher


def test_teacher_alpha_fills_in_where_the_checkpoint_records_none(teacher, tmp_path):
    """A checkpoint with α = None (a student of a plain state dict, later used as a teacher) takes
    --teacher-alpha; one that records α refuses a different --teacher-alpha."""
    ck = torch.load(teacher / "checkpoint.pt", map_location="cpu", weights_only=True)
    torch.save(dict(ck, alpha=None), tmp_path / "unknown_alpha.pt")
    common = "--mode student --model resnet18 --temperature 2 --epochs 1 --batch-size 64".split()
    common += ["--limit-train", "64", "--limit-val", "32"]
    run(
        *common,
        "--teacher",
        str(tmp_path / "unknown_alpha.pt"),
        "--teacher-alpha",
        "0.1",
        "--output-dir",
        str(tmp_path / "s"),
    )
    assert metrics(tmp_path / "s" / "T2" / "metrics.jsonl")[-1]["alpha"] == 0.1
    with pytest.raises(
        distill.VisionError, match=r"--teacher-alpha 0.2 contradicts the teacher checkpoint's α = 0.1"
    ):
        run(
            *common,
            "--teacher",
            str(teacher / "checkpoint.pt"),
            "--teacher-alpha",
            "0.2",
            "--output-dir",
            str(tmp_path / "s2"),
        )
