"""scripts/recipes: the dry runs carry the paper's hyper-parameters, the runner is resumable and
fails cleanly, and the ImageNet recipe runs for real at toy size (about a minute on 2 CPU cores)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

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


def commands(stdout: str) -> dict[str, str]:
    """{step name: command} of a dry run."""
    lines = stdout.splitlines()
    out = {}
    for a, b in zip(lines, lines[1:]):
        if a.startswith("# ") and not b.startswith("#"):
            out[a[2:].replace(" (done)", "")] = b
    return out


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
    assert len(similar) == 6
    for c in similar:
        assert all(w in c for w in WNIDS) and "--hierarchy wordnet --k 4 --n 20" in c and "--write-sets" in c
    etas = [c for k, c in cmds.items() if k.startswith("eta-")]
    assert len(etas) == 12 and all("--sets" in c and "--before-valid" in c and "--after-valid" in c for c in etas)
    assert any("/T1/features/train" in c and "/T3/features/train" in c for c in etas)   # Table 3
    assert any("/T64/features/train" in c for c in etas)                                 # Table 4
    proj = [c for k, c in cmds.items() if k.startswith("projection-")]
    assert proj and all("--classes n02113799,n02113712,n04347754" in c for c in proj)
    assert "scripts.recipes.tables vision-accuracy" in cmds["table-accuracy"]
    assert "table-eta-resnet18" in cmds and "table-eta-resnet50" in cmds


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
    cmds = commands(recipe("cub", "--data", imagefolder, "--pretrained", weights, "--out", tmp_path / "o",
                           "--nproc", "2", "--dry-run").stdout)
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


def test_cub_needs_pretrained(imagefolder):
    p = recipe("cub", "--data", imagefolder, "--dry-run", check=False)
    assert p.returncode == 2 and "--pretrained is required" in p.stderr and "Traceback" not in p.stderr


def test_iwslt_dry_run(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = recipe("iwslt", "--raw-de-en", raw, "--raw-en-ru", raw, "--out", tmp_path / "o", "--nproc", "2",
                 "--dry-run").stdout
    cmds = commands(out)
    assert "--src de --tgt en" in cmds["data-de-en"] and "--src en --tgt ru" in cmds["data-en-ru"]
    for pair in ("de-en", "en-ru"):
        teachers = [c for k, c in cmds.items() if k.startswith(f"teacher-{pair}-")]
        students = [c for k, c in cmds.items() if k.startswith(f"student-{pair}-")]
        assert len(teachers) == 6 and len(students) == 24
        assert sum("--criterion label_smoothed_cross_entropy --label-smoothing 0.1 " in c for c in teachers) == 3
        for c in teachers + students:
            assert "fairseq-train" in c and "--arch transformer_iwslt_de_en --share-all-embeddings" in c
            assert "--lr 5e-4" in c and "--dropout 0.3" in c and "--weight-decay 0 " in c
            assert "--max-tokens 2048" in c and "--distributed-world-size 2" in c
        assert sum("--task kd_translation" in c and "--kd-temperature 64 " in c and "--criterion ls_kd" in c
                   for c in students) == 6
        assert "nmt_plugin.bleu table" in cmds[f"table-bleu-{pair}"]
        assert cmds[f"table-bleu-{pair}"].count("checkpoint_best.pt") == 30


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
    assert (out / ".recipe" / "one.json").is_file() and not (out / ".recipe" / "two.json").exists()
    assert "boom" in (out / ".recipe" / "logs" / "two.log").read_text()
    assert r.run() == 1
    assert (out / "one.txt").read_text() == "x"  # finished step not run again


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


def test_tables_mean_std(tmp_path):
    assert tables.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert tables.cell([0.5]) == "0.500 ± 0.000 (1)"
    assert tables.main(["get", str(tmp_path / "missing.json"), "x"]) == 2


# ----------------------------------------------------------------------------- the toy run
def test_imagenet_toy_runs_and_resumes(tmp_path):
    out = tmp_path / "toy"
    t0 = time.perf_counter()
    p = recipe("imagenet", "--toy", "--out", out, "--quiet")
    first = time.perf_counter() - t0
    assert "18 steps run, 0 skipped" in p.stdout
    acc = (out / "tables" / "accuracy.md").read_text()
    assert "± " in acc and "Teacher: resnet50" in acc and "α = 0.1" in acc and "T = 64" in acc
    rows = list(csv.DictReader(open(out / "tables" / "accuracy.csv")))
    assert {"top1_mean", "top1_std", "top5_mean", "top5_std", "n"} <= set(rows[0])
    assert len(rows) == 2 * (2 + 2 * 4)  # per student model: 2 teachers + 2 α x 4 T
    for model in ("resnet18", "resnet50"):
        eta = (out / "tables" / f"eta_{model}.md").read_text()
        assert "η S1 train (%)" in eta and "η S2 valid (%)" in eta and "Pullover" in eta and "±" in eta
        assert "eta_similar_mean" in (out / "tables" / f"eta_{model}.csv").read_text().splitlines()[0]
    assert (out / "figures" / "projection_resnet18.png").stat().st_size > 1000
    sets = json.loads((out / "eta" / "sets_resnet18_s1.json").read_text())
    assert sets["Coat"]["similar"] and sets["Coat"]["dissimilar"]

    t0 = time.perf_counter()
    again = recipe("imagenet", "--toy", "--out", out, "--quiet")
    assert "0 steps run, 18 skipped" in again.stdout and again.stdout.count("done, skipped") == 18
    assert time.perf_counter() - t0 < first / 3
    dry = recipe("imagenet", "--toy", "--out", out, "--dry-run").stdout
    assert dry.count("(done)") == 18 and "--resume" in dry

    # a lost table is rebuilt alone, the training is not repeated
    (out / "tables" / "accuracy.md").unlink()
    third = recipe("imagenet", "--toy", "--out", out, "--quiet")
    assert "1 steps run, 17 skipped" in third.stdout and (out / "tables" / "accuracy.md").exists()
