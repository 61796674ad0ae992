"""The Supp. E projection on a toy whose answer is known."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from shared_metrics.featureset import FeatureSet
from shared_metrics.projection import plot_projection_grid, project_2d


def toy(make_set, name, rng):
    # D = 5; the head rows of the three classes are e1, e2, e3 with zero bias, so the projection
    # keeps coordinates 1-3 and discards 4-5. All points have x3 = 0: they lie in a plane, so the
    # 2-D PCA must preserve every pairwise distance of (x1, x2).
    n = 20
    x = np.zeros((3 * n, 5), np.float32)
    x[:, :2] = rng.normal(size=(3 * n, 2)) + np.repeat([[0, 0], [4, 0], [0, 4]], n, axis=0)
    x[:, 3:] = rng.normal(scale=50, size=(3 * n, 2))  # off the head's span: must vanish
    y = np.repeat([0, 1, 2], n)
    w = np.eye(3, 5, dtype=np.float32)
    return FeatureSet.open(make_set(name, x, y, classes=["a", "b", "c"], weight=w)), x


def test_projection_preserves_in_plane_geometry(make_set):
    rng = np.random.default_rng(0)
    fs, x = toy(make_set, "toy", rng)
    [(pts, labels)] = project_2d([fs], [0, 1, 2], max_per_class=None)
    assert pts.shape == (60, 2) and labels.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    np.testing.assert_allclose(pdist(pts), pdist(x[:, :2]), rtol=1e-4, atol=1e-4)


def test_pca_fitted_on_first_set_is_reused(make_set, tmp_path):
    rng = np.random.default_rng(1)
    train, _ = toy(make_set, "train", rng)
    # "valid" = the train points shifted by (1, 0): same head, so the same basis and PCA; the
    # 2-D points must move by a vector of length 1, identical for all points.
    x = np.asarray(train.features) + np.array([1, 0, 0, 0, 0], np.float32)
    valid = FeatureSet.open(
        make_set("valid", x, train.labels, classes=["a", "b", "c"], weight=train.head_weight)
    )
    (p_tr, _), (p_va, _) = project_2d([train, valid], [0, 1, 2], max_per_class=None)
    shift = p_va - p_tr
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4)
    assert np.linalg.norm(shift[0]) == pytest.approx(1.0, abs=1e-4)
    out = tmp_path / "grid.png"
    plot_projection_grid(
        [[train, valid], [None, train]],
        [0, 1, 2],
        out,
        row_labels=["m1", "m2"],
        col_labels=["train", "valid"],
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
