# The IWSLT14 recipe (config/iwslt.yaml), per translation direction: the data (preprocess.iwslt14, as
# fairseq's prepare-iwslt14.sh), fairseq teachers (label_smoothed_cross_entropy, each α) and ls_kd
# students at each T through the kd_translation task, then BLEU, α x T, mean ± std over seeds
# (Tables 7, 8). Paths: data/<pair>/, nmt/<pair>/{teacher_a<α>,student_a<α>_T<T>}_s<seed>/, tables/.
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


TARGETS = expand(rules.bleu_table.output.md, pair=config["pairs"])
