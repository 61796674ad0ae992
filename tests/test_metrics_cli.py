"""`lskd-metrics` end to end: the two documented calls, formats, and one-line errors."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FASHION, around
from test_metrics_math import C_T1, C_T2, ETA_S1, ETA_S2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    p = subprocess.run(
        [sys.executable, "-m", "shared_metrics", *map(str, args)], cwd=ROOT, capture_output=True, text=True
    )
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def eta_sets(make_set):
    names = ["dog", "wolf", "fox", "truck"]
    f1, y1 = around(C_T1)
    f2, y2 = around(C_T2)
    return make_set("T1", f1, y1, classes=names, temperature=1), make_set(
        "T3", f2, y2, classes=names, temperature=3
    )


def test_eta_documented_call(eta_sets):
    before, after = eta_sets
    rc, out, err = run(
        "eta",
        "--before",
        before,
        "--after",
        after,
        "--target",
        "dog",
        "--similar",
        "wolf,fox",
        "--dissimilar",
        "truck",
        "--format",
        "json",
    )
    assert rc == 0, err
    r = json.loads(out)
    assert r["eta_similar"] == pytest.approx(ETA_S1, abs=1e-6)
    assert r["eta_dissimilar"] == pytest.approx(ETA_S2, abs=1e-6)
    assert r["unit"] == "fraction" and r["systematic_diffusion"] is True
    # by index too
    rc, out, _ = run(
        "eta", "--before", before, "--after", after, "--target", "0", "--similar", "1,2", "--dissimilar", "3"
    )
    assert json.loads(out)["eta_similar"] == pytest.approx(ETA_S1, abs=1e-6)


def test_eta_sets_table_with_valid_columns(eta_sets, two_target_sets):
    before, after = eta_sets
    sets = two_target_sets
    args = ["eta", "--before", before, "--after", after, "--before-valid", before, "--after-valid", after]
    args += ["--sets", sets]
    rc, out, err = run(*args, "--format", "markdown")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "| target | η S1 (%) | η S2 (%) | η S1 valid (%) | η S2 valid (%) |"
    assert lines[2] == "| dog | -25.000 | 20.000 | -25.000 | 20.000 |"
    rc, out, _ = run(*args, "--format", "csv")
    assert out.splitlines()[0] == (
        "target,eta_similar (fraction),eta_dissimilar (fraction),"
        "eta_similar_valid (fraction),eta_dissimilar_valid (fraction)"
    )
    assert [float(v) for v in out.splitlines()[1].split(",")[1:]] == pytest.approx([-0.25, 0.2] * 2, abs=1e-6)
    rc, out, _ = run(*args, "--format", "json")
    assert [t["target"] for t in json.loads(out)["targets"]] == ["dog", "wolf"]


def test_entropy_documented_call(make_set):
    ln3 = math.log(3)
    logits = np.array([[0, ln3], [0, 0]], np.float32)
    d = make_set("e", np.zeros((2, 2)), [0, 1], classes=["a", "b"], logits=logits)
    rc, out, err = run("entropy", "--features", d, "--temperature", "1", "2", "3", "64", "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    assert list(r) == ["1", "2", "3", "64"]
    assert r["1"] == pytest.approx((math.log(4) - 0.75 * ln3 + math.log(2)) / 2, abs=1e-6)
    assert r["64"] == pytest.approx(math.log(2), abs=1e-3)


def test_match_temperature_cli(make_set):
    ln3 = math.log(3)
    sharp = make_set(
        "a", np.zeros((1, 2)), [0], classes=["a", "b"], logits=np.array([[0, 2 * ln3]], np.float32)
    )
    soft = make_set("b", np.zeros((1, 2)), [0], classes=["a", "b"], logits=np.array([[0, ln3]], np.float32))
    rc, out, err = run("match-temperature", "--features", sharp, "--reference", soft)
    assert rc == 0, err
    assert json.loads(out)["temperature"] == pytest.approx(2.0, abs=1e-4)


def test_other_commands_run(make_set, tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6)
    x = rng.normal(size=(60, 8)) + np.repeat(rng.normal(scale=4, size=(10, 8)), 6, axis=0)
    logits = rng.normal(size=(60, 10)).astype(np.float32)
    d = make_set(
        "f", x, y, classes=FASHION, logits=logits, model="toy", alpha=0.1, temperature=1, split="train"
    )
    rc, out, err = run(
        "similar",
        "--features",
        d,
        "--target",
        "Pullover",
        "--hierarchy",
        "fashion-mnist",
        "--write-sets",
        tmp_path / "s.json",
    )
    assert rc == 0, err
    assert set(json.loads((tmp_path / "s.json").read_text())["Pullover"]["similar"]) == {
        "T-shirt/top",
        "Dress",
        "Coat",
        "Shirt",
    }
    rc, out, err = run("eta", "--before", d, "--after", d, "--sets", tmp_path / "s.json")
    assert rc == 0 and json.loads(out)["targets"][0]["eta_similar"] == pytest.approx(0.0, abs=1e-12)
    # feature space among the classes whose names have no '/' or ' ' (8 of 10): S1, S2 never hold the others
    rc, out, err = run(
        "similar",
        "--features",
        d,
        "--target",
        "Pullover",
        "--candidates",
        "[A-Za-z-]+",
        "--near",
        "0.2",
        "--far",
        "0.7",
        "--write-sets",
        tmp_path / "c.json",
    )
    sets = json.loads((tmp_path / "c.json").read_text())["Pullover"]
    assert rc == 0 and len(sets["similar"]) == 2 and len(sets["dissimilar"]) == 5, err
    assert not {"T-shirt/top", "Ankle boot"} & {*sets["similar"], *sets["dissimilar"]}
    _assert_one_line_error(
        *run("similar", "--features", d, "--target", "Pullover", "--candidates", "[a-"),
        "--candidates: not a regular expression",
    )
    _assert_one_line_error(
        *run("similar", "--features", d, "--target", "Pullover", "--candidates", "Coat"), "matches 1 classes"
    )
    # a class list (names with '/' and ' ' allowed): S1 and S2 only from it; with --candidates, both apply
    listed = tmp_path / "words.txt"
    listed.write_text("T-shirt/top\nAnkle boot\n\nCoat\nBag\nSneaker\nTrouser\nCoat\n")  # Coat twice: once
    # sizes: S1 = ceil(0.25 m), S2 = min(ceil(0.75 m), m - |S1|) of the m allowed classes
    for extra, allowed, n1, n2 in (
        ((), {"T-shirt/top", "Ankle boot", "Coat", "Bag", "Sneaker", "Trouser"}, 2, 4),
        (("--candidates", "[A-Za-z-]+"), {"Coat", "Bag", "Sneaker", "Trouser"}, 1, 3),
    ):
        rc, out, err = run(
            "similar",
            "--features",
            d,
            "--target",
            "Pullover",
            "--candidate-list",
            listed,
            *extra,
            "--near",
            "0.25",
            "--far",
            "0.75",
            "--write-sets",
            tmp_path / "l.json",
        )
        sets = json.loads((tmp_path / "l.json").read_text())["Pullover"]
        assert rc == 0, err
        assert len(sets["similar"]) == n1 and len(sets["dissimilar"]) == n2, sets
        assert {*sets["similar"], *sets["dissimilar"]} <= allowed
    for text, bad in (("Coat\nParka\n", "Parka"), ("Coat\nBag\n5\n", "5")):  # names only, not indices
        listed.write_text(text)
        _assert_one_line_error(
            *run("similar", "--features", d, "--target", "Pullover", "--candidate-list", listed),
            f"unknown class '{bad}'",
        )
    _assert_one_line_error(
        *run(
            "similar", "--features", d, "--target", "Pullover", "--candidate-list", tmp_path / "nowhere.txt"
        ),
        "cannot read the class list",
    )
    rc, out, err = run("stability", "--features", d, "--format", "markdown")
    assert rc == 0 and out.startswith("| label | stability |"), err
    rc, out, err = run("accuracy", "--features", d, "--classes", "Coat")
    assert rc == 0 and set(json.loads(out)["per_class"]) == {"Coat"}, err
    rc, out, err = run(
        "project", "--features", d, "--classes", "Pullover,Coat,Sneaker", "--out", tmp_path / "p.png"
    )
    assert rc == 0 and (tmp_path / "p.png").stat().st_size > 1000, err


def _assert_one_line_error(rc, out, err, *fragments):
    assert rc != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err


#: the target, S1 and S2 of most η calls below
PICK = ["--target", "dog", "--similar", "wolf", "--dissimilar", "truck"]


def test_bad_input_exits_with_one_line(make_set, eta_sets, tmp_path):
    before, after = eta_sets
    base = ["eta", "--before", before, "--after", after]
    _assert_one_line_error(
        *run(*base, "--target", "cat", "--similar", "wolf", "--dissimilar", "truck"), "unknown class 'cat'"
    )
    _assert_one_line_error(
        *run(*base, "--target", "dog", "--similar", "wolf", "--dissimilar", "wolf"),
        "both the similar and dissimilar",
    )
    # NaN features (written by hand: the writer itself refuses them)
    bad = tmp_path / "nanset"
    shutil.copytree(before, bad)
    x = np.load(bad / "features.npy")
    x[3, 1] = np.nan
    np.save(bad / "features.npy", x)
    _assert_one_line_error(*run("eta", "--before", bad, "--after", after, *PICK), "non-finite", "row 3")
    # mismatched shapes
    np.save(bad / "features.npy", x[:5])
    _assert_one_line_error(*run("eta", "--before", bad, "--after", after, *PICK), "labels.npy")
    # an empty class: 'truck' has no sample in this set
    empty = make_set(
        "empty",
        np.array([[0, 0], [1, 0], [0, 2]], np.float32),
        [0, 1, 2],
        classes=["dog", "wolf", "fox", "truck"],
    )
    _assert_one_line_error(*run("eta", "--before", empty, "--after", empty, *PICK), "'truck' has no samples")
    # classes that differ between the two sets
    other = make_set("other", np.zeros((4, 2)), [0, 1, 2, 3], classes=["a", "b", "c", "d"])
    _assert_one_line_error(
        *run(
            "eta", "--before", other, "--after", after, "--target", "0", "--similar", "1", "--dissimilar", "2"
        ),
        "classes differ",
    )
    _assert_one_line_error(*run(*base, "--target", "dog"), "--similar")
    _assert_one_line_error(*run("entropy", "--features", before, "--temperature", "1"), "no logits.npy")
    _assert_one_line_error(
        *run("entropy", "--features", tmp_path / "missing", "--temperature", "1"), "not found"
    )
    rc, out, err = run("entropy", "--features", before, "--temperature", "0")
    assert rc == 2 and "Traceback" not in err and "positive" in err


def test_metric_inputs_that_would_give_a_silent_wrong_result(make_set, eta_sets, tmp_path):
    before, after = eta_sets
    # η needs the same samples at T1 and T2: other labels, or another split, are refused
    shuffled = tmp_path / "shuffled"
    shutil.copytree(after, shuffled)
    y = np.load(shuffled / "labels.npy")
    np.save(shuffled / "labels.npy", y[::-1].copy())
    _assert_one_line_error(
        *run("eta", "--before", before, "--after", shuffled, *PICK),
        "are not the same samples",
        "labels differ from row 0",
    )
    meta = json.loads((shuffled / "meta.json").read_text())
    np.save(shuffled / "labels.npy", y)
    train = tmp_path / "train"
    shutil.copytree(before, train)
    (train / "meta.json").write_text(
        json.dumps({**json.loads((train / "meta.json").read_text()), "split": "train"})
    )
    for key, value in (("split", "valid"), ("temperature", 0.5)):
        (shuffled / "meta.json").write_text(json.dumps({**meta, key: value}))
        expected = "different splits" if key == "split" else "takes the lower temperature first"
        _assert_one_line_error(*run("eta", "--before", train, "--after", shuffled, *PICK), expected)
    # S1/S2 chosen two ways at once, or half given
    _assert_one_line_error(
        *run("eta", "--before", before, "--after", after, *PICK, "--select-by-features"), "each choose S1/S2"
    )
    _assert_one_line_error(
        *run("eta", "--before", before, "--after", after, *PICK[:4], "--select-by-features"),  # S1 without S2
        "each choose S1/S2",
    )
    rc, out, err = run(
        "eta", "--before", before, "--after", after, *PICK, "--pairwise", "--max-per-class", "0"
    )
    assert rc == 2 and "must be a whole number >= 1" in err
    # a NaN is reported at its file row, with its file
    nan = tmp_path / "nan"
    shutil.copytree(before, nan)
    x, y = np.load(nan / "features.npy"), np.load(nan / "labels.npy")
    row = int(np.flatnonzero(y == 1)[-1])  # the last 'wolf' row
    x[row, 0] = np.nan
    np.save(nan / "features.npy", x)
    _assert_one_line_error(
        *run("project", "--features", nan, "--classes", "dog,wolf,truck", "--out", tmp_path / "p.png"),
        f"{nan / 'features.npy'}",
        f"row {row}",
    )
    logits = np.zeros((5, 2), np.float32)
    inf = make_set("inf", np.zeros((5, 2)), [0, 1, 0, 1, 0], classes=["a", "b"], logits=logits)
    logits[4, 1] = np.inf  # by hand: the writer itself refuses it
    np.save(Path(inf) / "logits.npy", logits)
    _assert_one_line_error(
        *run("entropy", "--features", inf, "--temperature", "1"), f"{inf}/logits.npy", "row 4"
    )
    _assert_one_line_error(
        *run("match-temperature", "--features", inf, "--entropy", "nan"), "must be a number >= 0"
    )
    # two sets that would share a column or a panel
    a = make_set(
        "seed1",
        np.zeros((3, 2)),
        [0, 1, 2],
        classes=["x", "y", "z"],
        logits=np.zeros((3, 3)),
        model="m",
        alpha=0.1,
        temperature=1,
    )
    b = make_set(
        "seed2",
        np.ones((3, 2)),
        [0, 1, 2],
        classes=["x", "y", "z"],
        logits=np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9]], np.float32),
        model="m",
        alpha=0.1,
        temperature=1,
    )
    rc, out, err = run("entropy", "--features", a, b, "--temperature", "1", "--format", "csv")
    assert rc == 0 and len(out.splitlines()[0].split(",")) == 3, out  # T + one column per set
    _assert_one_line_error(
        *run("project", "--features", a, b, "--classes", "x,y,z", "--out", tmp_path / "q.png"),
        "would share one panel",
    )
    _assert_one_line_error(
        *run("similar", "--features", a, "--target", "x", "--near", "0.5", "--far", "0.6"),
        "S1 and S2 would overlap",
    )
    # classes a JSON hierarchy does not hold are named on stderr, not dropped silently
    hier = tmp_path / "h.json"
    hier.write_text(json.dumps({"all": {"xy": ["x", "y"], "other": ["zz"]}}))
    rc, out, err = run("similar", "--features", a, "--target", "x", "--hierarchy", hier)
    assert "warning: 1 of 3 classes are not in the hierarchy" in err and "'z'" in err


def test_metrics_do_not_import_torch():
    code = (
        "import sys, shared_metrics.cli, shared_metrics.projection; "
        "print(any(m.split('.')[0] in ('torch', 'fairseq') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_soft_targets_golden(make_set, tmp_path):
    ln3 = math.log(3)
    # class "b" (index 1) has one sample with logits (0, ln 3, 0):
    # T = 1 -> (1/5, 3/5, 1/5); T = 2 -> (1, √3, 1)/(2 + √3).
    logits = np.array([[0, ln3, 0], [5, 0, 0]], np.float32)
    d = make_set("st", np.zeros((2, 3)), [1, 0], classes=["a", "b", "c"], logits=logits)
    rc, out, err = run(
        "soft-targets",
        "--features",
        d,
        "--target",
        "b",
        "--similar",
        "c",
        "--temperature",
        "1",
        "2",
        "--out",
        tmp_path / "s.png",
    )
    assert rc == 0, err
    r = json.loads(out)["mean_soft_targets"]
    assert list(r["1"]) == ["b", "c", "a"]  # target, similar, then the others
    assert [r["1"][c] for c in "abc"] == pytest.approx([0.2, 0.6, 0.2], abs=1e-6)
    s3 = math.sqrt(3)
    assert [r["2"][c] for c in "abc"] == pytest.approx([1 / (2 + s3), s3 / (2 + s3), 1 / (2 + s3)], abs=1e-6)
    assert (tmp_path / "s.png").stat().st_size > 1000
