"""The diffusion index η (Chandrasegaran et al., ICML 2022, Sec. 4, Eq. 1) and η_pairwise (Supp. J).

For a target class π with similar classes S1 and dissimilar classes S2, at temperature T:

    d_T(π, k) = ‖c_π(T) − c_k(T)‖₂ / R_T,    R_T = Σ_{p∈S1} ‖c_π − c_p‖₂ + Σ_{q∈S2} ‖c_π − c_q‖₂
    η(T1, T2; π, S) = (1/|S|) Σ_{k∈S} [d_{T2}(π, k) − d_{T1}(π, k)] / d_{T1}(π, k)

R sums over S1 ∪ S2 (the paper's normalisation constant), so η over S1 and η over S2 are
computed from one shared R per temperature. η is returned as a *fraction*; the paper's
tables print it in percent (Table 3's −4.618 is −0.04618 here).

Systematic diffusion from T1 < T2 shows as η(S1) < 0 and η(S2) > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

from .featureset import FeatureSet, FeatureSetError


@dataclass(frozen=True)
class EtaResult:
    eta_similar: float  # η(T1, T2; π, S1), a fraction
    eta_dissimilar: float  # η(T1, T2; π, S2), a fraction


def check_sets(target: int, similar, dissimilar) -> tuple[list[int], list[int]]:
    similar, dissimilar = [int(k) for k in similar], [int(k) for k in dissimilar]
    if not similar or not dissimilar:
        raise ValueError("both the similar set S1 and the dissimilar set S2 need at least one class")
    if target in similar or target in dissimilar:
        raise ValueError("the target class cannot be in its own similar or dissimilar set")
    both = set(similar) & set(dissimilar)
    if both:
        raise ValueError(f"class index {sorted(both)[0]} is in both the similar and dissimilar sets")
    if len(set(similar)) != len(similar) or len(set(dissimilar)) != len(dissimilar):
        raise ValueError("a class is listed twice in the similar or dissimilar set")
    return similar, dissimilar


def eta_from_distances(before: np.ndarray, after: np.ndarray, n_similar: int) -> EtaResult:
    """η from raw distances target→k at T1 (``before``) and T2 (``after``), ordered S1 then S2.

    Each temperature's distances are divided by their own R (their sum) before comparing."""
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if (before <= 0).any() or (after <= 0).any():
        raise ValueError("a class coincides with the target (zero distance): η is undefined")
    d1, d2 = before / before.sum(), after / after.sum()
    change = (d2 - d1) / d1
    return EtaResult(float(change[:n_similar].mean()), float(change[n_similar:].mean()))


def centroid_distances(centroids: np.ndarray, target: int, others) -> np.ndarray:
    """‖c_target − c_k‖₂ for each k in ``others``."""
    c = np.asarray(centroids, np.float64)
    rows = c[[target, *others]]
    if not np.isfinite(rows).all():
        raise ValueError("a class in the target, similar or dissimilar set has no samples (empty class)")
    return np.linalg.norm(rows[1:] - rows[0], axis=1)


def diffusion_index(
    centroids_t1: np.ndarray, centroids_t2: np.ndarray, target: int, similar, dissimilar
) -> EtaResult:
    """η(T1, T2; π, S1) and η(T1, T2; π, S2) from class centroids [K, D] of two students."""
    similar, dissimilar = check_sets(target, similar, dissimilar)
    others = similar + dissimilar
    return eta_from_distances(
        centroid_distances(centroids_t1, target, others),
        centroid_distances(centroids_t2, target, others),
        len(similar),
    )


# ------------------------------------------------------------------ η_pairwise (Supp. J)
def head_basis(fs: FeatureSet, classes) -> np.ndarray:
    """Orthonormal basis [D+1, m] of the span of the given classes' [weight | bias] rows."""
    wb = np.concatenate([fs.head_weight[classes], fs.head_bias[classes, None]], axis=1)
    q, _ = np.linalg.qr(wb.T.astype(np.float64))
    return q


def mean_pairwise_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs (one row of a, one row of b)."""
    return float(cdist(a, b).mean())


def pairwise_distances_to_target(
    fs: FeatureSet,
    target: int,
    others,
    *,
    projection: str = "head",
    max_per_class: int | None = 500,
    seed: int = 0,
) -> np.ndarray:
    """Mean pairwise distance between the target's features and each other class's features.

    Reading of Supp. J ("average pairwise distance between the projected penultimate layer
    representations"): with ``projection="head"`` features (with a trailing 1) are projected
    onto the span of the [weight | bias] rows of {π} ∪ S1 ∪ S2 of the same model, the
    many-class form of the Müller et al. projection of Supp. E; ``"none"`` uses the full
    penultimate space. Classes larger than ``max_per_class`` are subsampled (seeded)."""
    if projection not in ("head", "none"):
        raise ValueError(f"unknown projection {projection!r} (use 'head' or 'none')")
    classes = [target, *others]
    feats = [fs.class_features(k, max_per_class, seed) for k in classes]
    if projection == "head":
        q = head_basis(fs, classes)
        feats = [np.hstack([x, np.ones((len(x), 1), np.float32)]) @ q for x in feats]
    return np.array([mean_pairwise_distance(feats[0], x) for x in feats[1:]])


def diffusion_index_pairwise(
    fs_t1: FeatureSet, fs_t2: FeatureSet, target: int, similar, dissimilar, **kwargs
) -> EtaResult:
    """η_pairwise (Supp. J): Eq. 1 with the mean pairwise distance in place of the centroid distance."""
    similar, dissimilar = check_sets(target, similar, dissimilar)
    others = similar + dissimilar
    try:
        return eta_from_distances(
            pairwise_distances_to_target(fs_t1, target, others, **kwargs),
            pairwise_distances_to_target(fs_t2, target, others, **kwargs),
            len(similar),
        )
    except ValueError as e:
        if isinstance(e, FeatureSetError):
            raise
        raise ValueError(f"η_pairwise: {e}") from None
