"""Bad input to vision/distill.py and vision/dump_features.py: a one-line error, exit code 2,
no traceback. The CLIs run as subprocesses, all at once (each mostly waits on importing torch)."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DISTILL = os.path.join(ROOT, "vision", "distill.py")
DUMP = os.path.join(ROOT, "vision", "dump_features.py")
DIGITS = ["--dataset", "digits", "--limit-train", "16", "--limit-val", "8", "--workers", "0",
          "--device", "cpu", "--epochs", "1"]


@pytest.fixture(scope="module")
def five_class_teacher(tmp_path_factory):
    """A checkpoint in our format whose head has 5 classes (digits has 10)."""
    from vision.models import build_model

    path = tmp_path_factory.mktemp("t5") / "checkpoint.pt"
    model = build_model("resnet18", 5)
    torch.save({"model": model.state_dict(), "model_name": "resnet18", "num_classes": 5,
                "classes": list("abcde"), "alpha": 0.1, "args": {"small_input": False}}, path)
    return str(path)


def cases(teacher, tmp):
    student = [DISTILL, *DIGITS, "--mode", "student", "--teacher", teacher,
               "--output-dir", str(tmp / "out")]
    return {
        "T=0": ([*student, "--temperature", "0"], "--temperature must be > 0"),
        "T<0": ([*student, "--temperature", "2", "-1.5"], "--temperature must be > 0"),
        "beta>1": ([*student, "--temperature", "2", "--beta", "1.5"], "--beta must be in [0, 1]"),
        "beta<0": ([*student, "--temperature", "2", "--beta", "-0.1"], "--beta must be in [0, 1]"),
        "clip<=0": ([*student, "--temperature", "2", "--clip-grad-norm", "0"], "--clip-grad-norm must be > 0"),
        "warmup<0": ([*student, "--temperature", "2", "--lr-warmup-epochs", "-1"], "--lr-warmup-epochs must be >= 0"),
        "alpha=1": ([DISTILL, *DIGITS, "--label-smoothing", "1.0"], "must be in [0, 1)"),
        "classes": ([*student, "--temperature", "2"], "has 5 classes but the digits data has 10"),
        "no teacher file": ([*student[:-4], "--teacher", str(tmp / "nope.pt"), "--temperature",
                             "2"], "nope.pt not found"),
        "no data": ([DISTILL, "--dataset", "imagefolder", "--data", str(tmp / "missing"),
                     "--device", "cpu"], "missing/train not found"),
        "no fashion dir": ([DISTILL, "--dataset", "fashion-mnist", "--data", str(tmp / "nofm"),
                            "--device", "cpu"], "nofm not found"),
        "no student T": ([*student], "needs --temperature"),
        "resume nothing": ([DISTILL, *DIGITS, "--resume", "--output-dir", str(tmp / "empty")],
                           "no checkpoint to resume"),
        "dump no ckpt": ([DUMP, str(tmp / "none.pt"), "--output", str(tmp / "f")],
                         "none.pt not found"),
        "dump garbage": ([DUMP, __file__, "--output", str(tmp / "f")], "not a readable checkpoint"),
        "gamma<=0": ([DISTILL, *DIGITS, "--lr-gamma", "-0.1"], "--lr-gamma must be a finite number > 0"),
        "digits with --data": ([DISTILL, *DIGITS, "--data", str(tmp / "d")], "drop --data"),
        "workers<0": ([DISTILL, *DIGITS, "--workers", "-1"], "--workers must be >= 0"),
        "teacher alpha": ([*student, "--temperature", "2", "--teacher-alpha", "7"],
                          "--teacher-alpha α must be in [0, 1)"),
        "model arg value": ([DISTILL, *DIGITS, "--model", "mobilenet_v2", "--model-arg", "dropout=2"],
                            "mobilenet_v2: bad --model-arg"),
        "output is a file": ([DISTILL, *DIGITS, "--model", "resnet18", "--output-dir", __file__],
                             "File exists"),
    }


#: run as real processes (the rest in-process through the same cli() that __main__ calls)
SUBPROCESS = ("T=0", "classes", "no data", "dump garbage")


def check(name, code, err, expected):
    lines = err.strip().splitlines()
    assert code == 2, (name, err)
    assert "Traceback" not in err, (name, err)
    assert len(lines) == 1, (name, err)
    assert lines[0].startswith(("distill.py: error: ", "dump_features.py: error: ")), (name, err)
    assert expected in lines[0], (name, err)


def test_bad_input_exits_with_one_line_subprocess(five_class_teacher, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    todo = cases(five_class_teacher, tmp_path)
    procs = {name: subprocess.Popen([sys.executable, *todo[name][0]], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
             for name in SUBPROCESS}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        check(name, proc.returncode, err, todo[name][1])


def test_bad_input_exits_with_one_line(five_class_teacher, tmp_path, capsys):
    from vision import distill, dump_features

    for name, (argv, expected) in cases(five_class_teacher, tmp_path).items():
        if name in SUBPROCESS:
            continue
        entry = distill.cli if argv[0] == DISTILL else dump_features.cli
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            entry(argv[1:])
        check(name, exc.value.code, capsys.readouterr().err, expected)


def test_help_lists_the_main_flags():
    out = subprocess.run([sys.executable, DISTILL, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for flag in ("--mode", "--temperature", "--beta", "--label-smoothing", "--teacher",
                 "--dump-features", "--resume", "--compile", "--amp", "--channels-last"):
        assert flag in out.stdout
