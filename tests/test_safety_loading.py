"""Every checkpoint path, translation and vision, with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 set:
a crafted checkpoint whose unpickling would run ``touch MARKER`` is refused in one line that
says "refused: unsafe object", and the marker never appears.

The override makes torch.load default to full unpickling wherever a caller leaves weights_only unset
(torch/serialization.py); the project passes weights_only=True explicitly everywhere, and the
plugin routes fairseq's own reads (trainer restore, fairseq-generate) through that loader. A
control first unpickles each payload in full and sees it create its marker: the refusals below
are of files that really would run code."""

import subprocess

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fairseq")

from nmt_toy import PLUGIN, PY, REPO, TINY, kd_args, moved_checkpoint, toy  # noqa: E402
from safety_helpers import UNSAFE_ENV, env, last_line, payload_works, plant_payload  # noqa: E402
from vision_helpers import TINY_DIGITS  # noqa: E402

DISTILL = str(REPO / "vision" / "distill.py")
VDUMP = str(REPO / "vision" / "dump_features.py")
DIGITS = [*TINY_DIGITS, "--batch-size", "8"]


@pytest.fixture(scope="module")
def toyset(tmp_path_factory):
    return toy(tmp_path_factory)


def paths_to_try(toyset, tmp):
    """{name: (command, marker)}: each command reads a payload checkpoint on one of the paths."""
    import nmt_plugin  # noqa: F401  (argparse.Namespace allowed: the teacher's raw state loads below)

    data, teacher = toyset["data"], toyset["teacher"]
    real = torch.load(teacher, weights_only=True)  # a real fairseq checkpoint's entries, plus the payload

    def payload(name, where=None):
        marker = tmp / f"marker_{name}"
        path = plant_payload(where or tmp / f"{name}.pt", marker, real)
        assert payload_works(path, marker), name
        return path, marker

    cmds = {}
    p, m = payload("teacher_path")
    cmds["fairseq-train --teacher-path"] = (
        [PY, "-m", "fairseq_cli.train", data, *TINY, *kd_args(p), "--save-dir", tmp / "s_teacher"],
        m,
    )
    (tmp / "s_restart").mkdir()
    p, m = payload("restart", tmp / "s_restart" / "checkpoint_last.pt")
    cmds["fairseq-train restart from checkpoint_last.pt"] = (
        [PY, "-m", "fairseq_cli.train", data, *TINY, *kd_args(teacher), "--save-dir", tmp / "s_restart"],
        m,
    )
    p, m = payload("bleu")
    cmds["nmt_plugin.bleu score"] = ([PY, "-m", "nmt_plugin.bleu", "score", p, "--data", data, "--cpu"], m)
    p, m = payload("dump")
    cmds["nmt_plugin.dump_features"] = (
        [PY, "-m", "nmt_plugin.dump_features", p, "--data", data, "--out", tmp / "feats", "--cpu"],
        m,
    )
    p, m = payload("generate")
    cmds["fairseq-generate --user-dir nmt_plugin"] = (
        [
            PY,
            "-m",
            "fairseq_cli.generate",
            data,
            "--user-dir",
            PLUGIN,
            "--path",
            p,
            "--cpu",
            "--beam",
            "1",
            "--max-tokens",
            "1000",
        ],
        m,
    )
    # a student whose saved --teacher-path is now a payload: bleu table and dump_features read
    # the teacher checkpoint to learn its α
    p, m = payload("student_teacher")
    student = moved_checkpoint(
        teacher,
        tmp / "student.pt",
        **{"criterion._name": "ls_kd", "task.teacher_path": str(p), "task.kd_temperature": 2.0},
    )
    cmds["nmt_plugin.bleu table (the student's teacher)"] = (
        [PY, "-m", "nmt_plugin.bleu", "table", student, "--data", data, "--cpu", "--beam", "1"],
        m,
    )
    cmds["nmt_plugin.dump_features (the student's teacher)"] = (
        [PY, "-m", "nmt_plugin.dump_features", student, "--data", data, "--out", tmp / "feats2", "--cpu"],
        m,
    )
    # vision: a dict like distill.py's checkpoints, plus the payload
    vision_state = {"model": {}, "model_name": "resnet18", "num_classes": 10, "mode": "teacher"}

    def vpayload(name, where=None):
        marker = tmp / f"marker_{name}"
        path = plant_payload(where or tmp / f"{name}.pt", marker, vision_state)
        assert payload_works(path, marker), name
        return path, marker

    p, m = vpayload("v_teacher")
    cmds["distill.py --teacher"] = (
        [
            PY,
            DISTILL,
            *DIGITS,
            "--mode",
            "student",
            "--teacher",
            p,
            "--temperature",
            "2",
            "--output-dir",
            tmp / "v_teacher_out",
        ],
        m,
    )
    (tmp / "v_resume").mkdir()
    p, m = vpayload("v_resume", tmp / "v_resume" / "checkpoint.pt")
    cmds["distill.py --resume"] = ([PY, DISTILL, *DIGITS, "--resume", "--output-dir", tmp / "v_resume"], m)
    p, m = vpayload("v_pretrained")
    cmds["distill.py --pretrained"] = (
        [PY, DISTILL, *DIGITS, "--pretrained", p, "--output-dir", tmp / "v_pre_out"],
        m,
    )
    p, m = vpayload("v_dump")
    cmds["vision/dump_features.py"] = (
        [PY, VDUMP, p, "--output", tmp / "v_feats", "--device", "cpu", "--workers", "0"],
        m,
    )
    return cmds


def test_payload_refused_on_every_path_with_the_override_set(toyset, tmp_path):
    cmds = paths_to_try(toyset, tmp_path)
    assert len(cmds) == 11
    e = env(**UNSAFE_ENV)
    procs = {
        name: subprocess.Popen(
            [str(a) for a in argv], cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (argv, _) in cmds.items()
    }
    executed, problems = [], []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        marker = cmds[name][1]
        line = last_line(err)
        if marker.exists():
            executed.append(name)
        if (
            proc.returncode == 0
            or "Traceback" in err
            or "refused: unsafe object" not in line
            or "corrupt" in line
            or "truncated" in line
        ):
            problems.append(f"{name}: exit {proc.returncode}, last line {line!r}\n{err[-1500:]}")
    assert executed == [], f"the payload ran on: {executed}"
    assert problems == [], "\n\n".join(problems)


def test_safe_loader_wins_over_the_override_in_process(toyset, tmp_path, monkeypatch):
    """The same in one process, through the functions themselves: fairseq's load_checkpoint_to_cpu
    (replaced by the plugin's), the plugin's reader, vision's loader."""
    from fairseq import checkpoint_utils

    import nmt_plugin  # noqa: F401
    from nmt_plugin.checkpoints import UnreadableCheckpoint, read_checkpoint
    from vision.models import load_checkpoint
    from vision.utils import VisionError

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "marker"
    path = plant_payload(tmp_path / "p.pt", marker)
    for load, error in (
        (checkpoint_utils.load_checkpoint_to_cpu, UnreadableCheckpoint),
        (read_checkpoint, UnreadableCheckpoint),
        (load_checkpoint, VisionError),
    ):
        with pytest.raises(
            error,
            match=r"refused: unsafe object \(GLOBAL posix\.system: its module "
            r"posix is blocked",
        ):
            load(str(path))
        assert not marker.exists()
    # and a whole fairseq checkpoint still loads under the override (nothing unsafe in it)
    state = checkpoint_utils.load_checkpoint_to_cpu(str(toyset["teacher"]))
    assert "model" in state and state["cfg"].task._name == "translation"


def test_unreadable_checkpoints_are_named_for_what_they_are(toyset, tmp_path):
    """Empty, truncated (the first half of a real checkpoint's bytes), not a torch file, a
    directory, and an object that the weights-only loader does not know (fractions.Fraction)."""
    import fractions

    from nmt_plugin.checkpoints import UnreadableCheckpoint, read_checkpoint
    from nmt_plugin.errors import LskdConfigError

    real = toyset["teacher"].read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "half.pt").write_bytes(real[: len(real) // 2])
    (tmp_path / "text.pt").write_bytes(b"hello, world")
    torch.save({"model": {}, "x": fractions.Fraction(1, 3)}, tmp_path / "fraction.pt")
    expect = {
        "empty.pt": ("empty", r"is empty \(0 bytes\)"),
        "half.pt": ("truncated", rf"is truncated or corrupted \({len(real) // 2} bytes; "),
        "text.pt": ("not torch", r"not a torch file.*starts with b'hell'"),
        "fraction.pt": (
            "unsafe",
            r"refused: unsafe object \(GLOBAL fractions\.Fraction is not an "
            r"allowed global",
        ),
    }
    for name, (kind, pattern) in expect.items():
        with pytest.raises(UnreadableCheckpoint, match=pattern) as e:
            read_checkpoint(str(tmp_path / name))
        assert e.value.kind == kind
    with pytest.raises(LskdConfigError, match="is a directory, not a checkpoint file"):
        read_checkpoint(str(tmp_path))


def test_directory_as_teacher_or_checkpoint_is_named(toyset, tmp_path, capsys):
    from vision import distill

    out = subprocess.run(
        [PY, "-m", "nmt_plugin.bleu", "score", str(tmp_path), "--data", str(toyset["data"])],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 2
        and last_line(out.stderr) == f"error: checkpoint {tmp_path} is a directory, not a checkpoint file"
    )
    with pytest.raises(SystemExit) as e:
        distill.cli(
            [
                *DIGITS,
                "--mode",
                "student",
                "--teacher",
                str(tmp_path),
                "--temperature",
                "2",
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
    assert e.value.code == 2
    assert capsys.readouterr().err == f"distill.py: error: {tmp_path} is a directory, not a checkpoint file\n"
