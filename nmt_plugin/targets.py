"""The translation η's target words and candidate list, from a decoder feature set and the BPE'd text.

Targets, S1 and S2 are drawn among words of 3+ letters (``CANDIDATES``, no punctuation) that stand
as whole words in most of their occurrences in the BPE'd training text: a word-final piece such as
``ing`` of ``go@@ ing`` is in the dictionary but is not a word. The targets are the ``n`` most
frequent such content words (``FUNCTION_WORDS`` excluded) among the dumped training tokens, each
with at least ``MIN_ROWS`` rows::

    python -m nmt_plugin.targets FEATURES TRAIN_TEXT N OUT_JSON OUT_WORDS

OUT_JSON: ``{"targets": [...], "vocabulary": K}``; OUT_WORDS: every candidate word, one a line
(``lskd-metrics similar --candidate-list``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from preprocess.nmt_data import read_lines, whole_word_types
from shared_metrics.errors import UserError, run_cli
from shared_metrics.report import atomic_write_text

CANDIDATES = "[a-z]{3,}"
MIN_ROWS = 20
FUNCTION_WORDS = frozenset(
    "the and that for not but his her him they them their you your this with from have has had "
    "was were are who which what when then there these those will shall into unto out all "
    "one also".split()
)


def candidate_words(classes: list[str], train_lines: list[str]) -> list[str]:
    """The classes (dictionary order) that match ``CANDIDATES`` and are whole words in the text."""
    whole = whole_word_types(train_lines)
    return [c for c in classes if c in whole and re.fullmatch(CANDIDATES, c)]


def target_words(words: list[str], counts: np.ndarray, index: dict[str, int], n: int) -> list[str]:
    """The ``n`` most frequent content words (ties: dictionary order), those with >= MIN_ROWS rows."""
    content = [w for w in words if w not in FUNCTION_WORDS]
    ranked = sorted(content, key=lambda w: (-counts[index[w]], index[w]))
    return [w for w in ranked[:n] if counts[index[w]] >= MIN_ROWS]


def write_targets(features: Path, train_text: Path, n: int, out_json: Path, out_words: Path) -> None:
    meta = features / "meta.json"
    if not meta.is_file():
        raise UserError(f"{features}: not a feature set (no meta.json)")
    if n < 1:
        raise UserError(f"the number of targets must be >= 1, got {n}")
    classes = json.loads(meta.read_text())["classes"]
    words = candidate_words(classes, read_lines(train_text))
    counts = np.bincount(np.load(features / "labels.npy"), minlength=len(classes))
    targets = target_words(words, counts, {c: i for i, c in enumerate(classes)}, n)
    atomic_write_text(out_words, "".join(w + "\n" for w in words))
    atomic_write_text(out_json, json.dumps({"targets": targets, "vocabulary": len(classes)}, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nmt_plugin.targets", description=__doc__.split("\n\n")[0])
    ap.add_argument("features", type=Path, help="a decoder feature set of training tokens")
    ap.add_argument("train_text", type=Path, help="the BPE'd training text of the target side")
    ap.add_argument("n", type=int, help="how many target words")
    ap.add_argument("out_json", type=Path)
    ap.add_argument("out_words", type=Path)
    a = ap.parse_args(argv)
    return run_cli(ap.prog, write_targets, a.features, a.train_text, a.n, a.out_json, a.out_words)


if __name__ == "__main__":
    raise SystemExit(main())
