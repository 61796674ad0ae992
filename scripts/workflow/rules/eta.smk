# η and η_pairwise of the recipe's targets (Sec. 4, Supp. F, J), included by rules/imagenet.smk and
# rules/cub.smk after paper_vision.smk: S1/S2 of each target (config similar), η(T1, T2) per student model
# (config eta, Tables 3, 4) and η_pairwise (Table 21), train and valid, one table each per model. The
# including file sets TITLES["eta"] and TITLES["eta_pairwise"] ({model}, {T1}, {T2}, {features_alpha} filled in).
#
# Where S1/S2 come from (config similar), one of three:
#   sets_file            a shipped sets file (ImageNet's default: Table 3's groups); `similar` then only
#                        finds the feature-space sets for Table 12's agreement with it
#   hierarchy (k, n, seed)   the hierarchy's k nearest and n drawn dissimilar classes, written per seed by
#                        `similar --write-sets` with their agreement with feature space (Table 12)
#   neither              feature space (Supp. F.2): the 1 % nearest and 90 % farthest of the other classes
#                        by the distance of their centroids, written per seed by `similar --write-sets`
#                        (CUB: no class hierarchy); Table 12 would compare the sets with themselves: none
# The feature space is the validation features of the α = similar.features_alpha teacher of each seed.
SIM = config["similar"]  # features_alpha among the alphas, targets given: study.check_recipe
SETS_FILE = f"{ROOT}/{SIM['sets_file']}" if SIM.get("sets_file") else None
HIERARCHY = None if SETS_FILE else SIM.get("hierarchy")
FEATURE_SPACE_SETS = not SETS_FILE and not HIERARCHY
SIM_FEATURES = lambda seed: f"{teacher_dir(SIM['features_alpha'], seed)}/features/valid"  # noqa: E731
ETA_TARGETS = ",".join(names(config["targets"]))
if SETS_FILE:
    _sets = study.read_json(SETS_FILE)
    if set(_sets) != set(names(config["targets"])):
        sys.exit(f"[workflow] error: config: similar.sets_file {SIM['sets_file']} has the targets {sorted(_sets)}, "
                 f"not the config's {sorted(names(config['targets']))}")


AGREEMENT_NOTE = ("Feature space: the validation features of the α = {} teacher ({}); S1/S2 of η: {}.".format(
    fmt(SIM["features_alpha"]),
    "official torchvision weights" if OFFICIAL and float(SIM["features_alpha"]) == 0
    else f"trained here once, seed {TEACHER_SEEDS[0]}" if config.get("one_teacher") else "trained here, each seed's",
    f"the sets file {SIM['sets_file']}" if SETS_FILE else f"{HIERARCHY} k = {SIM.get('k')} nearest, n = {SIM.get('n')} drawn"))


def sets_of(seed):
    """The S1/S2 file η reads: the shipped sets, or the `similar --write-sets` output of the seed's teacher."""
    return SETS_FILE or f"eta/sets_s{teacher_seed(seed)}.json"


if SETS_FILE:

    rule similar:
        """The feature-space S1/S2 of each target (Supp. F.2), for Table 12's agreement with the sets file."""
        input:
            feature_files(SIM_FEATURES("{seed}")),
        output:
            json="eta/similar_s{seed}.json",
        params:
            feats=lambda w: SIM_FEATURES(w.seed),
            targets=ETA_TARGETS,
        log: "logs/similar_s{seed}.log"
        shell:
            METRICS + " similar --features {params.feats} --target {params.targets:q} --format json -o {output.json}"

else:

    rule similar:
        """S1/S2 of each target (--write-sets): from the hierarchy, with their agreement with feature space
        (Table 12), or, without one, from feature space (Supp. F.2's 1 % nearest, 90 % farthest)."""
        input:
            feature_files(SIM_FEATURES("{seed}")),
        output:
            sets="eta/sets_s{seed}.json",
            json="eta/similar_s{seed}.json",
        params:
            feats=lambda w: SIM_FEATURES(w.seed),
            targets=ETA_TARGETS,
            sets=quote(["--hierarchy", HIERARCHY, "--k", SIM["k"], "--n", SIM["n"], "--seed", SIM["seed"]]
                       if HIERARCHY else []),
        log: "logs/similar_s{seed}.log"
        shell:
            METRICS + " similar --features {params.feats} --target {params.targets:q} {params.sets} "
            "--write-sets {output.sets} --format json -o {output.json}"


def eta_sets(w):
    """The feature sets η compares: the sweep's students at the model's T1 and T2 (Tables 3, 4)."""
    t1, t2 = (f"students/{w.model}_a{w.alpha}_s{w.seed}/T{fmt(T)}/features" for T in config["eta"][w.model])
    return {"before": f"{t1}/train", "after": f"{t2}/train", "before-valid": f"{t1}/valid", "after-valid": f"{t2}/valid"}


def eta_title(kind):
    """The recipe's title of an η table (TITLES[kind]) for a model's T1 -> T2."""
    return lambda w: TITLES[kind].format(model=w.model, T1=fmt(config["eta"][w.model][0]),
                                         T2=fmt(config["eta"][w.model][1]), features_alpha=fmt(SIM["features_alpha"]))


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
        # config bootstrap (the demo): per-seed paired-bootstrap tests of η (Holm over the targets)
        bootstrap=lambda w: f"--bootstrap {config['bootstrap']} --seed {w.seed}" if config.get("bootstrap") else "",
    log: "logs/eta_{model}_a{alpha}_s{seed}.log"
    shell:
        METRICS + " eta {params.sets} --sets {input.sets} {params.bootstrap} --format json -o {output.json}"


rule eta_table:
    """Tables 3, 4 (and Table 12, the agreement of η's S1/S2 with feature space, unless they are feature space's)."""
    wildcard_constraints: model=ETA_MODEL
    input:
        etas=lambda w: expand("eta/eta_{model}_a{alpha}_s{seed}.json", model=w.model, alpha=STUDENTS[w.model], seed=SEEDS),
        agreement=[] if FEATURE_SPACE_SETS else expand("eta/similar_s{seed}.json", seed=TEACHER_SEEDS),
    output:
        md="tables/eta_{model}.md",
        csv="tables/eta_{model}.csv",
    params:
        title=eta_title("eta"),
        agreement=quote(["--agreement", *expand("eta/similar_s{seed}.json", seed=TEACHER_SEEDS),
                         *(["--sets", SETS_FILE] if SETS_FILE else []), "--agreement-note", AGREEMENT_NOTE]
                        if not FEATURE_SPACE_SETS else []),
    log: "logs/table_eta_{model}.log"
    shell:
        TABLES + " eta --inputs {input.etas} {params.agreement} --title {params.title:q} --out tables/eta_{wildcards.model}"


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
        title=eta_title("eta_pairwise"),
    log: "logs/table_eta_pairwise_{model}.log"
    shell:
        TABLES + " eta --inputs {input} --title {params.title:q} --out tables/eta_pairwise_{wildcards.model}"


ETA_OUTPUTS = expand(rules.eta_table.output.md, model=config["eta"]) + expand(rules.eta_pairwise_table.output.md, model=config["eta"])
