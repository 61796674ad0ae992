import json
import socket

import numpy as np
import pytest

from shared_metrics.featureset import write_feature_set

FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def around(centroids, spread=0.5):
    """Two samples per class, placed symmetrically about the given centroid (so the mean is exact)."""
    c = np.asarray(centroids, np.float64)
    off = np.zeros(c.shape[1])
    off[0] = spread
    feats = np.concatenate([c + off, c - off])
    labels = np.concatenate([np.arange(len(c)), np.arange(len(c))])
    return feats, labels


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a test's own torch.distributed / fairseq rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_set(tmp_path):
    """make_set(name, features, labels, classes=None, logits=None, **meta) -> directory."""

    def _make(name, features, labels, classes=None, logits=None, weight=None, bias=None, **meta):
        features = np.asarray(features, np.float32)
        labels = np.asarray(labels, np.int64)
        K = int(labels.max()) + 1 if classes is None else len(classes)
        classes = classes or [f"c{i}" for i in range(K)]
        W = np.eye(K, features.shape[1], dtype=np.float32) if weight is None else weight
        return write_feature_set(
            tmp_path / name,
            features,
            labels,
            W,
            bias,
            {"classes": classes, "task": "vision", **meta},
            logits=logits,
        )

    return _make


@pytest.fixture
def two_target_sets(tmp_path):
    """A --sets file of lskd-metrics eta: S1/S2 of the targets dog and wolf among dog, wolf, fox, truck."""
    sets = {
        "dog": {"similar": ["wolf", "fox"], "dissimilar": ["truck"]},
        "wolf": {"similar": ["dog"], "dissimilar": ["truck"]},
    }
    path = tmp_path / "sets.json"
    path.write_text(json.dumps(sets))
    return path


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM cluster on localhost for the session (tests/slurm_cluster.py): skips
    without root or the Debian packages, fails instead under CI=true; stopped by PID at the end."""
    from slurm_cluster import slurm_cluster_session

    yield from slurm_cluster_session()
