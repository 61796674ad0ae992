"""Choosing the similar (S1) and dissimilar (S2) classes of a target class (paper Supp. F).

Method 1, a hierarchy: a JSON file for any data set, or for ImageNet-1K the WordNet 3.0 noun
hierarchy read from Debian's ``wordnet-base`` (``data.noun``; an ImageNet wnid ``nXXXXXXXX`` is
the byte offset of its synset line, ``@``/``@i`` pointers are hypernyms). The tree distance of two
classes is the number of edges on the shortest path through a common ancestor.

* S1 = the ``k`` classes nearest the target in the tree (the paper: 4, e.g. the other four
  retrievers), taken only among classes nearer than the median tree distance from the target
  (so S1 can be smaller than k when the target's group is small); ties in a seeded random order.
* S2 = ``n`` classes drawn at random (seeded) among the *distant* ones (the paper: 20 "random"
  dissimilar classes). Our reading of "distant": at least the median tree distance away.
  S1 and S2 therefore never overlap.

Method 2, feature space (Supp. F.2): from class centroids, S1 = the nearest 1 % of the other
classes and S2 = the farthest 90 % (rounded up; at least one each, never overlapping).

Agreement (Table 12): |S_hier ∩ S_feat| / |S_hier|, for S1 and for S2.
"""

from __future__ import annotations

import math
import os
from collections import deque
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import UserError
from .report import read_json

WORDNET_NOUNS = os.environ.get("LSKD_WORDNET", "/usr/share/wordnet/data.noun")
ROOT = "<root>"


class HierarchyError(UserError):
    pass


class Hierarchy:
    """A class taxonomy as a child -> parents map (a tree, or a DAG like WordNet)."""

    def __init__(self, parents: dict[str, list[str]], source: str = ""):
        self.parents = parents
        self.source = source

    # ----------------------------------------------------------- construction
    @classmethod
    def from_json(cls, path) -> Hierarchy:
        """Either nested groups, ``{"tops": ["Pullover", "Coat"], "footwear": {"boots": [...]}}``
        (keys are groups; lists hold class names or further groups), or an explicit map
        ``{"parents": {"Pullover": "tops", "tops": "clothing"}}`` (a value may be a list)."""
        path = Path(path)
        data = read_json(path, HierarchyError, "hierarchy file")
        parents: dict[str, list[str]] = {}

        def add(child, parent):
            if not isinstance(child, str):
                raise HierarchyError(f"{path}: expected class or group names (strings), got {child!r}")
            parents.setdefault(child, [])
            if parent not in parents[child]:
                parents[child].append(parent)

        if isinstance(data, dict) and set(data) == {"parents"}:
            if not isinstance(data["parents"], dict):
                raise HierarchyError(f"{path}: 'parents' must map each name to its parent(s)")
            for child, ps in data["parents"].items():
                for p in [ps] if isinstance(ps, str) else ps:
                    add(child, p)
            for p in {p for ps in list(parents.values()) for p in ps}:
                if p not in parents:
                    add(p, ROOT)
        else:

            def walk(node, parent):
                if isinstance(node, dict):
                    for group, sub in node.items():
                        add(group, parent)
                        walk(sub, group)
                elif isinstance(node, list):
                    for item in node:
                        if isinstance(item, (dict, list)):
                            walk(item, parent)
                        else:
                            add(item, parent)
                else:
                    add(node, parent)

            if not isinstance(data, (dict, list)):
                raise HierarchyError(f"{path}: expected a JSON object of groups")
            walk(data, ROOT)
        h = cls(parents, str(path))
        h._check_acyclic(path)
        return h

    @classmethod
    def wordnet(cls, wnids, data_noun: str | os.PathLike = WORDNET_NOUNS) -> Hierarchy:
        """The WordNet noun hypernym graph above the given synsets (wnids ``n`` + offset)."""
        data_noun = Path(data_noun)
        if not data_noun.exists():
            raise HierarchyError(
                f"{data_noun}: WordNet not found (install Debian's wordnet-base, "
                "or set LSKD_WORDNET to a WordNet 3.0 data.noun)"
            )
        parents: dict[str, list[str]] = {}
        with open(data_noun, "rb") as f:
            todo = deque(wnids)
            while todo:
                wnid = todo.popleft()
                if wnid in parents:
                    continue
                if not (isinstance(wnid, str) and wnid[:1] == "n" and wnid[1:].isdigit()):
                    raise HierarchyError(f"{wnid!r} is not a WordNet noun id (nXXXXXXXX)")
                f.seek(int(wnid[1:]))
                fields = f.readline().decode("utf-8", "replace").split()
                if not fields or fields[0] != wnid[1:]:
                    raise HierarchyError(f"{data_noun}: no synset at offset {wnid[1:]} (is it WordNet 3.0?)")
                n_words = int(fields[3], 16)
                i = 4 + 2 * n_words
                n_ptr = int(fields[i])
                hyper = [
                    f"n{fields[i + 1 + 4 * j + 1]}"
                    for j in range(n_ptr)
                    if fields[i + 1 + 4 * j] in ("@", "@i")
                ]
                parents[wnid] = hyper or [ROOT]
                todo.extend(h for h in hyper if h not in parents)
        return cls(parents, str(data_noun))

    def _check_acyclic(self, path) -> None:
        for node in self.parents:
            seen, stack = set(), [node]
            while stack:
                cur = stack.pop()
                for p in self.parents.get(cur, ()):
                    if p == node:
                        raise HierarchyError(f"{path}: the hierarchy has a cycle through {node!r}")
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)

    # ---------------------------------------------------------------- queries
    def __contains__(self, name) -> bool:
        return name in self.parents

    def ancestors(self, name: str) -> dict[str, int]:
        """Every ancestor (and the node itself) with its smallest number of edges upward."""
        dist = {name: 0}
        todo = deque([name])
        while todo:
            cur = todo.popleft()
            for p in self.parents.get(cur, ()):
                if p not in dist:
                    dist[p] = dist[cur] + 1
                    todo.append(p)
        return dist

    def distance(self, a: str, b: str) -> int:
        """Edges on the shortest path between a and b through a common ancestor."""
        da, db = self.ancestors(a), self.ancestors(b)
        return min(da[x] + db[x] for x in set(da) & set(db))


def load_hierarchy(spec: str, classes: list[str]) -> tuple[Hierarchy, list[str]]:
    """A hierarchy from ``spec`` and the node name of each class (in class order).

    ``spec`` is a JSON path, ``wordnet`` (ImageNet: class names that are wnids, or, for 1000
    classes named otherwise, the standard sorted-wnid order shipped as imagenet_wnids.txt),
    or ``fashion-mnist`` (the shipped tops/footwear/trousers/bags grouping)."""
    if spec == "wordnet":
        if all(c[:1] == "n" and c[1:].isdigit() and len(c) == 9 for c in classes):
            nodes = list(classes)
        elif len(classes) == 1000:
            nodes = imagenet_wnids()
        else:
            raise HierarchyError(
                "--hierarchy wordnet needs classes named by wnid (nXXXXXXXX) or the 1000 ImageNet-1K classes"
            )
        return Hierarchy.wordnet(nodes), nodes
    if spec == "fashion-mnist":
        with resources.as_file(resources.files(__package__) / "data" / "fashion_mnist_hierarchy.json") as p:
            return Hierarchy.from_json(p), list(classes)
    return Hierarchy.from_json(spec), list(classes)


def imagenet_wnids() -> list[str]:
    text = (resources.files(__package__) / "data" / "imagenet_wnids.txt").read_text()
    return [w for w in text.split() if w]


def select_from_hierarchy(
    h: Hierarchy, nodes: list[str], target: int, k: int = 4, n: int = 20, seed: int = 0
) -> tuple[list[int], list[int]]:
    """(S1, S2) as class indices; see the module docstring for the rule."""
    if nodes[target] not in h:
        raise HierarchyError(f"class {nodes[target]!r} is not in the hierarchy {h.source}")
    if k < 1 or n < 1:
        raise HierarchyError("need k >= 1 similar and n >= 1 dissimilar classes")
    rng = np.random.default_rng(seed)
    others = [i for i in rng.permutation(len(nodes)) if i != target and nodes[i] in h]
    if len(others) < 2:
        raise HierarchyError("the hierarchy holds fewer than 3 of the classes")
    dist = {i: h.distance(nodes[target], nodes[i]) for i in others}
    median = float(np.median(list(dist.values())))
    ranked = sorted((i for i in others if dist[i] < median), key=lambda i: dist[i])  # ties: seeded order
    similar = ranked[:k]
    if not similar:
        raise HierarchyError(
            f"no class is nearer than the median tree distance to {nodes[target]!r}: "
            "it has no similar class in the hierarchy"
        )
    distant = [i for i in others if dist[i] >= median]
    dissimilar = [int(i) for i in rng.choice(distant, size=min(n, len(distant)), replace=False)]
    return sorted(int(i) for i in similar), sorted(dissimilar)


def _count(fraction: float, m: int) -> int:
    return max(1, math.ceil(fraction * m - 1e-9))


def select_from_features(
    centroids: np.ndarray, target: int, near: float = 0.01, far: float = 0.90, candidates=None
) -> tuple[list[int], list[int]]:
    """(S1, S2) from centroid distances (Supp. F.2): the nearest ``near`` and farthest ``far``
    fractions of the other classes (999 others: 10 and 900, as in the paper). Classes without
    samples (NaN centroid) are left out; ``candidates`` (class indices), when given, are the only
    classes S1 and S2 are drawn from (e.g. whole words, not subword pieces, of a vocabulary)."""
    c = np.asarray(centroids, np.float64)
    if not np.isfinite(c[target]).all():
        raise ValueError("the target class has no samples (empty class)")
    d = np.linalg.norm(c - c[target], axis=1)
    allowed = None if candidates is None else set(int(i) for i in candidates)
    others = [
        i
        for i in np.argsort(d, kind="stable")
        if i != target and np.isfinite(d[i]) and (allowed is None or i in allowed)
    ]
    m = len(others)
    if m < 2:
        raise ValueError("need at least 3 classes with samples to select similar and dissimilar sets")
    n1 = _count(near, m)
    n2 = min(_count(far, m), m - n1)
    return sorted(int(i) for i in others[:n1]), sorted(int(i) for i in others[m - n2 :])


def agreement(reference: list[int], other: list[int]) -> float:
    """|reference ∩ other| / |reference| (Table 12 uses the hierarchy sets as reference)."""
    return len(set(reference) & set(other)) / len(reference)
