# What the ImageNet and CUB recipes share (included by rules/imagenet.smk and rules/cub.smk): LS
# teachers, one KD sweep over T per student model, teacher α and seed (features dumped), per-class
# accuracy, the projection figures, the accuracy table and its paired tests. Paths: teachers/a<α>_s<seed>/
# (teachers/official/ for official torchvision weights), students/<model>_a<α>_s<seed>/T<T>/, each with
# features/{train,valid}; compare/, tables/, figures/. The including file sets TITLES, its tables' titles.
from study import fmt  # noqa: E402

ALPHAS = [fmt(a) for a in config["alphas"]]
TEMPS = [fmt(T) for T in config["temperatures"]]
SEEDS = config["seeds"]
SPLITS = ["train", "valid"]
STUDENTS = {model: [fmt(a) for a in alphas] for model, alphas in config["students"].items()}
SWEEPS = [f"{m}_a{a}_s{s}" for s in SEEDS for m, alphas in STUDENTS.items() for a in alphas]  # students/<sweep>/
LOG = "{ROOT}/scripts/workflow/logged.sh {log}"
METRICS = LOG + " {PY} -m shared_metrics"
TABLES = LOG + " {PY} -m scripts.recipes.tables"


def dumped(d):
    """The feature sets a training dumps into ``d`` (logits where config logits_splits has them)."""
    return [f for s in SPLITS for f in feature_files(f"{d}/features/{s}", s in config["logits_splits"])]


def names(classes, label=False):
    """Class names of config entries ``wnid=name`` (or plain names); ``label``: the entries as they are."""
    flat = [c for item in classes for c in (item if isinstance(item, list) else [item])]
    return flat if label else [c.split("=")[0] for c in flat]


# ---- the official α = 0 teacher (config official_teacher.weights, ImageNet): a local torchvision weights
# file made a teacher checkpoint (vision/official.py) under teachers/official/, the teacher of every seed's
# α = 0 students; the α = 0 teachers are then not trained. Checked (architecture, class count) with the config.
OFFICIAL = (config.get("official_teacher") or {}).get("weights")


# config one_teacher (the demo): each α's teacher is trained once, with the first seed, for every seed's students
TEACHER_SEEDS = SEEDS[:1] if config.get("one_teacher") else SEEDS


def teacher_seed(seed):
    """The seed of the teachers a student of ``seed`` learns from: its own, or with one_teacher the first."""
    return TEACHER_SEEDS[0] if config.get("one_teacher") else seed


def teacher_dir(alpha, seed):
    """The teacher of α and seed: teachers/official with official weights for α = 0, else
    teachers/a<α>_s<teacher_seed(seed)>."""
    return "teachers/official" if OFFICIAL and float(alpha) == 0 else f"teachers/a{fmt(alpha)}_s{teacher_seed(seed)}"


TEACHER_DIRS = list(dict.fromkeys(teacher_dir(a, s) for a in ALPHAS for s in SEEDS))


DUMP_FLAGS = ("--image-size", "--limit-train", "--limit-val", "--device", "--workers", "--backend", "--amp")


def dump_flags(flags, only=DUMP_FLAGS):
    """The flags of config `flags` that vision/dump_features.py takes too (image size, sample limits, device,
    bf16 autocast), or only those named in ``only``."""
    out, words = [], list(map(str, flags))
    for i, w in enumerate(words):
        if w in only:
            out += [w] if w == "--amp" else [w, words[i + 1]]
    return out


def training(part):
    """A training's resources: its GPUs, its time limit (minutes) and, on GPUs, one of the trainings that
    recipe.sh runs one at a time on one machine (--resources gpu_jobs=1)."""
    gpus = config["gpus_per_training"]
    return {"gpu": gpus, "runtime": config[part]["runtime_minutes"], "gpu_jobs": int(gpus > 0)}


rule teacher:
    output:
        model="teachers/a{alpha}_s{seed}/model.pt",
        features=dumped("teachers/a{alpha}_s{seed}"),
    params:
        cmd=lambda w, resources: quote(study.paper_vision_command(config, "teacher", config["teacher"]["model"], w.seed,
            resources.gpu) + ["--label-smoothing", w.alpha, "--dump-features", "--output-dir", f"teachers/a{w.alpha}_s{w.seed}"]),
    threads: config["threads_per_training"]
    resources: **training("teacher")
    log: "logs/teacher_a{alpha}_s{seed}.log"
    shell:
        LOG + " {ROOT}/scripts/workflow/resumable.sh vision teachers/a{wildcards.alpha}_s{wildcards.seed} {params.cmd}"


rule students:
    input:
        teacher=lambda w: f"{teacher_dir(w.alpha, w.seed)}/model.pt",
    output:
        [f for T in TEMPS for f in dumped(f"students/{{model}}_a{{alpha}}_s{{seed}}/T{T}")],
    params:
        cmd=lambda w, input, resources: quote(study.paper_vision_command(config, "student", w.model, w.seed, resources.gpu)
            + ["--teacher", input.teacher, "--temperature", *TEMPS, "--beta", fmt(config["student"]["beta"]),
               "--dump-features", "--output-dir", f"students/{w.model}_a{w.alpha}_s{w.seed}"]),
    threads: config["threads_per_training"]
    resources: **training("student")
    log: "logs/students_{model}_a{alpha}_s{seed}.log"
    shell:
        LOG + " {ROOT}/scripts/workflow/resumable.sh vision students/{wildcards.model}_a{wildcards.alpha}_s{wildcards.seed} {params.cmd}"


rule per_class_accuracy:
    """Tables 17-19: top-1 of each class of accuracy_sets on its own samples, every T and split of a sweep."""
    input:
        [f for T in TEMPS for s in config["accuracy_splits"]
         for f in feature_files(f"students/{{model}}_a{{alpha}}_s{{seed}}/T{T}/features/{s}")],
    output:
        json="accuracy/per_class_{model}_a{alpha}_s{seed}.json",
    params:
        feats=lambda w: [f"students/{w.model}_a{w.alpha}_s{w.seed}/T{T}/features/{s}" for T in TEMPS
                         for s in config["accuracy_splits"]],
        classes=",".join(dict.fromkeys(names(c for s in config["accuracy_sets"] for c in s["classes"]))),
    log: "logs/accuracy_{model}_a{alpha}_s{seed}.log"
    shell:
        METRICS + " accuracy --features {params.feats} --classes {params.classes:q} --format json -o {output.json}"


S0 = SEEDS[0]  # the figures show the first seed's runs
PROJECTED = {"teachers": [f"{teacher_dir(a, S0)}/features/{s}" for a in ALPHAS for s in SPLITS],
             **{m: [f"students/{m}_a{a}_s{S0}/T{T}/features/train" for a in alphas for T in TEMPS]
                for m, alphas in STUDENTS.items()}}


rule projection:
    """Figure 1 / 4 layout (Supp. E): the projection classes, teachers (train, valid), then each student model."""
    input:
        lambda w: [f for d in PROJECTED[w.name] for f in feature_files(d)],
    output:
        png=f"figures/projection_{{name}}_s{S0}.png",
        json=f"figures/projection_{{name}}_s{S0}.json",
    params:
        feats=lambda w: PROJECTED[w.name],
        classes=",".join(names(config["projection"])),
    log: "logs/projection_{name}.log"
    shell:
        METRICS + " project --features {params.feats} --classes {params.classes:q} --out {output.png} --format json -o {output.json}"


rule accuracy_table:
    input:
        [f"{d}/model.pt" for d in TEACHER_DIRS],
        [f"students/{sweep}/T{T}/features/valid/meta.json" for sweep in SWEEPS for T in TEMPS],
        [f for f in feature_files("teachers/official/features/valid", "valid" in config["logits_splits"]) if OFFICIAL],
    output:
        md="tables/accuracy.md",
        csv="tables/accuracy.csv",
    params:
        title=TITLES["accuracy"],
        official=quote(["--official", "teachers/official/features/valid"] if OFFICIAL else []),
    log: "logs/table_accuracy.log"
    shell:
        TABLES + " vision-accuracy --teachers teachers --students students {params.official} --title {params.title:q} "
        "--out tables/accuracy"


rule per_class_table:
    input:
        expand("accuracy/per_class_{sweep}.json", sweep=SWEEPS),
    output:
        md="tables/per_class_accuracy.md",
        csv="tables/per_class_accuracy.csv",
    params:
        sets=quote([w for s in config["accuracy_sets"] for w in ("--set", s["name"], ",".join(names(s["classes"], True)))]),
        title=TITLES["per_class_accuracy"],
    log: "logs/table_per_class_accuracy.log"
    shell:
        TABLES + " per-class-accuracy --inputs {input} {params.sets} --title {params.title:q} --out tables/per_class_accuracy"


# ---- the official teacher's checkpoint and feature sets (only with official_teacher.weights)
if OFFICIAL:

    rule official_teacher:
        """The torchvision weights as a teacher checkpoint (mode teacher, α = 0, the recipe's data flags)."""
        input:
            weights=OFFICIAL,
        output:
            model="teachers/official/model.pt",
        params:
            cmd=quote(["-m", "vision.official", OFFICIAL, "--model", config["teacher"]["model"],
                       "--num-classes", config["official_teacher"]["num_classes"], "--dataset", config["dataset"],
                       *(["--data", config["data"], "--recipe", config["augmentation"], "--imagenet-classes"]
                         if config["dataset"] == "imagefolder" else []),
                       *dump_flags(config["flags"], only=("--image-size",)),
                       "--out", "teachers/official/model.pt"]),
        log: "logs/official_teacher.log"
        shell:
            LOG + " {PY} {params.cmd}"

    rule official_features:
        """Its feature sets, train and valid, as a trained teacher's --dump-features writes them."""
        input:
            model="teachers/official/model.pt",
        output:
            dumped("teachers/official"),
        params:
            flags=quote(dump_flags(config["flags"])),
        threads: config["threads_per_training"]
        resources: gpu=min(1, config["gpus_per_training"]), runtime=config["teacher"]["runtime_minutes"]
        log: "logs/official_features.log"
        shell:
            LOG + " {PY} {ROOT}/vision/dump_features.py {input.model} --output teachers/official/features {params.flags}"


# ---- paired tests behind the accuracy table (#12): per seed McNemar's exact test on the validation images
# (lskd-metrics compare), across seeds the paired t-interval (tables paired-accuracy); each other teacher α
# against α = 0 at each T, and each other T against the lowest T per teacher α
A0, T0 = ALPHAS[0], TEMPS[0]
VALID = lambda d: feature_files(f"{d}/features/valid", "valid" in config["logits_splits"])  # noqa: E731
COMPARE = LOG + " {PY} -m shared_metrics compare --a {params.a} --b {params.b} --seed {wildcards.seed} " \
          "--format json -o {output.json}"
PAIRED = ([f"compare/alpha/{m}_s{s}_a{a}_T{T}.json" for m, alphas in STUDENTS.items() if A0 in alphas
           for a in alphas if a != A0 for s in SEEDS for T in TEMPS]
          + [f"compare/temperature/{m}_a{a}_s{s}_T{T}.json" for m, alphas in STUDENTS.items() for a in alphas
             for s in SEEDS for T in TEMPS if T != T0])


rule compare_alpha:
    """A student of the α teacher against the α = 0 teacher's, same model, seed and T, same images."""
    input:
        lambda w: VALID(f"students/{w.model}_a{A0}_s{w.seed}/T{w.T}"),
        lambda w: VALID(f"students/{w.model}_a{w.alpha}_s{w.seed}/T{w.T}"),
    output:
        json="compare/alpha/{model}_s{seed}_a{alpha}_T{T}.json",
    params:
        a=lambda w: f"students/{w.model}_a{A0}_s{w.seed}/T{w.T}/features/valid",
        b=lambda w: f"students/{w.model}_a{w.alpha}_s{w.seed}/T{w.T}/features/valid",
    log: "logs/compare_alpha_{model}_s{seed}_a{alpha}_T{T}.log"
    shell:
        COMPARE


rule compare_temperature:
    """A student at T against the same sweep's student at the lowest T, same images."""
    input:
        lambda w: VALID(f"students/{w.model}_a{w.alpha}_s{w.seed}/T{T0}"),
        lambda w: VALID(f"students/{w.model}_a{w.alpha}_s{w.seed}/T{w.T}"),
    output:
        json="compare/temperature/{model}_a{alpha}_s{seed}_T{T}.json",
    params:
        a=lambda w: f"students/{w.model}_a{w.alpha}_s{w.seed}/T{T0}/features/valid",
        b=lambda w: f"students/{w.model}_a{w.alpha}_s{w.seed}/T{w.T}/features/valid",
    log: "logs/compare_temperature_{model}_a{alpha}_s{seed}_T{T}.log"
    shell:
        COMPARE


rule paired_table:
    input:
        PAIRED,
    output:
        md="tables/paired_accuracy.md",
        csv="tables/paired_accuracy.csv",
    params:
        title=TITLES["accuracy"].split(":")[0] + ": paired tests of the students' top-1",
    log: "logs/table_paired_accuracy.log"
    shell:
        TABLES + " paired-accuracy --inputs {input} --title {params.title:q} --out tables/paired_accuracy"


VISION_TARGETS = (rules.accuracy_table.output + rules.per_class_table.output + rules.paired_table.output
                  + expand(rules.projection.output.png, name=PROJECTED))
