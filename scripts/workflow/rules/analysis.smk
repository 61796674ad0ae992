# The analysis: one lskd-metrics call a rule (JSON under analysis/, figures under figures/), then the
# report, which only reads what these rules wrote.

V = config["vision"]
T1, T2 = (f"{config['eta'][k]:g}" for k in ("T1", "T2"))
REF_SEED = SEEDS[0]  # the student whose features pick S1/S2 and the translation targets
BOOT = config.get("bootstrap", 1000)  # bootstrap replicates of the per-seed intervals and tests
OTHER_TEMPS = [T for T in TEMPS if T != "1"]


def metrics(args):
    """Shell text running `lskd-metrics ARGS --format json -o {output.json}`, its command in the log."""
    return f"{{ROOT}}/scripts/workflow/logged.sh {{log}} {{PY}} -m shared_metrics {args} --format json -o {{output.json}}"


def tfeats(split="train"):
    return f"vision/teacher_a{{alpha}}/features/{split}"


def sfeats(T, split="train", alpha="{alpha}", seed="{seed}"):
    return f"vision/students_a{alpha}/seed{seed}/T{T}/features/{split}"


rule accuracy_teacher:
    input: feature_files(tfeats("valid"), logits=True)
    output: json="analysis/vision/accuracy_teacher_a{alpha}.json"
    params: feats=tfeats("valid")
    log: "logs/metrics/accuracy_teacher_a{alpha}.log"
    benchmark: "benchmarks/metrics/accuracy_teacher_a{alpha}.tsv"
    shell: metrics("accuracy --features {params.feats}")


rule accuracy_student:
    input: feature_files(sfeats("{T}", "valid"), logits=True)
    output: json="analysis/vision/accuracy_a{alpha}_seed{seed}_T{T}.json"
    params: feats=sfeats("{T}", "valid"), classes=quote([",".join(V["targets"])])
    log: "logs/metrics/accuracy_a{alpha}_seed{seed}_T{T}.log"
    benchmark: "benchmarks/metrics/accuracy_a{alpha}_seed{seed}_T{T}.tsv"
    shell: metrics("accuracy --features {params.feats} --classes {params.classes}")


rule fashion_sets:
    input: feature_files(sfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED))
    output: json="analysis/vision/fashion_similar.json", sets="analysis/fashion_sets.json"
    params: feats=sfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED), targets=quote([",".join(V["targets"])])
    log: "logs/metrics/fashion_sets.log"
    benchmark: "benchmarks/metrics/fashion_sets.tsv"
    shell:
        metrics("similar --features {params.feats} --target {params.targets} --hierarchy fashion-mnist "
            "--write-sets {output.sets}")


rule vision_eta:
    input:
        sets="analysis/fashion_sets.json",
        feats=[feature_files(sfeats(T, split)) for T in (T1, T2) for split in SPLITS],
    output: json="analysis/vision/eta_a{alpha}_seed{seed}.json"
    params: before=sfeats(T1), after=sfeats(T2), before_valid=sfeats(T1, "valid"), after_valid=sfeats(T2, "valid")
    log: "logs/metrics/eta_a{alpha}_seed{seed}.log"
    benchmark: "benchmarks/metrics/eta_a{alpha}_seed{seed}.tsv"
    shell:
        metrics("eta --before {params.before} --after {params.after} --before-valid {params.before_valid} "
            "--after-valid {params.after_valid} --sets {input.sets} --bootstrap {BOOT} --seed {wildcards.seed}")


rule compare_alpha:
    """The LS teacher's student against the plain teacher's, same T and seed, same images (McNemar)."""
    input:
        feature_files(sfeats("{T}", "valid", alpha=ALPHAS[0]), logits=True),
        feature_files(sfeats("{T}", "valid", alpha=ALPHAS[1]), logits=True),
    output: json="analysis/vision/compare/alpha_seed{seed}_T{T}.json"
    params: a=sfeats("{T}", "valid", alpha=ALPHAS[0]), b=sfeats("{T}", "valid", alpha=ALPHAS[1])
    log: "logs/metrics/compare_alpha_seed{seed}_T{T}.log"
    benchmark: "benchmarks/metrics/compare_alpha_seed{seed}_T{T}.tsv"
    shell: metrics("compare --a {params.a} --b {params.b} --bootstrap {BOOT} --seed {wildcards.seed}")


rule compare_temperature:
    """A teacher's student at T against its student at T = 1, same seed, same images (McNemar)."""
    input:
        feature_files(sfeats("1", "valid"), logits=True),
        feature_files(sfeats("{T}", "valid"), logits=True),
    output: json="analysis/vision/compare/a{alpha}_seed{seed}_T1_T{T}.json"
    params: a=sfeats("1", "valid"), b=sfeats("{T}", "valid")
    log: "logs/metrics/compare_a{alpha}_seed{seed}_T1_T{T}.log"
    benchmark: "benchmarks/metrics/compare_a{alpha}_seed{seed}_T1_T{T}.tsv"
    shell: metrics("compare --a {params.a} --b {params.b} --bootstrap {BOOT} --seed {wildcards.seed}")


rule teacher_entropy:
    input: feature_files(tfeats(), logits=True)
    output: json="analysis/vision/entropy_a{alpha}.json"
    params: feats=tfeats(), temps=" ".join(TEMPS)
    log: "logs/metrics/entropy_a{alpha}.log"
    benchmark: "benchmarks/metrics/entropy_a{alpha}.tsv"
    shell: metrics("entropy --features {params.feats} --temperature {params.temps}")


rule matched_temperature:
    input: [feature_files(f"vision/teacher_a{a}/features/train", logits=True) for a in ALPHAS]
    output: json="analysis/vision/matched_temperature.json"
    params: plain=f"vision/teacher_a{ALPHAS[0]}/features/train", smooth=f"vision/teacher_a{ALPHAS[1]}/features/train"
    log: "logs/metrics/matched_temperature.log"
    benchmark: "benchmarks/metrics/matched_temperature.tsv"
    shell:
        metrics("match-temperature --features {params.plain} --reference {params.smooth} --reference-temperature 1")


rule stability:
    input: [feature_files(f"vision/teacher_a{a}/features/valid", logits=True) for a in ALPHAS]
    output: json="analysis/vision/stability.json"
    params: sets=" ".join(f"vision/teacher_a{a}/features/valid" for a in ALPHAS)
    log: "logs/metrics/stability.log"
    benchmark: "benchmarks/metrics/stability.tsv"
    shell: metrics("stability --features {params.sets}")


PROJECTED = [f"vision/teacher_a{a}/features/train" if T is None else sfeats(T, alpha=a, seed=REF_SEED)
             for a in ALPHAS for T in (None, *TEMPS)]


rule projection:
    input: [feature_files(d) for d in PROJECTED]
    output: json="analysis/vision/projection.json", png="figures/projection_fashion.png"
    params: sets=" ".join(PROJECTED), classes=quote([V["projection_classes"]])
    log: "logs/metrics/projection.log"
    benchmark: "benchmarks/metrics/projection.tsv"
    shell: metrics("project --features {params.sets} --classes {params.classes} --out {output.png}")


rule soft_targets:
    input: feature_files(f"vision/teacher_a{ALPHAS[-1]}/features/train", logits=True)
    output: json="analysis/vision/soft_targets.json", png="figures/soft_targets_fashion.png"
    params:
        feats=f"vision/teacher_a{ALPHAS[-1]}/features/train", target=quote([V["soft_target"]["class"]]),
            similar=quote([V["soft_target"]["similar"]])
    log: "logs/metrics/soft_targets.log"
    benchmark: "benchmarks/metrics/soft_targets.tsv"
    shell:
        metrics("soft-targets --features {params.feats} --target {params.target} --similar {params.similar} "
            "--temperature 1 2 --out {output.png}")


# ------------------------------------------------------------------------------ translation
def nfeats(T, alpha="{alpha}", seed="{seed}"):
    return f"nmt/features/a{alpha}_seed{seed}_T{T}"


rule nmt_targets:
    input:
        feature_files(nfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED)),
        text=NMT_TRAIN_TEXT,
    output: json="analysis/nmt_targets.json", words="analysis/nmt_whole_words.txt"
    params: feats=nfeats(T1, alpha=ALPHAS[-1], seed=REF_SEED), n=config["nmt"]["num_targets"]
    log: "logs/metrics/nmt_targets.log"
    benchmark: "benchmarks/metrics/nmt_targets.tsv"
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
    log: "logs/metrics/nmt_sets_a{alpha}.log"
    benchmark: "benchmarks/metrics/nmt_sets_a{alpha}.tsv"
    shell:
        metrics("similar --features {params.feats} --target {params.targets} --candidate-list {input.words} "
            "--write-sets {output.sets}")


rule nmt_eta:
    input: feature_files(nfeats(T1)), feature_files(nfeats(T2)), sets="analysis/nmt_sets_a{alpha}.json"
    output: json="analysis/nmt/eta_a{alpha}_seed{seed}.json"
    params: before=nfeats(T1), after=nfeats(T2)
    log: "logs/metrics/nmt_eta_a{alpha}_seed{seed}.log"
    benchmark: "benchmarks/metrics/nmt_eta_a{alpha}_seed{seed}.tsv"
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
    log: "logs/metrics/bleu_alpha_seed{seed}_T{T}.log"
    benchmark: "benchmarks/metrics/bleu_alpha_seed{seed}_T{T}.tsv"
    shell:
        bleu_paired(f"nmt/students_a{ALPHAS[0]}/seed{{wildcards.seed}}/T{{wildcards.T}}/model.pt",
                    f"nmt/students_a{ALPHAS[1]}/seed{{wildcards.seed}}/T{{wildcards.T}}/model.pt")


rule bleu_paired_temperature:
    """A teacher's students at each other T against its student at T = 1, same seed (Holm over the T)."""
    input: rules.nmt_bleu.output,
    output: json="analysis/nmt/bleu_a{alpha}_seed{seed}_T1.json"
    params: seed=lambda w: 1 + int(w.seed)
    log: "logs/metrics/bleu_a{alpha}_seed{seed}_T1.log"
    benchmark: "benchmarks/metrics/bleu_a{alpha}_seed{seed}_T1.tsv"
    shell:
        bleu_paired("nmt/students_a{wildcards.alpha}/seed{wildcards.seed}/T1/model.pt",
                    " ".join(f"nmt/students_a{{wildcards.alpha}}/seed{{wildcards.seed}}/T{T}/model.pt"
                             for T in OTHER_TEMPS))


# ---------------------------------------------------------------------------------- report
def report_inputs(w):
    vision = (expand("analysis/vision/accuracy_teacher_a{alpha}.json", alpha=ALPHAS)
              + expand("analysis/vision/accuracy_a{alpha}_seed{seed}_T{T}.json", alpha=ALPHAS, seed=SEEDS, T=TEMPS)
              + expand("analysis/vision/eta_a{alpha}_seed{seed}.json", alpha=ALPHAS, seed=SEEDS)
              + expand("analysis/vision/entropy_a{alpha}.json", alpha=ALPHAS)
              + rules.matched_temperature.output + rules.stability.output + rules.projection.output
              + rules.soft_targets.output
              + expand("analysis/vision/compare/alpha_seed{seed}_T{T}.json", seed=SEEDS, T=TEMPS)
              + expand("analysis/vision/compare/a{alpha}_seed{seed}_T1_T{T}.json", alpha=ALPHAS, seed=SEEDS,
                       T=OTHER_TEMPS))
    nmt = (rules.nmt_bleu.output + expand("analysis/nmt/eta_a{alpha}_seed{seed}.json", alpha=ALPHAS, seed=SEEDS)
           + expand("analysis/nmt/bleu_alpha_seed{seed}_T{T}.json", seed=SEEDS, T=TEMPS)
           + expand("analysis/nmt/bleu_a{alpha}_seed{seed}_T1.json", alpha=ALPHAS, seed=SEEDS)
           + expand("nmt/students_a{alpha}/seed{seed}/T{T}/model.pt", alpha=ALPHAS, seed=SEEDS, T=TEMPS)) if NMT else []
    return vision + nmt


rule study_config:
    """The configuration the report describes; re-written (and the report re-run) when it changes."""
    output: "analysis/config.json",
    params: config=lambda w: study.json_arg(config),
    run:
        Path(output[0]).write_text(params.config + "\n")


rule report:
    input:
        report_inputs,
        config="analysis/config.json",
    output: "report.md",
    log: "logs/report.log",
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} {ROOT}/scripts/workflow/report.py --config {input.config} --out {output}"
