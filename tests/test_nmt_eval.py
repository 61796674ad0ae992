"""Feature dumps (lskd feature-set contract) and BLEU scoring of toy checkpoints."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from nmt_toy import PY, moved_checkpoint, run, swapped_dictionaries, toy, toy_student

from shared_metrics.featureset import FeatureSet


@pytest.fixture(scope="module")
def toyset(tmp_path_factory):
    return toy(tmp_path_factory)


def test_dump_features_teacher(toyset, tmp_path):
    out = tmp_path / "feats"
    run(
        [
            PY,
            "-m",
            "nmt_plugin.dump_features",
            toyset["teacher"],
            "--split",
            "valid",
            "--out",
            out,
            "--dtype",
            "float32",
            "--logits",
            "--cpu",
        ]
    )
    fs = FeatureSet.open(out)
    from fairseq import checkpoint_utils
    from fairseq.data import data_utils

    import nmt_plugin  # noqa: F401

    [model], _ = checkpoint_utils.load_model_ensemble([str(toyset["teacher"])])
    tgt = data_utils.load_indexed_dataset(str(toyset["data"] / "valid.de-en.en"), None)
    assert fs.num_samples == sum(len(tgt[i]) for i in range(len(tgt)))  # every non-pad target token
    assert fs.dim == 16 and fs.num_classes == len(model.decoder.dictionary)
    assert (
        fs.meta["task"] == "nmt" and fs.meta["role"] == "teacher" and fs.meta["alpha"] == pytest.approx(0.1)
    )
    assert fs.meta["classes"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    W = model.decoder.output_projection.weight.detach().numpy()
    assert np.array_equal(fs.head_weight, W) and not fs.head_bias.any()
    assert np.bincount(fs.labels, minlength=fs.num_classes)[1] == 0  # no <pad> labels
    # features are what the projection sees: features @ W^T = the stored logits
    x = np.asarray(fs.features[:50], dtype=np.float32)
    assert np.allclose(x @ W.T, np.asarray(fs.logits[:50], dtype=np.float32), atol=2e-2)
    # labels are the split's target tokens, with their counts
    expected = np.bincount(
        np.concatenate([tgt[i].numpy() for i in range(len(tgt))]), minlength=fs.num_classes
    )
    assert np.array_equal(fs.label_counts(), expected)


def test_dump_features_student_capped(tmp_path_factory, tmp_path):
    student = toy_student(tmp_path_factory)
    out = tmp_path / "feats"
    run(
        [
            PY,
            "-m",
            "nmt_plugin.dump_features",
            student,
            "--split",
            "train",
            "--out",
            out,
            "--max-per-type",
            "7",
            "--skip-special",
            "--cpu",
        ]
    )
    fs = FeatureSet.open(out)
    counts = fs.label_counts()
    assert counts.max() == 7 and counts[2] == 0 and counts[3] == 0  # capped; no </s>, <unk>
    assert (
        fs.meta["role"] == "student"
        and fs.meta["temperature"] == 2.0
        and fs.meta["alpha"] == pytest.approx(0.1)
    )
    assert fs.feature_dtype == np.float16
    # a second run refuses to overwrite
    proc = run([PY, "-m", "nmt_plugin.dump_features", student, "--out", out, "--cpu"], check=False)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines()[-1].startswith("error:")


def _error_line(capsys) -> str:
    """The one line a command printed to stderr (fairseq's own log lines aside)."""
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if line.startswith("error:") or "Traceback" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_dump_features_refuses_data_that_does_not_fit_the_checkpoint(toyset, tmp_path, capsys):
    """--data whose dictionaries are not the checkpoint's: one line, exit 2, nothing written; same-size
    dictionaries in another order included (their meta classes would name the wrong rows)."""
    from nmt_plugin import dump_features

    teacher, out = toyset["teacher"], tmp_path / "feats"

    def dump(data, *extra):
        return dump_features.main(
            [str(teacher), "--data", str(data), "--out", str(out), "--cpu", *map(str, extra)]
        )

    swapped = swapped_dictionaries(toyset["data"], tmp_path / "swapped")
    assert dump(swapped) == 2
    line = _error_line(capsys)
    assert line.startswith(f"error: checkpoint {teacher}: source dictionary differs (") and not out.exists()
    assert "first difference at index 4" in line and "; target dictionary differs (" in line
    assert dump(toyset["other_data"]) == 2  # another size: was fairseq's "size mismatch" traceback
    assert re.search(
        r"source dictionary differs .*checkpoint (\d+) symbols, data (?!\1)\d+", _error_line(capsys)
    )
    (tmp_path / "empty").mkdir()
    assert dump(tmp_path / "empty") == 2
    assert _error_line(capsys) == (
        f"error: cannot read the translation data in {tmp_path / 'empty'} "
        "(Exception: Could not infer language pair, please provide it explicitly)"
    )
    # the checkpoint's data folder is gone: its dictionaries come from --checkpoint-data
    moved = moved_checkpoint(teacher, tmp_path / "moved.pt", **{"task.data": str(tmp_path / "gone")})
    teacher = moved
    assert dump(toyset["data"]) == 2
    line = _error_line(capsys)
    assert (
        "cannot check its source dictionary" in line
        and f"{tmp_path / 'gone'}, which no longer exists" in line
    )
    assert dump(toyset["data"], "--checkpoint-data", toyset["data"]) == 0
    from fairseq.data import Dictionary

    assert (
        FeatureSet.open(out).meta["classes"] == Dictionary.load(str(toyset["data"] / "dict.en.txt")).symbols
    )
    capsys.readouterr()


def test_bleu_refuses_data_that_does_not_fit_the_checkpoint(toyset, tmp_path, monkeypatch, capsys):
    """fairseq-generate would translate with the data's dictionaries: a same-size one in another
    order gave a silently wrong BLEU, another size a "size mismatch" dump."""
    from nmt_plugin import bleu

    def decode(*a, **kw):
        raise AssertionError("decoded with dictionaries that do not fit")

    monkeypatch.setattr(bleu, "generate", decode)
    swapped = swapped_dictionaries(toyset["data"], tmp_path / "swapped")
    for data in (swapped, toyset["other_data"]):
        assert bleu.main(["score", str(toyset["teacher"]), "--data", str(data), "--cpu"]) == 2
        line = _error_line(capsys)
        assert line.startswith(f"error: checkpoint {toyset['teacher']}: source dictionary differs"), line
    assert bleu.main(["table", str(toyset["teacher"]), "--data", str(swapped), "--cpu"]) == 2
    assert "target dictionary differs" in _error_line(capsys)


def test_bleu_score_and_table(toyset, tmp_path_factory, tmp_path):
    proc = run(
        [
            PY,
            "-m",
            "nmt_plugin.bleu",
            "score",
            toyset["teacher"],
            "--data",
            toyset["data"],
            "--cpu",
            "--beam",
            "2",
        ]
    )
    assert "BLEU = " in proc.stdout and "signature: nrefs:1|case:mixed|eff:no|tok:13a" in proc.stdout
    score_out = proc.stdout
    student = toy_student(tmp_path_factory)
    proc = run(
        [
            PY,
            "-m",
            "nmt_plugin.bleu",
            "table",
            toyset["teacher"],
            student,
            "--data",
            toyset["data"],
            "--cpu",
            "--beam",
            "2",
            "--out",
            tmp_path / "tab",
            "--jobs",
            "2",
        ]
    )
    assert "| α | teacher | T=2 |" in proc.stdout and "| 0.1 |" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "tab.csv")))
    assert [r["role"] for r in rows] == ["teacher", "student"]  # checkpoint order, whatever finished first
    # decoded side by side, one thread each: the same BLEU as the serial `score` above
    assert float(rows[0]["bleu"]) == float(re.search(r"BLEU = ([0-9.]+)", score_out).group(1))


def test_table_mean_std():
    from nmt_plugin.bleu import make_table

    rows = [
        {"alpha": 0.0, "temperature": 1.0, "bleu": 30.0},
        {"alpha": 0.0, "temperature": 1.0, "bleu": 32.0},
        {"alpha": 0.1, "temperature": 1.0, "bleu": 31.0},
        {"alpha": 0.1, "temperature": 3.0, "bleu": 29.0},
        {"alpha": 0.1, "temperature": None, "bleu": 33.0},
    ]
    t = make_table(rows).splitlines()
    assert t[0] == "| α | teacher | T=1 | T=3 |"
    assert t[2] == "| 0 | – | 31.00 ± 1.41 (2) | – |"  # std of {30, 32} = sqrt(2)
    assert t[3] == "| 0.1 | 33.00 ± 0.00 (1) | 31.00 ± 0.00 (1) | 29.00 ± 0.00 (1) |"


def score_without_decoding(monkeypatch, bleu, score):
    """bleu.score_checkpoint replaced by ``score(ck, data, split, keep)`` -> (BLEU, kept translations),
    and every checkpoint read as an α = 0.1 teacher: `table` runs without a model."""

    def fake_score(ck, data, split, keep=None, **kw):
        value, kept = score(ck, data, split, keep)
        return {
            "checkpoint": ck,
            "split": split,
            "bleu": value,
            "sentences": 1,
            "detail": "",
            "signature": "sig",
            **kept,
        }

    monkeypatch.setattr(bleu, "score_checkpoint", fake_score)
    monkeypatch.setattr(
        bleu, "checkpoint_info", lambda ck: {"role": "teacher", "alpha": 0.1, "temperature": None, "seed": 1}
    )


def test_table_cache_is_per_data_set(tmp_path, monkeypatch, capsys):
    """A score cached for one --data folder is not reused for another, nor once the split's
    files change (re-preprocessed); the same data again is served from the cache."""
    from nmt_plugin import bleu

    decoded = []

    def score(ck, data, split, keep):
        decoded.append(str(data))
        kept = bleu.keep_translations(keep, ["a hypothesis"], ["a reference"]) if keep else {}
        return float(len(decoded)), kept

    score_without_decoding(monkeypatch, bleu, score)
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"x")
    for d in ("A", "B"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "test.de-en.en.bin").write_bytes(b"1")
    table = lambda d: bleu.main(["table", str(ck), "--data", str(tmp_path / d), "--out", str(tmp_path / "t")])  # noqa: E731
    assert table("A") == table("B") == table("A") == 0
    assert decoded == [str(tmp_path / "A"), str(tmp_path / "B")]
    (tmp_path / "A" / "test.de-en.en.bin").write_bytes(b"22")  # re-preprocessed
    assert table("A") == 0 and len(decoded) == 3
    capsys.readouterr()


def test_table_decodes_again_what_lacks_its_kept_translations(tmp_path, monkeypatch):
    """`paired` reads the translations `table --out` keeps: an entry cached without them (an older
    cache) or whose file went missing is decoded again, the others are served from the cache."""
    import json

    from nmt_plugin import bleu

    decoded = []

    def score(ck, data, split, keep):
        decoded.append(Path(ck).name)
        return 1.0, bleu.keep_translations(keep, ["h"], ["r"])

    score_without_decoding(monkeypatch, bleu, score)
    cks = []
    for name in ("a.pt", "b.pt", "c.pt"):
        cks.append(tmp_path / name)
        cks[-1].write_bytes(name.encode())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.de-en.en.bin").write_bytes(b"1")

    def table():
        return bleu.main(
            ["table", *map(str, cks), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "t")]
        )

    assert table() == 0 and decoded == ["a.pt", "b.pt", "c.pt"]
    cache_path = tmp_path / "t.cache.json"
    cache = json.loads(cache_path.read_text())
    for r in cache.values():
        if Path(r["checkpoint"]).name == "a.pt":
            del r["hypotheses"]  # as a cache written before translations were kept
        if Path(r["checkpoint"]).name == "b.pt":
            Path(r["hypotheses"]).unlink()  # its kept file went missing
    cache_path.write_text(json.dumps(cache))
    assert table() == 0 and decoded == ["a.pt", "b.pt", "c.pt", "a.pt", "b.pt"]
    assert table() == 0 and len(decoded) == 5


def test_table_reuses_the_scores_of_other_tables(tmp_path, monkeypatch, capsys):
    """`table --reuse CACHE`: a checkpoint scored by another table (one per checkpoint, as the
    workflow scores each as it finishes) is not decoded again, and this table's cache names it
    (for `paired`); a checkpoint changed since is decoded again; a file that is no cache is one line."""
    import json

    from nmt_plugin import bleu

    decoded = []

    def score(ck, data, split, keep):
        decoded.append(Path(ck).name)
        return float(len(decoded)), bleu.keep_translations(keep, ["h"], ["r"])

    score_without_decoding(monkeypatch, bleu, score)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.de-en.en.bin").write_bytes(b"1")
    cks = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for ck in cks:
        ck.write_bytes(ck.name.encode())

    def table(out, *cks_and_flags):
        return bleu.main(
            ["table", *map(str, cks_and_flags), "--data", str(tmp_path / "data"), "--out", str(out)]
        )

    assert table(tmp_path / "one_a", cks[0]) == table(tmp_path / "one_b", cks[1]) == 0
    assert decoded == ["a.pt", "b.pt"]
    parts = [str(tmp_path / "one_a.cache.json"), str(tmp_path / "one_b.cache.json")]
    assert table(tmp_path / "all", *cks, "--reuse", *parts) == 0
    assert decoded == ["a.pt", "b.pt"]  # nothing decoded again
    gathered = json.loads((tmp_path / "all.cache.json").read_text())
    assert sorted(r["bleu"] for r in gathered.values()) == [1.0, 2.0]
    cks[1].write_bytes(b"retrained")  # another file now: its score is stale
    assert table(tmp_path / "all2", *cks, "--reuse", *parts) == 0
    assert decoded == ["a.pt", "b.pt", "b.pt"]
    capsys.readouterr()
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert table(tmp_path / "all3", cks[0], "--reuse", tmp_path / "junk.json") == 2
    err = capsys.readouterr().err.strip()
    assert "junk.json: not a score cache" in err and "\n" not in err
