"""vision.dump_features.dump_all in a 2-process gloo group (torch.multiprocessing, no training):
each rank dumps a slice, rank 0 joins them in order; a failure on one rank fails both and leaves
nothing under the final names."""

import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from conftest import free_port  # noqa: E402

from shared_metrics.featureset import FeatureSet  # noqa: E402
from vision.dump_features import dump_all  # noqa: E402

CLASSES = ["a", "b", "c"]


def data(n_train=11, n_val=1):
    g = torch.Generator().manual_seed(0)

    def mk(n):
        return torch.utils.data.TensorDataset(torch.randn(n, 4, generator=g), torch.arange(n) % 3)

    return SimpleNamespace(train_eval=mk(n_train), val=mk(n_val), classes=CLASSES)


class Net(torch.nn.Module):
    """features = tanh(A x + a), logits = W features + b; the same weights on every rank (seeded)."""

    def __init__(self, seed, fail_on_rank=None):
        super().__init__()
        torch.manual_seed(seed)
        self.body = torch.nn.Linear(4, 5)
        self.fc = torch.nn.Linear(5, 3)
        self.fail_on_rank = fail_on_rank

    def forward(self, x):
        if self.fail_on_rank is not None and dist.is_initialized() and dist.get_rank() == self.fail_on_rank:
            raise RuntimeError("boom on this rank")
        return self.fc(torch.tanh(self.body(x)))


def _worker(rank, port, out, fail_on_rank, errors, thresholds=None):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    if thresholds:  # float16 above / logits up to this many values, scaled down to the toy
        from vision import dump_features

        dump_features.AUTO_FP16_VALUES, dump_features.MAX_LOGIT_VALUES = thresholds
    try:
        models = [Net(1, fail_on_rank), Net(2)]
        dump_all(
            models,
            data(),
            [os.path.join(out, "m1"), os.path.join(out, "m2")],
            num_classes=3,
            ckpt_metas=[{"model_name": "net", "temperature": t} for t in (1.0, 2.0)],
            dataset_name="toy",
            device=torch.device("cpu"),
            batch_size=4,
            workers=0,
        )
    except Exception as e:  # noqa: BLE001 - reported to the test
        errors[rank] = str(e)
    finally:
        dist.destroy_process_group()


def run_two(out, fail_on_rank=None, thresholds=None):
    errors = mp.Manager().dict()
    mp.spawn(_worker, args=(free_port(), str(out), fail_on_rank, errors, thresholds), nprocs=2)
    return dict(errors)


def test_two_ranks_write_what_one_process_writes(tmp_path):
    assert run_two(tmp_path / "ddp") == {}
    ds = data()
    for name, seed, T in (("m1", 1, 1.0), ("m2", 2, 2.0)):
        net = Net(seed)
        for split, subset in (("train", ds.train_eval), ("valid", ds.val)):
            x, y = subset.tensors
            fs = FeatureSet.open(tmp_path / "ddp" / name / split)
            with torch.no_grad():  # independent: the hidden activations and logits by hand
                h = torch.tanh(x @ net.body.weight.T + net.body.bias)
                z = h @ net.fc.weight.T + net.fc.bias
            np.testing.assert_allclose(fs.features, h.numpy(), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(fs.logits, z.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(fs.labels, y.numpy())
            np.testing.assert_array_equal(fs.head_weight, net.fc.weight.detach().numpy())
            assert fs.meta["temperature"] == T and fs.meta["split"] == split and "part" not in fs.meta
        # valid has 1 sample: rank 0's slice is empty, rank 1's holds it
        assert sorted(os.listdir(tmp_path / "ddp" / name)) == ["train", "valid"]


def test_a_failing_rank_fails_both_and_leaves_nothing(tmp_path):
    errors = run_two(tmp_path / "ddp", fail_on_rank=1)
    assert "boom on this rank" in errors[1]
    assert "failed on 1 other rank" in errors[0]
    for name in ("m1", "m2"):
        d = tmp_path / "ddp" / name
        assert not d.exists() or os.listdir(d) == []


def test_dtype_and_logits_are_decided_on_the_whole_split(tmp_path):
    """train: 11 x 5 features, 11 x 3 logits, slices of 5 and 6 rows. With float16 above 27
    values and logits up to 16, a per-slice decision would give rank 0 float32 with logits and
    rank 1 float16 without; on the whole split both ranks write float16 without logits."""
    assert run_two(tmp_path / "ddp", thresholds=(27, 16)) == {}
    fs = FeatureSet.open(tmp_path / "ddp" / "m1" / "train")
    assert fs.num_samples == 11 and fs.feature_dtype == np.float16 and not fs.has_logits
    x, _ = data().train_eval.tensors
    net = Net(1)
    with torch.no_grad():
        h = torch.tanh(x @ net.body.weight.T + net.body.bias)
    np.testing.assert_allclose(fs.features, h.numpy(), rtol=1e-3, atol=1e-3)  # float16 rounding
