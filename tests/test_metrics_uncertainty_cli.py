"""`lskd-metrics eta --bootstrap`, `compare`, `seeds`, `paired-seeds`: outputs, units, golden values
(worked by hand in the comments) and one-line errors. Run in-process (main(argv)) to stay fast,
plus one subprocess call for the real entry point."""

import csv
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import around
from test_metrics_cli import ROOT
from test_metrics_math import C_T1, C_T2, ETA_S1, ETA_S2

from shared_metrics.cli import main


def call(capsys, *args):
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(result, *fragments):
    rc, out, err = result
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


@pytest.fixture
def eta_sets(make_set):
    # 10 samples per class around the Table-3-style centroids of test_metrics_math (η(S1) = -1/4, η(S2) = 1/5)
    names = ["dog", "wolf", "fox", "truck"]
    sets = []
    for name, c, T in (("T1", C_T1, 1), ("T3", C_T2, 3)):
        f, y = around(c, spread=0.3)
        noise = np.random.default_rng(0).standard_normal((5,) + f.shape) * 0.05
        sets.append(make_set(name, np.concatenate(f + noise), np.tile(y, 5), classes=names, temperature=T))
    return sets


PICK = ["--target", "dog", "--similar", "wolf,fox", "--dissimilar", "truck"]


def test_eta_bootstrap_outputs_and_units(capsys, eta_sets):
    before, after = eta_sets
    base = ["eta", "--before", before, "--after", after, *PICK]
    rc, out, err = call(capsys, *base, "--format", "json")
    assert rc == 0, err
    plain = json.loads(out)
    rc, out, err = call(capsys, *base, "--bootstrap", "400", "--seed", "3", "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    # the point estimate is η of the full sets (from the same rows, float64: agrees to float32 rounding)
    assert r["eta_similar"] == pytest.approx(plain["eta_similar"], abs=1e-6)
    assert r["eta_similar"] == pytest.approx(ETA_S1, abs=0.02)
    assert r["eta_dissimilar"] == pytest.approx(ETA_S2, abs=0.02)
    lo1, hi1 = r["eta_similar_ci"]
    lo2, hi2 = r["eta_dissimilar_ci"]
    assert lo1 < r["eta_similar"] < hi1 < 0 < lo2 < r["eta_dissimilar"] < hi2  # fractions, clear diffusion
    assert r["significant_systematic_diffusion"] is True and r["systematic_diffusion"] is True
    assert (
        r["bootstrap"]["replicates"] == 400
        and r["bootstrap"]["confidence"] == 0.95
        and r["unit"] == "fraction"
    )
    # p = 2 (k + 1)/(B + 1) for the k replicates on the wrong side of 0: small, as the intervals say
    k = r["p_systematic_diffusion"] * 401 / 2 - 1
    assert r["p_systematic_diffusion"] < 0.05 and k == pytest.approx(round(k), abs=1e-9)
    # same seed -> same intervals; another seed -> other intervals
    again = json.loads(call(capsys, *base, "--bootstrap", "400", "--seed", "3")[1])
    other = json.loads(call(capsys, *base, "--bootstrap", "400", "--seed", "4")[1])
    assert again["eta_similar_ci"] == r["eta_similar_ci"] and other["eta_similar_ci"] != r["eta_similar_ci"]
    # CSV: fractions, units in the headers; markdown: the same numbers in percent
    rc, out, _ = call(capsys, *base, "--bootstrap", "400", "--seed", "3", "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out)))
    assert float(row["eta_similar_ci_low (fraction)"]) == pytest.approx(lo1)
    assert float(row["eta_dissimilar_ci_high (fraction)"]) == pytest.approx(hi2)
    assert row["significant_systematic_diffusion"] == "True"
    rc, out, _ = call(
        capsys, *base, "--bootstrap", "400", "--seed", "3", "--format", "markdown", "--confidence", "0.9"
    )
    head, _, cells = out.strip().splitlines()
    assert "η S1 90% CI low (%)" in head and "significant" in head
    md = dict(
        zip([h.strip() for h in head.strip("|").split("|")], [c.strip() for c in cells.strip("|").split("|")])
    )
    assert float(md["η S1 (%)"]) == pytest.approx(100 * r["eta_similar"], abs=1e-3)
    assert md["significant"] == "yes"


def test_eta_bootstrap_many_targets_and_valid_split(capsys, eta_sets, two_target_sets):
    before, after = eta_sets
    both = ["eta", "--before", before, "--after", after, "--before-valid", before, "--after-valid", after]
    rc, out, err = call(capsys, *both, "--sets", two_target_sets, "--bootstrap", "200")
    assert rc == 0, err
    r = json.loads(out)
    assert "Holm over the 2 target(s)" in r["bootstrap"]["multiple_testing"]
    for t in r["targets"]:
        for sfx in ("", "_valid"):
            assert len(t[f"eta_similar_ci{sfx}"]) == 2 and f"significant_systematic_diffusion{sfx}" in t
    # Holm with m = 2: the smaller p doubles (capped at 1), the larger stays (or takes the running max)
    ps = sorted(x["p_systematic_diffusion"] for x in r["targets"])
    holms = sorted(x["p_systematic_diffusion_holm"] for x in r["targets"])
    assert holms[0] == pytest.approx(min(1, 2 * ps[0])) and holms[1] == pytest.approx(max(holms[0], ps[1]))
    # the valid split is resampled on its own draws (split key 1): other replicates than train's
    t = r["targets"][0]
    assert t["eta_similar_ci_valid"] != t["eta_similar_ci"] and t["eta_similar_valid"] == t["eta_similar"]


def test_eta_bootstrap_bad_input(capsys, eta_sets):
    before, after = eta_sets
    base = ["eta", "--before", before, "--after", after, *PICK]
    for bad in ("0", "-5", "lots"):
        one_line_error(call(capsys, *base, "--bootstrap", bad), "--bootstrap must be a whole number")
    for bad in ("0", "1", "95", "nan"):
        one_line_error(
            call(capsys, *base, "--bootstrap", "10", "--confidence", bad),
            "--confidence must be a level in (0, 1)",
        )
    # 10^13 replicates: the replicate distances alone would be 10^13 x 3 x 40 bytes
    one_line_error(
        call(capsys, *base, "--bootstrap", str(10**13)),
        "--bootstrap 10000000000000",
        "GB of memory available",
    )
    one_line_error(call(capsys, *base, "--bootstrap", "10", "--pairwise"), "does not combine with --pairwise")
    one_line_error(call(capsys, *base, "--bootstrap", "10", "--seed", "-1"), "--seed must be >= 0")


def test_eta_bootstrap_entry_point(eta_sets):
    before, after = eta_sets
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared_metrics",
            "eta",
            "--before",
            before,
            "--after",
            after,
            *PICK,
            "--bootstrap",
            "50",
            "--format",
            "markdown",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "| dog |" in p.stdout and "95% CI" in p.stdout


# ------------------------------------------------------------------ compare
@pytest.fixture
def compared(make_set):
    """20 samples of two classes: A and B both right on 10, only A on 1, only B on 6, neither on 3."""
    y = np.array([0, 1] * 10)
    kinds = ["both"] * 10 + ["a"] * 1 + ["b"] * 6 + ["neither"] * 3

    def logits(right):
        return np.eye(2, dtype=np.float32)[np.where(right, y, 1 - y)]

    a_right = np.array([k in ("both", "a") for k in kinds])
    b_right = np.array([k in ("both", "b") for k in kinds])
    feats = np.zeros((20, 2))
    a = make_set("A", feats, y, classes=["x", "z"], logits=logits(a_right), model="A", split="test")
    b = make_set("B", feats, y, classes=["x", "z"], logits=logits(b_right), model="B", split="test")
    return a, b


def test_compare_golden(capsys, compared):
    # top-1 A = 11/20 = 0.55, top-1 B = 16/20 = 0.80, B - A = 0.25.
    # McNemar: b = 1, c = 6 -> two-sided p = 2 (1 + 7)/2^7 = 0.125 -> not significant at 95 %.
    a, b = compared
    rc, out, err = call(capsys, "compare", "--a", a, "--b", b, "--bootstrap", "2000", "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    assert (r["top1_a"], r["top1_b"], r["difference"]) == pytest.approx((0.55, 0.80, 0.25))
    assert r["mcnemar"] == {"only_a": 1, "only_b": 6, "p_value": pytest.approx(0.125)}
    assert r["significant"] is False and r["samples"] == 20 and r["unit"] == "fraction"
    lo, hi = r["difference_ci"]
    assert lo < 0.25 < hi
    rc, out, _ = call(capsys, "compare", "--a", a, "--b", b, "--format", "markdown")
    assert "| 55.000 | 80.000 | 25.000 |" in out and "not distinguishable at this scale" in out


def test_compare_refuses_other_samples(capsys, compared, make_set, tmp_path):
    a, b = compared
    other = make_set(
        "C", np.zeros((20, 2)), np.array([1, 0] * 10), classes=["x", "z"], logits=np.zeros((20, 2))
    )
    one_line_error(call(capsys, "compare", "--a", a, "--b", other), "are not the same samples")
    valid = tmp_path / "Bvalid"
    shutil.copytree(b, valid)
    meta = json.loads((valid / "meta.json").read_text())
    (valid / "meta.json").write_text(json.dumps({**meta, "split": "valid"}))
    one_line_error(call(capsys, "compare", "--a", a, "--b", valid), "different splits")
    one_line_error(call(capsys, "compare", "--a", a, "--b", b, "--bootstrap", "0"), "--bootstrap must be")
    one_line_error(call(capsys, "compare", "--a", a, "--b", b, "--confidence", "1"), "--confidence must be")


# -------------------------------------------------------------------- seeds
def test_seeds_from_csv_golden(capsys, tmp_path):
    # α = 0: 0.70, 0.72, 0.71 -> mean 0.71, s = 0.01, se = 0.0057735, t_{2,0.975} = 4.302653,
    # half-width 0.0248414; α = 0.1: 0.73, 0.74, 0.75 -> mean 0.74, the same s and half-width.
    # Paired (B = α 0.1 minus A = α 0): 0.03, 0.02, 0.04 -> 0.03 ± 0.0248414, p = 0.035098 (see
    # test_metrics_stats.test_paired_t_interval_by_hand) -> significant at 95 %.
    path = tmp_path / "runs.csv"
    path.write_text(
        "alpha,T,seed,top1\n0,1,0,0.70\n0,1,1,0.72\n0,1,2,0.71\n0.1,1,0,0.73\n0.1,1,1,0.74\n0.1,1,2,0.75\n"
    )
    rc, out, err = call(
        capsys, "seeds", "--csv", path, "--value", "top1", "--by", "alpha,T", "--unit", "fraction"
    )
    assert rc == 0, err
    g = json.loads(out)["groups"]
    assert [(x["alpha"], x["n"]) for x in g] == [("0", 3), ("0.1", 3)]
    assert (g[0]["mean"], g[0]["std"], g[0]["low"], g[0]["high"]) == pytest.approx(
        (0.71, 0.01, 0.71 - 0.0248414, 0.71 + 0.0248414), abs=1e-7
    )
    rc, out, _ = call(
        capsys,
        "seeds",
        "--csv",
        path,
        "--value",
        "top1",
        "--by",
        "alpha",
        "--unit",
        "fraction",
        "--format",
        "markdown",
    )
    assert "| 0.1 | 74.000 | 1.000 | 3 | 71.516 | 76.484 |" in out  # percent: 74 ± 2.484
    paired = ["paired-seeds", "--csv", path, "--value", "top1", "--condition", "alpha", "--a-value", "0"]
    paired += ["--b-value", "0.1"]
    rc, out, err = call(capsys, *paired, "--by", "T", "--unit", "fraction")
    assert rc == 0, err
    d = json.loads(out)["groups"][0]
    assert (d["mean"], d["low"], d["high"], d["p_value"]) == pytest.approx(
        (0.03, 0.0051586, 0.0548414, 0.035098), abs=1e-6
    )
    assert d["significant"] is True
    # a seed given twice in one group; a seed only one condition has
    path.write_text("alpha,seed,top1\n0,0,0.70\n0,0,0.72\n")
    one_line_error(
        call(capsys, "seeds", "--csv", path, "--value", "top1", "--by", "alpha"),
        "line 3: seed 0 given twice for alpha=0",
    )
    path.write_text("alpha,seed,top1\n0,0,0.70\n0,1,0.72\n0.1,0,0.75\n0.1,2,0.76\n")
    one_line_error(call(capsys, *paired), "seed 1 is in only one of alpha")
    one_line_error(call(capsys, "seeds", "--csv", path, "--value", "acc"), "no column 'acc'")
    one_line_error(
        call(capsys, "seeds", "--csv", path, "--value", "top1", "--confidence", "2"), "--confidence must be"
    )


def test_seeds_from_json_results(capsys, tmp_path):
    # accuracy JSONs of three seeds: top-1 0.5, 0.6, 0.7 -> mean 0.6, s = 0.1, half-width
    # 4.302653 * 0.1 / sqrt(3) = 0.248414. eta --sets JSONs: one group per target.
    files = []
    for seed, acc in enumerate((0.5, 0.6, 0.7)):
        f = tmp_path / f"acc{seed}.json"
        f.write_text(json.dumps({"unit": "fraction", "top1": acc, "features": f"s{seed}"}))
        files.append(f)
    rc, out, err = call(capsys, "seeds", *files, "--key", "top1")
    assert rc == 0, err
    g = json.loads(out)
    assert g["unit"] == "fraction"
    assert (g["groups"][0]["mean"], g["groups"][0]["high"]) == pytest.approx((0.6, 0.6 + 0.248414), abs=1e-6)
    eta = []
    for seed, s1 in enumerate((-0.01, -0.03, -0.02)):
        f = tmp_path / f"eta{seed}.json"
        f.write_text(
            json.dumps(
                {
                    "unit": "fraction",
                    "targets": [
                        {"target": "dog", "eta_similar": s1},
                        {"target": "cat", "eta_similar": 2 * s1},
                    ],
                }
            )
        )
        eta.append(f)
    g = json.loads(call(capsys, "seeds", *eta, "--key", "eta_similar")[1])["groups"]
    assert [x["target"] for x in g] == ["dog", "cat"]
    assert (g[0]["mean"], g[1]["mean"]) == pytest.approx((-0.02, -0.04))
    # paired, seeds in the given order: B = 0.55, 0.62, 0.78 minus A = 0.5, 0.6, 0.7 -> 0.05, 0.02, 0.08:
    # mean 0.05, s = 0.03, se = 0.0173205, half-width 4.302653 * se = 0.0745241; t = 2.886751 with 2 df:
    # p = 1 - t / sqrt(2 + t^2) = 1 - 2.886751/3.214550 = 0.101974 -> not distinguishable.
    b_files = []
    for seed, acc in enumerate((0.55, 0.62, 0.78)):
        f = tmp_path / f"b{seed}.json"
        f.write_text(json.dumps({"unit": "fraction", "top1": acc, "features": f"b{seed}"}))
        b_files.append(f)
    rc, out, err = call(capsys, "paired-seeds", "--a", *files, "--b", *b_files, "--key", "top1")
    assert rc == 0, err
    d = json.loads(out)["groups"][0]
    assert (d["mean"], d["high"] - d["mean"], d["p_value"]) == pytest.approx(
        (0.05, 0.0745241, 0.101974), abs=1e-6
    )
    assert d["significant"] is False
    rc, out, _ = call(
        capsys, "paired-seeds", "--a", *files, "--b", *b_files, "--key", "top1", "--format", "markdown"
    )
    assert "| top1 | 5.000 | 3.000 | 3 |" in out and "not distinguishable at this scale" in out
    one_line_error(call(capsys, "seeds", files[0], files[0], "--key", "top1"), "is given twice")
    dup = tmp_path / "copy.json"
    shutil.copy(files[1], dup)
    one_line_error(call(capsys, "seeds", files[1], dup, "--key", "top1"), "hold the same results")
    one_line_error(call(capsys, "seeds", *files, "--key", "top5"), "no number at 'top5'")
    one_line_error(
        call(capsys, "paired-seeds", "--a", *files, "--b", *eta[:2], "--key", "top1"),
        "--a has 3 files and --b 2",
    )
