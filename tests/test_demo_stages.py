"""The demo's stage runner: skip what finished with the same command, redo what is stale."""
import sys

from scripts.demo import Study


def write(path, text):
    return [sys.executable, "-c", f"import pathlib; p = pathlib.Path({str(path)!r}); "
                                  f"p.parent.mkdir(parents=True, exist_ok=True); p.write_text({text!r})"]


def test_stages_skip_rerun_and_invalidate_their_chain(tmp_path, capsys):
    a, b, c = tmp_path / "wa" / "out", tmp_path / "wb" / "out", tmp_path / "wc" / "out"

    def run_all(text_a):
        study = Study(tmp_path / "study", "quick")
        study.stage("a", write(a, text_a), [a], workdir=a.parent, chain="x")
        study.stage("b", write(b, "b"), [b], workdir=b.parent, chain="x")
        study.stage("c", write(c, "c"), [c], workdir=c.parent, chain="y")
        return [s["skipped"] for s in study.stages]

    assert run_all("1") == [False, False, False]
    assert run_all("1") == [True, True, True]           # same commands, outputs there: skipped
    (b.parent / "junk").write_text("stale")
    assert run_all("2") == [False, False, True]         # a changed: a and its chain (b) re-run
    assert a.read_text() == "2" and not (b.parent / "junk").exists()
    c.unlink()
    assert run_all("2") == [True, True, False]          # a missing output re-runs that stage only
    assert "outputs missing" in capsys.readouterr().out
