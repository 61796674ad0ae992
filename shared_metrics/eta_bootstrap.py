"""Bootstrap confidence intervals for the diffusion index η (paper Sec. 4, Eq. 1).

Method: a stratified, paired, nonparametric bootstrap over samples with percentile intervals
(Efron & Tibshirani 1993, Sec. 13.3). One replicate draws, within every class k, n_k of the
class's n_k rows with replacement (stratified: each class keeps its size), recomputes the class
centroids and from them η(S1) and η(S2) of every target. The T1 and T2 sets hold the same
samples, so both use the *same* drawn rows (paired): what varies between the two students on the
same images cancels, as it does in the point estimate. The interval is the ((1 - c)/2, (1 + c)/2)
quantile pair of the B replicate values; the point estimate stays η of the full sets.

Streaming: one pass over each set keeps only the rows of the classes some target needs
({π} ∪ S1 ∪ S2), as float32, grouped by class (the paper's ten ImageNet targets need 50 of the 1000
classes). A replicate's class mean is then w · X_k / n_k with w the row counts of the draw:
exactly a multinomial resample, drawn as n_k uniform row indices and counted, for blocks of
:data:`BLOCK` replicates at once, so the centroids of a batch of replicates are one matrix product
[batch, n_k] @ [n_k, D] per class and set. The draws of class k in replicate block j come from a
generator keyed by (seed, split, k, j): the same seed gives the same intervals, T1 and T2 share
the draws, and a class's draws do not depend on which other targets are asked.

Significance: a target shows *significant* systematic diffusion when the whole S1 interval lies
below 0 and the whole S2 interval above 0. :func:`diffusion_p_value` gives the matching
bootstrap p-value, so that many targets can be corrected together (Holm, :func:`stats.holm`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .centroids import PROGRESS_VALUES
from .diffusion import check_sets
from .errors import UserError
from .featureset import CHUNK_BYTES, FeatureSet
from .report import Progress
from .stats import _check_replicates, _check_seed, check_confidence, percentile_interval

#: Replicates whose draws of one class come from one keyed generator.
BLOCK = 128
#: Working memory for one batch of replicates (counts and the targets' replicate centroids).
WORK_BYTES = 256 * 1024 * 1024


class BootstrapMemoryError(UserError):
    """The bootstrap would need more memory than the machine has available."""


@dataclass
class ClassRows:
    """The rows of some classes of paired sets (the same samples), grouped by class: in every
    ``parts[s]`` (float32 [rows, D_s], one per set), ``[offsets[i]:offsets[i+1]]`` are class
    ``classes[i]``'s rows, in file order."""

    classes: list[int]
    offsets: np.ndarray
    parts: tuple[np.ndarray, ...]

    def __post_init__(self):
        self._index = {k: i for i, k in enumerate(self.classes)}

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(p.shape[1] for p in self.parts)

    def of(self, k: int) -> tuple[np.ndarray, ...]:
        i = self._index[k]
        return tuple(p[self.offsets[i] : self.offsets[i + 1]] for p in self.parts)

    def centroids(self, num_classes: int) -> list[np.ndarray]:
        """float64 [K, D] class means for each set (NaN for classes not held)."""
        out = [np.full((num_classes, d), np.nan) for d in self.dims]
        for k in self.classes:
            for c, x in zip(out, self.of(k)):
                c[k] = x.mean(axis=0, dtype=np.float64)
        return out


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_needed(sets, classes, targets, replicates: int) -> int:
    """Bytes the bootstrap of one split holds at its peak: the kept rows, one batch of counts and
    replicate centroids (:func:`compute_block`), and every target's replicate distances."""
    counts = sets[0].label_counts()[sorted(set(classes))]
    dims = sum(fs.dim for fs in sets)
    largest = int(counts.max()) if len(counts) else 1
    n_targets = len({t for t, _, _ in targets})
    step = _step(largest, dims, n_targets, replicates)
    work = step * _per_replicate(largest, dims, n_targets)
    distances = replicates * sum(len(s1) + len(s2) for _, s1, s2 in targets) * 5 * 8
    return int(counts.sum()) * dims * 4 + work + distances


def _per_replicate(largest: int, dims: int, n_targets: int) -> int:
    """Bytes per replicate of a batch: the replicate centroids of the targets and one other class,
    the difference buffers, and one class's counts (float32) with their int64 draws and tallies."""
    return (n_targets + 2) * dims * 4 + largest * 20


def _step(largest: int, dims: int, n_targets: int, replicates: int) -> int:
    blocks = max(
        1, min(-(-replicates // BLOCK), WORK_BYTES // (_per_replicate(largest, dims, n_targets) * BLOCK))
    )
    return blocks * BLOCK


def check_memory(sets, classes, targets, replicates: int) -> None:
    need, have = memory_needed(sets, classes, targets, replicates), _available_bytes()
    if have is not None and need > have:
        raise BootstrapMemoryError(
            f"--bootstrap {replicates}: the replicate arrays would need {need / 1e9:.1f} GB, more than the "
            f"{have / 1e9:.1f} GB of memory available: use fewer replicates or fewer targets"
        )


def gather_class_rows(sets: list[FeatureSet], classes, chunk_rows: int | None = None) -> ClassRows:
    """One streamed pass over each of ``sets`` (the same samples: equal labels) keeping only the
    rows of ``classes`` (float32, as :meth:`FeatureSet.iter_chunks` gives them), grouped by class;
    every row is checked for finite values as it is read."""
    classes = sorted({int(k) for k in classes})
    labels = sets[0].labels
    keep = np.zeros(sets[0].num_classes, bool)
    keep[classes] = True
    kept_rows = np.flatnonzero(keep[labels])
    by_class = kept_rows[np.argsort(labels[kept_rows], kind="stable")]
    dest = np.full(labels.shape[0], -1, np.int64)
    dest[by_class] = np.arange(by_class.size)
    counts = np.bincount(labels[kept_rows], minlength=sets[0].num_classes)[classes]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_BYTES // (4 * max(fs.dim for fs in sets)))
    parts = []
    for fs in sets:
        part = np.empty((by_class.size, fs.dim), np.float32)
        progress = Progress(
            fs.num_samples,
            "rows",
            f"{fs.path.name}/features (bootstrap rows)",
            enabled=fs.num_samples * fs.dim > PROGRESS_VALUES,
        )
        for start, _labels, block in fs.iter_chunks("features", chunk_rows, classes):
            part[dest[start + np.flatnonzero(keep[labels[start : start + chunk_rows]])]] = block
            progress.update(start)
        progress.update(fs.num_samples)
        parts.append(part)
    return ClassRows(classes, offsets, tuple(parts))


def _counts(rng: np.random.Generator, replicates: int, n: int, out: np.ndarray) -> None:
    """Fill float32 ``out`` [replicates, n] with the row counts of n draws with replacement from n
    rows, per replicate (each row of ``out`` is one Multinomial(n; 1/n, ..., 1/n) vector)."""
    idx = rng.integers(0, n, size=(replicates, n))
    idx += (np.arange(replicates, dtype=np.int64) * n)[:, None]
    np.copyto(
        out, np.bincount(idx.ravel(), minlength=replicates * n).reshape(replicates, n), casting="unsafe"
    )


@dataclass
class EtaReplicates:
    """η(S1) and η(S2) of one target, one value per bootstrap replicate."""

    similar: np.ndarray
    dissimilar: np.ndarray


def _eta_rows(d1: np.ndarray, d2: np.ndarray, n_similar: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1 per replicate row from raw distances [B, |S|] at T1 and T2 (S1 columns first)."""
    if (d1 <= 0).any() or (d2 <= 0).any():
        raise ValueError(
            "a class coincides with the target (zero distance) in a bootstrap replicate: η is undefined"
        )
    r1, r2 = d1 / d1.sum(axis=1, keepdims=True), d2 / d2.sum(axis=1, keepdims=True)
    change = (r2 - r1) / r1
    return change[:, :n_similar].mean(axis=1), change[:, n_similar:].mean(axis=1)


def compute_block(rows: ClassRows, n_targets: int, replicates: int) -> int:
    """Replicates computed together: a multiple of BLOCK whose counts and target centroids fit
    in WORK_BYTES (fewer float16 -> float32 conversions of the rows than one BLOCK at a time)."""
    largest = int(np.diff(rows.offsets).max()) if len(rows.classes) else 1
    return _step(largest, sum(rows.dims), n_targets, replicates)


def bootstrap_eta(
    rows: ClassRows, targets, replicates: int, seed: int = 0, split: int = 0
) -> list[EtaReplicates]:
    """Replicates of η(S1), η(S2) for each (target, S1, S2) from paired rows (``rows.dims`` =
    (D of the T1 set, D of the T2 set)); ``split`` keys the draws (train 0, valid 1)."""
    replicates, seed = _check_replicates(replicates), _check_seed(seed)
    if len(rows.dims) != 2:
        raise ValueError("η's bootstrap needs the rows of two sets (T1, T2)")
    targets = [(int(t), *check_sets(t, s1, s2)) for t, s1, s2 in targets]
    target_ids = list(dict.fromkeys(t for t, _, _ in targets))
    users: dict[int, list[tuple[int, int]]] = {}  # class -> [(target number, its column in S1 + S2)]
    for i, (_target, s1, s2) in enumerate(targets):
        for j, k in enumerate(s1 + s2):
            users.setdefault(k, []).append((i, j))
    missing = [k for k in [*target_ids, *users] if k not in rows._index]
    if missing:
        raise ValueError(f"class index {missing[0]} was not gathered for the bootstrap")
    dist = [np.empty((2, replicates, len(s1) + len(s2))) for _, s1, s2 in targets]
    step = compute_block(rows, len(target_ids), replicates)
    largest = int(np.diff(rows.offsets).max())
    counts_buf = np.empty((min(step, replicates), largest), np.float32)
    diff_bufs = [np.empty((min(step, replicates), d), np.float32) for d in rows.dims]

    def replicate_means(k: int, b0: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
        xs = rows.of(k)
        n = xs[0].shape[0]
        counts = counts_buf[:nb, :n]
        # The draws of BLOCK replicates come from one keyed generator: the same whatever `step` is.
        for b in range(b0, b0 + nb, BLOCK):
            _counts(
                np.random.default_rng([seed, split, k, b // BLOCK]),
                min(BLOCK, b0 + nb - b),
                n,
                counts[b - b0 : b - b0 + BLOCK],
            )
        means = tuple(counts @ x for x in xs)  # [nb, D] per set: the same draws for T1 and T2
        for m in means:
            m /= n
        return means

    for b0 in range(0, replicates, step):
        nb = min(step, replicates - b0)
        means = {t: replicate_means(t, b0, nb) for t in target_ids}
        for k, uses in users.items():
            m = means[k] if k in means else replicate_means(k, b0, nb)
            for i, j in uses:
                c = means[targets[i][0]]
                for side in (0, 1):
                    diff = np.subtract(c[side], m[side], out=diff_bufs[side][:nb])
                    dist[i][side, b0 : b0 + nb, j] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return [EtaReplicates(*_eta_rows(d[0], d[1], len(s1))) for (t, s1, s2), d in zip(targets, dist)]


def summarise(
    eta_similar: float,
    eta_dissimilar: float,
    rep_similar: np.ndarray,
    rep_dissimilar: np.ndarray,
    confidence: float,
) -> dict:
    """Percentile intervals of η(S1) and η(S2), the significance verdict and its p-value."""
    confidence = check_confidence(confidence)
    lo1, hi1 = percentile_interval(rep_similar, confidence)
    lo2, hi2 = percentile_interval(rep_dissimilar, confidence)
    return {
        "eta_similar_ci": [float(lo1), float(hi1)],
        "eta_dissimilar_ci": [float(lo2), float(hi2)],
        "significant_systematic_diffusion": bool(hi1 < 0 < lo2),
        "p_systematic_diffusion": diffusion_p_value(rep_similar, rep_dissimilar),
    }


def diffusion_p_value(rep_similar: np.ndarray, rep_dissimilar: np.ndarray) -> float:
    """Bootstrap p-value of "η(S1) < 0 and η(S2) > 0" (an intersection-union test: the larger of
    the two sides' p-values). Each side is the two-sided-equivalent percentile p-value,
    2 (#{η* on the wrong side of 0} + 1) / (B + 1), capped at 1 (Davison & Hinkley 1997, Eq. 4.11),
    so p < 1 - c agrees with the intervals' verdict at confidence c up to the +1."""
    B = len(rep_similar)
    p1 = 2 * (np.count_nonzero(rep_similar >= 0) + 1) / (B + 1)
    p2 = 2 * (np.count_nonzero(rep_dissimilar <= 0) + 1) / (B + 1)
    return float(min(1.0, max(p1, p2)))


def check_bootstrap_args(replicates, confidence) -> tuple[int, float]:
    """The CLI's --bootstrap and --confidence, as given (strings), checked (ValueError naming the flag)."""
    try:
        replicates = _check_replicates(int(replicates))
    except (ValueError, TypeError):
        raise ValueError(
            f"--bootstrap must be a whole number of replicates >= 1, got {replicates!r}"
        ) from None
    try:
        confidence = check_confidence(float(confidence))
    except (ValueError, TypeError):
        raise ValueError(f"--confidence must be a level in (0, 1), e.g. 0.95, got {confidence!r}") from None
    return replicates, confidence
