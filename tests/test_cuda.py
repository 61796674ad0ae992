"""The CUDA paths, on a GPU only (skipped elsewhere; `python scripts/gpu_check.py` runs them):
the vision trainer on CUDA against the same run on CPU, bf16 autocast + channels_last +
torch.compile, the temperature sweep's per-student CUDA RNG streams, NCCL under torchrun, and
fairseq --fp16 with the teacher moved to half precision; the KD terms of half logits against a
float64 formula."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from vision_helpers import assert_features_give_the_logits, metrics, weights  # noqa: E402

from shared_metrics.featureset import FeatureSet  # noqa: E402
from vision import distill  # noqa: E402

DIGITS = "--dataset digits --limit-train 256 --limit-val 101 --workers 0 --print-freq 100".split()
DIGITS += ["--batch-size", "32", "--lr", "0.02"]


def run(*argv):
    distill.main(distill.get_args_parser().parse_args([*DIGITS, *argv]))


@pytest.fixture(autouse=True)
def restore_determinism():
    """distill.main(--deterministic) switches torch's deterministic mode on for the process: put it
    back after each test, so the later tests (compile, bf16) run as they would alone."""
    mode, warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(mode, warn_only=warn)
    torch.backends.cudnn.benchmark = benchmark


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A resnet18 teacher (α = 0.1) trained on the GPU with bf16 autocast and channels_last."""
    out = tmp_path_factory.mktemp("cuda_teacher")
    run(
        *"--device cuda --mode teacher --model resnet18 --label-smoothing 0.1 --epochs 3".split(),
        *("--amp", "--channels-last", "--output-dir", str(out)),
        "--dump-features",
        "--feature-dtype",
        "float32",
    )
    return out


def test_cuda_epoch_matches_the_same_epoch_on_cpu_and_bf16_tracks_fp32(tmp_path):
    """Same seed, data order and initial weights: one fp32 epoch on the GPU ends where the CPU run
    ends, up to TF32/cuDNN rounding; with bf16 autocast + channels_last, close to the fp32 epoch."""
    common = ["--mode", "teacher", "--model", "resnet18", "--epochs", "1", "--seed", "7", "--deterministic"]
    run(*common, "--device", "cuda", "--output-dir", str(tmp_path / "gpu"))
    run(*common, "--device", "cuda", "--amp", "--channels-last", "--output-dir", str(tmp_path / "bf16"))
    run(*common, "--device", "cpu", "--output-dir", str(tmp_path / "cpu"))
    g, h, c = (metrics(tmp_path / d / "metrics.jsonl")[0] for d in ("gpu", "bf16", "cpu"))
    assert g["train_loss"] == pytest.approx(c["train_loss"], rel=2e-2)
    assert g["val_loss"] == pytest.approx(c["val_loss"], rel=5e-2)
    assert h["train_loss"] == pytest.approx(g["train_loss"], rel=5e-2)
    wg, wc = weights(tmp_path / "gpu/checkpoint.pt"), weights(tmp_path / "cpu/checkpoint.pt")
    w = "conv1.weight"
    assert float((wg[w] - wc[w]).abs().max()) < 1e-2 * float(wc[w].abs().max())


def test_teacher_bf16_channels_last_on_cuda(teacher):
    recs = metrics(teacher / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [0, 1, 2] and all(np.isfinite(r["train_loss"]) for r in recs)
    assert recs[-1]["val_samples"] == 101
    assert all(
        v.dtype == torch.float32 and v.device.type == "cpu"  # saved as fp32, loads on CPU
        for v in weights(teacher / "checkpoint.pt").values()
        if v.is_floating_point()
    )
    fs = FeatureSet.open(teacher / "features" / "valid")
    assert_features_give_the_logits(fs, rtol=0.05, atol=0.1)


def test_compiled_student_sweep_with_amp(teacher, tmp_path):
    """--compile (student and teacher) + --amp + --channels-last, two temperatures, features dumped."""
    run(
        *"--device cuda --mode student --model resnet18 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--temperature 1 4 --epochs 1 --amp --channels-last --compile --output-dir".split(),
        str(tmp_path),
        "--dump-features",
    )
    for t in ("T1", "T4"):
        recs = metrics(tmp_path / t / "metrics.jsonl")
        assert len(recs) == 1 and all(
            np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in recs
        )
        assert FeatureSet.open(tmp_path / t / "features" / "train").num_samples == 256
    a, b = weights(tmp_path / "T1/checkpoint.pt"), weights(tmp_path / "T4/checkpoint.pt")
    assert not all(torch.equal(a[k], b[k]) for k in a)  # the temperature changed the student
    assert not any(
        k.startswith("_orig_mod.") for k in a
    )  # the plain module's names, loadable without compile


def test_sweep_student_equals_single_run_with_cuda_dropout(teacher, tmp_path):
    """mobilenet_v2's dropout draws from the CUDA generator: each student of a sweep has its own
    CUDA RNG stream, so the T = 4 student of {1, 4} is the student a T = 4 run trains alone."""
    common = [
        *"--device cuda --mode student --model mobilenet_v2 --teacher".split(),
        str(teacher / "checkpoint.pt"),
        *"--epochs 1 --seed 5 --deterministic".split(),
    ]
    run(*common, "--temperature", "1", "4", "--output-dir", str(tmp_path / "sweep"))
    run(*common, "--temperature", "4", "--output-dir", str(tmp_path / "single"))
    a, b = weights(tmp_path / "sweep/T4/checkpoint.pt"), weights(tmp_path / "single/T4/checkpoint.pt")
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)


def test_torchrun_on_one_gpu_uses_nccl_ddp(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [
            sys.executable,
            *"-m torch.distributed.run --nproc_per_node 1 --standalone".split(),
            os.path.join(ROOT, "vision", "distill.py"),
            *DIGITS,
            *"--device cuda --mode teacher --model resnet18 --epochs 1 --amp --output-dir".split(),
            str(tmp_path),
            "--dump-features",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| distributed: nccl, world size 1" in proc.stdout and "img/s" in proc.stdout
    assert FeatureSet.open(tmp_path / "features" / "valid").num_samples == 101
    assert metrics(tmp_path / "metrics.jsonl")[0]["val_samples"] == 101


def test_kd_terms_of_half_logits_match_a_float64_formula():
    from nmt_plugin.ls_kd import kd_token_terms

    g = torch.Generator().manual_seed(0)
    s = (torch.randn(64, 1000, generator=g) * 4).half()
    t = (torch.randn(64, 1000, generator=g) * 4).half()
    T = 2.0
    s_cuda = s.cuda().requires_grad_(True)
    cross, kl, entropy = kd_token_terms(s_cuda, T, teacher_logits=t.cuda())
    cross.sum().backward()
    # the closed forms, in float64 with numpy, from the very same half values
    s64, t64 = s.double().numpy() / T, t.double().numpy() / T
    log_ps = (
        s64
        - np.log(np.exp(s64 - s64.max(1, keepdims=True)).sum(1, keepdims=True))
        - s64.max(1, keepdims=True)
    )
    log_pt = (
        t64
        - np.log(np.exp(t64 - t64.max(1, keepdims=True)).sum(1, keepdims=True))
        - t64.max(1, keepdims=True)
    )
    pt = np.exp(log_pt)
    np.testing.assert_allclose(cross.detach().cpu().double().numpy(), -(pt * log_ps).sum(1), rtol=1e-4)
    np.testing.assert_allclose(entropy.cpu().double().numpy(), -(pt * log_pt).sum(1), rtol=1e-4)
    assert cross.dtype == torch.float32 and s_cuda.grad.dtype == torch.float16
    np.testing.assert_allclose(s_cuda.grad.cpu().double().numpy(), (np.exp(log_ps) - pt) / T, atol=2e-3)
    assert float(kl.min()) >= -1e-4 and not math.isnan(float(kl.sum()))


def test_fairseq_fp16_student_with_a_half_teacher(tmp_path_factory, tmp_path):
    from nmt_toy import TINY, fairseq, json_logs, kd_args, toy

    t = toy(tmp_path_factory)
    args = [a for a in TINY if a != "--cpu"]
    # a few updates an epoch: start the loss scale low (an overflowed update logs nothing)
    proc = fairseq(
        "train",
        t["data"],
        *args,
        *"--fp16 --fp16-init-scale 4 --max-epoch 2".split(),
        *kd_args(t["teacher"]),
        "--kd-temperature",
        "2",
        "--save-dir",
        tmp_path / "student",
    )
    text = proc.stdout + proc.stderr
    assert "teacher placed on cuda:0 as torch.float16" in text
    train = [r for r in json_logs(text) if "train_kd_loss" in r][-1]
    kd, kl, ent = (float(train["train_" + k]) for k in ("kd_loss", "kl", "teacher_entropy"))
    assert math.isfinite(kd) and kd == pytest.approx(kl + ent, abs=5e-3) and kl > -1e-3
    valid = [r for r in json_logs(text) if "valid_kd_loss" in r][-1]
    assert float(valid["valid_kd_loss"]) == pytest.approx(
        float(valid["valid_kl"]) + float(valid["valid_teacher_entropy"]), abs=5e-3
    )
    assert (tmp_path / "student" / "checkpoint_best.pt").exists()
