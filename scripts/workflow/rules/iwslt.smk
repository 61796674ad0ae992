# The IWSLT14 recipe (config/iwslt.yaml), per translation direction: the data (preprocess.iwslt14, as
# fairseq's prepare-iwslt14.sh), fairseq teachers (label_smoothed_cross_entropy, each α) and ls_kd
# students at each T through the kd_translation task, then BLEU, α x T, mean ± std over seeds
# (Tables 7, 8), and its paired tests. Paths: data/<pair>/, nmt/<pair>/{teacher_a<α>,student_a<α>_T<T>}_s<seed>/,
# bleu_paired/<pair>/, tables/.
from study import fmt  # noqa: E402

ALPHAS = [fmt(a) for a in config["alphas"]]
TEMPS = [fmt(T) for T in config["temperatures"]]
LOG = "{ROOT}/scripts/workflow/logged.sh {log}"
TRAINING = {"gpu": config["gpus_per_training"], "runtime": config["runtime_minutes"],
            "gpu_jobs": int(config["gpus_per_training"] > 0)}   # see rules/paper_vision.smk, training()
TEACHER, STUDENT = "nmt/{pair}/teacher_a{alpha}_s{seed}", "nmt/{pair}/student_a{alpha}_T{T}_s{seed}"


rule iwslt_data:
    output:
        "data/{pair}/manifest.json",
    params:
        cmd=lambda w: quote(study.paper_data_command(config, w.pair)),
    log: "logs/data_{pair}.log"
    shell:
        LOG + " {params.cmd}"


rule iwslt_teacher:
    input:
        "data/{pair}/manifest.json",
    output:
        model=TEACHER + "/model.pt",
    params:
        dir=lambda w: TEACHER.format(**w),
        cmd=lambda w, resources: quote(study.paper_fairseq_command(config, w.pair, TEACHER.format(**w), w.seed, resources.gpu)
            + ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", w.alpha]),
    threads: config["threads_per_training"]
    resources: **TRAINING
    retries: 1  # a failed try resumes from checkpoint_last (resumable.sh), as in rules/nmt.smk
    log: "logs/teacher_{pair}_a{alpha}_s{seed}.log"
    shell:
        LOG + " {ROOT}/scripts/workflow/resumable.sh fairseq {params.dir} {params.cmd}"


rule iwslt_student:
    input:
        "data/{pair}/manifest.json",
        teacher=TEACHER + "/model.pt",
    output:
        model=STUDENT + "/model.pt",
    params:
        dir=lambda w: STUDENT.format(**w),
        cmd=lambda w, input, resources: quote(study.paper_fairseq_command(config, w.pair, STUDENT.format(**w), w.seed,
            resources.gpu) + ["--task", "kd_translation", "--teacher-path", input.teacher, "--kd-temperature", w.T,
                              "--criterion", "ls_kd", "--kd-beta", fmt(config["kd_beta"]), "--label-smoothing", "0"]),
    threads: config["threads_per_training"]
    resources: **TRAINING
    retries: 1  # a failed try resumes from checkpoint_last (resumable.sh), as in rules/nmt.smk
    log: "logs/student_{pair}_a{alpha}_T{T}_s{seed}.log"
    shell:
        LOG + " {ROOT}/scripts/workflow/resumable.sh fairseq {params.dir} {params.cmd}"


rule bleu_table:
    """Beam 5, sacrebleu on the test set of every teacher and student of a direction (Tables 7, 8)."""
    input:
        teachers=lambda w: expand(TEACHER + "/model.pt", pair=w.pair, alpha=ALPHAS, seed=config["seeds"]),
        students=lambda w: expand(STUDENT + "/model.pt", pair=w.pair, alpha=ALPHAS, T=TEMPS, seed=config["seeds"]),
    output:
        md="tables/bleu_{pair}.md",
        csv="tables/bleu_{pair}.csv",
    params:
        flags=config["bleu_flags"],
    threads: workflow.cores
    resources: gpu=min(1, config["gpus_per_training"])
    log: "logs/bleu_{pair}.log"
    shell:
        LOG + " {PY} -m nmt_plugin.bleu table {input.teachers} {input.students} --data data/{wildcards.pair}/bin "
        "--out tables/bleu_{wildcards.pair} --jobs {threads} {params.flags}"


# ---- paired tests behind the BLEU table (#12): per seed sacrebleu's paired bootstrap resampling on the test
# sentences (nmt_plugin.bleu paired, on the translations bleu_table kept), across seeds the paired t-interval
# (tables paired-bleu); each other teacher α against α = 0 at each T, each other T against the lowest per α
A0, T0 = ALPHAS[0], TEMPS[0]
PAIRED = "bleu_paired/{pair}/"
BLEU_PAIRED = (LOG + " {PY} -m nmt_plugin.bleu paired --table tables/bleu_{wildcards.pair} --baseline {params.baseline} "
               "--system {params.systems} --seed {params.seed} --format json -o {output.json}")


rule bleu_paired_alpha:
    input:
        rules.bleu_table.output.md,
    output:
        json=PAIRED + "alpha_T{T}_s{seed}.json",
    params:
        baseline=lambda w: STUDENT.format(pair=w.pair, alpha=A0, T=w.T, seed=w.seed) + "/model.pt",
        systems=lambda w: quote(STUDENT.format(pair=w.pair, alpha=a, T=w.T, seed=w.seed) + "/model.pt"
                                for a in ALPHAS if a != A0),
        seed=lambda w: 1 + int(w.seed),  # sacrebleu's seed must be >= 1
    log: "logs/bleu_paired_{pair}_alpha_T{T}_s{seed}.log"
    shell:
        BLEU_PAIRED


rule bleu_paired_temperature:
    input:
        rules.bleu_table.output.md,
    output:
        json=PAIRED + "a{alpha}_s{seed}.json",
    params:
        baseline=lambda w: STUDENT.format(pair=w.pair, alpha=w.alpha, T=T0, seed=w.seed) + "/model.pt",
        systems=lambda w: quote(STUDENT.format(pair=w.pair, alpha=w.alpha, T=T, seed=w.seed) + "/model.pt"
                                for T in TEMPS if T != T0),
        seed=lambda w: 1 + int(w.seed),
    log: "logs/bleu_paired_{pair}_a{alpha}_s{seed}.log"
    shell:
        BLEU_PAIRED


rule bleu_paired_table:
    input:
        bleu=rules.bleu_table.output.csv,
        tests=lambda w: expand(PAIRED + "alpha_T{T}_s{seed}.json", pair=w.pair, T=TEMPS, seed=config["seeds"])
        + expand(PAIRED + "a{alpha}_s{seed}.json", pair=w.pair, alpha=ALPHAS, seed=config["seeds"]),
    output:
        md="tables/paired_bleu_{pair}.md",
        csv="tables/paired_bleu_{pair}.csv",
    params:
        title=lambda w: f"IWSLT14 {w.pair}: paired tests of the students' BLEU (Tables 7, 8)",
    log: "logs/table_paired_bleu_{pair}.log"
    shell:
        LOG + " {PY} -m scripts.recipes.tables paired-bleu --inputs {input.tests} --bleu {input.bleu} "
        "--title {params.title:q} --out tables/paired_bleu_{wildcards.pair}"


TARGETS = expand([rules.bleu_table.output.md, rules.bleu_paired_table.output.md], pair=config["pairs"])
