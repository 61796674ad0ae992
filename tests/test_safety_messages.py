"""Bad input that could send the user the wrong way says what is wrong, in one line:
a malicious checkpoint is "refused: unsafe object" (not "corrupted"), a NaN teacher is the
teacher's fault at its load or first batch (not "lower --lr" after an epoch), a directory given as
a checkpoint is a directory (not "not found"), an infinite temperature "must be finite", and an
output that is a file is named as one (not a traceback)."""

import subprocess

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fairseq")
pytest.register_assert_rewrite("safety_helpers")  # a plugin below (pytest_plugins): its fixtures

from nmt_toy import PY, REPO, TINY, fairseq, kd_args  # noqa: E402
from safety_helpers import DIGITS, env, last_line, plant_payload  # noqa: E402

from nmt_plugin.errors import LskdConfigError  # noqa: E402

pytest_plugins = ["safety_helpers"]  # its fixtures: toyset, vision_teacher


def vision_with_weights(src, dest, change):
    ck = torch.load(src, weights_only=True)
    change(ck["model"])
    torch.save(ck, dest)
    return str(dest)


def nmt_with_weights(src, dest, change):
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    import nmt_plugin  # noqa: F401

    state = checkpoint_utils.load_checkpoint_to_cpu(str(src))
    change(state["model"])
    torch.save({**state, "cfg": OmegaConf.to_container(state["cfg"])}, dest)
    return str(dest)


def nan_in(key):
    def change(sd):
        sd[key] = sd[key].clone()
        sd[key].view(-1)[0] = float("nan")

    return change


def scaled(keys, factor=1e38):
    """Finite weights whose products overflow float32 (max 3.4e38): the logits become inf/NaN."""

    def change(sd):
        for k in list(sd):
            if any(s in k for s in keys):
                sd[k] = sd[k] * factor

    return change


def vision_cases(teacher, tmp, monkeypatch):
    student = [*DIGITS, "--mode", "student", "--temperature", "2", "--output-dir", str(tmp / "out")]
    payload = str(plant_payload(tmp / "payload.pt", tmp / "marker"))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    (tmp / "a_file").write_text("x")
    return {
        "malicious teacher": (
            [*student, "--teacher", payload],
            f"{payload}: refused: unsafe object (GLOBAL posix.system",
        ),
        "NaN teacher weights": (
            [*student, "--teacher", vision_with_weights(teacher, tmp / "nan.pt", nan_in("fc.weight"))],
            "its weights hold NaN or inf (fc.weight): the teacher checkpoint is broken",
        ),
        "teacher logits overflow": (
            [*student, "--teacher", vision_with_weights(teacher, tmp / "big.pt", scaled(["fc."]))],
            "gives NaN or inf logits on the first batch: the teacher is at fault",
        ),
        "directory as teacher": (
            [*student, "--teacher", str(tmp)],
            f"{tmp} is a directory, not a checkpoint file",
        ),
        "--temperature inf": (
            [*DIGITS, "--mode", "student", "--teacher", str(teacher), "--temperature", "inf"],
            "--temperature must be finite (a number > 0), got inf",
        ),
        "--temperature nan": (
            [*DIGITS, "--mode", "student", "--teacher", str(teacher), "--temperature", "2", "nan"],
            "--temperature must be finite (a number > 0), got nan",
        ),
        "--output-dir a file": (
            [*DIGITS, "--output-dir", str(tmp / "a_file")],
            f"--output-dir {tmp}/a_file is a file, not a directory",
        ),
        "dump --output a file": (
            ["dump", str(teacher), "--output", str(tmp / "a_file"), "--device", "cpu", "--workers", "0"],
            f"--output {tmp}/a_file is a file, not a directory",
        ),
    }


def test_vision_messages(vision_teacher, tmp_path, monkeypatch, capsys):
    from vision import distill, dump_features

    one_line = []
    for name, (argv, expected) in vision_cases(vision_teacher, tmp_path, monkeypatch).items():
        entry = dump_features.cli if argv[0] == "dump" else distill.cli
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            entry(argv[1:] if argv[0] == "dump" else argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and expected in err, (name, err)
        assert "corrupt" not in err and "lower --lr" not in err, (name, err)
        one_line.append(name)
    assert len(one_line) == 8
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "out" / "T2" / "checkpoint.pt").exists()  # the overflowing teacher trained nothing


def test_translation_messages(toyset, tmp_path, monkeypatch):
    from fairseq import checkpoint_utils
    from test_nmt_plugin import batches, setup_kd

    data, teacher = toyset["data"], toyset["teacher"]
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    payload = str(plant_payload(tmp_path / "payload.pt", tmp_path / "marker"))
    nan = nmt_with_weights(teacher, tmp_path / "nan.pt", nan_in("decoder.layers.0.fc1.weight"))
    cases = {
        "malicious teacher": (
            (payload,),
            f"teacher checkpoint {payload}: refused: unsafe object (GLOBAL posix.system",
        ),
        "NaN teacher weights": ((nan,), "its weights hold NaN or inf (decoder.layers.0.fc1.weight)"),
        "directory as teacher": (
            (str(tmp_path),),
            f"teacher checkpoint {tmp_path} is a directory, not a checkpoint file",
        ),
        "--kd-temperature inf": (
            (str(teacher), "--kd-temperature", "inf"),
            "--kd-temperature must be finite",
        ),
    }
    for name, (args, expected) in cases.items():
        with pytest.raises(LskdConfigError) as e:
            setup_kd(data, *args)
        assert expected in str(e.value) and "\n" not in str(e.value) and "corrupt" not in str(e.value), (
            name,
            e.value,
        )
    assert not (tmp_path / "marker").exists()
    # finite weights whose logits overflow: caught on the first batch, named as the teacher's fault
    big = nmt_with_weights(teacher, tmp_path / "big.pt", scaled(["embed_tokens", "output_projection"]))
    task, crit, _ = setup_kd(data, big)
    [student], _ = checkpoint_utils.load_model_ensemble([str(teacher)], task=task)
    with pytest.raises(
        LskdConfigError,
        match=r"teacher .*big\.pt gives NaN or inf logits on the first batch "
        r"\(run in torch\.float32\): the teacher is at fault",
    ):
        task.teacher_outputs(batches(task)[0], student)


def test_save_dir_that_is_a_file_is_one_line(toyset, tmp_path):
    (tmp_path / "f").write_text("x")
    proc = fairseq(
        "train", toyset["data"], *TINY, *kd_args(toyset["teacher"]), "--save-dir", tmp_path / "f", check=False
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == f"error: --save-dir {tmp_path}/f is a file, not a directory"
    out = tmp_path / "f2"
    out.write_text("x")
    proc = subprocess.run(
        [PY, "-m", "nmt_plugin.dump_features", str(toyset["teacher"]), "--out", str(out), "--cpu"],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == f"error: --out {out} is a file, not a feature-set directory"


def test_run_cli_reports_bad_input_in_one_line(capsys):
    """shared_metrics.errors.run_cli, the wrapper of every entry point: a UserError or OSError is
    `PROG: error: MESSAGE` on one line and 2 (`error: MESSAGE` without a PROG), the types in
    bad_input too; another exception is one `internal error` line and 1; a return value passes."""
    from shared_metrics.errors import UserError, run_cli

    def fail(e):
        raise e

    assert run_cli("cmd", fail, UserError("two\n  lines")) == 2
    assert capsys.readouterr().err == "cmd: error: two lines\n"
    assert run_cli("", fail, FileNotFoundError(2, "No such file or directory", "x.json")) == 2
    assert capsys.readouterr().err == "error: [Errno 2] No such file or directory: 'x.json'\n"
    assert run_cli("cmd", fail, ValueError("empty class"), bad_input=(ValueError,)) == 2
    assert capsys.readouterr().err == "cmd: error: empty class\n"
    assert run_cli("cmd", fail, ValueError("a bug")) == 1
    err = capsys.readouterr().err
    assert err.startswith("cmd: internal error: ValueError: a bug") and len(err.splitlines()) == 1
    assert run_cli("cmd", lambda x: x, 3) == 3 and run_cli("cmd", lambda: None) == 0
