"""`python -m nmt_plugin.bleu paired`: sacrebleu's paired bootstrap between kept hypotheses.

Decoding is replaced by fixed translations (monkeypatched `generate`), so this needs no model:
what is checked is that `table` keeps the detokenised text, that `paired` feeds it to sacrebleu's
PairedTest, and the refusals."""

import json

import pytest

sacrebleu = pytest.importorskip("sacrebleu")

WORDS = "the cat sat on a mat while my dog ran after one red ball in our big green garden".split()
# 120 reference sentences of 8 words each (deterministic, varied)
REFS = [" ".join(WORDS[(7 * i + 3 * j) % len(WORDS)] for j in range(8)) for i in range(120)]


def _system(refs, broken_every):
    """The references with the last four words replaced in every `broken_every`-th sentence."""
    return [" ".join(r.split()[:4] + ["xx"] * 4) if i % broken_every == 0 else r for i, r in enumerate(refs)]


@pytest.fixture
def files(tmp_path):
    def write(name, lines):
        path = tmp_path / name
        path.write_text("".join(line + "\n" for line in lines))
        return path

    return write


def test_paired_on_hypothesis_files(files, capsys):
    from nmt_plugin import bleu

    ref = files("ref.txt", REFS)
    good, bad, tiny = (
        files("good.txt", _system(REFS, 10)),
        files("bad.txt", _system(REFS, 2)),
        files("tiny.txt", _system(REFS, 10)[:-1] + ["xx"]),
    )  # good with one more sentence broken
    rc = bleu.main(
        [
            "paired",
            "--baseline",
            str(bad),
            "--system",
            str(good),
            str(tiny),
            "--references",
            str(ref),
            "--format",
            "json",
            "--bootstrap",
            "500",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    rows = {r["system"]: r for r in out["systems"]}
    # BLEU as sacrebleu's own corpus_bleu gives it on the same text (an independent call path)
    for path, hyps in ((bad, _system(REFS, 2)), (good, _system(REFS, 10))):
        assert rows[str(path)]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [REFS]).score)
    # half the sentences broken vs a tenth: a large difference on 120 sentences -> smallest p, 1/(500 + 1)
    assert rows[str(good)]["p_value"] == pytest.approx(1 / 501)
    assert rows[str(good)]["verdict"] == "significant at 95%"
    assert rows[str(bad)]["p_value"] is None and rows[str(bad)]["verdict"] == "baseline"
    # Holm over the two systems: the smaller p doubles
    assert min(r["p_holm"] for r in out["systems"][1:]) == pytest.approx(2 / 501)
    # the table's BLEU() (13a, exp smoothing), with sacrebleu's record of the resampling
    assert out["systems"][0]["signature"].startswith(
        "nrefs:1|bs:500|seed:12345|case:mixed|eff:no|tok:13a|smooth:exp"
    )
    # one sentence apart: not distinguishable; the same seed gives the same p, identical text p = 1
    args = [
        "paired",
        "--baseline",
        str(good),
        "--system",
        str(tiny),
        "--references",
        str(ref),
        "--format",
        "json",
    ]
    assert bleu.main(args) == 0
    first = json.loads(capsys.readouterr().out)["systems"][1]
    assert first["p_value"] > 0.05 and first["verdict"] == "not distinguishable at this scale"
    bleu.main(args)
    assert json.loads(capsys.readouterr().out)["systems"][1]["p_value"] == first["p_value"]
    same = files("same.txt", _system(REFS, 10))
    bleu.main(
        [
            "paired",
            "--baseline",
            str(good),
            "--system",
            str(same),
            "--references",
            str(ref),
            "--format",
            "json",
        ]
    )
    assert json.loads(capsys.readouterr().out)["systems"][1]["p_value"] == 1.0


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_paired_refusals(files, capsys, tmp_path):
    from nmt_plugin import bleu

    ref, hyp = files("ref.txt", REFS), files("h.txt", _system(REFS, 3))
    base = ["paired", "--baseline", str(hyp), "--references", str(ref)]
    assert bleu.main(base + ["--system", str(files("short.txt", REFS[:-1]))]) == 2
    assert "119 hypotheses for 120 references" in _error(capsys)
    assert bleu.main(base + ["--system", str(hyp)]) == 2
    assert "given twice" in _error(capsys)
    assert bleu.main(base + ["--system", str(files("h2.txt", REFS)), "--seed", "0"]) == 2
    assert "--seed must be >= 1" in _error(capsys)
    assert bleu.main(["paired", "--baseline", str(hyp), "--system", str(hyp)]) == 2
    assert "needs --references" in _error(capsys)
    assert bleu.main(base + ["--system", str(files("h3.txt", REFS)), "--confidence", "1.5"]) == 2
    assert "--confidence must be in (0, 1)" in _error(capsys)


def test_table_keeps_translations_for_paired(tmp_path, monkeypatch, capsys):
    """`table --out OUT` keeps each checkpoint's detokenised hypotheses and the references; `paired
    --table OUT` finds them by checkpoint, and refuses two checkpoints scored on other references."""
    from nmt_plugin import bleu

    translations = {"a.pt": _system(REFS, 2), "b.pt": _system(REFS, 10), "c.pt": _system(REFS, 10)}
    refs_of = {"a.pt": REFS, "b.pt": REFS, "c.pt": REFS[::-1]}  # c: scored on other references
    monkeypatch.setattr(bleu, "check_fits_data", lambda *a, **k: None)
    monkeypatch.setattr(
        bleu, "generate", lambda ck, *a, **k: (translations[ck.split("/")[-1]], refs_of[ck.split("/")[-1]])
    )
    monkeypatch.setattr(bleu, "_target_lang", lambda data, split: "en")
    monkeypatch.setattr(
        bleu, "checkpoint_info", lambda ck: {"role": "student", "alpha": 0.1, "temperature": 2.0, "seed": 1}
    )
    data = tmp_path / "data"
    data.mkdir()
    cks = []
    for name in translations:
        (tmp_path / name).write_bytes(b"x")
        cks.append(str(tmp_path / name))
    out = tmp_path / "tab"
    assert bleu.main(["table", *cks, "--data", str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    cache = json.loads((tmp_path / "tab.cache.json").read_text())
    kept = {r["checkpoint"]: r for r in cache.values()}
    a = kept[cks[0]]
    # the kept text is the detokenised text sacrebleu scored (this plain ASCII text detokenises to itself)
    assert (tmp_path / "tab.hyps").is_dir() and open(a["hypotheses"]).read().splitlines() == translations[
        "a.pt"
    ]
    assert open(a["references"]).read().splitlines() == REFS
    assert a["bleu"] == pytest.approx(round(sacrebleu.corpus_bleu(translations["a.pt"], [REFS]).score, 2))
    assert (
        bleu.main(
            ["paired", "--table", str(out), "--baseline", cks[0], "--system", cks[1], "--format", "json"]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)["systems"][1]
    assert r["system"] == cks[1] and r["p_value"] == pytest.approx(1 / 1001)
    assert bleu.main(["paired", "--table", str(out), "--baseline", cks[0], "--system", cks[2]]) == 2
    assert "were scored on different references" in _error(capsys)
    assert (
        bleu.main(
            ["paired", "--table", str(out), "--baseline", str(tmp_path / "nope.pt"), "--system", cks[1]]
        )
        == 2
    )
    assert "not in the table's cache" in _error(capsys)
