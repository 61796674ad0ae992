# Vision: LS teachers, then one temperature sweep of KD students per teacher and seed (one teacher
# forward a batch for all T), each with its feature sets (vision/distill.py --dump-features).


def vision_resources(epochs_key):
    v = config["vision"]
    return {"gpu": 1 if v["device"] == "cuda" else 0,
            "runtime": v.get("runtime_minutes", {}).get(epochs_key, 60)}


rule vision_teacher:
    output:
        model="vision/teacher_a{alpha}/model.pt",
        # with logits: the analysis reads them (entropy, soft targets, stability, accuracy)
        features=expand("vision/teacher_a{{alpha}}/features/{split}/{file}", split=SPLITS,
                        file=study.FEATURE_ARRAYS + ("logits.npy",)),
    params:
        cmd=lambda w: quote(study.vision_command(config, "teacher") + [
            "--mode", "teacher", "--label-smoothing", w.alpha, "--seed", SEEDS[0],
            "--output-dir", f"vision/teacher_a{w.alpha}"]),
    threads: config.get("threads_per_job", 1)
    resources: **vision_resources("teacher")
    log: "logs/vision-teacher-a{alpha}.log"
    benchmark: "benchmarks/vision-teacher-a{alpha}.tsv"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {ROOT}/scripts/workflow/resumable.sh vision vision/teacher_a{wildcards.alpha} "
        "{PY} {ROOT}/vision/distill.py {params.cmd}"


rule vision_students:
    input:
        teacher="vision/teacher_a{alpha}/model.pt",
    output:
        expand("vision/students_a{{alpha}}/seed{{seed}}/T{T}/features/{split}/{file}", T=TEMPS, split=SPLITS,
               file=study.FEATURE_ARRAYS + ("logits.npy",)),
    params:
        cmd=lambda w, input: quote(study.vision_command(config, "student") + [
            "--mode", "student", "--teacher", input.teacher, "--temperature", *TEMPS, "--seed", w.seed,
            "--output-dir", f"vision/students_a{w.alpha}/seed{w.seed}"]),
    threads: config.get("threads_per_job", 1)
    resources: **vision_resources("student")
    log: "logs/vision-students-a{alpha}-seed{seed}.log"
    benchmark: "benchmarks/vision-students-a{alpha}-seed{seed}.tsv"
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log} {ROOT}/scripts/workflow/resumable.sh vision vision/students_a{wildcards.alpha}/seed{wildcards.seed} "
        "{PY} {ROOT}/vision/distill.py {params.cmd}"
