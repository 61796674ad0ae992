"""The paper recipes as Snakemake rules (scripts/recipe.sh, scripts/workflow/rules/{imagenet,cub,iwslt}.smk):
the dry runs carry the paper's hyper-parameters, bad input is one line before Snakemake starts, the
tables module computes mean ± std, and the ImageNet recipe runs for real at toy size (about a minute
and a half on 2 CPU cores), after which a re-run does nothing."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from test_workflow import job_counts  # noqa: E402  (one parser of Snakemake's "Job stats:" table)

from scripts.recipes import tables  # noqa: E402

# recipe.sh with this interpreter as it is: no venv, nothing installed (the set-up has its own test)
ENV = dict(os.environ, LSKD_USE_CURRENT_PYTHON="1", LSKD_NO_APT="1", PYTHON=sys.executable)
WNIDS = [
    "n02099849",
    "n02099429",
    "n02099267",
    "n02099601",
    "n02099712",
    "n01728572",
    "n01728920",
    "n01729322",
    "n01737021",
    "n01734418",
]
FIGURE1 = ["n02113799", "n02113712", "n04347754"]


def recipe(*args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "recipe.sh"), *map(str, args)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"recipe.sh {args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def jobs(stdout: str) -> dict[str, list[dict]]:
    """{rule: [{"cmd": its shell command, "resources": {...}, "wildcards": {...}}, ...]} of a ``-n -p`` run."""
    out: dict[str, list[dict]] = {}
    job = None
    for line in stdout.splitlines():
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line):
            job = {"cmd": None, "resources": {}, "wildcards": {}}
            out.setdefault(m.group(1), []).append(job)
        elif job is not None and (m := re.fullmatch(r"    (resources|wildcards): (.*)", line)):
            job[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split(", "))
        elif job is not None and line.startswith("Shell command: "):
            job["cmd"] = line[len("Shell command: ") :]
    return out


def cmds(stdout: str, rule: str) -> list[str]:
    return [j["cmd"] for j in jobs(stdout).get(rule, [])]


def flag(cmd: str, name: str) -> str:
    words = shlex.split(cmd)
    return words[words.index(name) + 1]


@pytest.fixture
def imagefolder(tmp_path) -> Path:
    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    return tmp_path / "data"


# ----------------------------------------------------------------------------- dry runs
def test_imagenet_dry_run(imagefolder, tmp_path):
    """The paper's ImageNet grid (Supp., ImageNet-1K paragraph): ResNet-50 teachers 90 epochs, lr 0.1
    x0.1 every 30; students 200 epochs, lr 0.1 x0.1 every 80; batch 256 = 4 GPUs x 64; 3 seeds."""
    out = recipe(
        "imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--gpus", "4", "--dry-run"
    ).stdout
    assert not (tmp_path / "o" / "teachers").exists()  # nothing ran
    assert "reason: Missing output files" in out  # -n says why
    teachers = jobs(out)["teacher"]
    assert len(teachers) == 6  # α ∈ {0, 0.1} x 3 seeds
    assert sorted(flag(j["cmd"], "--label-smoothing") for j in teachers) == ["0"] * 3 + ["0.1"] * 3
    for j in teachers:
        c = j["cmd"]
        assert "torchrun --nproc_per_node 4 --standalone" in c and "--mode teacher --model resnet50" in c
        assert "--epochs 90 --lr 0.1 --lr-step 30 --lr-gamma 0.1" in c and "--batch-size 64 " in c  # 256 / 4
        assert (
            "--momentum 0.9" in c
            and "--dataset imagefolder" in c
            and f"--data {imagefolder} --recipe imagenet" in c
        )
        assert "--dump-features" in c and j["resources"]["gpu"] == "4" and j["resources"]["runtime"] == "2880"
    students = jobs(out)["students"]
    assert len(students) == 12  # 2 models x 2 α x 3 seeds
    for j in students:
        c = j["cmd"]
        assert "torchrun --nproc_per_node 4 --standalone" in c and "--batch-size 64 " in c
        assert "--temperature 1 2 3 64 --beta 1" in c and "--epochs 200 --lr 0.1 --lr-step 80" in c
        assert f"--teacher teachers/a{j['wildcards']['alpha']}_s{j['wildcards']['seed']}/model.pt" in c
    assert {j["wildcards"]["model"] for j in students} == {"resnet18", "resnet50"}
    assert sum("--seed 3 " in j["cmd"] for j in students) == 4
    similar = cmds(out, "similar")
    assert len(similar) == 3  # one per seed: Table 12 on the plain ResNet-50 teacher's validation set
    for c in similar:
        assert flag(c, "--target").split(",") == WNIDS and "--hierarchy wordnet --k 4 --n 20 --seed 0" in c
        assert re.search(r"--features teachers/a0_s\d/features/valid ", c) and "--write-sets" in c
    etas = jobs(out)["eta"]
    assert len(etas) == 12 and all(
        "--sets eta/sets_s" in j["cmd"] and "--before-valid" in j["cmd"] for j in etas
    )
    t1_t2 = {j["wildcards"]["model"]: (flag(j["cmd"], "--before"), flag(j["cmd"], "--after")) for j in etas}
    assert t1_t2["resnet18"][0].endswith("/T1/features/train") and t1_t2["resnet18"][1].endswith(
        "/T3/features/train"
    )
    assert t1_t2["resnet50"][1].endswith("/T64/features/train")  # Table 4: T2 = 64
    projection = cmds(out, "projection")
    assert len(projection) == 3 and all(flag(c, "--classes") == ",".join(FIGURE1) for c in projection)
    assert "scripts.recipes.tables vision-accuracy" in cmds(out, "accuracy_table")[0]
    assert len(cmds(out, "eta_table")) == 2
    # Tables 17-19: per-class train and validation accuracy of the 3 + 10 classes, per student sweep
    accuracy = cmds(out, "per_class_accuracy")
    assert len(accuracy) == 12
    for c in accuracy:
        assert sorted(flag(c, "--classes").split(",")) == sorted(WNIDS + FIGURE1) and "--format json" in c
        assert all(f"/T{T}/features/{sp} " in c for T in (1, 2, 3, 64) for sp in ("train", "valid"))
    table = shlex.split(cmds(out, "per_class_table")[0])
    assert table.count("--set") == 3 and sum("accuracy/per_class_" in w for w in table) == 12
    sets = dict(zip(table[table.index("--set") + 1 :: 3], table[table.index("--set") + 2 :: 3]))
    assert (
        sets["Figure 1 classes (Table 17)"]
        == "n02113799=standard_poodle,n02113712=miniature_poodle,n04347754=submarine"
    )
    assert "n02099601=golden_retriever" in sets["retrievers (Table 18)"]
    assert "n01734418=king_snake" in sets["snakes (Table 19)"]


def test_imagenet_one_gpu_runs_one_process_per_training(imagefolder, tmp_path):
    out = recipe(
        "imagenet",
        "--data",
        imagefolder,
        "--out",
        tmp_path / "o",
        "--gpus",
        "1",
        "--set",
        "seeds=[7]",
        "--dry-run",
    ).stdout
    train = cmds(out, "teacher") + cmds(out, "students")
    assert len(train) == 6 and all("torchrun" not in c and "/vision/distill.py " in c for c in train)
    assert all("--batch-size 256 " in c and "--seed 7 " in c for c in train)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [],
            "[study] error: imagenet needs its data, an ImageFolder root with train/ and val/: "
            "./scripts/recipe.sh imagenet --data PATH (or --toy)",
        ),
        (
            ["--data", "/nonexistent/imagenet"],
            "[study] error: imagenet: data /nonexistent/imagenet not found",
        ),
        (
            ["--data", "IMAGEFOLDER", "--gpus", "3"],
            "[study] error: config: --gpus 3 does not divide the global batch of 256",
        ),
        (["--toy", "--set", "alphas=[0,1]"], "[study] error: config: alpha must be in [0, 1), got 1"),
        (
            ["--toy", "--set", "temperatures=[1,-2]"],
            "[study] error: config: temperature must be a finite number > 0, got -2",
        ),
        (["--toy", "--gpus", "x"], "[recipe] error: --gpus needs a whole number >= 1"),
    ],
)
def test_imagenet_bad_input_is_one_line_before_anything_runs(args, message, imagefolder, tmp_path):
    args = [str(imagefolder) if a == "IMAGEFOLDER" else a for a in args]
    p = recipe("imagenet", *args, "--dry-run", "--out", tmp_path / "o", check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [message], p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [],
            "[recipe] error: name the recipe first: ./scripts/recipe.sh imagenet|cub|iwslt ... (see --help)",
        ),
        (["mnist"], "[recipe] error: unknown recipe mnist (choose from: imagenet cub iwslt)"),
        (["cub", "--pretrained", "resnet18"], "[recipe] error: --pretrained needs MODEL=FILE"),
    ],
)
def test_recipe_sh_bad_input(args, message):
    p = recipe(*args, check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [message], p.stderr


def test_cub_dry_run(imagefolder, tmp_path):
    """Supp., fine-grained paragraph: 200 epochs, lr 0.01 x0.1 every 80, batch 256 = 2 GPUs x 128,
    teachers α ∈ {0, 0.1, 0.2} fine-tuned from ImageNet weights; Tables 13-16's matched students."""
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    out = recipe(
        "cub",
        "--data",
        imagefolder,
        *[a for m in ("resnet50", "resnet18", "mobilenet_v2") for a in ("--pretrained", f"{m}={weights}")],
        "--out",
        tmp_path / "o",
        "--gpus",
        "2",
        "--dry-run",
    ).stdout
    teachers = cmds(out, "teacher")
    students = {
        (j["wildcards"]["model"], j["wildcards"]["alpha"], j["wildcards"]["seed"]): j["cmd"]
        for j in jobs(out)["students"]
    }
    assert len(teachers) == 9 and sum("--label-smoothing 0.2 " in c for c in teachers) == 3
    for c in teachers + list(students.values()):
        assert "--recipe cub" in c and "--epochs 200 --lr 0.01 --lr-step 80" in c and "--batch-size 128 " in c
        assert "torchrun --nproc_per_node 2 " in c and f"--pretrained {weights} " in c
    assert ("mobilenet_v2", "0.2", "1") in students and ("resnet18", "0.2", "1") not in students
    assert len(students) == 3 * (2 + 2 + 3)
    assert all("--temperature 1 2 3 64 --beta 1" in c and "--dump-features" in c for c in students.values())
    entropy = cmds(out, "entropy")
    assert len(entropy) == 3  # one per seed, the 3 teachers' training sets at T = 1, 2, 3, 64 (Table 13)
    assert all("--temperature 1 2 3 64 " in c and c.count("/features/train") == 3 for c in entropy)
    match = {
        (j["wildcards"]["ref"], j["wildcards"]["seed"]): j["cmd"] for j in jobs(out)["match_temperature"]
    }
    assert len(match) == 9 and "--reference-temperature 3 " in match[("3", "2")]
    assert (
        "--features teachers/a0_s2/features/train --reference teachers/a0.1_s2/features/train"
        in match[("3", "2")]
    )
    # the matched temperature is read from match_temperature's output when the job starts: unknown yet
    matched = jobs(out)["matched_student"]
    assert len(matched) == 3 * 3 * 2 and all(j["cmd"].endswith("--temperature <TBD>") for j in matched)
    assert {j["wildcards"]["ref"] for j in matched} == {"1", "3"}
    assert all("--teacher teachers/a0_s" in j["cmd"] for j in matched)
    assert {"accuracy_table", "entropy_table", "counterexamples_table", "per_class_table"} <= set(jobs(out))
    # Figure 4: Loggerhead / Great Grey Shrike (similar), Black-footed Albatross (dissimilar)
    projection = {j["wildcards"]["name"]: j["cmd"] for j in jobs(out)["projection"]}
    assert set(projection) == {"teachers", "resnet18", "resnet50", "mobilenet_v2"}
    assert all(
        flag(c, "--classes") == "111.Loggerhead_Shrike,112.Great_Grey_Shrike,001.Black_footed_Albatross"
        for c in projection.values()
    )
    assert projection["teachers"].count("/features/") == 6  # 3 α x train, valid
    assert projection["mobilenet_v2"].count("/features/train") == 12  # 3 α x 4 T
    accuracy = cmds(out, "per_class_accuracy")
    assert len(accuracy) == 21  # 3 seeds x (2 + 2 + 3) sweeps, each at 4 T x train, valid
    assert all(c.count("/features/train") == 4 and c.count("/features/valid") == 4 for c in accuracy)
    assert cmds(out, "per_class_table")[0].count("accuracy/per_class_") == 21


def test_cub_needs_pretrained_weights(imagefolder, tmp_path):
    weights = tmp_path / "r50.pth"
    weights.write_bytes(b"")
    p = recipe("cub", "--data", imagefolder, "--dry-run", check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "[study] error: cub: no ImageNet weights for resnet50 (the paper, after Shen et al., fine-tunes every CUB "
        "model): ./scripts/recipe.sh cub --pretrained resnet50=FILE, or list it in from_scratch"
    ]
    p = recipe("cub", "--data", imagefolder, "--pretrained", f"resnet50={weights}", "--dry-run", check=False)
    assert p.returncode == 2 and "no ImageNet weights for resnet18" in p.stderr
    p = recipe(
        "cub",
        "--data",
        imagefolder,
        "--pretrained",
        f"resnet50={weights}",
        "--gpus",
        "1",
        "--set",
        "from_scratch=[resnet18,mobilenet_v2]",
        "--dry-run",
        "--out",
        tmp_path / "o",
    )
    students = {j["wildcards"]["model"]: j["cmd"] for j in jobs(p.stdout)["students"]}
    assert "--pretrained" not in students["resnet18"] and f"--pretrained {weights} " in students["resnet50"]


def test_iwslt_dry_run(tmp_path):
    """Supp., NMT paragraph: Adam, lr 0.0005, dropout 0.3, weight decay 0, 4096 tokens an update (2 GPUs
    x 2048), English->German and English->Russian."""
    raw = tmp_path / "raw"
    raw.mkdir()
    out = recipe(
        "iwslt",
        "--data",
        raw,
        "--out",
        tmp_path / "o",
        "--gpus",
        "2",
        "--set",
        "gpus_per_training=2",
        "--dry-run",
    ).stdout
    data = {j["wildcards"]["pair"]: j["cmd"] for j in jobs(out)["iwslt_data"]}
    assert (
        f"--raw {raw} --src en --tgt de --bpe-merges 10000" in data["en-de"]
        and "--src en --tgt ru" in data["en-ru"]
    )
    for pair in ("en-de", "en-ru"):
        teachers = [j["cmd"] for j in jobs(out)["iwslt_teacher"] if j["wildcards"]["pair"] == pair]
        students = [j["cmd"] for j in jobs(out)["iwslt_student"] if j["wildcards"]["pair"] == pair]
        assert len(teachers) == 6 and len(students) == 24
        assert (
            sum(
                c.endswith("--criterion label_smoothed_cross_entropy --label-smoothing 0.1") for c in teachers
            )
            == 3
        )
        for c in teachers + students:
            assert "fairseq-train data/" + pair + "/bin" in c
            assert "--arch transformer_iwslt_de_en --share-all-embeddings --dropout 0.3 --optimizer adam" in c
            assert "--lr 0.0005 " in c and "--weight-decay 0 " in c and "--adam-betas '(0.9, 0.98)'" in c
            assert "--max-tokens 2048 " in c and "--distributed-world-size 2" in c  # 4096 tokens an update
            assert "--best-checkpoint-metric nll_loss" in c and "--max-epoch 50 " in c
        assert (
            sum(
                "--task kd_translation" in c and "--kd-temperature 64 " in c and "--criterion ls_kd" in c
                for c in students
            )
            == 6
        )
        bleu = [j["cmd"] for j in jobs(out)["bleu_table"] if j["wildcards"]["pair"] == pair][0]
        assert "nmt_plugin.bleu table" in bleu and bleu.count("model.pt") == 30
    for bad, message in (
        (["--set", "pairs=[de-en,de-en]"], "a pair is given twice in ['de-en', 'de-en']"),
        (
            ["--set", "gpus_per_training=32"],
            "gpus_per_training 32 leaves each GPU 128 of the 4096 tokens an update (fewer than 256)",
        ),
        (["--set", "kd_beta=2"], "kd_beta must be in [0, 1], got 2"),
    ):
        p = recipe("iwslt", "--data", raw, "--out", tmp_path / "o", *bad, "--dry-run", check=False)
        assert p.returncode == 2 and p.stderr.strip().splitlines() == [f"[study] error: config: {message}"], (
            p.stderr
        )


def test_toy_overlay_merges_as_snakemake_merges_config_files():
    """study.load([recipe, recipe-toy]) sees what Snakemake sees with two --configfile files: mappings
    merged key by key, anything else replaced (checked against Snakemake's own update_config)."""
    import copy

    import yaml
    from snakemake.utils import update_config

    sys.path.insert(0, str(REPO / "scripts" / "workflow"))
    import study

    config = REPO / "scripts" / "workflow" / "config"
    base, toy = (yaml.safe_load((config / f"imagenet{t}.yaml").read_text()) for t in ("", "-toy"))
    expected = copy.deepcopy(base)
    update_config(expected, toy)
    assert study.merge(base, toy) == expected
    loaded = study.load(["imagenet", "imagenet-toy"])
    assert loaded["teacher"] == {
        "model": "resnet50",
        "epochs": 1,
        "lr": 0.01,
        "lr_step": 1,
        "runtime_minutes": 10,
    }
    assert loaded["students"] == {"resnet18": [0.0, 0.1], "resnet50": [0.0, 0.1]} and loaded["seeds"] == [1]


# ----------------------------------------------------------------------------- tables
def test_tables_mean_std(tmp_path):
    assert tables.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)  # mean 2, sample std sqrt((1 + 0 + 1) / 2) = 1
    assert tables.cell([0.5]) == "0.500 ± 0.000 (1)"
    assert tables.main(["eta", "--inputs", str(tmp_path / "missing.json"), "--out", str(tmp_path / "t")]) == 2


def test_tables_per_class_accuracy(tmp_path):
    """Tables 17-19 layout: rows classes + average (per seed), columns T x split, one table per α."""
    inputs = []
    for seed, acc in ((1, {"x": 0.5, "y": 1.0, "z": 0.0}), (2, {"x": 0.7, "y": 0.8, "z": None})):
        sets = []
        for T in (1, 3):
            for split in ("train", "valid"):
                fs = tmp_path / f"s{seed}" / f"T{T}" / split
                fs.mkdir(parents=True)
                (fs / "meta.json").write_text(
                    json.dumps(
                        {
                            "model": "resnet18",
                            "alpha": 0.1,
                            "temperature": T,
                            "split": split,
                            "seed": seed,
                            "classes": ["x", "y", "z"],
                        }
                    )
                )
                sets.append({"features": str(fs), "top1": 0.5, "per_class": acc})
        inputs.append(tmp_path / f"acc{seed}.json")
        inputs[-1].write_text(json.dumps({"unit": "fraction", "sets": sets}))
    assert (
        tables.main(
            [
                "per-class-accuracy",
                "--inputs",
                *map(str, inputs),
                "--set",
                "pair",
                "x=X class,y",
                "--set",
                "odd",
                "z",
                "--out",
                str(tmp_path / "t"),
            ]
        )
        == 0
    )
    md = (tmp_path / "t.md").read_text()
    assert "## Student resnet18, teacher α = 0.1: pair" in md and "Top-1 accuracy (%)" in md
    assert "| class | T = 1 train (%) | T = 1 valid (%) | T = 3 train (%) | T = 3 valid (%) |" in md
    assert "| X class | 60.000 ± 14.142 (2) |" in md  # x: 50 %, 70 %
    assert "| Average | 75.000 ± 0.000 (2) |" in md  # per seed (50+100)/2, (70+80)/2
    assert "| z | 0.000 ± 0.000 (1) |" in md  # a class without samples in seed 2
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert len(rows) == (3 + 2) * 4
    x = [r for r in rows if r["class"] == "x" and r["T"] == "3" and r["split"] == "valid"][0]
    assert x["set"] == "pair" and x["n"] == "2" and abs(float(x["top1_fraction_mean"]) - 0.6) < 1e-12


# ----------------------------------------------------------------------------- the toy run
def test_imagenet_toy_runs_and_a_rerun_does_nothing(tmp_path):
    out = tmp_path / "toy"
    t0 = time.perf_counter()
    p = recipe("imagenet", "--toy", "--out", out, "--jobs", "2")
    first = time.perf_counter() - t0
    # 2 teachers, 4 sweeps, 1 similar, 4 η, 3 projections, 4 per-class accuracies, 4 tables, all
    assert job_counts(p.stdout + p.stderr) == {
        "teacher": 2,
        "students": 4,
        "similar": 1,
        "eta": 4,
        "projection": 3,
        "per_class_accuracy": 4,
        "accuracy_table": 1,
        "eta_table": 2,
        "per_class_table": 1,
        "all": 1,
    }
    acc = (out / "tables" / "accuracy.md").read_text()
    assert "± " in acc and "Teacher: resnet50" in acc and "α = 0.1" in acc and "T = 64" in acc
    rows = list(csv.DictReader(open(out / "tables" / "accuracy.csv")))
    assert {"top1_mean", "top1_std", "top5_mean", "top5_std", "n"} <= set(rows[0])
    assert len(rows) == 2 * (2 + 2 * 4)  # per student model: 2 teachers + 2 α x 4 T
    for model, (t1, t2) in (("resnet18", (1, 3)), ("resnet50", (1, 64))):
        eta = (out / "tables" / f"eta_{model}.md").read_text()
        assert f"T1 = {t1} → T2 = {t2}" in eta and "η S1 train (%)" in eta and "η S2 valid (%)" in eta
        assert "Pullover" in eta and "±" in eta
        assert "eta_similar_mean" in (out / "tables" / f"eta_{model}.csv").read_text().splitlines()[0]
    assert (out / "figures" / "projection_resnet18_s1.png").stat().st_size > 1000
    sets = json.loads((out / "eta" / "sets_s1.json").read_text())
    assert sets["Coat"]["similar"] and sets["Coat"]["dissimilar"]
    check_per_class_table(out)

    t0 = time.perf_counter()
    again = recipe("imagenet", "--toy", "--out", out, "--jobs", "2")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert time.perf_counter() - t0 < first / 3
    # a lost table is rebuilt alone, nothing is trained again
    (out / "tables" / "accuracy.md").unlink()
    assert job_counts(recipe("imagenet", "--toy", "--out", out, "--dry-run").stdout) == {
        "accuracy_table": 1,
        "all": 1,
    }
    # another S1/S2 draw re-runs what reads the sets (params changed), nothing else
    changed = recipe("imagenet", "--toy", "--out", out, "--dry-run", "--set", "similar.seed=5").stdout
    assert job_counts(changed) == {"similar": 1, "eta": 4, "eta_table": 2, "accuracy_table": 1, "all": 1}
    assert "Params have changed since last execution" in changed


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
    mine = {
        (r["set"], r["class"]): r
        for r in rows
        if r["student"] == meta["model"]
        and r["split"] == "valid"
        and float(r["alpha"]) == meta["alpha"]
        and float(r["T"]) == meta["temperature"]
    }
    targets = ["T-shirt/top", "Pullover", "Coat", "Shirt", "Dress", "Sandal", "Sneaker", "Ankle boot"]
    for c in targets:
        r = mine[("η targets", c)]
        assert r["n"] == "1" and abs(float(r["top1_fraction_mean"]) - acc[c]) < 1e-9
    average = float(np.mean([acc[c] for c in targets]))
    assert abs(float(mine[("η targets", "Average")]["top1_fraction_mean"]) - average) < 1e-9
    assert abs(float(mine[("projection classes", "Coat")]["top1_fraction_mean"]) - acc["Coat"]) < 1e-9
    md = (out / "tables" / "per_class_accuracy.md").read_text()
    assert "Top-1 accuracy (%)" in md
    section = md.split(f"## Student {meta['model']}, teacher α = {meta['alpha']:g}: η targets")[1].split(
        "##"
    )[0]
    table = {
        r[0]: r
        for r in (
            [x.strip() for x in ln.strip("|").split("|")]
            for ln in section.splitlines()
            if ln.startswith("| ")
        )
    }
    col = table["class"].index(f"T = {meta['temperature']:g} valid (%)")  # train and valid columns
    assert table["Coat"][col] == f"{100 * acc['Coat']:.3f} ± 0.000 (1)"
    assert table["Average"][col] == f"{100 * average:.3f} ± 0.000 (1)"
