# The demo study (config/{tiny,quick,full}.yaml): the vision recipes' rules on Fashion-MNIST (teachers,
# student sweeps, accuracy and its paired tests, η with Table 12, Table 13's entropy, per-class accuracy,
# the projection and soft-target figures, isotropy) plus the teachers' stability, then the translation
# half on the Bible (rules/nmt.smk: fairseq teachers, ls_kd students, BLEU, decoder features), its η and
# paired BLEU tests, and the report (scripts/workflow/report.py), which only reads what these rules wrote.
TITLES = {"accuracy": "Fashion-MNIST: ResNet-18 teachers -> ResNet-18 students (Table 2 layout)",
          "per_class_accuracy": "Fashion-MNIST: per-class accuracy of the η targets (Tables 17-19 layout)",
          "entropy": "Fashion-MNIST: smoothness of the teachers' targets (Table 13 layout)",
          "eta": "Fashion-MNIST η (Table 3 layout), {model} student, T1 = {T1} -> T2 = {T2}",
          "eta_pairwise": "Fashion-MNIST η_pairwise (Table 21 layout), {model} student, T1 = {T1} -> T2 = {T2}"}


include: "paper_vision.smk"
include: "eta.smk"
include: "entropy.smk"
include: "soft_targets.smk"

MODEL = next(iter(config["students"]))  # the demo's one student model (study.check_demo)
T1, T2 = (fmt(T) for T in config["eta"][MODEL])
REF_SEED = SEEDS[0]  # the student whose features pick the translation targets
BOOT = config.get("bootstrap", 1000)  # bootstrap replicates of the per-seed tests
OTHER_TEMPS = [T for T in TEMPS if T != "1"]
NMT = config["nmt"].get("enabled", True)
TEACHER_VALID = [f"{teacher_dir(a, S0)}/features/valid" for a in ALPHAS]


def metrics(args):
    """Shell text running `lskd-metrics ARGS --format json -o {output.json}`, its command in the log."""
    return METRICS + f" {args} --format json -o {{output.json}}"


rule stability:
    """Shen et al.'s stability (Eq. 2) and inter-class stability (Eq. 5) of the teachers."""
    input: [f for d in TEACHER_VALID for f in feature_files(d, logits=True)]
    output: json="analysis/stability.json"
    params: sets=TEACHER_VALID
    log: "logs/stability.log"
    shell: metrics("stability --features {params.sets}")


include: "nmt.smk"


# ------------------------------------------------------------------------------ translation
def nfeats(T, alpha="{alpha}", seed="{seed}"):
    return f"nmt/features/a{alpha}_seed{seed}_T{T}"


rule nmt_targets:
    input:
        feature_files(nfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED)),
        text=NMT_TRAIN_TEXT,
    output: json="analysis/nmt_targets.json", words="analysis/nmt_whole_words.txt"
    params: feats=nfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED), n=config["nmt"]["num_targets"]
    log: "logs/nmt_targets.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} -m nmt_plugin.targets {params.feats} {input.text} {params.n} "
        "{output.json} {output.words}"


rule nmt_sets:
    """S1/S2 of each target among the candidate words (nmt_plugin.targets: whole words of 3+ letters)."""
    input:
        feature_files(nfeats(T1, seed=REF_SEED)), targets="analysis/nmt_targets.json",
           words="analysis/nmt_whole_words.txt"
    output: json="analysis/nmt/similar_a{alpha}.json", sets="analysis/nmt_sets_a{alpha}.json"
    params:
        feats=nfeats(T1, seed=REF_SEED),
            targets=lambda w, input: quote([",".join(study.read_json(input.targets)["targets"])])
    log: "logs/nmt_sets_a{alpha}.log"
    shell:
        metrics("similar --features {params.feats} --target {params.targets} --candidate-list {input.words} "
            "--write-sets {output.sets}")


rule nmt_eta:
    input: feature_files(nfeats(T1)), feature_files(nfeats(T2)), sets="analysis/nmt_sets_a{alpha}.json"
    output: json="analysis/nmt/eta_a{alpha}_seed{seed}.json"
    params: before=nfeats(T1), after=nfeats(T2)
    log: "logs/nmt_eta_a{alpha}_seed{seed}.log"
    shell:
        metrics("eta --before {params.before} --after {params.after} --sets {input.sets} --bootstrap {BOOT} "
            "--seed {wildcards.seed}")


def bleu_paired(baseline, systems):
    """Shell text of sacrebleu's paired bootstrap (nmt_plugin.bleu paired) against ``baseline``."""
    return ("{ROOT}/scripts/workflow/logged.sh {log} {PY} -m nmt_plugin.bleu paired --table nmt/bleu "
            f"--baseline {baseline} --system {systems} --bootstrap {BOOT} --seed {{params.seed}} --format json "
            "-o {output.json}")


rule bleu_paired_alpha:
    """The LS teacher's student against the plain teacher's, same T and seed, same test sentences."""
    input: rules.nmt_bleu.output,
    output: json="analysis/nmt/bleu_alpha_seed{seed}_T{T}.json"
    params: seed=lambda w: 1 + int(w.seed)  # sacrebleu's seed must be >= 1
    log: "logs/bleu_alpha_seed{seed}_T{T}.log"
    shell:
        bleu_paired(f"nmt/students_a{ALPHAS[0]}/seed{{wildcards.seed}}/T{{wildcards.T}}/model.pt",
                    f"nmt/students_a{ALPHAS[1]}/seed{{wildcards.seed}}/T{{wildcards.T}}/model.pt")


rule bleu_paired_temperature:
    """A teacher's students at each other T against its student at T = 1, same seed (Holm over the T)."""
    input: rules.nmt_bleu.output,
    output: json="analysis/nmt/bleu_a{alpha}_seed{seed}_T1.json"
    params: seed=lambda w: 1 + int(w.seed)
    log: "logs/bleu_a{alpha}_seed{seed}_T1.log"
    shell:
        bleu_paired("nmt/students_a{wildcards.alpha}/seed{wildcards.seed}/T1/model.pt",
                    " ".join(f"nmt/students_a{{wildcards.alpha}}/seed{{wildcards.seed}}/T{T}/model.pt"
                             for T in OTHER_TEMPS))


rule bleu_paired_table:
    """The paired tests of BLEU across seeds (scripts.recipes.tables paired-bleu, as the IWSLT recipe's)."""
    input:
        bleu=rules.nmt_bleu.output.csv,
        tests=expand("analysis/nmt/bleu_alpha_seed{seed}_T{T}.json", seed=SEEDS, T=TEMPS)
        + expand("analysis/nmt/bleu_a{alpha}_seed{seed}_T1.json", alpha=ALPHAS, seed=SEEDS),
    output: md="tables/paired_bleu.md", csv="tables/paired_bleu.csv"
    params: title="Translation: paired tests of the students' BLEU"
    log: "logs/table_paired_bleu.log"
    shell:
        TABLES + " paired-bleu --inputs {input.tests} --bleu {input.bleu} --title {params.title:q} --out tables/paired_bleu"


# ---------------------------------------------------------------------------------- report
VISION_OUTPUTS = (VISION_TARGETS + ETA_OUTPUTS + SOFT_TARGETS_OUTPUTS + rules.entropy_table.output
                  + rules.stability.output
                  + expand("eta/eta_{model}_a{alpha}_s{seed}.json", model=MODEL, alpha=ALPHAS, seed=SEEDS))
NMT_OUTPUTS = (rules.nmt_bleu.output + rules.bleu_paired_table.output
               + expand("analysis/nmt/eta_a{alpha}_seed{seed}.json", alpha=ALPHAS, seed=SEEDS)) if NMT else []


rule study_config:
    """The configuration the report describes; re-written (and the report re-run) when it changes."""
    output: "analysis/config.json",
    params: config=lambda w: study.json_arg(config),
    run:
        Path(output[0]).write_text(params.config + "\n")


rule report:
    input:
        VISION_OUTPUTS, NMT_OUTPUTS,
        config="analysis/config.json",
    output: "report.md",
    log: "logs/report.log",
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} {ROOT}/scripts/workflow/report.py --config {input.config} --out {output}"


TARGETS = ["report.md"]
