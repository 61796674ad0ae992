#!/usr/bin/env python
"""ImageNet-1K recipe: the paper's Tables 2, 10, 11 (accuracy), 3, 4 (η), 12, 17–19, Figure 1 / 3.

    python scripts/recipes/imagenet.py --data /data/imagenet --nproc 8 [--seeds 1 2 3] [--out runs/imagenet]
    python scripts/recipes/imagenet.py --data /data/imagenet --dry-run     # print every command
    python scripts/recipes/imagenet.py --toy                               # tiny CPU run, built-in data

``--data`` is an ImageFolder root with ``train/`` and ``val/`` whose class folders are the wnids
(n01440764, ...), as in the usual ILSVRC2012 layout; WordNet S1/S2 then work directly.

Steps, for every seed s (the paper repeats everything 3 times):

1. teachers: ResNet-50 with label smoothing α ∈ {0, 0.1}, 90 epochs, SGD momentum 0.9, lr 0.1
   ×0.1 every 30 epochs, batch 256 (split over --nproc GPUs), random crop + flip, features dumped
   -> OUT/teachers/a<α>_s<s>/;
2. students: ResNet-18 and ResNet-50, pure KD (β = 1) from the seed-s teacher of each α, one
   sweep at T ∈ {1, 2, 3, 64} (one teacher forward a batch), 200 epochs, lr 0.1 ×0.1 every 80
   epochs (at 80 and 160), batch 256, features dumped -> OUT/students/<model>_a<α>_s<s>/T<T>/;
3. S1/S2 of the ten targets (five retrievers, five snakes) from the WordNet hierarchy, k = 4
   similar and n = 20 random dissimilar classes (``lskd-metrics similar --write-sets``, which also
   reports the feature-space agreement of Table 12, measured as the paper does on a plain
   ResNet-50 -- the seed's α = 0 teacher -- and the validation set), then η train + valid with
   ``eta --sets`` for
   T1 = 1 → T2 = 3 (ResNet-18, Table 3) and T1 = 1 → T2 = 64 (ResNet-50, Table 4), for both α
   (the paper tabulates α = 0.1; α = 0 is the contrast);
4. the projection figure of standard_poodle, miniature_poodle and submarine (Figure 1 / 3 layout):
   teachers α = 0 / 0.1 (train, valid) and the students of both teachers across T (first seed);
5. per-class top-1 of the Figure 1 classes and the ten η targets per student sweep
   (``lskd-metrics accuracy --classes``) on the training and validation sets -> OUT/accuracy/;
6. tables (OUT/tables/*.md and *.csv, mean ± std over seeds): accuracy α × T per student model,
   η per target, per-class accuracy (Tables 17–19 layout: rows the classes of a set and their
   average, columns T, one table per student model and teacher α).

Where the paper leaves something open, this recipe chooses (all overridable on distill.py):
weight decay 1e-4 (torchvision's ImageNet reference; the paper names only SGD + momentum), fp32
unless --amp, the final-epoch accuracy (not the best epoch), a student seed equal to its
teacher's seed, one S2 draw per target (hierarchy seed 0) shared by all seeds and models, η on the
full train/valid sets (the paper visualises 150/50 samples per class; the figure uses 150).
Tables 17–19 have training and validation columns; training logits are not dumped at ImageNet
size (1.28 M x 1000 is over vision/dump_features.py's 1e8 values), so ``lskd-metrics accuracy``
scores the training split from its features and head (logits = f W^T + b).
Disk: every student dumps train features (1.28 M x 512/2048, float16), about 150 GB in all.

``--toy`` checks the plumbing on a 2-core CPU in about a minute: Fashion-MNIST (Debian's
dataset-fashion-mnist) instead of ImageNet, the first 256/128 train/valid images at 16 px, one
epoch, batch 64, lr 0.01 (0.1 blows a 4-step ResNet-50 up), one seed, one thread a process
(OMP_NUM_THREADS=1: faster on a small shared CPU); the η targets become the Fashion-MNIST tops and footwear with the
shipped fashion-mnist hierarchy (k = 4, n = 20 capped by what exists), the projection uses
Pullover, Coat, Sneaker, and the per-class tables those three and the targets. Its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.recipes.common import (TOY_VISION, VISION_OPTIM, Recipe, add_common_args,  # noqa: E402
                                    add_per_class_accuracy, add_projection_figures, alpha_tag,
                                    feature_set_files, fmt, imagefolder_data, main, schedule_args)

ALPHAS = (0.0, 0.1)
TEMPERATURES = (1, 2, 3, 64)
TEACHER_MODEL = "resnet50"
STUDENT_MODELS = ("resnet18", "resnet50")
BATCH = 256
TEACHER = {"epochs": 90, "lr": 0.1, "lr_step": 30}
STUDENT = {"epochs": 200, "lr": 0.1, "lr_step": 80}
#: (T1, T2) of η per student model: Table 3 (ResNet-18) and Table 4 (ResNet-50).
ETA_PAIRS = {"resnet18": (1, 3), "resnet50": (1, 64)}
ETA_ALPHAS = (0.1, 0.0)
#: The paper's ten target classes (Table 3), wnid = ImageFolder class folder.
RETRIEVERS = {
    "n02099849": "Chesapeake_Bay_retriever", "n02099429": "curly-coated_retriever",
    "n02099267": "flat-coated_retriever", "n02099601": "golden_retriever",
    "n02099712": "Labrador_retriever",
}
SNAKES = {
    "n01728572": "thunder_snake", "n01728920": "ringneck_snake", "n01729322": "hognose_snake",
    "n01737021": "water_snake", "n01734418": "king_snake",
}
TARGETS = {**RETRIEVERS, **SNAKES}
#: Figure 1: standard_poodle, miniature_poodle, submarine.
PROJECTION = {"n02113799": "standard_poodle", "n02113712": "miniature_poodle", "n04347754": "submarine"}
#: Tables 17, 18, 19: per-class accuracy of the Figure 1 classes, the retrievers, the snakes.
ACCURACY_SETS = {"Figure 1 classes (Table 17)": PROJECTION, "retrievers (Table 18)": RETRIEVERS,
                 "snakes (Table 19)": SNAKES}
ACCURACY_SPLITS = ("train", "valid")   # train: from features and head (docstring)
HIERARCHY, K_SIMILAR, N_DISSIMILAR, SETS_SEED = "wordnet", 4, 20, 0

TOY = {**TOY_VISION, "hierarchy": "fashion-mnist", "projection": ["Pullover", "Coat", "Sneaker"],
       "targets": ["T-shirt/top", "Pullover", "Coat", "Shirt", "Dress", "Sandal", "Sneaker", "Ankle boot"]}
a_ = alpha_tag


def build(args) -> Recipe:
    r = Recipe(args, "imagenet")
    out = args.out
    if args.toy:
        data = TOY["data"]
        batch = ["--batch-size", str(TOY["batch"])]
        teacher_sched = schedule_args(TOY)
        student_sched = teacher_sched
        targets, projection, hierarchy = TOY["targets"], TOY["projection"], TOY["hierarchy"]
        acc_sets = {"projection classes": {c: c for c in projection}, "η targets": {c: c for c in targets}}
    else:
        data = imagefolder_data(args.data, "imagenet", "ImageNet folder")
        batch = ["--batch-size", str(r.per_process_batch(BATCH))]
        teacher_sched = schedule_args(TEACHER)
        student_sched = schedule_args(STUDENT)
        targets, projection, hierarchy = list(TARGETS), list(PROJECTION), HIERARCHY
        acc_sets = ACCURACY_SETS
    optim = VISION_OPTIM
    eng = ["--amp", "--channels-last"] if args.amp else []

    def teacher_dir(alpha, seed):
        return out / "teachers" / f"{a_(alpha)}_s{seed}"

    def student_dir(model, alpha, seed):
        return out / "students" / f"{model}_{a_(alpha)}_s{seed}"

    def feats(d: Path, split: str) -> Path:
        return d / "features" / split

    # 1. teachers
    for seed in args.seeds:
        for alpha in ALPHAS:
            d = teacher_dir(alpha, seed)
            r.add(f"teacher-{TEACHER_MODEL}-{a_(alpha)}-s{seed}",
                  r.vision("--mode", "teacher", "--model", TEACHER_MODEL, "--label-smoothing", fmt(alpha),
                           *data, *teacher_sched, *batch, *optim, "--seed", seed, *eng,
                           "--dump-features", "--output-dir", d),
                  [d / "checkpoint.pt", *feature_set_files(feats(d, "train")), *feature_set_files(feats(d, "valid"))],
                  resume_dir=d)
    # 2. students: one sweep over T per (teacher α, student model, seed)
    for seed in args.seeds:
        for model in STUDENT_MODELS:
            for alpha in ALPHAS:
                d = student_dir(model, alpha, seed)
                r.add(f"students-{model}-{a_(alpha)}-s{seed}",
                      r.vision("--mode", "student", "--model", model,
                               "--teacher", teacher_dir(alpha, seed) / "checkpoint.pt",
                               "--temperature", *map(str, TEMPERATURES), "--beta", "1",
                               *data, *student_sched, *batch, *optim, "--seed", seed, *eng,
                               "--dump-features", "--output-dir", d),
                      [f for T in TEMPERATURES for s in ("train", "valid")
                       for f in feature_set_files(d / f"T{T}" / "features" / s)],
                      resume_dir=d)
    # 3. S1/S2 from the hierarchy, then η (train + valid) per seed
    eta_dir = out / "eta"
    eta_files: dict[str, list[Path]] = {m: [] for m in STUDENT_MODELS}
    sim_files: dict[str, list[Path]] = {m: [] for m in STUDENT_MODELS}
    for seed in args.seeds:
        # S1/S2 from WordNet; their agreement with feature space (Table 12) measured, as the paper
        # does (Supp. F.2), on "the official ResNet-50" and the validation set: our α = 0 teacher
        sets = eta_dir / f"sets_s{seed}.json"
        sim = eta_dir / f"similar_s{seed}.json"
        r.add(f"similar-s{seed}",
              r.metrics("similar", "--features", feats(teacher_dir(0.0, seed), "valid"), "--target", ",".join(targets),
                        "--hierarchy", hierarchy, "--k", str(K_SIMILAR), "--n", str(N_DISSIMILAR),
                        "--seed", str(SETS_SEED), "--write-sets", sets, "--format", "json", "-o", sim),
              [sets, sim])
        for model in STUDENT_MODELS:
            t1, t2 = ETA_PAIRS[model]
            sim_files[model].append(sim)
            for alpha in ETA_ALPHAS:
                d = student_dir(model, alpha, seed)
                o = eta_dir / f"eta_{model}_{a_(alpha)}_T{t1}-T{t2}_s{seed}.json"
                r.add(f"eta-{model}-{a_(alpha)}-s{seed}",
                      r.metrics("eta", "--before", feats(d / f"T{t1}", "train"), "--after", feats(d / f"T{t2}", "train"),
                                "--before-valid", feats(d / f"T{t1}", "valid"),
                                "--after-valid", feats(d / f"T{t2}", "valid"),
                                "--sets", sets, "--format", "json", "-o", o),
                      [o])
                eta_files[model].append(o)
    # 4. projection figure (first seed): teachers, then the students of both teachers across T
    seed = args.seeds[0]
    add_projection_figures(r, out / "figures", projection, seed,
                           [feats(teacher_dir(a, seed), s) for a in ALPHAS for s in ("train", "valid")],
                           {model: [feats(student_dir(model, a, seed) / f"T{T}", "train")
                                    for a in ALPHAS for T in TEMPERATURES] for model in STUDENT_MODELS})
    # 5. per-class accuracy of the target classes, per student sweep (Tables 17-19)
    add_per_class_accuracy(r, out / "accuracy", acc_sets, TEMPERATURES, ACCURACY_SPLITS,
                           [(m, a, s, student_dir(m, a, s)) for s in args.seeds
                            for m in STUDENT_MODELS for a in ALPHAS],
                           out / "tables" / "per_class_accuracy",
                           "ImageNet-1K: per-class accuracy of the target classes, "
                           "ResNet-50 teachers -> ResNet-18 / ResNet-50 students (Tables 17-19)")
    # 6. tables
    tables = out / "tables"
    r.add("table-accuracy",
          r.tables("vision-accuracy", "--teachers", out / "teachers", "--students", out / "students",
                   "--title", "ImageNet-1K: ResNet-50 teachers -> ResNet-18 / ResNet-50 students (Tables 2, 10, 11)",
                   "--out", tables / "accuracy"),
          [tables / "accuracy.md", tables / "accuracy.csv"])
    for model in STUDENT_MODELS:
        t1, t2 = ETA_PAIRS[model]
        r.add(f"table-eta-{model}",
              r.tables("eta", "--inputs", *eta_files[model], "--agreement", *sim_files[model],
                       "--title", f"ImageNet-1K η, {model} student, T1 = {t1} -> T2 = {t2} "
                                  f"(Table {3 if model == 'resnet18' else 4})",
                       "--out", tables / f"eta_{model}"),
              [tables / f"eta_{model}.md", tables / f"eta_{model}.csv"])
    return r


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="imagenet.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="ImageNet-1K ImageFolder root (train/, val/, wnid folders)")
    add_common_args(ap, "runs/imagenet")
    return ap


if __name__ == "__main__":
    sys.exit(main(build, parser()))
