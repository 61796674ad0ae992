"""Soft-target profile of a teacher for one class (the paper's Figure 2 layout).

The mean of softmax(z/T) over the training samples of a class: the class itself first, then its
similar classes, then the others (dissimilar), one panel per temperature. With an LS teacher a
higher T lifts the similar classes' probabilities towards the target's, which is what pulls
the student's features of the class towards them (systematic diffusion).

The logits come from :meth:`FeatureSet.iter_logits`: logits.npy, or the features and the head
where a set has no logits.npy (the ImageNet train split), streamed in bounded chunks and only for
the rows of the classes asked.
"""

from __future__ import annotations

import numpy as np

from .entropy import check_temperature, softmax
from .featureset import FeatureSet, FeatureSetError


def class_mean_soft_targets(
    fs: FeatureSet, targets: list[int], temperatures, chunk_rows: int | None = None
) -> np.ndarray:
    """float64 [len(targets), len(temperatures), K]: for each target class t and temperature T,
    the mean over t's samples of softmax(z / T), in one streamed pass over the set."""
    temperatures = [check_temperature(T) for T in temperatures]
    targets = list(targets)
    counts = fs.label_counts()[targets]
    for t, n in zip(targets, counts):
        if n == 0:
            raise FeatureSetError(f"{fs.path}: class {fs.classes[t]!r} has no samples")
    sums = np.zeros((len(targets), len(temperatures), fs.num_classes))
    for _, y, logits in fs.iter_logits(chunk_rows, classes=sorted(set(targets))):
        for i, t in enumerate(targets):
            rows = logits[y == t]
            if rows.size:
                for j, T in enumerate(temperatures):
                    sums[i, j] += softmax(rows, T).sum(axis=0)
    return sums / counts[:, None, None]


def profile_order(target: int, similar: list[int], num_classes: int) -> list[int]:
    rest = [k for k in range(num_classes) if k != target and k not in similar]
    return [target, *similar, *rest]


def soft_target_profiles(fs: FeatureSet, target: int, similar: list[int], temperatures) -> dict:
    """{T: {class name: mean soft target}} in the profile order (target, similar, the others)."""
    order = profile_order(target, similar, fs.num_classes)
    means = class_mean_soft_targets(fs, [target], temperatures)[0]
    return {T: {fs.classes[k]: float(p[k]) for k in order} for T, p in zip(temperatures, means)}


def plot_soft_targets(fs: FeatureSet, target: int, similar: list[int], profiles: dict, out) -> None:
    """Bar panels of the profiles of :func:`soft_target_profiles`, one per temperature, to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(profiles.values())))
    colors = ["tab:red"] + ["tab:orange"] * len(similar) + ["tab:gray"] * (len(names) - 1 - len(similar))
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.2 * len(profiles), 3.2), squeeze=False)
    for ax, (T, profile) in zip(axes[0], profiles.items()):
        ax.bar(range(len(names)), [profile[c] for c in names], color=colors)
        ax.set_title(f"T = {T:g}")
        ax.set_xlabel("class (target, similar, others)")
        ax.set_ylabel("mean soft target")
        if len(names) <= 20:
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
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
