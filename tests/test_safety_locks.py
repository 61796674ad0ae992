"""One writer per output, and what killed writers left is removed by a later run.

Every case starts a second process that holds the output's lock the way every writer takes it
(tests/safety_helpers.py: shared_metrics.locks.OutputLock), then runs the entry point into the
same output: it must fail at once, in one line naming the holder's PID, and write nothing."""

import json
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fairseq")
pytest.register_assert_rewrite("safety_helpers")  # a plugin below (pytest_plugins): its fixtures

from nmt_toy import PY, REPO, TINY, fairseq, kd_args  # noqa: E402
from safety_helpers import DIGITS, dead_pid, env, last_line, lock_held_by_another_process  # noqa: E402

from shared_metrics.featureset import FeatureSetError, FeatureSetWriter, write_feature_set  # noqa: E402
from shared_metrics.locks import OutputLock, lock_path, remove_stale_temporaries  # noqa: E402

pytest_plugins = ["safety_helpers"]  # its fixtures: toyset, vision_teacher

DISTILL = str(REPO / "vision" / "distill.py")
VDUMP = str(REPO / "vision" / "dump_features.py")


def two_writer_cases(toyset, vision_teacher, tmp):
    """{name: (output that is held, command writing into it)}"""
    return {
        "distill.py --output-dir": (tmp / "run", [PY, DISTILL, *DIGITS, "--output-dir", tmp / "run"]),
        "vision/dump_features.py --output": (
            tmp / "vfeat",
            [PY, VDUMP, vision_teacher, "--output", tmp / "vfeat", "--device", "cpu", "--workers", "0"],
        ),
        "nmt_plugin.dump_features --out": (
            tmp / "nfeat",
            [PY, "-m", "nmt_plugin.dump_features", toyset["teacher"], "--out", tmp / "nfeat", "--cpu"],
        ),
        "fairseq-train --save-dir (kd_translation)": (
            tmp / "save",
            [
                PY,
                "-m",
                "fairseq_cli.train",
                toyset["data"],
                *TINY,
                *kd_args(toyset["teacher"]),
                "--save-dir",
                tmp / "save",
            ],
        ),
    }


def test_second_writer_is_refused_naming_the_holder(toyset, vision_teacher, tmp_path):
    refused, problems = [], []
    for name, (output, argv) in two_writer_cases(toyset, vision_teacher, tmp_path).items():
        with lock_held_by_another_process(output) as pid:
            proc = subprocess.run(
                [str(a) for a in argv], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300
            )
        line = last_line(proc.stderr)
        ok = (
            proc.returncode != 0
            and "Traceback" not in proc.stderr
            and f"is being written by another run (PID {pid}," in line
            and not output.exists()
        )
        (refused if ok else problems).append(f"{name}: exit {proc.returncode}: {line}")
    assert problems == [], "\n".join(problems)
    assert len(refused) == 4
    # and with the holder gone, the same commands write (the lock file went with the holder)
    assert not lock_path(tmp_path / "run").exists()


def test_feature_set_writer_refuses_a_second_writer(tmp_path):
    out = tmp_path / "set"
    with lock_held_by_another_process(out) as pid:
        with pytest.raises(
            FeatureSetError,
            match=rf"feature set {out} is being written by another run "
            rf"\(PID {pid},",
        ):
            FeatureSetWriter(
                out,
                num_samples=1,
                dim=2,
                head_weight=np.eye(2, dtype=np.float32),
                meta={"classes": ["a", "b"]},
            )
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    # within one process the lock is re-entrant: an entry point locks its output, its writer too
    with OutputLock(out, "--out"):
        write_feature_set(
            out, np.ones((1, 2), np.float32), [1], np.eye(2, dtype=np.float32), meta={"classes": ["a", "b"]}
        )
        assert lock_path(out).exists()
    assert not lock_path(out).exists() and out.is_dir()


def test_killed_writers_temporaries_are_removed_live_ones_kept(tmp_path):
    """A later writer of the same set removes .NAME.tmp-PID-XXXXXXXX sets whose PID is dead; one
    whose PID runs (this test's) is another writer's and stays."""
    dead, live = dead_pid(), os.getpid()
    stale, running = tmp_path / f".train.tmp-{dead}-0123abcd", tmp_path / f".train.tmp-{live}-0123abcd"
    other = tmp_path / f".valid.tmp-{dead}-0123abcd"  # another set's: not this writer's to remove
    for d in (stale, running, other):
        d.mkdir()
        (d / "features.npy").write_bytes(b"partial")
    write_feature_set(
        tmp_path / "train",
        np.ones((2, 2), np.float32),
        [0, 1],
        np.eye(2, dtype=np.float32),
        meta={"classes": ["a", "b"]},
    )
    assert not stale.exists() and running.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path, ".valid") == [other] and running.exists()


def test_vision_resume_removes_a_killed_save(vision_teacher, tmp_path, capsys):
    """checkpoint.pt.tmp-PID of a run killed while saving is removed by the --resume."""
    from vision import distill

    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.pt", "args.json", "metrics.jsonl"):
        (out / name).write_bytes((vision_teacher.parent / name).read_bytes())
    stale = out / f"checkpoint.pt.tmp-{dead_pid()}"
    stale.write_bytes(b"half a checkpoint")
    distill.cli([*DIGITS, "--epochs", "2", "--resume", "--output-dir", str(out)])
    assert not stale.exists() and [json.loads(line)["epoch"] for line in open(out / "metrics.jsonl")] == [
        0,
        1,
    ]
    assert not lock_path(out).exists()


def test_refused_fairseq_train_leaves_no_save_dir(toyset, tmp_path):
    """A kd_translation run refused at set-up (a missing teacher) removes the --save-dir it made."""
    save = tmp_path / "new" / "save"

    def train_with_a_missing_teacher():
        return fairseq(
            "train", toyset["data"], *TINY, *kd_args(tmp_path / "nope.pt"), "--save-dir", save, check=False
        )

    proc = train_with_a_missing_teacher()
    assert (
        proc.returncode != 0
        and last_line(proc.stderr) == f"error: teacher checkpoint not found: {tmp_path}/nope.pt"
    )
    assert not save.exists() and not lock_path(save).exists() and not save.parent.exists()
    # a folder that was there before is kept, empty or not
    save.mkdir(parents=True)
    proc = train_with_a_missing_teacher()
    assert proc.returncode != 0 and save.is_dir()


def test_metrics_output_that_is_a_directory(tmp_path, make_set):
    """lskd-metrics -o DIR: one line, and no .DIR.tmp-PID left beside it; a later write removes
    the temporary a killed writer left (.NAME.tmp-PID of a dead PID)."""
    from shared_metrics import cli

    fs = make_set("s", [[0.0, 0.0], [1.0, 1.0]], [0, 1], logits=[[1.0, 0.0], [0.0, 1.0]])
    (tmp_path / "out").mkdir()
    proc = subprocess.run(
        [PY, "-m", "shared_metrics", "accuracy", "--features", str(fs), "-o", str(tmp_path / "out")],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr == (
        f"lskd-metrics accuracy: error: {tmp_path}/out is a directory: give a file name to write to\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s"]
    stale = tmp_path / f".acc.json.tmp-{dead_pid()}"
    stale.write_text("{")
    assert cli.main(["accuracy", "--features", str(fs), "-o", str(tmp_path / "acc.json")]) == 0
    assert not stale.exists() and json.loads((tmp_path / "acc.json").read_text())["top1"] == 1.0
