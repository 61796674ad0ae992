# The CUB-200-2011 recipe (config/cub.yaml): teachers and student sweeps (rules/paper_vision.smk), the
# mean entropy of the teachers' targets and the entropy-matched temperatures (Table 13), students of
# the α = 0 teacher at those temperatures (Tables 14-16), per-class accuracy, Figure 4, the tables and the
# accuracy table's paired tests; ours (the paper has no CUB η): η and η_pairwise of the Figure 4 classes
# in the layout of Tables 3, 4 and 21, with S1/S2 from feature space (CUB has no class hierarchy).
TITLES = {"entropy": "CUB-200-2011: smoothness of the ResNet-50 teachers' targets (Table 13)",
          "counterexamples": "CUB-200-2011: same smoothness, different students (Tables 14-16)",
          "accuracy": "CUB-200-2011: ResNet-50 teachers -> ResNet-18 / ResNet-50 / MobileNetV2 students "
                      "(Tables 5, 6, 9, 20)",
          "per_class_accuracy": "CUB-200-2011: per-class accuracy of the Figure 4 classes, ResNet-50 teachers -> "
                                "ResNet-18 / ResNet-50 / MobileNetV2 students (Tables 17-19 layout)",
          "eta": "CUB-200-2011 η (Tables 3, 4 layout), {model} student, T1 = {T1} -> T2 = {T2}; S1/S2 from the "
                 "α = {features_alpha} teacher's feature space, 1 % nearest / 90 % farthest (ours: the paper has no CUB η)",
          "eta_pairwise": "CUB-200-2011 η_pairwise (Table 21 layout), {model} student, T1 = {T1} -> T2 = {T2}; S1/S2 "
                          "from the α = {features_alpha} teacher's feature space, 1 % nearest / 90 % farthest (ours)"}


include: "paper_vision.smk"


MATCH = config["match"]
PLAIN, SMOOTH = (f"teachers/a{fmt(MATCH[k])}_s{{seed}}/features/train" for k in ("alpha", "reference_alpha"))
REFS = [fmt(T) for T in MATCH["reference_temperatures"]]


rule entropy:
    """Table 13: the mean entropy (nats) of every teacher's training-set targets softmax(z/T) at each T."""
    input:
        [f for a in ALPHAS for f in feature_files(f"teachers/a{a}_s{{seed}}/features/train", logits=True)],
    output:
        json="analysis/entropy_s{seed}.json",
    params:
        feats=lambda w: [f"teachers/a{a}_s{w.seed}/features/train" for a in ALPHAS],
        temps=TEMPS,
    log: "logs/entropy_s{seed}.log"
    shell:
        METRICS + " entropy --features {params.feats} --temperature {params.temps} --format json -o {output.json}"


rule match_temperature:
    """The temperature at which the α = 0 teacher's targets have the α = 0.1 teacher's entropy at T_ref."""
    input:
        feature_files(PLAIN, logits=True),
        feature_files(SMOOTH, logits=True),
    output:
        json="analysis/match_T{ref}_s{seed}.json",
    params:
        plain=lambda w: PLAIN.format(seed=w.seed),
        smooth=lambda w: SMOOTH.format(seed=w.seed),
    log: "logs/match_T{ref}_s{seed}.log"
    shell:
        METRICS + " match-temperature --features {params.plain} --reference {params.smooth} "
        "--reference-temperature {wildcards.ref} --format json -o {output.json}"


rule matched_student:
    """Tables 14, 15: a student of the α = 0 teacher at the matched temperature, read from match_temperature's
    output when the job starts (a dry run shows it as <TBD>); a changed value re-runs the student."""
    input:
        teacher=f"teachers/a{fmt(MATCH['alpha'])}_s{{seed}}/model.pt",
        match="analysis/match_T{ref}_s{seed}.json",
    output:
        model="matched/{model}_s{seed}/ref{ref}/model.pt",
    params:
        cmd=lambda w, input, resources: quote(study.paper_vision_command(config, "student", w.model, w.seed, resources.gpu)
            + ["--teacher", input.teacher, "--beta", fmt(config["student"]["beta"]),
               "--output-dir", f"matched/{w.model}_s{w.seed}/ref{w.ref}"]),
        T=lambda w, input: repr(study.read_json(input.match)["temperature"]),
    threads: config["threads_per_training"]
    resources: **training("student")
    log: "logs/matched_{model}_s{seed}_ref{ref}.log"
    shell:
        LOG + " {ROOT}/scripts/workflow/resumable.sh vision matched/{wildcards.model}_s{wildcards.seed}/ref{wildcards.ref} "
        "{params.cmd} --temperature {params.T}"


# ---- Table 13's rows at the matched temperatures (T = 1.481, 5.638 in the paper): every teacher's entropy
# at the α = 0 teacher's T*, read from match_temperature's output when the job starts (a dry run: <TBD>)
rule entropy_matched:
    input:
        [f for a in ALPHAS for f in feature_files(f"teachers/a{a}_s{{seed}}/features/train", logits=True)],
        match="analysis/match_T{ref}_s{seed}.json",
    output:
        json="analysis/entropy_matched_T{ref}_s{seed}.json",
    params:
        feats=lambda w: [f"teachers/a{a}_s{w.seed}/features/train" for a in ALPHAS],
        T=lambda w, input: repr(study.read_json(input.match)["temperature"]),
    log: "logs/entropy_matched_T{ref}_s{seed}.log"
    shell:
        METRICS + " entropy --features {params.feats} --temperature {params.T} --format json -o {output.json}"


rule entropy_table:
    input:
        entropy=expand("analysis/entropy_s{seed}.json", seed=SEEDS),
        match=expand("analysis/match_T{ref}_s{seed}.json", ref=REFS, seed=SEEDS),
        matched=expand("analysis/entropy_matched_T{ref}_s{seed}.json", ref=REFS, seed=SEEDS),
    output:
        md="tables/entropy.md",
        csv="tables/entropy.csv",
    params:
        title=TITLES["entropy"],
    log: "logs/table_entropy.log"
    shell:
        TABLES + " entropy --inputs {input.entropy} --match {input.match} --matched-entropy {input.matched} "
        "--title {params.title:q} --out tables/entropy"


rule counterexamples_table:
    input:
        rules.accuracy_table.input,
        match=expand("analysis/match_T{ref}_s{seed}.json", ref=REFS, seed=SEEDS),
        matched=expand("matched/{model}_s{seed}/ref{ref}/model.pt", model=STUDENTS, seed=SEEDS, ref=map(fmt, MATCH["trained"])),
    output:
        md="tables/counterexamples.md",
        csv="tables/counterexamples.csv",
    params:
        title=TITLES["counterexamples"],
    log: "logs/table_counterexamples.log"
    shell:
        TABLES + " counterexamples --match {input.match} --students students --matched matched "
        "--title {params.title:q} --out tables/counterexamples"


# ---- ours: η (Tables 3, 4 layout) and η_pairwise (Table 21 layout) of config targets, S1/S2 from feature
# space (config similar has no hierarchy and no sets file)
include: "eta.smk"


TARGETS = VISION_TARGETS + rules.entropy_table.output + rules.counterexamples_table.output + ETA_OUTPUTS


# ---- Figure 2 (soft targets) and Supp. D (systematic, not isotropic): config soft_targets, isotropy
include: "soft_targets.smk"


TARGETS = TARGETS + SOFT_TARGETS_OUTPUTS
