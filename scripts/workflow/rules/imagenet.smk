# The ImageNet-1K recipe (config/imagenet.yaml): teachers and student sweeps (rules/paper_vision.smk),
# S1/S2 of the η targets from WordNet with their feature-space agreement (Table 12), η per student
# model (Tables 3, 4), per-class accuracy (Tables 17-19), the Figure 1 projections and the tables.
TITLES = {"accuracy": "ImageNet-1K: ResNet-50 teachers -> ResNet-18 / ResNet-50 students (Tables 2, 10, 11)",
          "per_class_accuracy": "ImageNet-1K: per-class accuracy of the target classes, ResNet-50 teachers -> "
                                "ResNet-18 / ResNet-50 students (Tables 17-19)"}


include: "paper_vision.smk"


SIM = config["similar"]


rule similar:
    """S1/S2 of each target from the hierarchy (--write-sets), and their agreement with feature space (Table 12)."""
    input:
        feature_files(f"teachers/a{fmt(SIM['features_alpha'])}_s{{seed}}/features/valid"),
    output:
        sets="eta/sets_s{seed}.json",
        json="eta/similar_s{seed}.json",
    params:
        feats=lambda w: f"teachers/a{fmt(SIM['features_alpha'])}_s{w.seed}/features/valid",
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


rule eta:
    input:
        sets="eta/sets_s{seed}.json",
        feats=lambda w: [f for d in eta_sets(w).values() for f in feature_files(d)],
    output:
        json="eta/eta_{model}_a{alpha}_s{seed}.json",
    params:
        sets=lambda w: quote(word for flag, d in eta_sets(w).items() for word in (f"--{flag}", d)),
    log: "logs/eta_{model}_a{alpha}_s{seed}.log"
    shell:
        METRICS + " eta {params.sets} --sets {input.sets} --format json -o {output.json}"


rule eta_table:
    input:
        etas=lambda w: expand("eta/eta_{model}_a{alpha}_s{seed}.json", model=w.model, alpha=STUDENTS[w.model], seed=SEEDS),
        agreement=expand("eta/similar_s{seed}.json", seed=SEEDS),
    output:
        md="tables/eta_{model}.md",
        csv="tables/eta_{model}.csv",
    params:
        title=lambda w: "ImageNet-1K η, {} student, T1 = {} -> T2 = {}".format(w.model, *map(fmt, config["eta"][w.model])),
    log: "logs/table_eta_{model}.log"
    shell:
        TABLES + " eta --inputs {input.etas} --agreement {input.agreement} --title {params.title:q} --out tables/eta_{wildcards.model}"


TARGETS = VISION_TARGETS + expand(rules.eta_table.output.md, model=config["eta"])


# ---- Figure 2 (soft targets) and Supp. D (systematic, not isotropic): config soft_targets, isotropy
include: "soft_targets.smk"


TARGETS = TARGETS + SOFT_TARGETS_OUTPUTS
