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
from vision_helpers import TINY_DIGITS as DIGITS  # noqa: E402


@pytest.fixture(scope="module")
def five_class_teacher(tmp_path_factory):
    """A checkpoint in our format whose head has 5 classes (digits has 10)."""
    from vision.models import build_model

    path = tmp_path_factory.mktemp("t5") / "checkpoint.pt"
    model = build_model("resnet18", 5)
    torch.save(
        {
            "model": model.state_dict(),
            "model_name": "resnet18",
            "num_classes": 5,
            "classes": list("abcde"),
            "alpha": 0.1,
            "args": {"small_input": False},
        },
        path,
    )
    return str(path)


@pytest.fixture(scope="module")
def broken(five_class_teacher, tmp_path_factory):
    """Checkpoints that must be refused with one line: a truncated one (the first half of a real
    checkpoint's bytes), an empty file, hand-edited metadata, a pickled object that a weights-only
    load refuses, a plain state dict, and a teacher trained on 8 px images with --small-input."""
    import fractions

    from vision.models import build_model

    d = tmp_path_factory.mktemp("broken")
    real = open(five_class_teacher, "rb").read()
    (d / "truncated.pt").write_bytes(real[: len(real) // 2])
    (d / "empty.pt").write_bytes(b"")
    ck = torch.load(five_class_teacher, weights_only=True)
    torch.save(dict(ck, num_classes="ten"), d / "ten.pt")
    torch.save(dict(ck, args=["small_input"]), d / "args_list.pt")
    # an object no weights-only load allows (not argparse.Namespace: importing nmt_plugin, as other tests
    # in this process do, allow-lists it for fairseq's checkpoints)
    torch.save(dict(ck, note=fractions.Fraction(1, 3)), d / "refused.pt")
    torch.save(ck["model"], d / "plain.pt")
    model = build_model("resnet18", 10, small_input=True)
    torch.save(
        {
            "model": model.state_dict(),
            "model_name": "resnet18",
            "num_classes": 10,
            "classes": [str(i) for i in range(10)],
            "alpha": 0.0,
            "mode": "teacher",
            "args": {
                "dataset": "digits",
                "image_size": 8,
                "small_input": True,
                "recipe": "imagenet",
                "limit_train": 16,
                "epochs": 1,
            },
        },
        d / "t8.pt",
    )
    for name in ("truncated", "empty", "args_list"):  # as the checkpoint of a run to --resume
        (d / f"resume_{name}").mkdir()
        (d / f"resume_{name}" / "checkpoint.pt").write_bytes((d / f"{name}.pt").read_bytes())
    return d


def cases(teacher, tmp, bad):
    student = [DISTILL, *DIGITS, "--mode", "student", "--teacher", teacher, "--output-dir", str(tmp / "out")]

    def with_teacher(name):
        return [
            *student[:-4],
            "--teacher",
            str(bad / name),
            "--temperature",
            "2",
            "--output-dir",
            str(tmp / "out"),
        ]

    def dump(*argv):
        return [DUMP, *argv, "--output", str(tmp / "f"), "--workers", "0", "--device", "cpu"]

    def resume(name):
        return [DISTILL, *DIGITS, "--resume", "--output-dir", str(bad / f"resume_{name}")]

    def train(*argv):  # nothing may be written outside tmp, even by a run that is not refused
        return [DISTILL, *DIGITS, *argv, "--output-dir", str(tmp / "out")]

    digits_ckpt = str(bad / "t8.pt")  # a digits checkpoint: only the flag under test is wrong
    truncated = "truncated.pt: truncated or corrupted torch checkpoint"
    empty = "empty.pt: not a torch checkpoint (the file is empty)"
    return {
        "T=0": ([*student, "--temperature", "0"], "--temperature must be > 0"),
        "T<0": ([*student, "--temperature", "2", "-1.5"], "--temperature must be > 0"),
        "beta>1": ([*student, "--temperature", "2", "--beta", "1.5"], "--beta must be in [0, 1]"),
        "beta<0": ([*student, "--temperature", "2", "--beta", "-0.1"], "--beta must be in [0, 1]"),
        "clip<=0": (
            [*student, "--temperature", "2", "--clip-grad-norm", "0"],
            "--clip-grad-norm must be > 0",
        ),
        "warmup<0": (
            [*student, "--temperature", "2", "--lr-warmup-epochs", "-1"],
            "--lr-warmup-epochs must be >= 0",
        ),
        "alpha=1": ([DISTILL, *DIGITS, "--label-smoothing", "1.0"], "must be in [0, 1)"),
        "classes": ([*student, "--temperature", "2"], "has 5 classes but the digits data has 10"),
        "no teacher file": (
            [*student[:-4], "--teacher", str(tmp / "nope.pt"), "--temperature", "2"],
            "nope.pt not found",
        ),
        "no data": (
            [DISTILL, "--dataset", "imagefolder", "--data", str(tmp / "missing"), "--device", "cpu"],
            "missing/train not found",
        ),
        "no fashion dir": (
            [DISTILL, "--dataset", "fashion-mnist", "--data", str(tmp / "nofm"), "--device", "cpu"],
            "nofm not found",
        ),
        "no student T": ([*student], "needs --temperature"),
        "resume nothing": (
            [DISTILL, *DIGITS, "--resume", "--output-dir", str(tmp / "empty")],
            "no checkpoint to resume",
        ),
        "dump no ckpt": ([DUMP, str(tmp / "none.pt"), "--output", str(tmp / "f")], "none.pt not found"),
        "dump garbage": (
            [DUMP, __file__, "--output", str(tmp / "f")],
            "test_vision_cli.py: not a torch checkpoint (torch.save writes a zip archive "
            'or a pickle; this file starts with b\'"""B\')',
        ),
        "gamma<=0": ([DISTILL, *DIGITS, "--lr-gamma", "-0.1"], "--lr-gamma must be a finite number > 0"),
        "digits with --data": ([DISTILL, *DIGITS, "--data", str(tmp / "d")], "drop --data"),
        "workers<0": ([DISTILL, *DIGITS, "--workers", "-1"], "--workers must be >= 0"),
        "teacher alpha": (
            [*student, "--temperature", "2", "--teacher-alpha", "7"],
            "--teacher-alpha α must be in [0, 1)",
        ),
        "model arg value": (
            [DISTILL, *DIGITS, "--model", "mobilenet_v2", "--model-arg", "dropout=2"],
            "mobilenet_v2: bad --model-arg",
        ),
        "output is a file": (
            [DISTILL, *DIGITS, "--model", "resnet18", "--output-dir", __file__],
            "test_vision_cli.py is a file, not a directory",
        ),
        "momentum<0": (train("--momentum", "-0.5"), "--momentum must be in [0, 1), got -0.5"),
        "momentum=1": (train("--momentum", "1"), "--momentum must be in [0, 1), got 1"),
        "weight decay<0": (
            train("--weight-decay", "-1"),
            "--weight-decay must be a finite number >= 0, got -1",
        ),
        "lr nan": (train("--lr", "nan"), "--lr must be a finite number > 0, got nan"),
        "dist timeout 0": (train("--dist-timeout", "0"), "--dist-timeout must be >= 1"),
        # vision/dump_features.py checks its numbers as distill.py does (x[:-3] kept all but 3)
        "dump limit-train<0": (
            dump(digits_ckpt, "--limit-train", "-3"),
            "--limit-train must be >= 1, got -3",
        ),
        "dump limit-train=0": (dump(digits_ckpt, "--limit-train", "0"), "--limit-train must be >= 1, got 0"),
        "dump limit-val=0": (dump(digits_ckpt, "--limit-val", "0"), "--limit-val must be >= 1, got 0"),
        "dump batch 0": (dump(digits_ckpt, "--batch-size", "0"), "--batch-size must be >= 1, got 0"),
        "dump workers<0": (
            [DUMP, digits_ckpt, "--output", str(tmp / "f"), "--workers", "-1"],
            "--workers must be >= 0, got -1",
        ),
        "dump image size 0": (dump(digits_ckpt, "--image-size", "0"), "--image-size must be >= 1, got 0"),
        # unreadable checkpoints, wherever one is read
        "teacher truncated": (with_teacher("truncated.pt"), truncated),
        "teacher empty": (with_teacher("empty.pt"), empty),
        "resume truncated": (resume("truncated"), truncated.replace("truncated.pt", "checkpoint.pt")),
        "resume empty": (resume("empty"), empty.replace("empty.pt", "checkpoint.pt")),
        "dump truncated": (dump(str(bad / "truncated.pt")), truncated),
        "dump empty": (dump(str(bad / "empty.pt")), empty),
        "dump refused object": (
            dump(str(bad / "refused.pt")),
            "refused.pt: refused: unsafe object "
            "(GLOBAL fractions.Fraction is not an allowed global in a weights-only load",
        ),
        # hand-edited metadata
        "teacher num_classes": (with_teacher("ten.pt"), "ten.pt: checkpoint field num_classes is 'ten'"),
        "dump args list": (
            dump(str(bad / "args_list.pt")),
            "args_list.pt: checkpoint field args is ['small_input'], not a dict",
        ),
        "resume args list": (resume("args_list"), "checkpoint.pt: checkpoint field args is ['small_input']"),
        # a plain state dict: the message names the caller's flag
        "teacher plain": (
            with_teacher("plain.pt"),
            "plain state dict: say which model it is (--teacher-model NAME)",
        ),
        "dump plain": (
            dump(str(bad / "plain.pt"), "--dataset", "digits"),
            "plain state dict: say which model it is (--model NAME)",
        ),
        "dump plain, classes": (
            dump(str(bad / "plain.pt"), "--dataset", "digits", "--model", "resnet18"),
            "plain.pt does not fit resnet18",
        ),
        # a teacher must see the images it learned from (8 px there, 32 px here)
        "teacher image size": (
            with_teacher("t8.pt"),
            "teacher " + str(bad / "t8.pt") + " was trained with --image-size 8 (this run: 32)",
        ),
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
    assert "\x1b" not in err, (name, err)  # no terminal escape codes (torch bolds some words)


def test_bad_input_exits_with_one_line_subprocess(five_class_teacher, broken, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    todo = cases(five_class_teacher, tmp_path, broken)
    procs = {
        name: subprocess.Popen(
            [sys.executable, *todo[name][0]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in SUBPROCESS
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=240)
        check(name, proc.returncode, err, todo[name][1])


def test_bad_input_exits_with_one_line(five_class_teacher, broken, tmp_path, capsys):
    from vision import distill, dump_features

    for name, (argv, expected) in cases(five_class_teacher, tmp_path, broken).items():
        if name in SUBPROCESS:
            continue
        entry = distill.cli if argv[0] == DISTILL else dump_features.cli
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            entry(argv[1:])
        check(name, exc.value.code, capsys.readouterr().err, expected)


def test_help_lists_the_main_flags():
    out = subprocess.run([sys.executable, DISTILL, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for flag in (
        "--mode",
        "--temperature",
        "--beta",
        "--label-smoothing",
        "--teacher",
        "--dump-features",
        "--resume",
        "--compile",
        "--amp",
        "--channels-last",
    ):
        assert flag in out.stdout


def test_paper_defaults_without_flags():
    """The paper's recipe when no flag is given: SGD momentum 0.9, weight decay 1e-4, batch 256,
    lr 0.1 (0.01 with --recipe cub) x0.1 every 30 of 90 epochs (teacher) / 80 of 200 (student),
    no label smoothing, β = 1, no warm-up (check_args resolves the mode-dependent ones)."""
    from vision import distill

    def resolved(*argv):
        args = distill.get_args_parser().parse_args([*argv, "--device", "cpu"])
        distill.check_args(args)
        return args

    student = ("--mode", "student", "--teacher", "t.pt", "--temperature", "4")
    for argv, (epochs, lr, step) in {
        (): (90, 0.1, 30),
        student: (200, 0.1, 80),
        ("--recipe", "cub"): (90, 0.01, 30),
        (*student, "--recipe", "cub"): (200, 0.01, 80),
    }.items():
        a = resolved(*argv)
        assert (a.epochs, a.lr, a.lr_step) == (epochs, lr, step), argv
        assert (a.momentum, a.weight_decay, a.batch_size, a.lr_gamma) == (0.9, 1e-4, 256, 0.1), argv
        assert (a.label_smoothing, a.beta, a.lr_warmup_epochs, a.clip_grad_norm) == (0.0, 1.0, 0, None)
    assert resolved().mode == "teacher"
    # given values are kept
    a = resolved(*student, "--epochs", "3", "--lr", "0.5", "--lr-step", "2")
    assert (a.epochs, a.lr, a.lr_step) == (3, 0.5, 2)


def test_teacher_input_pipeline_check():
    """A teacher is refused when its checkpoint's args record another input pipeline (dataset,
    image size, an imagefolder recipe) than the student's; the limits, schedule, data path and
    the teacher's own --small-input stem may differ; nothing recorded, nothing compared."""
    from vision import distill

    def student(*argv):
        args = distill.get_args_parser().parse_args(
            ["--mode", "student", "--teacher", "t.pt", "--temperature", "2", "--device", "cpu", *argv]
        )
        distill.check_args(args)
        args.image_size = args.image_size or distill.vdata.DEFAULT_IMAGE_SIZE[args.dataset]  # as main
        return args

    saved = {
        "dataset": "digits",
        "image_size": 32,
        "recipe": "imagenet",
        "small_input": True,
        "limit_train": 16,
        "limit_val": 8,
        "epochs": 90,
        "lr": 0.1,
        "data": None,
    }
    check = distill.check_teacher_inputs
    check(
        "teacher t",
        saved,
        student(
            "--dataset",
            "digits",
            "--limit-train",
            "100",
            "--limit-val",
            "50",
            "--epochs",
            "3",
            "--lr",
            "0.5",
            "--batch-size",
            "8",
        ),
    )
    check("teacher t", dict(saved, image_size=None), student("--dataset", "digits"))  # 32 by default
    check("teacher t", dict(saved, recipe="cub"), student("--dataset", "digits"))
    check("teacher t", {}, student("--dataset", "digits", "--image-size", "8"))  # a plain state dict
    with pytest.raises(
        distill.VisionError,
        match=r"^teacher t was trained with --image-size 32 "
        r"\(this run: 8\): ",
    ):
        check("teacher t", saved, student("--dataset", "digits", "--image-size", "8", "--small-input"))
    with pytest.raises(distill.VisionError, match=r"--dataset digits \(this run: fashion-mnist\)"):
        check("teacher t", saved, student("--dataset", "fashion-mnist"))
    imagenet = dict(saved, dataset="imagefolder", image_size=224, data="/data/a")
    check("teacher t", imagenet, student("--dataset", "imagefolder", "--data", "/data/b"))
    # --recipe only adds training augmentation (same resolution and normalisation): a cub-recipe student
    # of an imagenet-recipe teacher is fine
    check("teacher t", imagenet, student("--dataset", "imagefolder", "--recipe", "cub"))
    with pytest.raises(distill.VisionError, match=r"--image-size 224 \(this run: 160\)"):
        check(
            "teacher t",
            dict(imagenet, image_size=None),
            student("--dataset", "imagefolder", "--image-size", "160"),
        )
