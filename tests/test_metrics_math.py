"""Golden values for η, η_pairwise, entropy, temperature matching, stability and accuracy.

Every expected number is worked out by hand in the comments, not by the code under test."""

import math

import numpy as np
import pytest
from conftest import around

from shared_metrics.centroids import class_centroids, per_class_accuracy
from shared_metrics.diffusion import diffusion_index, diffusion_index_pairwise, eta_from_distances
from shared_metrics.entropy import match_temperature, mean_entropy
from shared_metrics.featureset import FeatureSet
from shared_metrics.stability import stability

# Target π = class 0 at the origin; S1 = {1, 2}; S2 = {3}.
# T1: distances 1, 2, 5 -> R = 8 -> d = 1/8, 2/8, 5/8.
# T2: distances 1, 1, 6 -> R = 8 -> d = 1/8, 1/8, 6/8.
# Relative changes: 0, (1/8 - 2/8)/(2/8) = -1/2, (6/8 - 5/8)/(5/8) = 1/5.
# η(S1) = (0 - 1/2)/2 = -1/4; η(S2) = 1/5.
C_T1 = np.array([[0, 0], [1, 0], [0, 2], [-3, -4]], float)  # |(-3,-4)| = 5
C_T2 = np.array([[0, 0], [0, 1], [-1, 0], [6, 0]], float)
ETA_S1, ETA_S2 = -0.25, 0.2


def test_eta_golden_from_centroids():
    r = diffusion_index(C_T1, C_T2, 0, [1, 2], [3])
    assert r.eta_similar == pytest.approx(ETA_S1, abs=1e-12)
    assert r.eta_dissimilar == pytest.approx(ETA_S2, abs=1e-12)


def test_eta_single_pair_golden():
    # S1 = {p}, S2 = {q}: T1 distances 1, 3 (d = 1/4, 3/4); T2 distances 1, 4 (d = 1/5, 4/5).
    # η(S1) = (1/5 - 1/4)/(1/4) = -1/5; η(S2) = (4/5 - 3/4)/(3/4) = 1/15.
    r = eta_from_distances([1, 3], [1, 4], 1)
    assert (r.eta_similar, r.eta_dissimilar) == pytest.approx((-0.2, 1 / 15), abs=1e-12)


def test_eta_from_streamed_feature_sets(make_set):
    f1, y1 = around(C_T1)
    f2, y2 = around(C_T2)
    a = FeatureSet.open(make_set("t1", f1, y1))
    b = FeatureSet.open(make_set("t2", f2, y2))
    r = diffusion_index(class_centroids(a, chunk_rows=3), class_centroids(b, chunk_rows=3), 0, [1, 2], [3])
    assert (r.eta_similar, r.eta_dissimilar) == pytest.approx((ETA_S1, ETA_S2), abs=1e-6)


@pytest.mark.parametrize("scale,shift", [(7.5, 0.0), (1.0, 13.0), (0.01, -4.0)])
def test_eta_invariant_to_scaling_and_translation(scale, shift):
    t = np.array([shift, -2 * shift])
    r = diffusion_index(C_T1 * scale + t, C_T2 * 3.0 - t, 0, [1, 2], [3])
    assert (r.eta_similar, r.eta_dissimilar) == pytest.approx((ETA_S1, ETA_S2), abs=1e-9)


def test_eta_rejects_overlapping_or_empty_sets():
    with pytest.raises(ValueError, match="both"):
        diffusion_index(C_T1, C_T2, 0, [1, 2], [2, 3])
    with pytest.raises(ValueError, match="own"):
        diffusion_index(C_T1, C_T2, 0, [0, 1], [3])
    with pytest.raises(ValueError, match="at least one"):
        diffusion_index(C_T1, C_T2, 0, [], [3])
    nan = C_T2.copy()
    nan[3] = np.nan
    with pytest.raises(ValueError, match="empty class"):
        diffusion_index(C_T1, nan, 0, [1, 2], [3])


def test_centroids_match_per_class_mean(make_set):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(103, 5)).astype(np.float32)
    y = rng.integers(0, 4, 103)
    fs = FeatureSet.open(make_set("s", x, y, classes=list("abcd")))
    expected = np.stack([x[y == k].mean(axis=0) for k in range(4)])
    np.testing.assert_allclose(class_centroids(fs, chunk_rows=10), expected, rtol=1e-5, atol=1e-6)
    some = class_centroids(fs, chunk_rows=7, classes=[1, 3])
    np.testing.assert_allclose(some[[1, 3]], expected[[1, 3]], rtol=1e-5, atol=1e-6)
    assert np.isnan(some[[0, 2]]).all()


def test_pairwise_eta_golden(make_set):
    # Full-space pairwise distances (projection "none"). Class 0 = {(0,0), (0,2)}.
    # T1: class 1 = {(3,0)}: mean of 3 and √13; class 2 = {(0,-5)}: mean of 5 and 7 = 6.
    # T2: class 1 = {(0,5)}: mean of 5 and 3 = 4;  class 2 = {(-4,1)}: mean of √17 and √17.
    x1 = [[0, 0], [0, 2], [3, 0], [0, -5]]
    x2 = [[0, 0], [0, 2], [0, 5], [-4, 1]]
    y = [0, 0, 1, 2]
    a = FeatureSet.open(make_set("p1", x1, y))
    b = FeatureSet.open(make_set("p2", x2, y))
    d1 = np.array([(3 + math.sqrt(13)) / 2, 6.0])
    d2 = np.array([4.0, math.sqrt(17)])
    r1, r2 = d1 / d1.sum(), d2 / d2.sum()
    expected = (r2 - r1) / r1
    r = diffusion_index_pairwise(a, b, 0, [1], [2], projection="none")
    assert (r.eta_similar, r.eta_dissimilar) == pytest.approx(tuple(expected), abs=1e-6)
    # With 3 classes in 2-D the [weight | bias] rows span all of R^3, so the head projection is
    # an isometry of (x, 1) and must give the same η.
    w = np.array([[1.0, 0.3], [-0.2, 1.0], [0.5, 0.5]], np.float32)
    a = FeatureSet.open(make_set("h1", x1, y, weight=w, bias=np.array([0.1, -0.4, 0.9], np.float32)))
    b = FeatureSet.open(make_set("h2", x2, y, weight=w, bias=np.array([0.1, -0.4, 0.9], np.float32)))
    r = diffusion_index_pairwise(a, b, 0, [1], [2], projection="head")
    assert (r.eta_similar, r.eta_dissimilar) == pytest.approx(tuple(expected), abs=1e-5)


# ----------------------------------------------------------------- entropy
def two_class_entropy(a: float) -> float:
    """Entropy of softmax((0, a)) = sigmoid form, by hand: p = 1/(1+e^a), q = 1 - p."""
    p = 1 / (1 + math.exp(a))
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_mean_entropy_golden():
    ln3 = math.log(3)
    # (0, ln 3) at T = 1: p = (1/4, 3/4), H = ln 4 - (3/4) ln 3.
    logits = np.array([[0.0, ln3], [0.0, 0.0]])
    h1 = (math.log(4) - 0.75 * ln3 + math.log(2)) / 2  # second row is uniform: ln 2
    assert mean_entropy(logits, 1) == pytest.approx(h1, abs=1e-12)
    assert mean_entropy(logits, 2) == pytest.approx((two_class_entropy(ln3 / 2) + math.log(2)) / 2, abs=1e-12)
    # Any logits at very high T approach the maximum ln K.
    assert mean_entropy(np.array([[5.0, 0.0, -3.0]]), 1e6) == pytest.approx(math.log(3), abs=1e-9)


def test_match_temperature_recovers_known_temperature():
    ln3 = math.log(3)
    sharp = np.array([[0.0, 2 * ln3], [2.0, 0.0]])  # teacher A
    soft = sharp / 2.0  # teacher B = A's logits at T = 2
    target = mean_entropy(soft, 1.0)
    assert match_temperature(sharp, target) == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(ValueError, match="not reached"):
        match_temperature(sharp, math.log(2) + 0.01)


# --------------------------------------------------------------- stability
def test_stability_golden():
    ln3 = math.log(3)
    # probabilities: class 0 -> (1/2, 1/2), (3/4, 1/4); class 1 -> (1/4, 3/4) twice.
    logits = np.array([[0, 0], [ln3, 0], [0, ln3], [0, ln3]])
    labels = np.array([0, 0, 1, 1])
    # Eq. 2: class 0 mean (5/8, 3/8); deviations ±(1/8, -1/8) -> ‖·‖² = 1/32 each -> 1/32;
    #        class 1 -> 0.  S = 1 - (1/32 + 0)/2 = 1 - 1/64.
    # Eq. 5: overall mean (7/16, 9/16); ‖p̄_0 - p̄_all‖² = 2·(3/16)² = 9/128 = ‖p̄_1 - p̄_all‖².
    #        S_inter = 1 - 9/128.
    r = stability(logits, labels)
    assert r["stability"] == pytest.approx(1 - 1 / 64, abs=1e-12)
    assert r["inter_class_stability"] == pytest.approx(1 - 9 / 128, abs=1e-12)
    # Appendix C code: std (Bessel) of the true-class probability: class 0: 1/2, 3/4 -> 0.25/√2;
    # class 1: 3/4, 3/4 -> 0.  S = 1 - (0.25/√2)/2.
    r = stability(logits, labels, variant="target-std")
    assert r["stability"] == pytest.approx(1 - 0.25 / math.sqrt(2) / 2, abs=1e-12)


def test_per_class_accuracy(make_set):
    logits = np.array([[2, 0, 0], [0, 1, 0], [0, 0, 3], [1, 0, 0], [0, 0, 1]], np.float32)
    labels = [0, 0, 2, 1, 2]
    fs = FeatureSet.open(make_set("acc", np.zeros((5, 3)), labels, classes=["a", "b", "c"], logits=logits))
    correct, count = per_class_accuracy(fs, chunk_rows=2)
    assert correct.tolist() == [1, 0, 2] and count.tolist() == [2, 1, 2]
    # without logits.npy (ImageNet train): scored from features and head, z = f W^T + b.
    # Head: W = identity, b = (0, 0.5, 0); features = the logits above, so z = logits + b:
    # row 1 (0, 1, 0) -> (0, 1.5, 0) still class 1; row 3 (1, 0, 0) -> (1, 0.5, 0) still class 0;
    # row 4 (0, 0, 1) -> (0, 0.5, 1) still class 2: the same counts; and a row the bias flips:
    feats = np.vstack([logits, [[0.4, 0, 0]]])  # -> (0.4, 0.5, 0): class 1, labelled 1: correct
    path = make_set("nolog", feats, labels + [1], classes=["a", "b", "c"])
    fs = FeatureSet.open(path)
    np.save(fs.path / "head_weight.npy", np.eye(3, dtype=np.float32))
    np.save(fs.path / "head_bias.npy", np.array([0, 0.5, 0], np.float32))
    fs = FeatureSet.open(path)
    assert not fs.has_logits
    correct, count = per_class_accuracy(fs, chunk_rows=4)
    assert correct.tolist() == [1, 1, 2] and count.tolist() == [2, 2, 2]
