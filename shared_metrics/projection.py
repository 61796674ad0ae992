"""The penultimate-layer projection figure (Müller et al., 2019; paper Supp. E, Algorithm 2).

For three classes: take their final-layer [weight | bias] rows (3 x (D+1)), an orthonormal basis
of their span by QR, project each feature with a trailing 1 appended onto it (3-D), then PCA to
2-D. The PCA is fitted on the first feature set of a model and reused for that model's other sets
(train -> valid), so both panels share axes. Sets of one model are recognised by identical head
weights. A grid (rows: models, columns: temperatures) gives the layout of the paper's Figure 1.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from .diffusion import head_basis
from .featureset import FeatureSet

COLORS = ("tab:red", "tab:green", "tab:blue")


def project_3d(
    fs: FeatureSet,
    classes: list[int],
    basis: np.ndarray | None = None,
    max_per_class: int | None = 150,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(points [n, 3], labels [n]) of the classes' features in the span of their head rows."""
    q = head_basis(fs, classes) if basis is None else basis
    xs, ys = [], []
    for k in classes:
        x = fs.class_features(k, max_per_class, seed)
        xs.append(np.hstack([x, np.ones((len(x), 1), np.float32)]) @ q)
        ys.append(np.full(len(x), k))
    return np.vstack(xs), np.concatenate(ys)


def project_2d(
    sets: list[FeatureSet], classes: list[int], max_per_class: int | None = 150, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """2-D points per set; sets sharing a head (same model) share the basis and the PCA,
    fitted on the first of them."""
    if len(classes) != 3 or len(set(classes)) != 3:
        raise ValueError("the projection needs exactly three distinct classes")
    fitted: list[tuple[FeatureSet, np.ndarray, PCA]] = []
    out = []
    for fs in sets:
        match = next((f for f in fitted if _same_head(f[0], fs)), None)
        if match is None:
            basis = head_basis(fs, classes)
            pts, labels = project_3d(fs, classes, basis, max_per_class, seed)
            pca = PCA(n_components=2).fit(pts)
            fitted.append((fs, basis, pca))
        else:
            _, basis, pca = match
            pts, labels = project_3d(fs, classes, basis, max_per_class, seed)
        out.append((pca.transform(pts), labels))
    return out


def _same_head(a: FeatureSet, b: FeatureSet) -> bool:
    return (
        a.head_weight.shape == b.head_weight.shape
        and np.array_equal(a.head_weight, b.head_weight)
        and np.array_equal(a.head_bias, b.head_bias)
    )


def plot_projection_grid(
    grid: list[list[FeatureSet | None]],
    classes: list[int],
    out,
    *,
    row_labels=None,
    col_labels=None,
    max_per_class: int | None = 150,
    seed: int = 0,
    title: str | None = None,
) -> None:
    """Save a PNG with one scatter panel per feature set; ``None`` leaves a cell empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = [fs for row in grid for fs in row if fs is not None]
    points = iter(project_2d(flat, classes, max_per_class, seed))
    nr, nc = len(grid), max(len(r) for r in grid)
    fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 3.0 * nr), squeeze=False)
    names = flat[0].classes
    for r, row in enumerate(grid):
        for c in range(nc):
            ax = axes[r][c]
            fs = row[c] if c < len(row) else None
            if fs is None:
                ax.axis("off")
                continue
            pts, labels = next(points)
            for color, k in zip(COLORS, classes):
                sel = labels == k
                ax.scatter(pts[sel, 0], pts[sel, 1], s=6, alpha=0.6, c=color, label=names[k])
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0 and col_labels:
                ax.set_title(col_labels[c], fontsize=10)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, markerscale=3, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95 if title else 1))
    fig.savefig(out, dpi=120)
    plt.close(fig)
