"""Per-class statistics streamed over a feature set: class centroids, per-class accuracy.

Both read the set in bounded chunks (``FeatureSet.iter_chunks``) so a
1.28 M x 2048 float16 ImageNet-train set needs a few tens of MB, not its size.
Per-chunk class sums are one sparse (one-hot) x dense product.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .featureset import FeatureSet, FeatureSetError
from .report import Progress

#: Sets with more values than this report progress on stderr while streamed.
PROGRESS_VALUES = 50_000_000


def _onehot(labels: np.ndarray, num_classes: int) -> sp.csr_matrix:
    """[K, n] sparse indicator of each row's class."""
    n = labels.shape[0]
    return sp.csr_matrix((np.ones(n, np.float32), (labels, np.arange(n))), shape=(num_classes, n))


def class_sums(
    fs: FeatureSet, name: str = "features", chunk_rows: int | None = None, classes=None
) -> np.ndarray:
    """float64 [K, D] sum of each class's rows of features.npy (or logits.npy); with
    ``classes``, only those classes' rows are summed (the other rows stay zero)."""
    width = fs.dim if name == "features" else fs.num_classes
    sums = np.zeros((fs.num_classes, width))
    progress = Progress(
        fs.num_samples, "rows", f"{fs.path.name}/{name}", enabled=fs.num_samples * width > PROGRESS_VALUES
    )
    for start, y, block in fs.iter_chunks(name, chunk_rows, classes):
        sums += _onehot(y, fs.num_classes) @ block
        progress.update(start)
    progress.update(fs.num_samples)
    return sums


def class_centroids(fs: FeatureSet, chunk_rows: int | None = None, classes=None) -> np.ndarray:
    """float64 [K, D] mean penultimate feature c_k of every class k (paper Sec. 4); with
    ``classes``, only those are computed and the others are NaN.

    A class with no samples gets a NaN row; metrics that need it fail with a message."""
    counts = fs.label_counts().astype(np.float64)
    if classes is not None:
        skip = np.ones(fs.num_classes, bool)
        skip[list(classes)] = False
        counts[skip] = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return class_sums(fs, "features", chunk_rows, classes) / counts[:, None]


def require_classes_present(fs: FeatureSet, indices) -> None:
    counts = fs.label_counts()
    for k in indices:
        if counts[k] == 0:
            raise FeatureSetError(f"{fs.path}: class {fs.classes[k]!r} has no samples (empty class)")


def top1_correct(fs: FeatureSet, chunk_rows: int | None = None) -> np.ndarray:
    """bool [N]: whether each sample's top-1 prediction is its label, from the logits of
    :meth:`FeatureSet.iter_logits` (logits.npy, or features and head where it is absent)."""
    hit = np.empty(fs.num_samples, bool)
    for start, y, block in fs.iter_logits(chunk_rows):
        hit[start : start + len(y)] = block.argmax(axis=1) == y
    return hit


def per_class_accuracy(fs: FeatureSet, chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 accuracy of each class (Tables 17-19): (correct [K], count [K]), from
    :func:`top1_correct`. Accuracy of class k = correct[k] / count[k] (NaN where count is 0)."""
    hit = top1_correct(fs, chunk_rows)
    return np.bincount(fs.labels[hit], minlength=fs.num_classes).astype(np.int64), fs.label_counts()
