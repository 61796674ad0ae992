"""The paper recipes as Snakemake rules (scripts/recipe.sh, scripts/workflow/rules/{imagenet,cub,iwslt}.smk):
the dry runs carry the paper's hyper-parameters, bad input is one line before Snakemake starts, the
tables module computes mean ± std, and the ImageNet recipe runs for real at toy size (about a minute
and a half on 2 CPU cores), after which a re-run does nothing."""

from __future__ import annotations

import csv
import json
import math
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

from workflow_helpers import job_counts, run_script  # noqa: E402

from scripts.recipes import tables  # noqa: E402

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
    return run_script("recipe.sh", *args, check=check, timeout=600)


def jobs(stdout: str) -> dict[str, list[dict]]:
    """{rule: [{"cmd": its shell command, "resources": {...}, "wildcards": {...}}, ...]} of a -n -p run."""
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
        assert flag(c, "--target").split(",") == WNIDS and "--hierarchy" not in c  # feature space only
        assert re.search(r"--features teachers/a0_s\d/features/valid ", c)
    etas = jobs(out)["eta"]
    assert len(etas) == 12 and all(
        "/config/imagenet_table3_sets.json" in flag(j["cmd"], "--sets") and "--before-valid" in j["cmd"]
        for j in etas
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
        (
            ["--toy", "--set", "similar.features_alpha=0.5"],
            "[study] error: config: similar.features_alpha 0.5 is not among the teachers' alphas [0.0, 0.1]",
        ),
        (["--toy", "--set", "targets=[]"], "[study] error: config: eta needs targets, the η target classes"),
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
    check_cub_eta(out)


FIGURE4 = "111.Loggerhead_Shrike,112.Great_Grey_Shrike,001.Black_footed_Albatross"


def check_cub_eta(out: str) -> None:
    """Ours (the paper has no CUB η): η and η_pairwise of the Figure 4 classes, every student sweep at
    T1 = 1 -> T2 = 3, S1/S2 from feature space (no hierarchy) of each seed's α = 0 teacher."""
    similar = {j["wildcards"]["seed"]: j["cmd"] for j in jobs(out)["similar"]}
    assert set(similar) == {"1", "2", "3"}
    for seed, c in similar.items():
        assert (
            flag(c, "--features") == f"teachers/a0_s{seed}/features/valid" and flag(c, "--target") == FIGURE4
        )
        assert flag(c, "--write-sets") == f"eta/sets_s{seed}.json" and "--hierarchy" not in c
    for rule in ("eta", "eta_pairwise"):
        etas = jobs(out)[rule]
        assert len(etas) == 21  # 3 seeds x (2 + 2 + 3) sweeps
        for j in etas:
            w, c = j["wildcards"], j["cmd"]
            sweep = f"students/{w['model']}_a{w['alpha']}_s{w['seed']}"
            assert (
                flag(c, "--before") == f"{sweep}/T1/features/train"
                and flag(c, "--after") == f"{sweep}/T3/features/train"
            )
            assert flag(c, "--after-valid") == f"{sweep}/T3/features/valid"
            assert flag(c, "--sets") == f"eta/sets_s{w['seed']}.json" and ("--pairwise" in c) == (
                rule == "eta_pairwise"
            )
    for rule, layout in (("eta_table", "(Tables 3, 4 layout)"), ("eta_pairwise_table", "(Table 21 layout)")):
        tables = {j["wildcards"]["model"]: j["cmd"] for j in jobs(out)[rule]}
        assert set(tables) == {"resnet18", "resnet50", "mobilenet_v2"}
        for model, c in tables.items():
            title = flag(c, "--title")
            assert title.startswith(
                f"CUB-200-2011 η{'_pairwise' if 'pairwise' in rule else ''} {layout}, {model}"
            )
            assert "T1 = 1 -> T2 = 3" in title and "feature space" in title and "--agreement" not in c
        assert tables["mobilenet_v2"].count("_a0.2_s") == 3  # every teacher α of the sweep, every seed


def test_cub_toy_dry_run_lists_the_eta_jobs(tmp_path):
    """The CUB toy: the same jobs as the full recipe at one seed, η and η_pairwise of its three targets."""
    out = recipe("cub", "--toy", "--out", tmp_path / "o", "--dry-run")
    assert "Warning" not in out.stdout + out.stderr
    assert job_counts(out.stdout) == {
        "teacher": 3,
        "students": 7,
        "entropy": 1,
        "match_temperature": 3,
        "entropy_matched": 3,
        "matched_student": 6,
        "projection": 4,
        "per_class_accuracy": 7,
        "compare_alpha": 16,
        "compare_temperature": 21,
        "similar": 1,
        "eta": 7,
        "eta_pairwise": 7,
        "soft_targets": 1,
        "isotropy": 1,
        "accuracy_table": 1,
        "counterexamples_table": 1,
        "entropy_table": 1,
        "eta_table": 3,
        "eta_pairwise_table": 3,
        "paired_table": 1,
        "per_class_table": 1,
        "all": 1,
    }
    assert all(flag(c, "--target") == "Pullover,Coat,Sneaker" for c in cmds(out.stdout, "similar"))


def test_cub_needs_pretrained_weights(imagefolder, tmp_path):
    weights = tmp_path / "r50.pth"
    weights.write_bytes(b"")
    p = recipe("cub", "--data", imagefolder, "--dry-run", check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "[study] error: cub: no ImageNet weights for resnet50 (the paper, after Shen et al., fine-tunes "
        "every CUB model): ./scripts/recipe.sh cub --pretrained resnet50=FILE, or list it in from_scratch"
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
    # 2 teachers, 4 sweeps, 1 similar, 4 η, 4 η_pairwise, 3 projections, 4 per-class accuracies,
    # 8 + 12 paired comparisons, 7 tables, soft targets (Figure 2), isotropy (Supp. D), all
    assert job_counts(p.stdout + p.stderr) == {
        "teacher": 2,
        "students": 4,
        "similar": 1,
        "eta": 4,
        "eta_pairwise": 4,
        "projection": 3,
        "per_class_accuracy": 4,
        "compare_alpha": 2 * 4,
        "compare_temperature": 2 * 2 * 3,
        "accuracy_table": 1,
        "eta_table": 2,
        "eta_pairwise_table": 2,
        "per_class_table": 1,
        "paired_table": 1,
        "soft_targets": 1,
        "isotropy": 1,
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
    assert "Pullover" in eta and "| Average |" in eta  # Table 12 against the toy's sets file
    pairwise = (out / "tables" / "eta_pairwise_resnet18.md").read_text()
    assert "η_pairwise(T1, T2; π, S)" in pairwise and "Sneaker" in pairwise
    rows = json.loads((out / "eta" / "eta_pairwise_resnet18_a0_s1.json").read_text())
    assert rows["distance"] == "pairwise" and len(rows["targets"]) == 8
    check_paired_table(out)
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
    # S1/S2 from the hierarchy instead of the sets file re-runs what reads the sets, nothing else
    changed = recipe("imagenet", "--toy", "--out", out, "--dry-run", "--set", "similar.sets_file=null").stdout
    assert job_counts(changed) == {
        "accuracy_table": 1,  # still lost above
        "similar": 1,
        "eta": 4,
        "eta_pairwise": 4,
        "eta_table": 2,
        "eta_pairwise_table": 2,
        "all": 1,
    }


def check_paired_table(out: Path) -> None:
    """tables/paired_accuracy.csv against top-1 from the compared students' logits, by hand."""
    rows = list(csv.DictReader(open(out / "tables" / "paired_accuracy.csv")))
    assert len(rows) == 2 * 4 + 2 * 2 * 3  # per model: α at 4 T; 2 α x 3 T against T = 1
    r = next(r for r in rows if r["student"] == "resnet18" and r["comparison"] == "T = 64 − T = 1")
    assert r["n"] == "1" and r["family"] == "T"
    sweep = out / "students" / f"resnet18_a{float(r['alpha_a']):g}_s1"
    top1 = []
    for T in (1, 64):
        fs = sweep / f"T{T}" / "features" / "valid"
        top1.append(float((np.load(fs / "logits.npy").argmax(1) == np.load(fs / "labels.npy")).mean()))
    assert abs(float(r["a_mean"]) - top1[0]) < 1e-12
    assert abs(float(r["difference_mean"]) - (top1[1] - top1[0])) < 1e-12
    md = (out / "tables" / "paired_accuracy.md").read_text()
    assert "not distinguishable at this scale (fewer than two seeds" in md


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


# ----------------------------------------------------------------------------- #15, #12 additions
def write_meta(d: Path, **meta) -> str:
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.json").write_text(json.dumps(meta))
    return str(d)


def test_tables_topk_accuracy_by_hand(tmp_path):
    """3 samples, 6 classes: label ranks 0, 2 (two higher), 5 (five higher) -> top-1 1/3, top-5 2/3;
    the same from features and head when the dump kept no logits (W = I, b = 0)."""
    z = np.array([[5, 1, 0, 0, 0, 0], [3, 2, 1, 0, 0, 0], [1, 2, 3, 4, 5, 0]], np.float32)
    y = np.array([0, 2, 5])
    d = tmp_path / "fs"
    d.mkdir()
    np.save(d / "labels.npy", y)
    np.save(d / "logits.npy", z)
    assert tables.topk_accuracy(d, chunk=2) == {1: 1 / 3, 5: 2 / 3}
    (d / "logits.npy").unlink()
    np.save(d / "features.npy", z)
    np.save(d / "head_weight.npy", np.eye(6, dtype=np.float32))
    np.save(d / "head_bias.npy", np.zeros(6, np.float32))
    assert tables.topk_accuracy(d) == {1: 1 / 3, 5: 2 / 3}


def test_tables_agreement_against_a_sets_file(tmp_path):
    """Table 12 from feature-space lists and the sets η read: t: S1 {a, b} vs {a, c} -> 1/2, S2 {x, y, z,
    w} vs {x, y, z} -> 3/4; u: 1 and 1/2; Average per seed (1/2 + 1)/2 = 3/4, (3/4 + 1/2)/2 = 5/8."""
    sets = tmp_path / "sets.json"
    sets.write_text(
        json.dumps(
            {
                "t": {"similar": ["a", "b"], "dissimilar": ["x", "y", "z", "w"]},
                "u": {"similar": ["a"], "dissimilar": ["x", "y"]},
            }
        )
    )
    sim = tmp_path / "similar.json"
    sim.write_text(
        json.dumps(
            {
                "targets": [
                    {"target": "t", "similar_features": ["a", "c"], "dissimilar_features": ["x", "y", "z"]},
                    {"target": "u", "similar_features": ["a"], "dissimilar_features": ["y", "q"]},
                ]
            }
        )
    )
    md = tables.agreement_table([sim], tables.read_sets(sets), "note")
    assert "| t | 0.500 ± 0.000 (1) | 0.750 ± 0.000 (1) |" in md
    assert "| Average | 0.750 ± 0.000 (1) | 0.625 ± 0.000 (1) |" in md and "note" in md
    bad = tmp_path / "hier.json"
    bad.write_text(
        json.dumps({"targets": [{"target": "t", "agreement_similar": 1, "agreement_dissimilar": 1}]})
    )
    with pytest.raises(tables.TableError, match="no feature-space S1/S2 lists"):
        tables.agreement_table([bad], tables.read_sets(sets))


def test_tables_entropy_rows_at_the_matched_temperature(tmp_path):
    """Table 13's T* rows: the α = 0 teacher matched at T* = 1.5 (seed 1) and 1.7 (seed 2) to the α = 0.1
    teacher at T_ref = 1; every teacher's entropy at T* goes in a row placed between T = 1 and T = 2."""
    plain = {s: write_meta(tmp_path / f"a0_s{s}", model="resnet50", alpha=0.0, seed=s) for s in (1, 2)}
    smooth = {s: write_meta(tmp_path / f"a01_s{s}", model="resnet50", alpha=0.1, seed=s) for s in (1, 2)}
    files = {}
    for s, T, h0, h1 in ((1, 1.5, 0.9, 3.2), (2, 1.7, 0.8, 3.4)):
        files[f"e{s}"] = {plain[s]: {"1": 0.2, "2": 2.2}, smooth[s]: {"1": 0.9, "2": 4.5}}
        files[f"m{s}"] = {"temperature": T, "entropy": h0, "features": plain[s], "reference": smooth[s],
                          "reference_temperature": 1.0}  # fmt: skip
        files[f"x{s}"] = {plain[s]: {repr(T): h0}, smooth[s]: {repr(T): h1}}
    for k, v in files.items():
        (tmp_path / f"{k}.json").write_text(json.dumps(v))
    j = lambda k: str(tmp_path / f"{k}.json")  # noqa: E731
    argv = [
        "entropy",
        "--inputs",
        j("e1"),
        j("e2"),
        "--match",
        j("m1"),
        j("m2"),
        "--matched-entropy",
        j("x1"),
    ]
    assert tables.main([*argv, j("x2"), "--out", str(tmp_path / "t")]) == 0
    lines = [ln for ln in (tmp_path / "t.md").read_text().splitlines() if ln.startswith("| ")]
    assert lines[1].startswith("| 1 |") and lines[3].startswith("| 2 |")
    # T* mean 1.6, sample std sqrt(2 * 0.1² / 1) = 0.1414; α = 0: 0.85 ± 0.0707, α = 0.1: 3.3 ± 0.1414
    assert lines[2] == (
        "| T* = 1.6000 ± 0.1414 (2) (matched to T_ref = 1) | 0.8500 ± 0.0707 (2) | 3.3000 ± 0.1414 (2) |"
    )
    rows = [r for r in csv.DictReader(open(tmp_path / "t.csv")) if r["matched_to_T_ref"]]
    assert len(rows) == 2 and abs(float(rows[1]["entropy_nats_mean"]) - 3.3) < 1e-12
    (tmp_path / "x3.json").write_text(json.dumps({plain[1]: {"1.6": 0.5}}))
    assert tables.main([*argv, j("x3"), "--out", str(tmp_path / "u")]) == 2


def compare_json(tmp_path, name, a, b, top1_a, top1_b, p):
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps({"a": a, "b": b, "top1_a": top1_a, "top1_b": top1_b, "mcnemar": {"p_value": p}}))
    return str(f)


def test_tables_paired_accuracy_by_hand(tmp_path, capsys):
    """Three seeds, α = 0.1 − α = 0 at T = 1: per-seed differences 0.1, 0.2, 0 -> mean 0.1, s = 0.1,
    se = 0.1/√3; t_{2, 0.975} = 4.302653 -> [-0.148414, 0.348414]; t = √3, two-sided p with 2 degrees of
    freedom 1 - t/√(2 + t²) = 1 - √3/√5 = 0.225403; a second row with p = 1 (no difference) -> Holm over
    the family: 2 x 0.225403 = 0.450807, and 1."""
    inputs = []
    for s, (x, y) in zip((1, 2, 3), ((0.5, 0.6), (0.6, 0.8), (0.7, 0.7))):
        for T, (u, v) in ((1, (x, y)), (2, (x, x))):
            a = write_meta(tmp_path / f"a0_s{s}_T{T}", model="resnet18", alpha=0.0, temperature=T, seed=s)
            b = write_meta(tmp_path / f"a1_s{s}_T{T}", model="resnet18", alpha=0.1, temperature=T, seed=s)
            inputs.append(compare_json(tmp_path, f"c{s}_{T}", a, b, u, v, 0.01 * s))
    assert tables.main(["paired-accuracy", "--inputs", *inputs, "--out", str(tmp_path / "p")]) == 0
    rows = {r["comparison"]: r for r in csv.DictReader(open(tmp_path / "p.csv"))}
    r = rows["α = 0.1 − α = 0 at T = 1"]
    assert r["n"] == "3" and r["seeds"] == "1;2;3" and r["per_seed_p"] == "0.010;0.020;0.030"
    assert abs(float(r["difference_mean"]) - 0.1) < 1e-12 and abs(float(r["difference_std"]) - 0.1) < 1e-12
    assert (
        abs(float(r["difference_low"]) + 0.148414) < 1e-6
        and abs(float(r["difference_high"]) - 0.348414) < 1e-6
    )
    assert abs(float(r["p_paired_t"]) - (1 - math.sqrt(3 / 5))) < 1e-9
    assert abs(float(r["p_holm"]) - 2 * (1 - math.sqrt(3 / 5))) < 1e-9 and r["significant"] == "False"
    assert float(rows["α = 0.1 − α = 0 at T = 2"]["p_holm"]) == 1.0
    md = (tmp_path / "p.md").read_text()
    assert (
        "| α = 0.1 − α = 0 at T = 1 | 60.00 (3) | 70.00 (3) | +10.00 [-14.84, +34.84] | 0.225 | 0.451 |" in md
    )
    assert "not distinguishable at this scale" in md and "## Student resnet18: each teacher α" in md
    # the same seed twice, or students of two seeds compared: one line, exit 2
    assert (
        tables.main(["paired-accuracy", "--inputs", inputs[0], inputs[0], "--out", str(tmp_path / "q")]) == 2
    )
    odd = write_meta(tmp_path / "odd", model="resnet18", alpha=0.1, temperature=1, seed=2)
    bad = compare_json(tmp_path, "bad", str(tmp_path / "a0_s1_T1"), odd, 0.5, 0.5, 1.0)
    assert tables.main(["paired-accuracy", "--inputs", bad, "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1] == f"tables: error: {bad}: compares seeds 1 and 2: a paired test needs students of one seed"
    )


def test_tables_paired_bleu(tmp_path):
    """sacrebleu outputs tied to α, T and seed by the BLEU table's CSV: T = 2 − T = 1 per seed 1.0 and
    3.0 -> mean 2, s = √2, t_{1, 0.975} = 12.7062 -> ± 12.7062 · √2 / √2 = ± 12.7062."""
    table = tmp_path / "bleu.csv"
    rows = ["alpha,temperature,seed,role,bleu,sentences,checkpoint"]
    paired = []
    for s, (b1, b2) in ((1, (20.0, 21.0)), (2, (22.0, 25.0))):
        for T, b in ((1, b1), (2, b2)):
            rows.append(f"0.0,{float(T)},{s},student,{b},10,nmt/x/student_a0_T{T}_s{s}/model.pt")
        f = tmp_path / f"p{s}.json"
        f.write_text(
            json.dumps(
                {
                    "baseline": f"nmt/x/student_a0_T1_s{s}/model.pt",
                    "systems": [
                        {"system": f"nmt/x/student_a0_T1_s{s}/model.pt", "bleu": b1, "p_value": None},
                        {"system": f"./nmt/x/student_a0_T2_s{s}/model.pt", "bleu": b2, "p_value": 0.04},
                    ],
                }
            )
        )
        paired.append(str(f))
    table.write_text("\n".join(rows) + "\n")
    argv = ["paired-bleu", "--inputs", *paired, "--bleu", str(table), "--out", str(tmp_path / "b")]
    assert tables.main(argv) == 0
    (r,) = csv.DictReader(open(tmp_path / "b.csv"))
    assert r["comparison"] == "T = 2 − T = 1" and r["family"] == "T" and r["per_seed_p"] == "0.040;0.040"
    assert abs(float(r["difference_mean"]) - 2.0) < 1e-12
    assert abs(float(r["difference_high"]) - (2.0 + 12.706205)) < 1e-5
    assert "sacrebleu's paired bootstrap" in (tmp_path / "b.md").read_text()


def test_table3_sets_file_is_the_papers_groups():
    """The shipped S1 are the other four of each Table 3 group (names from WordNet's data.noun as the
    accuracy sets name them); S2 is the seed-0 WordNet draw of select_from_hierarchy, outside both groups."""
    sets = json.loads((REPO / "scripts" / "workflow" / "config" / "imagenet_table3_sets.json").read_text())
    groups = [WNIDS[:5], WNIDS[5:]]
    assert sorted(sets) == sorted(WNIDS)
    for g in groups:
        for t in g:
            assert sorted(sets[t]["similar"]) == sorted(set(g) - {t})
            assert len(sets[t]["dissimilar"]) == 20 and not set(sets[t]["dissimilar"]) & set(WNIDS)
    assert sets["n01728920"]["name"] == "ringneck_snake" and "n01729977" not in sets["n01728920"]["similar"]
    from shared_metrics import selection

    if not Path(selection.WORDNET_NOUNS).is_file():
        pytest.skip("WordNet (Debian's wordnet-base) is not installed")
    wnids = selection.imagenet_wnids()
    h, nodes = selection.load_hierarchy("wordnet", wnids)
    for t in WNIDS:
        _, s2 = selection.select_from_hierarchy(h, nodes, wnids.index(t), 4, 20, 0)
        assert sets[t]["dissimilar"] == [wnids[k] for k in s2]


def test_imagenet_dry_run_table21_sets_and_paired_tests(imagefolder, tmp_path):
    """Table 21 steps beside Table 3's, reading the shipped sets; WordNet's draw behind sets_file: null;
    the paired tests of the accuracy table (α = 0.1 vs 0 at each T, each T vs T = 1)."""
    out = recipe(
        "imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--gpus", "4", "--dry-run"
    ).stdout
    sets = str(REPO / "scripts" / "workflow" / "config" / "imagenet_table3_sets.json")
    pairwise = jobs(out)["eta_pairwise"]
    assert len(pairwise) == 12 and all(f"--sets {sets} --pairwise" in j["cmd"] for j in pairwise)
    assert all(f"--sets {sets} " in c for c in cmds(out, "eta"))
    assert all("--before-valid" in j["cmd"] for j in pairwise)
    assert len(cmds(out, "eta_pairwise_table")) == 2
    assert all("--hierarchy" not in c and "--write-sets" not in c for c in cmds(out, "similar"))
    assert all(f"--sets {sets} " in c for c in cmds(out, "eta_table"))
    alpha, temp = jobs(out)["compare_alpha"], jobs(out)["compare_temperature"]
    assert (
        len(alpha) == 2 * 4 * 3 and len(temp) == 2 * 2 * 3 * 3
    )  # models x T x seeds; models x α x T x seeds
    assert {j["wildcards"]["T"] for j in temp} == {"2", "3", "64"}
    c = next(
        j["cmd"]
        for j in alpha
        if j["wildcards"] == {"model": "resnet18", "seed": "2", "alpha": "0.1", "T": "3"}
    )
    assert (
        "--a students/resnet18_a0_s2/T3/features/valid --b students/resnet18_a0.1_s2/T3/features/valid" in c
    )
    assert cmds(out, "paired_table")[0].count("compare/") == 60
    wordnet = recipe(
        "imagenet",
        "--data",
        imagefolder,
        "--out",
        tmp_path / "o",
        "--set",
        "similar.sets_file=null",
        "--dry-run",
    ).stdout
    assert all("--hierarchy wordnet --k 4" in c and "--write-sets" in c for c in cmds(wordnet, "similar"))
    assert all("--sets eta/sets_s" in c for c in cmds(wordnet, "eta_pairwise"))


def test_official_teacher_weights(imagefolder, tmp_path):
    """official_teacher.weights: the α = 0 teacher of every seed, not trained; another architecture or
    class count is one line before anything runs (tiny fake state dicts of the wrong shapes)."""
    import torch
    import torchvision

    keys = torchvision.models.resnet50().state_dict()
    fakes = {
        "arch": {"conv1.weight": torch.zeros(2, 3, 3, 3), "fc.weight": torch.zeros(10, 8)},
        "classes": {k: torch.zeros(10, 2048) if k == "fc.weight" else torch.zeros(1) for k in keys},
        "shape": {k: torch.zeros(1000, 1) if k == "fc.weight" else torch.zeros(1) for k in keys},
    }
    messages = {
        "arch": " is not a torchvision resnet50 state dict: 318 tensors missing (e.g. bn1.weight)",
        "classes": ": its classifier fc.weight is 10 x 2048: 10 classes, the recipe's data has 1000",
        "shape": " is not a torchvision resnet50 state dict: conv1.weight is 1, "
        "a resnet50's is 64 x 3 x 7 x 7",
    }
    for name, sd in fakes.items():
        path = tmp_path / f"{name}.pth"
        torch.save(sd, path)
        p = recipe(
            "imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--set",
            f"official_teacher.weights={path}", "--dry-run", check=False,
        )  # fmt: skip
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1, p.stderr
        assert (
            lines[0].startswith(f"[study] error: official_teacher.weights: {path}")
            and messages[name] in lines[0]
        )
    assert not (tmp_path / "o").exists()
    good = tmp_path / "r50.pth"
    torch.save({k: torch.zeros(v.shape) for k, v in keys.items()}, good)
    out = recipe(
        "imagenet", "--data", imagefolder, "--out", tmp_path / "o", "--gpus", "1", "--set",
        f"official_teacher.weights={good}", "--dry-run",
    ).stdout  # fmt: skip
    (convert,) = cmds(out, "official_teacher")
    assert f"-m vision.official {good} --model resnet50 --num-classes 1000 --dataset imagefolder" in convert
    assert "--imagenet-classes --out teachers/official/model.pt" in convert
    assert len(cmds(out, "official_features")) == 1
    assert (
        sorted(flag(c, "--label-smoothing") for c in cmds(out, "teacher")) == ["0.1"] * 3
    )  # α = 0 not trained
    students = {(j["wildcards"]["alpha"], j["wildcards"]["seed"]): j["cmd"] for j in jobs(out)["students"]}
    assert all("--teacher teachers/official/model.pt " in students[("0", s)] for s in "123")
    assert "--teacher teachers/a0.1_s2/model.pt " in students[("0.1", "2")]
    assert all("--features teachers/official/features/valid " in c for c in cmds(out, "similar"))
    assert "--official teachers/official/features/valid" in cmds(out, "accuracy_table")[0]


def test_cub_and_iwslt_dry_runs_gain_table13_rows_and_paired_tests(imagefolder, tmp_path):
    out = recipe(
        "cub", "--data", imagefolder, "--set", "from_scratch=[resnet50,resnet18,mobilenet_v2]", "--set",
        "seeds=[1]", "--out", tmp_path / "c", "--dry-run",
    ).stdout  # fmt: skip
    matched = jobs(out)["entropy_matched"]
    assert len(matched) == 3 and all(j["cmd"].endswith("--temperature <TBD> --format json -o "
                                                      f"analysis/entropy_matched_T{j['wildcards']['ref']}_s1.json")
                                     for j in matched)  # fmt: skip
    assert all(j["cmd"].count("/features/train") == 3 for j in matched)  # every teacher α at T*
    assert "--matched-entropy analysis/entropy_matched_T1_s1.json" in cmds(out, "entropy_table")[0]
    assert len(cmds(out, "compare_alpha")) == 2 * 4 + 2 * 4  # resnets: α = 0.1; mobilenet_v2: 0.1, 0.2
    raw = tmp_path / "raw"
    raw.mkdir()
    out = recipe("iwslt", "--data", raw, "--out", tmp_path / "i", "--set", "seeds=[1]", "--dry-run").stdout
    alpha = {(j["wildcards"]["pair"], j["wildcards"]["T"]): j["cmd"] for j in jobs(out)["bleu_paired_alpha"]}
    assert len(alpha) == 8 and (
        "--baseline nmt/en-de/student_a0_T64_s1/model.pt "
        "--system nmt/en-de/student_a0.1_T64_s1/model.pt --seed 2" in alpha[("en-de", "64")]
    )
    temp = [j["cmd"] for j in jobs(out)["bleu_paired_temperature"]]
    assert len(temp) == 4 and all(c.count("--system") == 1 and c.count("student_a") == 4 for c in temp)
    assert all("paired-bleu" in c and "--bleu tables/bleu_" in c for c in cmds(out, "bleu_paired_table"))
