#!/usr/bin/env python
"""CUB-200-2011 recipe: the paper's Tables 5, 6, 9, 20 (accuracy), 13–16 (smoothness of targets),
Figure 4 (projection) and per-class accuracy in the layout of Tables 17–19.

    python scripts/recipes/cub.py --data /data/cub --pretrained r50_imagenet.pth \\
        --pretrained-r18 r18_imagenet.pth --pretrained-mbv2 mbv2_imagenet.pth --nproc 4
    python scripts/recipes/cub.py ... --dry-run        # print every command
    python scripts/recipes/cub.py --toy                # tiny CPU run on built-in data

``--data`` is an ImageFolder root with ``train/`` and ``val/`` (CUB's train_test_split.txt: 5,994
training and 5,794 test images, 200 class folders). The ``--pretrained*`` files are ImageNet
weights (state dicts or vision/distill.py checkpoints); the 1000-way classifier is replaced.

Steps, for every seed s (3 by default; the paper repeats 3 times, MobileNetV2 2 times):

1. teachers: ResNet-50 fine-tuned from --pretrained with label smoothing α ∈ {0, 0.1, 0.2},
   ``--recipe cub`` (random crop, rotation, colour jitter, flip), 200 epochs, SGD momentum 0.9,
   lr 0.01 ×0.1 every 80 epochs (at 80 and 160), batch 256; features + logits dumped
   -> OUT/teachers/a<α>_s<s>/;
2. students, pure KD (β = 1) at T ∈ {1, 2, 3, 64}, one sweep each, same schedule:
   ResNet-18 and ResNet-50 from the α = 0 and 0.1 teachers (Tables 5, 6), MobileNetV2 from the
   α = 0, 0.1 and 0.2 teachers (Tables 9, 20), features + logits dumped
   -> OUT/students/<model>_a<α>_s<s>/T<T>/;
3. Table 13: mean entropy of each teacher's training-set targets at T ∈ {1, 2, 3, 64}
   (``lskd-metrics entropy``), and the temperatures at which the α = 0 teacher matches the
   α = 0.1 teacher's entropy at T = 1, 3 and 64 (``lskd-metrics match-temperature``);
4. Tables 14–16: students of the α = 0 teacher at the two matched temperatures (T ≈ 1.48 and
   ≈ 5.64 in the paper; read per seed from step 3 when the step starts), all three student
   models -> OUT/matched/<model>_s<s>/T<T>/; at T = 64 the paper compares T = 64 with T = 64,
   which the main sweep has;
5. the projection figure of Loggerhead_Shrike, Great_Grey_Shrike (similar) and
   Black_footed_Albatross (dissimilar), the classes of the paper's CUB figure (Supp. B.1, Figure 4;
   Figure 1 layout): teachers of every α (train, valid), then per student model its students of
   every teacher α across T (train; first seed) -> OUT/figures/;
6. per-class top-1 of those three classes per student sweep, train and valid
   (``lskd-metrics accuracy --classes``) -> OUT/accuracy/ (CUB has no η targets in the paper);
7. tables (OUT/tables/*.md, *.csv, mean ± std over seeds): accuracy, entropy, counterexamples,
   per-class accuracy (Tables 17–19 layout: rows the classes and their average, columns T and
   split, one table per student model and teacher α).

Where the paper leaves something open: weight decay 1e-4; the final-epoch accuracy; students
start from ImageNet weights like the teacher (Shen et al. fine-tune every CUB model), so
--pretrained-r18 and --pretrained-mbv2 are required (``--students-from-scratch`` opts out);
the student seed equals its teacher's seed; matched students are trained for every student model
(the paper shows ResNet-50/18 at T ≈ 1.48 and ResNet-18/MobileNetV2 at T ≈ 5.64); the projection
figure is drawn for every student model (the paper shows ResNet-18) and for the α = 0.2 teacher too.

``--toy``: Fashion-MNIST instead of CUB (first 256/128 images, 16 px, one epoch, lr 0.01, batch
64, one seed, no pretrained weights; projection and per-class classes Pullover, Coat, Sneaker) to
check the plumbing; the numbers mean nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.recipes.common import (TOY_VISION, VISION_OPTIM, Deferred, Recipe, RecipeError,  # noqa: E402
                                    add_common_args, add_per_class_accuracy, add_projection_figures, alpha_tag,
                                    feature_set_files, fmt, imagefolder_data, main, require_path, schedule_args)

ALPHAS = (0.0, 0.1, 0.2)
TEMPERATURES = (1, 2, 3, 64)
TEACHER_MODEL = "resnet50"
#: student model -> teacher αs (Tables 5, 6: α ∈ {0, 0.1}; Tables 9, 20: MobileNetV2 up to 0.2)
STUDENTS = {"resnet18": (0.0, 0.1), "resnet50": (0.0, 0.1), "mobilenet_v2": (0.0, 0.1, 0.2)}
BATCH = 256
SCHEDULE = {"epochs": 200, "lr": 0.01, "lr_step": 80}   # teachers and students alike
#: Table 13 and the matched temperatures: the α = 0 teacher matched to the α = 0.1 teacher at T_ref.
MATCH_ALPHA, REF_ALPHA, REF_TEMPERATURES = 0.0, 0.1, (1, 3, 64)
TRAINED_MATCHES = (1, 3)   # students at the matched T of these T_ref (T_ref = 64: T = 64 itself)
#: Figure 4 (Supp. B.1): two similar shrikes and a dissimilar albatross, as ImageFolder names them
#: (the class folders of CUB_200_2011/images, which vision/ reads into meta.json's classes).
PROJECTION = ["111.Loggerhead_Shrike", "112.Great_Grey_Shrike", "001.Black_footed_Albatross"]
TOY_PROJECTION = ["Pullover", "Coat", "Sneaker"]
SPLITS = ("train", "valid")   # per-class accuracy: both, as Tables 17-19 (CUB logits are small)


def build(args) -> Recipe:
    r = Recipe(args, "cub")
    out = args.out
    if args.toy:
        data = TOY_VISION["data"]
        batch = ["--batch-size", str(TOY_VISION["batch"])]
        sched = schedule_args(TOY_VISION)
        pretrained = {}
        projection = TOY_PROJECTION
    else:
        data = imagefolder_data(args.data, "cub", "CUB folder")
        batch = ["--batch-size", str(r.per_process_batch(BATCH))]
        sched = schedule_args(SCHEDULE)
        pretrained = {"resnet50": require_path(args.pretrained, "--pretrained", "weights file")}
        projection = PROJECTION
        for model, flag, value in (("resnet18", "--pretrained-r18", args.pretrained_r18),
                                   ("mobilenet_v2", "--pretrained-mbv2", args.pretrained_mbv2)):
            if value is not None:
                pretrained[model] = require_path(value, flag, "weights file")
            elif not args.students_from_scratch:
                raise RecipeError(f"{flag} is required: the paper (after Shen et al.) fine-tunes every CUB "
                                  f"model from ImageNet weights; or pass --students-from-scratch")
    eng = ["--amp", "--channels-last"] if args.amp else []

    def init(model):
        return ["--pretrained", pretrained[model]] if model in pretrained else []

    def teacher_dir(alpha, seed):
        return out / "teachers" / f"{alpha_tag(alpha)}_s{seed}"

    def train_feats(alpha, seed):
        return teacher_dir(alpha, seed) / "features" / "train"

    def student_dir(model, alpha, seed):
        return out / "students" / f"{model}_{alpha_tag(alpha)}_s{seed}"

    # 1. teachers
    for seed in args.seeds:
        for alpha in ALPHAS:
            d = teacher_dir(alpha, seed)
            r.add(f"teacher-{TEACHER_MODEL}-{alpha_tag(alpha)}-s{seed}",
                  r.vision("--mode", "teacher", "--model", TEACHER_MODEL, *init(TEACHER_MODEL),
                           "--label-smoothing", fmt(alpha), *data, *sched, *batch, *VISION_OPTIM,
                           "--seed", seed, *eng, "--dump-features", "--output-dir", d),
                  [d / "checkpoint.pt", *feature_set_files(d / "features" / "train", logits=True),
                   *feature_set_files(d / "features" / "valid")],
                  resume_dir=d)
    # 2. students
    for seed in args.seeds:
        for model, alphas in STUDENTS.items():
            for alpha in alphas:
                d = student_dir(model, alpha, seed)
                r.add(f"students-{model}-{alpha_tag(alpha)}-s{seed}",
                      r.vision("--mode", "student", "--model", model, *init(model),
                               "--teacher", teacher_dir(alpha, seed) / "checkpoint.pt",
                               "--temperature", *map(str, TEMPERATURES), "--beta", "1",
                               *data, *sched, *batch, *VISION_OPTIM, "--seed", seed, *eng,
                               "--dump-features", "--output-dir", d),
                      [f for T in TEMPERATURES
                       for f in (d / f"T{T}" / "checkpoint.pt",
                                 *feature_set_files(d / f"T{T}" / "features" / "train", logits=True),
                                 *feature_set_files(d / f"T{T}" / "features" / "valid", logits=True))],
                      resume_dir=d)
    # 3. entropy of the teachers' targets and the entropy-matched temperatures
    ana = out / "analysis"
    entropy_files, match_files = [], []
    for seed in args.seeds:
        o = ana / f"entropy_s{seed}.json"
        r.add(f"entropy-s{seed}",
              r.metrics("entropy", "--features", *[train_feats(a, seed) for a in ALPHAS],
                        "--temperature", *map(str, TEMPERATURES), "--format", "json", "-o", o), [o])
        entropy_files.append(o)
        for t_ref in REF_TEMPERATURES:
            o = ana / f"match_T{t_ref}_s{seed}.json"
            r.add(f"match-T{t_ref}-s{seed}",
                  r.metrics("match-temperature", "--features", train_feats(MATCH_ALPHA, seed),
                            "--reference", train_feats(REF_ALPHA, seed), "--reference-temperature", str(t_ref),
                            "--format", "json", "-o", o), [o])
            match_files.append(o)
    # 4. students of the α = 0 teacher at the matched temperatures
    for seed in args.seeds:
        for model in STUDENTS:
            d = out / "matched" / f"{model}_s{seed}"
            temps = [Deferred(ana / f"match_T{t}_s{seed}.json", "temperature") for t in TRAINED_MATCHES]
            r.add(f"matched-{model}-s{seed}",
                  r.vision("--mode", "student", "--model", model, *init(model),
                           "--teacher", teacher_dir(MATCH_ALPHA, seed) / "checkpoint.pt",
                           "--temperature", *temps, "--beta", "1",
                           *data, *sched, *batch, *VISION_OPTIM, "--seed", seed, *eng, "--output-dir", d),
                  [d / "T*" / "checkpoint.pt"], resume_dir=d)
    # 5. projection figure (first seed): teachers, then per student model its students across T
    seed = args.seeds[0]
    add_projection_figures(r, out / "figures", projection, seed,
                           [teacher_dir(a, seed) / "features" / sp for a in ALPHAS for sp in ("train", "valid")],
                           {model: [student_dir(model, a, seed) / f"T{T}" / "features" / "train"
                                    for a in alphas for T in TEMPERATURES] for model, alphas in STUDENTS.items()})
    # 6. per-class accuracy of the figure's classes, per student sweep (Tables 17-19 layout)
    acc_sets = {"Figure 4 classes": {c: c for c in projection}}
    add_per_class_accuracy(r, out / "accuracy", acc_sets, TEMPERATURES, SPLITS,
                           [(m, a, s, student_dir(m, a, s)) for s in args.seeds
                            for m, alphas in STUDENTS.items() for a in alphas],
                           out / "tables" / "per_class_accuracy",
                           "CUB-200-2011: per-class accuracy of the Figure 4 classes, ResNet-50 teachers -> "
                           "ResNet-18 / ResNet-50 / MobileNetV2 students (Tables 17-19 layout)")
    # 7. tables
    t = out / "tables"
    r.add("table-accuracy",
          r.tables("vision-accuracy", "--teachers", out / "teachers", "--students", out / "students",
                   "--title", "CUB-200-2011: ResNet-50 teachers -> ResNet-18 / ResNet-50 / MobileNetV2 "
                              "students (Tables 5, 6, 9, 20)", "--out", t / "accuracy"),
          [t / "accuracy.md", t / "accuracy.csv"])
    r.add("table-entropy",
          r.tables("entropy", "--inputs", *entropy_files, "--match", *match_files,
                   "--title", "CUB-200-2011: smoothness of the ResNet-50 teachers' targets (Table 13)",
                   "--out", t / "entropy"),
          [t / "entropy.md", t / "entropy.csv"])
    r.add("table-counterexamples",
          r.tables("counterexamples", "--match", *match_files, "--students", out / "students",
                   "--matched", out / "matched",
                   "--title", "CUB-200-2011: same smoothness, different students (Tables 14-16)",
                   "--out", t / "counterexamples"),
          [t / "counterexamples.md", t / "counterexamples.csv"])
    return r


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cub.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="CUB-200-2011 ImageFolder root (train/, val/)")
    ap.add_argument("--pretrained", type=Path, help="ImageNet ResNet-50 weights (teachers, ResNet-50 students)")
    ap.add_argument("--pretrained-r18", type=Path, help="ImageNet ResNet-18 weights for the ResNet-18 students")
    ap.add_argument("--pretrained-mbv2", type=Path, help="ImageNet MobileNetV2 weights for the MobileNetV2 students")
    ap.add_argument("--students-from-scratch", action="store_true",
                    help="allow ResNet-18 / MobileNetV2 students without --pretrained-r18 / --pretrained-mbv2 "
                         "(they then train from scratch, unlike the paper)")
    add_common_args(ap, "runs/cub")
    return ap


if __name__ == "__main__":
    sys.exit(main(build, parser()))
