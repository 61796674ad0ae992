"""S1/S2 selection: hierarchies (JSON, WordNet), feature space, agreement."""

import json
import os

import numpy as np
import pytest
from conftest import FASHION

from shared_metrics.selection import (
    Hierarchy,
    HierarchyError,
    agreement,
    imagenet_wnids,
    load_hierarchy,
    select_from_features,
    select_from_hierarchy,
)


def test_fashion_hierarchy_groups():
    h, nodes = load_hierarchy("fashion-mnist", FASHION)
    # Pullover and Coat share "tops": 2 edges; Pullover to Sneaker goes through the root: 4.
    assert h.distance("Pullover", "Coat") == 2 and h.distance("Pullover", "Sneaker") == 4
    s1, s2 = select_from_hierarchy(h, nodes, FASHION.index("Pullover"), k=4, n=20, seed=0)
    assert {FASHION[i] for i in s1} == {"T-shirt/top", "Dress", "Coat", "Shirt"}
    assert {FASHION[i] for i in s2} == {"Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot"}
    # A small group gives a smaller S1 rather than borrowing distant classes.
    s1, s2 = select_from_hierarchy(h, nodes, FASHION.index("Sneaker"), k=4, n=3, seed=1)
    assert {FASHION[i] for i in s1} == {"Sandal", "Ankle boot"} and len(s2) == 3
    assert not set(s1) & set(s2)
    with pytest.raises(HierarchyError, match="no similar class"):
        select_from_hierarchy(h, nodes, FASHION.index("Bag"))


def test_hierarchy_selection_is_seeded():
    h, nodes = load_hierarchy("fashion-mnist", FASHION)
    t = FASHION.index("Coat")
    assert select_from_hierarchy(h, nodes, t, k=2, n=2, seed=5) == select_from_hierarchy(
        h, nodes, t, k=2, n=2, seed=5
    )
    draws = {tuple(select_from_hierarchy(h, nodes, t, k=2, n=2, seed=s)[1]) for s in range(8)}
    assert len(draws) > 1


def test_parent_map_json_and_cycles(tmp_path):
    p = tmp_path / "h.json"
    p.write_text(json.dumps({"parents": {"a": "g1", "b": "g1", "c": "g2", "g1": "top", "g2": "top"}}))
    h = Hierarchy.from_json(p)
    assert h.distance("a", "b") == 2 and h.distance("a", "c") == 4 and h.distance("a", "a") == 0
    p.write_text(json.dumps({"parents": {"a": "b", "b": "a"}}))
    with pytest.raises(HierarchyError, match="cycle"):
        Hierarchy.from_json(p)
    p.write_text("[1, 2")
    with pytest.raises(HierarchyError, match="not valid JSON"):
        Hierarchy.from_json(p)


@pytest.mark.skipif(
    not os.path.exists("/usr/share/wordnet/data.noun"),
    reason="Debian wordnet-base not installed (scripts/setup_env.sh installs it)",
)
def test_wordnet_retrievers():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    h, nodes = load_hierarchy("wordnet", [f"class{i}" for i in range(1000)])
    golden = wnids.index("n02099601")
    s1, s2 = select_from_hierarchy(h, nodes, golden, k=4, n=20, seed=0)
    # The other four retrievers of ImageNet-1K (Table 3, set A).
    assert {nodes[i] for i in s1} == {"n02099267", "n02099429", "n02099712", "n02099849"}
    assert len(s2) == 20 and not set(s2) & set(s1)
    assert all(h.distance("n02099601", nodes[i]) > 2 for i in s2)


def test_feature_space_selection_counts():
    # 1000 classes on a line, target at 0: the nearest 1 % of the 999 others are 1..10 and the
    # farthest 90 % are 100..999 (the paper's 10 and 900).
    c = np.arange(1000, dtype=float)[:, None]
    s1, s2 = select_from_features(c, 0)
    assert s1 == list(range(1, 11)) and s2 == list(range(100, 1000))
    # 10 classes: one similar, and the farthest 8 (90 % of 9 rounds up to 9, capped to avoid S1).
    s1, s2 = select_from_features(np.arange(10, dtype=float)[:, None], 0)
    assert s1 == [1] and s2 == list(range(2, 10))
    # only the even classes may be drawn: 100 candidates other than 0 -> nearest 1 (2), farthest 90 (20..198)
    c = np.arange(200, dtype=float)[:, None]
    s1, s2 = select_from_features(c, 0, candidates=range(0, 200, 2))
    assert s1 == [2] and s2 == list(range(20, 200, 2))


def test_agreement():
    assert agreement([1, 2, 3, 4], [2, 4, 9]) == 0.5
    assert agreement([5], [5]) == 1.0
