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


include: "entropy.smk"


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
