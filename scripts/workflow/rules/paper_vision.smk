# What the ImageNet and CUB recipes share (included by rules/imagenet.smk and rules/cub.smk): LS
# teachers, one KD sweep over T per student model, teacher α and seed (features dumped), per-class
# accuracy, the projection figures and the accuracy table. Paths: teachers/a<α>_s<seed>/,
# students/<model>_a<α>_s<seed>/T<T>/, each with features/{train,valid}; tables/, figures/. The
# including file sets TITLES, its tables' titles.
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
        teacher="teachers/a{alpha}_s{seed}/model.pt",
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
PROJECTED = {"teachers": [f"teachers/a{a}_s{S0}/features/{s}" for a in ALPHAS for s in SPLITS],
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
        expand("teachers/a{alpha}_s{seed}/model.pt", alpha=ALPHAS, seed=SEEDS),
        [f"students/{sweep}/T{T}/features/valid/meta.json" for sweep in SWEEPS for T in TEMPS],
    output:
        md="tables/accuracy.md",
        csv="tables/accuracy.csv",
    params:
        title=TITLES["accuracy"],
    log: "logs/table_accuracy.log"
    shell:
        TABLES + " vision-accuracy --teachers teachers --students students --title {params.title:q} --out tables/accuracy"


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


VISION_TARGETS = (rules.accuracy_table.output + rules.per_class_table.output
                  + expand(rules.projection.output.png, name=PROJECTED))
