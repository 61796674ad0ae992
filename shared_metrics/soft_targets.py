"""Soft-target profile of a teacher for one class (the paper's Figure 2 layout).

The mean of softmax(z/T) over the training samples of a class: the class itself first, then its
similar classes, then the others (dissimilar), one panel per temperature. With an LS teacher a
higher T lifts the similar classes' probabilities towards the target's, which is what pulls
the student's features of the class towards them (systematic diffusion).
"""

from __future__ import annotations

import numpy as np

from .entropy import check_temperature, softmax
from .featureset import FeatureSet, FeatureSetError


def mean_soft_targets(fs: FeatureSet, target: int, T: float) -> np.ndarray:
    """[K] mean over the target class's samples of softmax(logits / T)."""
    T = check_temperature(T)
    rows = np.flatnonzero(fs.labels == target)
    if rows.size == 0:
        raise FeatureSetError(f"{fs.path}: class {fs.classes[target]!r} has no samples")
    logits = np.asarray(fs.logits[rows], np.float64)
    if not np.isfinite(logits).all():
        raise FeatureSetError(f"{fs.path / 'logits.npy'}: non-finite logit in class {fs.classes[target]!r}")
    return softmax(logits, T).mean(axis=0)


def profile_order(target: int, similar: list[int], num_classes: int) -> list[int]:
    rest = [k for k in range(num_classes) if k != target and k not in similar]
    return [target, *similar, *rest]


def plot_soft_targets(fs: FeatureSet, target: int, similar: list[int], temperatures, out) -> dict:
    """Bar panels of the mean soft targets per temperature; returns {T: {class: prob}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = profile_order(target, similar, fs.num_classes)
    colors = ["tab:red"] + ["tab:orange"] * len(similar) + ["tab:gray"] * (len(order) - 1 - len(similar))
    fig, axes = plt.subplots(1, len(temperatures), figsize=(4.2 * len(temperatures), 3.2), squeeze=False)
    result = {}
    for ax, T in zip(axes[0], temperatures):
        p = mean_soft_targets(fs, target, T)
        result[T] = {fs.classes[k]: float(p[k]) for k in order}
        ax.bar(range(len(order)), p[order], color=colors)
        ax.set_title(f"T = {T:g}")
        ax.set_xlabel("class (target, similar, others)")
        ax.set_ylabel("mean soft target")
        if len(order) <= 20:
            ax.set_xticks(
                range(len(order)), [fs.classes[k] for k in order], rotation=60, ha="right", fontsize=7
            )
    who = " ".join(
        str(x)
        for x in (
            fs.meta.get("model"),
            fs.meta.get("alpha") is not None and f"α={fs.meta['alpha']}",
            fs.meta.get("split"),
        )
        if x
    )
    fig.suptitle(f"Mean soft targets of {fs.classes[target]!r} samples ({who or fs.path})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return result
