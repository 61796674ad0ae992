"""scripts/recipes: the dry runs carry the paper's hyper-parameters, the runner is resumable, re-runs
exactly the steps whose command changed and their dependants, and fails cleanly, and the ImageNet
recipe runs for real at toy size (about a minute on 2 CPU cores)."""
from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "scripts" / "recipes"
sys.path.insert(0, str(REPO))

from scripts.recipes.common import Deferred, Recipe  # noqa: E402
from scripts.recipes import tables  # noqa: E402

WNIDS = ["n02099849", "n02099429", "n02099267", "n02099601", "n02099712",
         "n01728572", "n01728920", "n01729322", "n01737021", "n01734418"]


def recipe(name: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(RECIPES / f"{name}.py"), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


STEP_LINE = re.compile(r"# (\S+)(?: \((done|stale: .+)\))?$")


def commands(stdout: str) -> dict[str, str]:
    """{step name: command} of a dry run (the line after the step's comment and any ``rm -rf``)."""
    out, name = {}, None
    for line in stdout.splitlines():
        m = STEP_LINE.match(line)
        if m and not line.startswith("# lskd recipe"):
            name = m.group(1)
        elif name and not line.startswith(("#", "rm -rf ")):
            out[name], name = line, None
    return out


def labels(stdout: str) -> dict[str, str]:
    """{step name: "" | "done" | "stale: ..."} of a dry run."""
    return {m.group(1): m.group(2) or "" for m in map(STEP_LINE.match, stdout.splitlines())
            if m and not m.group(0).startswith("# lskd recipe")}


@pytest.fixture
def imagefolder(tmp_path) -> Path:
    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    return tmp_path / "data"


# ----------------------------------------------------------------------------- dry runs
def test_imagenet_dry_run(imagefolder, tmp_path):
    cmds = commands(recipe("imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--nproc", "4",
                           "--dry-run").stdout)
    teachers = {k: v for k, v in cmds.items() if k.startswith("teacher-")}
    assert len(teachers) == 6  # α ∈ {0, 0.1} x 3 seeds
    assert sum("--label-smoothing 0.1 " in c for c in teachers.values()) == 3
    assert sum("--label-smoothing 0 " in c for c in teachers.values()) == 3
    for c in teachers.values():
        assert "torchrun --nproc_per_node 4" in c and "--mode teacher --model resnet50" in c
        assert "--epochs 90 --lr 0.1 --lr-step 30" in c and "--batch-size 64" in c  # 256 / 4
        assert "--dataset imagefolder" in c and f"--data {imagefolder}" in c and "--dump-features" in c
    students = {k: v for k, v in cmds.items() if k.startswith("students-")}
    assert len(students) == 12  # 2 models x 2 α x 3 seeds
    for c in students.values():
        assert "torchrun --nproc_per_node 4" in c
        assert "--temperature 1 2 3 64" in c and "--epochs 200 --lr 0.1 --lr-step 80" in c
        assert "--dump-features" in c and "--beta 1" in c
    assert {k.split("-")[1] for k in students} == {"resnet18", "resnet50"}
    assert sum("--seed 3" in c for c in students.values()) == 4
    similar = [c for k, c in cmds.items() if k.startswith("similar-")]
    assert len(similar) == 3  # one per seed: Table 12 on the plain ResNet-50 teacher's validation set
    for c in similar:
        assert all(w in c for w in WNIDS) and "--hierarchy wordnet --k 4 --n 20" in c and "--write-sets" in c
        assert re.search(r"--features \S*/teachers/a0_s\d/features/valid ", c), c
    etas = [c for k, c in cmds.items() if k.startswith("eta-")]
    assert len(etas) == 12 and all("--sets" in c and "--before-valid" in c and "--after-valid" in c for c in etas)
    assert any("/T1/features/train" in c and "/T3/features/train" in c for c in etas)   # Table 3
    assert any("/T64/features/train" in c for c in etas)                                 # Table 4
    proj = [c for k, c in cmds.items() if k.startswith("projection-")]
    assert proj and all("--classes n02113799,n02113712,n04347754" in c for c in proj)
    assert "scripts.recipes.tables vision-accuracy" in cmds["table-accuracy"]
    assert "table-eta-resnet18" in cmds and "table-eta-resnet50" in cmds
    # Tables 17-19: per-class train and validation accuracy of the 3 + 10 classes, per student sweep
    acc = {k: c for k, c in cmds.items() if k.startswith("accuracy-")}
    assert len(acc) == 12 and "accuracy-resnet18-a0.1-s2" in acc
    for c in acc.values():
        words = shlex.split(c)
        classes = words[words.index("--classes") + 1].split(",")
        assert sorted(classes) == sorted(WNIDS + ["n02113799", "n02113712", "n04347754"])
        assert "shared_metrics accuracy" in c and "--format json" in c
        assert all(f"/T{T}/features/{sp} " in c for T in (1, 2, 3, 64) for sp in ("train", "valid"))
    table = shlex.split(cmds["table-per-class-accuracy"])
    assert table.count("--set") == 3 and all(c.split()[-1] in table for c in acc.values())
    sets = dict(zip(table[table.index("--set") + 1::3], table[table.index("--set") + 2::3]))
    assert sets["Figure 1 classes (Table 17)"] == \
        "n02113799=standard_poodle,n02113712=miniature_poodle,n04347754=submarine"
    assert "n02099601=golden_retriever" in sets["retrievers (Table 18)"]
    assert "n01734418=king_snake" in sets["snakes (Table 19)"]


def test_imagenet_single_process_and_seeds(imagefolder, tmp_path):
    cmds = commands(recipe("imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--seeds", "7",
                           "--dry-run").stdout)
    train = [c for k, c in cmds.items() if k.startswith(("teacher-", "students-"))]
    assert len(train) == 6 and all("torchrun" not in c and " vision/distill.py " in c for c in train)
    assert all("--batch-size 256" in c and "--seed 7" in c for c in train)


@pytest.mark.parametrize("args, message", [
    ([], "--data is required"),
    (["--data", "/nonexistent/imagenet"], "not found"),
    (["--nproc", "3"], "does not divide"),
])
def test_imagenet_bad_input(args, message, imagefolder):
    if args == ["--nproc", "3"]:
        args = ["--data", imagefolder, *args]
    p = recipe("imagenet", *args, "--dry-run", check=False)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_cub_dry_run(imagefolder, tmp_path):
    weights = tmp_path / "r50.pth"
    weights.write_bytes(b"")
    cmds = commands(recipe("cub", "--data", imagefolder, "--pretrained", weights, "--pretrained-r18", weights,
                           "--pretrained-mbv2", weights, "--out", tmp_path / "o", "--nproc", "2", "--dry-run").stdout)
    teachers = [c for k, c in cmds.items() if k.startswith("teacher-")]
    assert len(teachers) == 9 and sum("--label-smoothing 0.2 " in c for c in teachers) == 3
    for c in teachers + [c for k, c in cmds.items() if k.startswith("students-")]:
        assert "--recipe cub" in c and "--epochs 200 --lr 0.01 --lr-step 80" in c and "--batch-size 128" in c
    assert all(f"--pretrained {weights}" in c for c in teachers)
    students = {k: c for k, c in cmds.items() if k.startswith("students-")}
    assert "students-mobilenet_v2-a0.2-s1" in students and "students-resnet18-a0.2-s1" not in students
    assert len(students) == 3 * (2 + 2 + 3)
    assert all("--temperature 1 2 3 64" in c for c in students.values())
    assert "--temperature 1 2 3 64" in cmds["entropy-s1"]
    assert "--reference-temperature 3" in cmds["match-T3-s2"] and "/a0.1_s2/features/train" in cmds["match-T3-s2"]
    matched = cmds["matched-mobilenet_v2-s1"]
    assert "scripts.recipes.tables get" in matched and "match_T1_s1.json temperature" in matched
    assert {"table-accuracy", "table-entropy", "table-counterexamples"} <= set(cmds)
    assert all("--dump-features" in c for c in students.values())   # projection + per-class accuracy
    # Figure 4: Loggerhead / Great Grey Shrike (similar), Black-footed Albatross (dissimilar)
    proj = {k: c for k, c in cmds.items() if k.startswith("projection-")}
    assert set(proj) == {f"projection-{m}-s1" for m in ("teachers", "resnet18", "resnet50", "mobilenet_v2")}
    assert all("--classes 111.Loggerhead_Shrike,112.Great_Grey_Shrike,001.Black_footed_Albatross" in c
               for c in proj.values())
    assert proj["projection-teachers-s1"].count("/features/") == 6              # 3 α x train, valid
    assert proj["projection-mobilenet_v2-s1"].count("/features/train") == 12    # 3 α x 4 T
    acc = {k: c for k, c in cmds.items() if k.startswith("accuracy-")}
    assert len(acc) == 3 * (2 + 2 + 3)
    assert all(c.count("/features/train") == 4 and c.count("/features/valid") == 4 for c in acc.values())
    table = cmds["table-per-class-accuracy"]
    assert "scripts.recipes.tables per-class-accuracy" in table and table.count("/accuracy/per_class_") == 21


def test_cub_needs_pretrained(imagefolder, tmp_path):
    p = recipe("cub", "--data", imagefolder, "--dry-run", check=False)
    assert p.returncode == 2 and "--pretrained is required" in p.stderr and "Traceback" not in p.stderr
    weights = tmp_path / "r50.pth"
    weights.write_bytes(b"")
    p = recipe("cub", "--data", imagefolder, "--pretrained", weights, "--dry-run", check=False)
    assert p.returncode == 2 and "--pretrained-r18 is required" in p.stderr and "Traceback" not in p.stderr
    p = recipe("cub", "--data", imagefolder, "--pretrained", weights, "--students-from-scratch", "--dry-run")
    students = [c for k, c in commands(p.stdout).items() if k.startswith("students-resnet18")]
    assert students and not any("--pretrained" in c for c in students)


def test_iwslt_dry_run(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = recipe("iwslt", "--raw-de-en", raw, "--raw-en-ru", raw, "--out", tmp_path / "o", "--nproc", "2",
                 "--dry-run").stdout
    cmds = commands(out)
    # the paper's directions: English->German, English->Russian
    assert "--src en --tgt de" in cmds["data-en-de"] and "--src en --tgt ru" in cmds["data-en-ru"]
    for pair in ("en-de", "en-ru"):
        teachers = [c for k, c in cmds.items() if k.startswith(f"teacher-{pair}-")]
        students = [c for k, c in cmds.items() if k.startswith(f"student-{pair}-")]
        assert len(teachers) == 6 and len(students) == 24
        assert sum("--criterion label_smoothed_cross_entropy --label-smoothing 0.1 " in c for c in teachers) == 3
        for c in teachers + students:
            assert "fairseq-train" in c and "--arch transformer_iwslt_de_en --share-all-embeddings" in c
            assert "--lr 5e-4" in c and "--dropout 0.3" in c and "--weight-decay 0 " in c
            assert "--max-tokens 2048" in c and "--distributed-world-size 2" in c
            assert "--best-checkpoint-metric nll_loss" in c
        assert sum("--task kd_translation" in c and "--kd-temperature 64 " in c and "--criterion ls_kd" in c
                   for c in students) == 6
        assert "nmt_plugin.bleu table" in cmds[f"table-bleu-{pair}"]
        assert cmds[f"table-bleu-{pair}"].count("checkpoint_best.pt") == 30
    for bad, message in ((["--pairs", "de-en", "de-en"], "de-en is given twice"),
                         (["--nproc", "32"], "use at most 16 processes")):
        p = recipe("iwslt", "--raw-de-en", raw, "--raw-en-ru", raw, "--out", tmp_path / "o", *bad, "--dry-run",
                   check=False)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr


# ----------------------------------------------------------------------------- the runner
def make_recipe(tmp_path, dry_run=False) -> Recipe:
    args = Namespace(out=tmp_path / "out", dry_run=dry_run, quiet=True, toy=False, nproc=1, seeds=[1])
    return Recipe(args, "unit")


def test_runner_resumes_and_stops_on_failure(tmp_path, capsys):
    out = tmp_path / "out"
    r = make_recipe(tmp_path)
    py = sys.executable
    r.add("one", [py, "-c", f"open({str(out / 'one.txt')!r}, 'a').write('x')"], [out / "one.txt"])
    r.add("two", [py, "-c", "import sys; print('boom'); sys.exit(3)"], [out / "two.txt"])
    assert r.run() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step two failed (exit 3)" in err[0]
    assert json.loads((out / ".recipe" / "one.json").read_text())["state"] == "finished"
    assert json.loads((out / ".recipe" / "two.json").read_text())["state"] == "started"  # interrupted
    assert "boom" in (out / ".recipe" / "logs" / "two.log").read_text()
    assert r.run() == 1
    assert (out / "one.txt").read_text() == "x"  # finished step not run again


def test_runner_interrupted_step_with_a_changed_command_starts_afresh(tmp_path, capsys):
    """An interrupted training resumes with its own command; with another command (here: another
    loss weight) its directory is cleared first, not resumed under the new marker. Another
    --nproc is the same training: a finished one is kept."""
    out = tmp_path / "out"
    r = make_recipe(tmp_path)
    train = out / "train"
    r.add("train", [sys.executable, "-c", "import sys; sys.exit(7)", "--beta", "1", "--batch-size", "256"],
          [train / "done"], resume_dir=train)
    assert r.run() == 1
    (train).mkdir(parents=True)
    (train / "checkpoint_last.pt").write_bytes(b"beta=1")
    assert r.status(r.steps[0], set()) == (False, None)           # same command: resumes
    r2 = make_recipe(tmp_path)
    r2.add("train", [sys.executable, "-c", "import sys; sys.exit(7)", "--beta", "0.5", "--batch-size", "256"],
           [train / "done"], resume_dir=train)
    assert r2.status(r2.steps[0], set()) == (False, "command changed")
    r2.run()
    assert not (train / "checkpoint_last.pt").exists()          # cleared, not resumed
    capsys.readouterr()
    # the same vision training on 1 and on 4 processes is one step
    one, four = make_recipe(tmp_path), make_recipe(tmp_path)
    four.args.nproc = 4
    for rec, batch in ((one, 256), (four, 64)):
        rec.add("v", rec.vision("--batch-size", batch, "--output-dir", out / "v"), [out / "v" / "x"])
    assert one.command_text(one.steps[0]) == four.command_text(four.steps[0])
    assert "torchrun" in " ".join(four.steps[0].cmd) and "--batch-size 256" in four.command_text(four.steps[0])


def test_runner_resume_flag_and_deferred(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "sweep" / "T3").mkdir(parents=True)
    (out / "vals.json").write_text(json.dumps({"temperature": 1.481375}))
    r = make_recipe(tmp_path, dry_run=True)
    r.add("sweep", [sys.executable, "vision/distill.py", "--output-dir", out / "sweep"], [out / "x"],
          resume_dir=out / "sweep")
    r.add("matched", ["echo", "--temperature", Deferred(out / "vals.json", "temperature")], [out / "y"])
    r.run()
    text = capsys.readouterr().out
    assert "--resume" not in text and "scripts.recipes.tables get" in text
    (out / "sweep" / "T3" / "checkpoint.pt").write_bytes(b"")
    r.run()
    assert "--resume" in capsys.readouterr().out
    assert r.resolved(r.steps[1])[-1] == "1.481375"


#: a fake step: ``NAME LOG DST TEXT [SRC ...]`` writes TEXT + the SRC files (globs) to DST, logs NAME
FAKE = ("import glob, pathlib, sys; name, log, dst, text, *src = sys.argv[1:]; "
        "p = pathlib.Path(dst); p.parent.mkdir(parents=True, exist_ok=True); "
        "p.write_text(text + ''.join(pathlib.Path(f).read_text() for s in src for f in sorted(glob.glob(s)))); "
        "open(log, 'a').write(name + ' ')")


def fake_recipe(tmp_path, dry_run=False, a="A", d="D") -> Recipe:
    """a -> b -> d (resume_dir train/) -> e (reads train/*.txt); c unrelated."""
    out = tmp_path / "out"
    r = make_recipe(tmp_path, dry_run)

    def step(name, dst, text, *src, resume_dir=None):
        r.add(name, [sys.executable, "-c", FAKE, name, out / "ran.log", dst, text, *src], [dst], resume_dir=resume_dir)
    step("a", out / "a.txt", a)
    step("b", out / "b.txt", "B", out / "a.txt")
    step("c", out / "c.txt", "C")
    step("d", out / "train" / "d.txt", d, out / "b.txt", resume_dir=out / "train")
    step("e", out / "e.txt", "E", out / "train" / "*.txt")
    return r


def ran(tmp_path) -> list[str]:
    """Steps run since the last call."""
    log = tmp_path / "out" / "ran.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return names


def test_runner_dependencies(tmp_path):
    r = make_recipe(tmp_path)
    out = r.out
    r.add("teacher", ["train", "--output-dir", out / "t"], [out / "t" / "checkpoint.pt"], resume_dir=out / "t")
    r.add("students", ["train", "--teacher", out / "t" / "checkpoint.pt"], [out / "s" / "T*" / "ckpt"],
          resume_dir=out / "s")
    r.add("match", ["m", out / "t" / "features" / "train", "-o", out / "m.json"], [out / "m.json"])
    r.add("matched", ["train", "--temperature", Deferred(out / "m.json", "temperature")], [out / "x"])
    r.add("glob", ["g", f"--in={out}/s/T3/ckpt"], [out / "g"])
    r.add("table", ["tab", "--students", out / "s", "--teachers", out / "t"], [out / "tab.md"])
    r.add("other", ["o", out / "tx", "vision/distill.py", "(0.9, 0.98)", "--data", tmp_path, "--all", out],
          [out / "o"])
    assert [r.dependencies(s) for s in r.steps] == [
        [], ["teacher"], ["teacher"], ["match"], ["students"], ["teacher", "students"], []]
    # the marker's command: Deferred unresolved, the interpreter by name
    r.add("py", [sys.executable, "x.py", Deferred(out / "m.json", "temperature")], [out / "y"])
    assert r.command_text(r.steps[-1]) == f"python x.py $(python -m scripts.recipes.tables get {out}/m.json temperature)"


def test_runner_reruns_changed_steps_and_dependants(tmp_path, capsys):
    out = tmp_path / "out"
    assert fake_recipe(tmp_path).run() == 0
    assert ran(tmp_path) == ["a", "b", "c", "d", "e"]
    assert (out / "e.txt").read_text() == "EDBA"
    marker = json.loads((out / ".recipe" / "b.json").read_text())
    assert marker["command"].startswith("python -c ") and str(out / "a.txt") in marker["command"]

    # unchanged: everything skipped
    capsys.readouterr()
    assert fake_recipe(tmp_path).run() == 0
    assert ran(tmp_path) == [] and "0 steps run, 5 skipped" in capsys.readouterr().out

    # a's command changes: the dry run labels a and its dependants and deletes nothing
    (out / "train" / "old-checkpoint").write_text("")
    assert fake_recipe(tmp_path, dry_run=True, a="A2").run() == 0
    dry = capsys.readouterr().out
    assert labels(dry) == {"a": "stale: command changed", "b": "stale: a re-runs", "c": "done",
                           "d": "stale: b re-runs", "e": "stale: d re-runs"}
    assert f"rm -rf -- {out / 'train'}" in dry and dry.count("rm -rf") == 1
    assert (out / "train" / "old-checkpoint").exists() and (out / ".recipe" / "a.json").exists()
    assert ran(tmp_path) == []
    # ... and the real run re-runs exactly those, with a one-line reason each
    assert fake_recipe(tmp_path, a="A2").run() == 0
    assert ran(tmp_path) == ["a", "b", "d", "e"]
    text = capsys.readouterr().out
    assert "a: stale (command changed), re-runs" in text and "b: stale (a re-runs), re-runs" in text
    assert (out / "e.txt").read_text() == "EDBA2"
    assert fake_recipe(tmp_path, a="A2").run() == 0 and ran(tmp_path) == []


def test_runner_clears_resume_dir_only_when_stale(tmp_path, capsys):
    out = tmp_path / "out"
    assert fake_recipe(tmp_path).run() == 0
    ran(tmp_path)
    sentinel = out / "train" / "checkpoint.pt"

    # interrupted (no marker): the training directory is kept, so the step can resume
    sentinel.write_text("")
    (out / ".recipe" / "d.json").unlink()
    assert fake_recipe(tmp_path).run() == 0
    assert ran(tmp_path) == ["d", "e"] and sentinel.exists()
    # outputs missing (marker intact, same command): re-run in place, nothing cleared
    (out / "train" / "d.txt").unlink()
    assert fake_recipe(tmp_path).run() == 0
    assert ran(tmp_path) == ["d", "e"] and sentinel.exists()
    assert "d: stale" not in capsys.readouterr().out

    # its own command changed: cleared before it runs (no resuming another configuration)
    assert fake_recipe(tmp_path, d="D2").run() == 0
    assert ran(tmp_path) == ["d", "e"] and not sentinel.exists() and (out / "train" / "d.txt").exists()
    assert f"d: stale (command changed), re-runs; cleared {out / 'train'}" in capsys.readouterr().out
    # an upstream step re-ran: cleared too, or it would --resume a run trained from the old inputs
    sentinel.write_text("")
    assert fake_recipe(tmp_path, a="A3", d="D2").run() == 0
    assert ran(tmp_path) == ["a", "b", "d", "e"] and not sentinel.exists()
    assert (out / "e.txt").read_text() == "ED2BA3"


def test_runner_accepts_first_version_markers(tmp_path):
    out = tmp_path / "out"
    assert fake_recipe(tmp_path).run() == 0
    ran(tmp_path)
    r = fake_recipe(tmp_path)
    for s in r.steps:   # as the first runner wrote them: the resolved command
        (out / ".recipe" / f"{s.name}.json").write_text(json.dumps({"step": s.name, "command": shlex.join(s.cmd)}))
    assert r.run() == 0 and ran(tmp_path) == []
    assert fake_recipe(tmp_path, a="A2").run() == 0 and ran(tmp_path) == ["a", "b", "d", "e"]


def test_tables_mean_std(tmp_path):
    assert tables.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert tables.cell([0.5]) == "0.500 ± 0.000 (1)"
    assert tables.main(["get", str(tmp_path / "missing.json"), "x"]) == 2


def test_tables_per_class_accuracy(tmp_path):
    """Tables 17-19 layout: rows classes + average (per seed), columns T x split, one table per α."""
    inputs = []
    for seed, acc in ((1, {"x": 0.5, "y": 1.0, "z": 0.0}), (2, {"x": 0.7, "y": 0.8, "z": None})):
        sets = []
        for T in (1, 3):
            for split in ("train", "valid"):
                fs = tmp_path / f"s{seed}" / f"T{T}" / split
                fs.mkdir(parents=True)
                (fs / "meta.json").write_text(json.dumps({"model": "resnet18", "alpha": 0.1, "temperature": T,
                                                          "split": split, "seed": seed, "classes": ["x", "y", "z"]}))
                sets.append({"features": str(fs), "top1": 0.5, "per_class": acc})
        inputs.append(tmp_path / f"acc{seed}.json")
        inputs[-1].write_text(json.dumps({"unit": "fraction", "sets": sets}))
    assert tables.main(["per-class-accuracy", "--inputs", *map(str, inputs), "--set", "pair", "x=X class,y",
                        "--set", "odd", "z", "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t.md").read_text()
    assert "## Student resnet18, teacher α = 0.1: pair" in md and "Top-1 accuracy (%)" in md
    assert "| class | T = 1 train (%) | T = 1 valid (%) | T = 3 train (%) | T = 3 valid (%) |" in md
    assert "| X class | 60.000 ± 14.142 (2) |" in md            # x: 50 %, 70 %
    assert "| Average | 75.000 ± 0.000 (2) |" in md            # per seed (50+100)/2, (70+80)/2
    assert "| z | 0.000 ± 0.000 (1) |" in md                   # a class without samples in seed 2
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert len(rows) == (3 + 2) * 4
    x = [r for r in rows if r["class"] == "x" and r["T"] == "3" and r["split"] == "valid"][0]
    assert x["set"] == "pair" and x["n"] == "2" and abs(float(x["top1_fraction_mean"]) - 0.6) < 1e-12


# ----------------------------------------------------------------------------- the toy run
def test_imagenet_toy_runs_and_resumes(tmp_path):
    out = tmp_path / "toy"
    t0 = time.perf_counter()
    p = recipe("imagenet", "--toy", "--out", out, "--quiet")
    first = time.perf_counter() - t0
    assert "22 steps run, 0 skipped" in p.stdout
    acc = (out / "tables" / "accuracy.md").read_text()
    assert "± " in acc and "Teacher: resnet50" in acc and "α = 0.1" in acc and "T = 64" in acc
    rows = list(csv.DictReader(open(out / "tables" / "accuracy.csv")))
    assert {"top1_mean", "top1_std", "top5_mean", "top5_std", "n"} <= set(rows[0])
    assert len(rows) == 2 * (2 + 2 * 4)  # per student model: 2 teachers + 2 α x 4 T
    for model in ("resnet18", "resnet50"):
        eta = (out / "tables" / f"eta_{model}.md").read_text()
        assert "η S1 train (%)" in eta and "η S2 valid (%)" in eta and "Pullover" in eta and "±" in eta
        assert "eta_similar_mean" in (out / "tables" / f"eta_{model}.csv").read_text().splitlines()[0]
    assert (out / "figures" / "projection_resnet18_s1.png").stat().st_size > 1000
    sets = json.loads((out / "eta" / "sets_s1.json").read_text())
    assert sets["Coat"]["similar"] and sets["Coat"]["dissimilar"]
    check_per_class_table(out)

    t0 = time.perf_counter()
    again = recipe("imagenet", "--toy", "--out", out, "--quiet")
    assert "0 steps run, 22 skipped" in again.stdout and again.stdout.count("done, skipped") == 22
    assert time.perf_counter() - t0 < first / 3
    dry = recipe("imagenet", "--toy", "--out", out, "--dry-run").stdout
    assert dry.count("(done)") == 22 and "--resume" in dry

    # a lost table is rebuilt alone, the training is not repeated
    (out / "tables" / "accuracy.md").unlink()
    third = recipe("imagenet", "--toy", "--out", out, "--quiet")
    assert "1 steps run, 21 skipped" in third.stdout and (out / "tables" / "accuracy.md").exists()

    # a changed command (here: another S1/S2 draw) marks that step and what reads it stale, nothing else
    marker = out / ".recipe" / "similar-s1.json"
    rec = json.loads(marker.read_text())
    marker.write_text(json.dumps({**rec, "command": rec["command"].replace("--seed 0", "--seed 5")}))
    lab = labels(recipe("imagenet", "--toy", "--out", out, "--dry-run").stdout)
    assert lab["similar-s1"] == "stale: command changed"
    assert lab["eta-resnet18-a0.1-s1"] == "stale: similar-s1 re-runs"
    assert lab["table-eta-resnet18"].startswith("stale: ")
    assert {k for k, v in lab.items() if v != "done"} == {
        "similar-s1", *(f"eta-{m}-{a}-s1" for m in ("resnet18", "resnet50") for a in ("a0.1", "a0")),
        "table-eta-resnet18", "table-eta-resnet50"}


def check_per_class_table(out: Path) -> None:
    """tables/per_class_accuracy.{md,csv} against argmax(logits) == label on one feature set (the toy
    student with the most distinct predictions: one epoch leaves most predicting a single class)."""
    sets = sorted((out / "students").glob("*/T*/features/valid"))
    assert len(sets) == 2 * 2 * 4
    fs = max(sets, key=lambda f: len(np.unique(np.load(f / "logits.npy").argmax(axis=1))))
    meta = json.loads((fs / "meta.json").read_text())
    logits, y = np.load(fs / "logits.npy"), np.load(fs / "labels.npy")
    pred = logits.argmax(axis=1)
    acc = {c: float((pred[y == k] == k).mean()) for k, c in enumerate(meta["classes"]) if (y == k).any()}
    rows = list(csv.DictReader(open(out / "tables" / "per_class_accuracy.csv")))
    mine = {(r["set"], r["class"]): r for r in rows if r["student"] == meta["model"] and r["split"] == "valid"
            and float(r["alpha"]) == meta["alpha"] and float(r["T"]) == meta["temperature"]}
    targets = ["T-shirt/top", "Pullover", "Coat", "Shirt", "Dress", "Sandal", "Sneaker", "Ankle boot"]
    for c in targets:
        r = mine[("η targets", c)]
        assert r["n"] == "1" and abs(float(r["top1_fraction_mean"]) - acc[c]) < 1e-9
    average = float(np.mean([acc[c] for c in targets]))
    assert abs(float(mine[("η targets", "Average")]["top1_fraction_mean"]) - average) < 1e-9
    assert abs(float(mine[("projection classes", "Coat")]["top1_fraction_mean"]) - acc["Coat"]) < 1e-9
    md = (out / "tables" / "per_class_accuracy.md").read_text()
    assert "Top-1 accuracy (%)" in md
    section = md.split(f"## Student {meta['model']}, teacher α = {meta['alpha']:g}: η targets")[1].split("##")[0]
    table = {r[0]: r for r in ([x.strip() for x in ln.strip("|").split("|")]
                               for ln in section.splitlines() if ln.startswith("| "))}
    col = table["class"].index(f"T = {meta['temperature']:g} valid (%)")  # train and valid columns
    assert table["Coat"][col] == f"{100 * acc['Coat']:.3f} ± 0.000 (1)"
    assert table["Average"][col] == f"{100 * average:.3f} ± 0.000 (1)"
