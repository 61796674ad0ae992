# The ImageNet-1K recipe (config/imagenet.yaml): teachers (or the official α = 0 teacher) and student
# sweeps (rules/paper_vision.smk), S1/S2 of the η targets (default: the paper's Table 3 groups, shipped in
# config/imagenet_table3_sets.json; or WordNet's k nearest) with their feature-space agreement (Table 12),
# η per student model (Tables 3, 4) and η_pairwise (Table 21), per-class accuracy (Tables 17-19), the
# Figure 1 projections, the tables and the accuracy table's paired tests.
TITLES = {"accuracy": "ImageNet-1K: ResNet-50 teachers -> ResNet-18 / ResNet-50 students (Tables 2, 10, 11)",
          "per_class_accuracy": "ImageNet-1K: per-class accuracy of the target classes, ResNet-50 teachers -> "
                                "ResNet-18 / ResNet-50 students (Tables 17-19)"}


include: "paper_vision.smk"


SIM = config["similar"]
# S1/S2 of the η targets. Default (similar.sets_file): the paper's reading of Table 3, two groups of five
# (retrievers, snakes) with each target's S1 the other four of its group, shipped as a sets file; its S2
# are 20 classes drawn once from the WordNet-dissimilar ones (select_from_hierarchy, seed 0). WordNet's
# k nearest (similar.sets_file: null, the similar.hierarchy/k/n/seed draw) ties the colubrid snakes at
# distance 2 and gives green_snake instead of a Table 3 snake to 4 of the 5 snake targets.
SETS_FILE = f"{ROOT}/{SIM['sets_file']}" if SIM.get("sets_file") else None
SIM_FEATURES = lambda seed: f"{teacher_dir(SIM['features_alpha'], seed)}/features/valid"  # noqa: E731
if SETS_FILE:
    _sets = study.read_json(SETS_FILE)
    if set(_sets) != set(names(config["targets"])):
        sys.exit(f"[workflow] error: config: similar.sets_file {SIM['sets_file']} has the targets {sorted(_sets)}, "
                 f"not the config's {sorted(names(config['targets']))}")


AGREEMENT_NOTE = ("Feature space: the validation features of the α = {} teacher ({}); S1/S2 of η: {}.".format(
    fmt(SIM["features_alpha"]),
    "official torchvision weights" if OFFICIAL and float(SIM["features_alpha"]) == 0 else "trained here, each seed's",
    f"the sets file {SIM['sets_file']}" if SETS_FILE else f"{SIM['hierarchy']} k = {SIM['k']} nearest, n = {SIM['n']} drawn"))


def sets_of(seed):
    """The S1/S2 file η reads: the shipped sets, or the seed's WordNet draw."""
    return SETS_FILE or f"eta/sets_s{seed}.json"


if SETS_FILE:

    rule similar:
        """The feature-space S1/S2 of each target (Supp. F.2), for Table 12's agreement with the sets file."""
        input:
            feature_files(SIM_FEATURES("{seed}")),
        output:
            json="eta/similar_s{seed}.json",
        params:
            feats=lambda w: SIM_FEATURES(w.seed),
            targets=",".join(names(config["targets"])),
        log: "logs/similar_s{seed}.log"
        shell:
            METRICS + " similar --features {params.feats} --target {params.targets:q} --format json -o {output.json}"

else:

    rule similar:
        """S1/S2 of each target from the hierarchy (--write-sets), and their agreement with feature space (Table 12)."""
        input:
            feature_files(SIM_FEATURES("{seed}")),
        output:
            sets="eta/sets_s{seed}.json",
            json="eta/similar_s{seed}.json",
        params:
            feats=lambda w: SIM_FEATURES(w.seed),
            targets=",".join(names(config["targets"])),
            sets=quote(["--hierarchy", SIM["hierarchy"], "--k", SIM["k"], "--n", SIM["n"], "--seed", SIM["seed"]]),
        log: "logs/similar_s{seed}.log"
        shell:
            METRICS + " similar --features {params.feats} --target {params.targets:q} {params.sets} "
            "--write-sets {output.sets} --format json -o {output.json}"


def eta_sets(w):
    """The feature sets η compares: the sweep's students at the model's T1 and T2 (Tables 3, 4)."""
    t1, t2 = (f"students/{w.model}_a{w.alpha}_s{w.seed}/T{fmt(T)}/features" for T in config["eta"][w.model])
    return {"before": f"{t1}/train", "after": f"{t2}/train", "before-valid": f"{t1}/valid", "after-valid": f"{t2}/valid"}


# the models with an η (not "pairwise_resnet18": eta_pairwise's outputs share the eta_ prefix)
ETA_MODEL = "|".join(config["eta"])


rule eta:
    wildcard_constraints: model=ETA_MODEL
    input:
        sets=lambda w: sets_of(w.seed),
        feats=lambda w: [f for d in eta_sets(w).values() for f in feature_files(d)],
    output:
        json="eta/eta_{model}_a{alpha}_s{seed}.json",
    params:
        sets=lambda w: quote(word for flag, d in eta_sets(w).items() for word in (f"--{flag}", d)),
    log: "logs/eta_{model}_a{alpha}_s{seed}.log"
    shell:
        METRICS + " eta {params.sets} --sets {input.sets} --format json -o {output.json}"


rule eta_table:
    wildcard_constraints: model=ETA_MODEL
    input:
        etas=lambda w: expand("eta/eta_{model}_a{alpha}_s{seed}.json", model=w.model, alpha=STUDENTS[w.model], seed=SEEDS),
        agreement=expand("eta/similar_s{seed}.json", seed=SEEDS),
    output:
        md="tables/eta_{model}.md",
        csv="tables/eta_{model}.csv",
    params:
        title=lambda w: "ImageNet-1K η, {} student, T1 = {} -> T2 = {}".format(w.model, *map(fmt, config["eta"][w.model])),
        sets=quote(["--sets", SETS_FILE] if SETS_FILE else []),
        note=AGREEMENT_NOTE,
    log: "logs/table_eta_{model}.log"
    shell:
        TABLES + " eta --inputs {input.etas} --agreement {input.agreement} {params.sets} --agreement-note {params.note:q} "
        "--title {params.title:q} --out tables/eta_{wildcards.model}"


# ---- Table 21 (Supp. J): η_pairwise, the same targets, sets, students and T1 -> T2 as Tables 3, 4, train
# and valid (lskd-metrics eta --pairwise: mean pairwise distances of the features projected onto the head
# rows of the classes, up to --max-per-class samples a class)
rule eta_pairwise:
    input:
        sets=lambda w: sets_of(w.seed),
        feats=lambda w: [f for d in eta_sets(w).values() for f in feature_files(d)],
    output:
        json="eta/eta_pairwise_{model}_a{alpha}_s{seed}.json",
    params:
        sets=lambda w: quote(word for flag, d in eta_sets(w).items() for word in (f"--{flag}", d)),
    log: "logs/eta_pairwise_{model}_a{alpha}_s{seed}.log"
    shell:
        METRICS + " eta {params.sets} --sets {input.sets} --pairwise --seed {wildcards.seed} --format json -o {output.json}"


rule eta_pairwise_table:
    input:
        lambda w: expand("eta/eta_pairwise_{model}_a{alpha}_s{seed}.json", model=w.model, alpha=STUDENTS[w.model], seed=SEEDS),
    output:
        md="tables/eta_pairwise_{model}.md",
        csv="tables/eta_pairwise_{model}.csv",
    params:
        title=lambda w: "ImageNet-1K η_pairwise (Table 21), {} student, T1 = {} -> T2 = {}".format(
            w.model, *map(fmt, config["eta"][w.model])),
    log: "logs/table_eta_pairwise_{model}.log"
    shell:
        TABLES + " eta --inputs {input} --title {params.title:q} --out tables/eta_pairwise_{wildcards.model}"


TARGETS = (VISION_TARGETS + expand(rules.eta_table.output.md, model=config["eta"])
           + expand(rules.eta_pairwise_table.output.md, model=config["eta"]))


# ---- Figure 2 (soft targets) and Supp. D (systematic, not isotropic): config soft_targets, isotropy
include: "soft_targets.smk"


TARGETS = TARGETS + SOFT_TARGETS_OUTPUTS
