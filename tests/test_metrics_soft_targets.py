"""Figure 2 soft targets from logits.npy or from features and head, and the Supp. D count
(`lskd-metrics soft-targets`, `lskd-metrics isotropy`): hand-worked values and one-line errors."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax

from shared_metrics.featureset import FeatureSet
from shared_metrics.isotropy import negligible_classes
from shared_metrics.soft_targets import class_mean_soft_targets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    p = subprocess.run(
        [sys.executable, "-m", "shared_metrics", *map(str, args)], cwd=ROOT, capture_output=True, text=True
    )
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------- soft targets from features and head
# A 2-D toy without logits.npy: head W = [[1, 0], [0, 1], [-1, -1]], b = (0, 0, ln 2), so
# z = (f1, f2, ln 2 - f1 - f2).
#   class "a" sample f = (ln 4, 0): z = (ln 4, 0, ln 1/2), exp z = (4, 1, 1/2), sum 11/2
#       T = 1: (8/11, 2/11, 1/11);  T = 2: exp(z/2) = (2, 1, 1/√2) / (3 + 1/√2)
#   class "a" sample f = (0, 0):    z = (0, 0, ln 2), exp z = (1, 1, 2), sum 4
#       T = 1: (1/4, 1/4, 1/2);     T = 2: (1, 1, √2) / (2 + √2)
#   class "c" sample f = (5, 5): not a sample of "a", not averaged.
# Mean over a's two samples: T = 1: ((8/11 + 1/4)/2, (2/11 + 1/4)/2, (1/11 + 1/2)/2).
W2 = np.array([[1, 0], [0, 1], [-1, -1]], np.float32)
B2 = np.array([0, 0, math.log(2)], np.float32)
F2 = np.array([[math.log(4), 0], [0, 0], [5, 5]], np.float32)
Y2 = [0, 0, 2]
R2 = math.sqrt(2)
GOLDEN_T1 = [(8 / 11 + 1 / 4) / 2, (2 / 11 + 1 / 4) / 2, (1 / 11 + 1 / 2) / 2]
GOLDEN_T2 = [
    (2 / (3 + 1 / R2) + 1 / (2 + R2)) / 2,
    (1 / (3 + 1 / R2) + 1 / (2 + R2)) / 2,
    ((1 / R2) / (3 + 1 / R2) + R2 / (2 + R2)) / 2,
]


@pytest.fixture
def toy_2d(make_set):
    return make_set("toy2d", F2, Y2, classes=["a", "b", "c"], weight=W2, bias=B2, split="train")


def test_golden_2d_toy_from_features_and_head(toy_2d, tmp_path):
    fs = FeatureSet.open(toy_2d)
    assert not fs.has_logits
    for chunk_rows in (None, 1, 2):  # streamed: the chunking changes nothing
        means = class_mean_soft_targets(fs, [0], [1, 2], chunk_rows=chunk_rows)
        assert means[0, 0] == pytest.approx(GOLDEN_T1, abs=1e-6)
        assert means[0, 1] == pytest.approx(GOLDEN_T2, abs=1e-6)
    rc, out, err = run(
        "soft-targets", "--features", toy_2d, "--target", "a", "--similar", "c", "--temperature", "1", "2",
        "--out", tmp_path / "fig" / "s.png",
    )  # fmt: skip
    assert rc == 0, err
    r = json.loads(out)
    assert r["logits"] == "features.npy @ head_weight.T + head_bias" and r["samples"] == 2
    assert r["similar"] == ["c"] and list(r["mean_soft_targets"]["1"]) == ["a", "c", "b"]
    assert [r["mean_soft_targets"]["1"][c] for c in "abc"] == pytest.approx(GOLDEN_T1, abs=1e-6)
    assert [r["mean_soft_targets"]["2"][c] for c in "abc"] == pytest.approx(GOLDEN_T2, abs=1e-6)
    assert (tmp_path / "fig" / "s.png").stat().st_size > 1000


def test_logits_npy_and_features_with_head_agree(make_set, tmp_path):
    """A set dumped with logits.npy and the same set without it give the same soft targets, and both
    equal scipy's softmax of f W^T + b averaged by hand."""
    rng = np.random.default_rng(3)
    N, D, K = 300, 16, 7
    f = rng.normal(size=(N, D)).astype(np.float16)
    y = rng.integers(0, K, N)
    W = rng.normal(size=(K, D)).astype(np.float32)
    b = rng.normal(size=K).astype(np.float32)
    z = f.astype(np.float32) @ W.T + b
    names = [f"k{i}" for i in range(K)]
    with_logits = make_set("with", f, y, classes=names, weight=W, bias=b, logits=z)
    without = make_set("without", f, y, classes=names, weight=W, bias=b)
    a, c = FeatureSet.open(with_logits), FeatureSet.open(without)
    assert a.has_logits and not c.has_logits
    temps = [1, 2, 4]
    from_logits = class_mean_soft_targets(a, [3, 5], temps)
    from_head = class_mean_soft_targets(c, [3, 5], temps, chunk_rows=17)
    np.testing.assert_allclose(from_logits, from_head, rtol=1e-5, atol=1e-7)
    for i, t in enumerate([3, 5]):
        for j, T in enumerate(temps):
            expected = scipy_softmax(z[y == t].astype(np.float64) / T, axis=1).mean(axis=0)
            np.testing.assert_allclose(from_head[i, j], expected, rtol=1e-5, atol=1e-7)
    outs = []
    for d in (with_logits, without):
        rc, out, err = run(
            "soft-targets", "--features", d, "--target", "k3", "--temperature", "1", "2", "--out",
            tmp_path / f"{d.name}.png",
        )  # fmt: skip
        assert rc == 0, err
        outs.append(json.loads(out))
    assert outs[0]["logits"] == "logits.npy" and outs[1]["logits"].startswith("features.npy")
    for T in ("1", "2"):
        p, q = outs[0]["mean_soft_targets"][T], outs[1]["mean_soft_targets"][T]
        assert list(p) == list(q) and [p[k] for k in p] == pytest.approx([q[k] for k in q], abs=1e-6)


def test_soft_targets_unknown_class_is_one_line(toy_2d, tmp_path):
    rc, out, err = run(
        "soft-targets", "--features", toy_2d, "--target", "zebra", "--temperature", "1", "--out",
        tmp_path / "s.png",
    )  # fmt: skip
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "unknown class 'zebra'" in err and not (tmp_path / "s.png").exists()


# ------------------------------------------------------------------------ Supp. D: the count
def test_negligible_classes_golden():
    # p = (1/2, 1/4, 1/8, 1/16, 1/32, 1/32), target 0, ratio 4 (exact in binary):
    # the largest non-target p2 = 1/4 (class 1); negligible: p <= 1/4 / 4 = 1/16, i.e. classes
    # 3 (1/16: "at least 4x smaller", the bound included), 4 and 5 -> 3 of the K - 1 = 5 others;
    # not negligible: classes 1 (p2 itself) and 2 (1/8), largest first.
    r = negligible_classes([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 32], 0, ratio=4)
    assert (r.reference, r.negligible, r.others, r.not_negligible) == (1, 3, 5, [1, 2])
    assert r.target_is_largest
    # a target that is not the largest: p = (0.3, 0.5, 0.2), target 0, ratio 2: p2 is the largest
    # non-target, 0.5 (class 1); 0.2 <= 0.5 / 2 = 0.25, so class 2 is negligible: 1 of 2.
    r = negligible_classes([0.3, 0.5, 0.2], 0, ratio=2)
    assert (r.reference, r.negligible, r.others, r.not_negligible) == (1, 1, 2, [1])
    assert not r.target_is_largest
    # the paper's 100x: (0.9, 0.09, 0.0009 - ε, 0.0091), target 0: 0.0009 - ε <= 0.09 / 100 and
    # 0.0091 > 0.0009 -> 1 of 3 negligible; not negligible: classes 1, 3.
    r = negligible_classes([0.9, 0.09, 0.0009 * (1 - 1e-9), 0.0091], 0)
    assert (r.negligible, r.others, r.not_negligible) == (1, 3, [1, 3])
    for bad in (1, 0.5, float("nan")):
        with pytest.raises(ValueError, match="ratio must be a number > 1"):
            negligible_classes([0.5, 0.5], 0, ratio=bad)


# Logits ln q give softmax q / Σq, so these samples have hand-known probabilities (classes a..f):
#   "a": q = (1000, 100, 10, 2, 0.5, 0.25), Σq = 1112.75. T = 1: p2 = 100/Σq (class b); negligible:
#        q <= 100/100 = 1 -> e, f: 2 of 5; not negligible: b, c, d.
#        T = 2: q^(1/2) = (31.6, 10, 3.16, 1.41, 0.71, 0.5); negligible: <= 10/100 = 0.1 -> none: 0 of 5.
#   "b": q = (1, 10, 1e-3, 1e-3, 1e-3, 1e-3): p2 = the class a's (1); negligible: q <= 0.01 -> c..f:
#        4 of 5; not negligible: a.
Q_A = [1000, 100, 10, 2, 0.5, 0.25]
Q_B = [1, 10, 1e-3, 1e-3, 1e-3, 1e-3]
SIX = list("abcdef")


@pytest.fixture
def isotropy_set(make_set):
    logits = np.log(np.array([Q_A, Q_B], np.float64)).astype(np.float32)
    return make_set("iso", np.zeros((2, 4)), [0, 1], classes=SIX, logits=logits, split="train")


def test_isotropy_cli_golden(isotropy_set, tmp_path):
    rc, out, err = run("isotropy", "--features", isotropy_set, "--target", "a,b")
    assert rc == 0, err
    r = json.loads(out)
    assert r["ratio"] == 100 and r["temperature"] == 1 and r["logits"] == "logits.npy"
    a, b = r["targets"]
    assert (a["target"], a["second"], a["negligible"], a["others"]) == ("a", "b", 2, 5)
    assert a["not_negligible"] == ["b", "c", "d"] and a["target_is_largest"] is True
    assert a["p_target"] == pytest.approx(1000 / 1112.75, abs=1e-6)
    assert a["p_second"] == pytest.approx(100 / 1112.75, abs=1e-6)
    assert a["p_not_negligible"] == pytest.approx([100 / 1112.75, 10 / 1112.75, 2 / 1112.75], abs=1e-6)
    assert (b["target"], b["second"], b["negligible"], b["not_negligible"]) == ("b", "a", 4, ["a"])
    # T = 2 flattens the targets: none of a's others is 100x below the second largest
    rc, out, err = run("isotropy", "--features", isotropy_set, "--target", "a", "--temperature", "2")
    assert rc == 0, err
    a = json.loads(out)["targets"][0]
    assert (a["negligible"], a["not_negligible"]) == (0, list("bcdef"))
    # markdown and CSV: one row per target
    rc, out, err = run("isotropy", "--features", isotropy_set, "--target", "a,b", "--format", "markdown")
    assert rc == 0, err
    header, _, row_a, row_b = out.strip().splitlines()
    assert "100x smaller" in header and "of K - 1" in header and "not negligible" in header
    assert row_a.startswith("| a | 1 | 0.899 | yes | b | 0.090 | 2 | 5 | b, c, d |")
    assert row_b.startswith("| b | 1 |") and "| a |" in row_b
    rc, out, err = run(
        "isotropy", "--features", isotropy_set, "--target", "a", "--format", "csv", "-o", tmp_path / "i.csv"
    )
    assert rc == 0 and out == "", err
    lines = (tmp_path / "i.csv").read_text().splitlines()
    assert lines[0].startswith("target,samples,p target,target largest,second largest,p second,100x smaller")
    assert lines[1].startswith("a,1,") and lines[1].endswith(',2,5,"b, c, d"')


def test_isotropy_from_features_and_head(make_set):
    """The 2-D toy without logits.npy: a's mean at T = 1 is GOLDEN_T1 = (0.4886, 0.2159, 0.2955);
    p2 = 0.2955 (class c), and 0.2159 is not 100x smaller: 0 of 2 negligible."""
    d = make_set("toy2d", F2, Y2, classes=["a", "b", "c"], weight=W2, bias=B2)
    rc, out, err = run("isotropy", "--features", d, "--target", "a")
    assert rc == 0, err
    a = json.loads(out)["targets"][0]
    assert a["p_second"] == pytest.approx(GOLDEN_T1[2], abs=1e-6)
    assert (a["second"], a["negligible"], a["others"], a["not_negligible"]) == ("c", 0, 2, ["c", "b"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "a,zebra"], "unknown class 'zebra' (not in meta.json 'classes')"),
        (["--target", "a", "--ratio", "1"], "the ratio must be a number > 1, got 1"),
        (["--target", ","], "give --target NAME[,NAME...]"),
    ],
)
def test_isotropy_bad_input_is_one_line(isotropy_set, args, message):
    rc, out, err = run("isotropy", "--features", isotropy_set, *args)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message in err


def test_isotropy_class_without_samples(make_set):
    d = make_set("empty_c", np.zeros((1, 3)), [0], classes=["a", "b", "c"], logits=np.zeros((1, 3)))
    rc, out, err = run("isotropy", "--features", d, "--target", "c")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "class 'c' has no samples" in err
