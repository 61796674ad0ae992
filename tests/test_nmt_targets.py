"""nmt_plugin.targets: the translation η's target words, worked by hand on a toy dictionary."""

import json

import numpy as np

from nmt_plugin.targets import main

CLASSES = ["the", "lord", "ing", "go@@", "said", "ab", "god", "x1"]
# "ing" only ever ends "go@@ ing" (a word-final piece), "ab" has 2 letters, "x1" is not [a-z],
# so the candidates are the, lord, said, god (dictionary order); "the", a function word, is no target.
TEXT = "the lord said go@@ ing god\nthe lord go@@ ing ab x1\n"


def feature_set(tmp_path, counts):
    d = tmp_path / "feats"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"classes": CLASSES}))
    labels = np.concatenate([np.full(n, CLASSES.index(c)) for c, n in counts.items()])
    np.save(d / "labels.npy", labels.astype(np.int64))
    text = tmp_path / "train.en"
    text.write_text(TEXT)
    return d, text


def run(tmp_path, counts, n):
    d, text = feature_set(tmp_path, counts)
    out, words = tmp_path / "targets.json", tmp_path / "words.txt"
    assert main([str(d), str(text), str(n), str(out), str(words)]) == 0
    return json.loads(out.read_text()), words.read_text().split()


def test_most_frequent_whole_content_words(tmp_path):
    got, words = run(tmp_path, {"the": 50, "said": 30, "lord": 25, "god": 20, "ing": 40}, 2)
    assert words == ["the", "lord", "said", "god"]
    assert got == {"targets": ["said", "lord"], "vocabulary": 8}


def test_a_word_with_fewer_than_20_rows_is_not_a_target(tmp_path):
    got, _ = run(tmp_path, {"said": 30, "lord": 25, "god": 19}, 3)
    assert got["targets"] == ["said", "lord"]


def test_not_a_feature_set_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "t"), "3", str(tmp_path / "o"), str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no meta.json" in err and "\n" not in err
