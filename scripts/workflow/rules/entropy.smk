# Table 13, included after paper_vision.smk by rules/cub.smk and rules/demo.smk: the mean entropy (nats) of
# every teacher's training-set targets softmax(z/T) at each T, the temperatures at which the α = 0 teacher's
# targets match the α = 0.1 teacher's entropy at T_ref (config match), and every teacher's entropy there.
# The including file sets TITLES["entropy"].
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
        entropy=expand("analysis/entropy_s{seed}.json", seed=TEACHER_SEEDS),
        match=expand("analysis/match_T{ref}_s{seed}.json", ref=REFS, seed=TEACHER_SEEDS),
        matched=expand("analysis/entropy_matched_T{ref}_s{seed}.json", ref=REFS, seed=TEACHER_SEEDS),
    output:
        md="tables/entropy.md",
        csv="tables/entropy.csv",
    params:
        title=TITLES["entropy"],
    log: "logs/table_entropy.log"
    shell:
        TABLES + " entropy --inputs {input.entropy} --match {input.match} --matched-entropy {input.matched} "
        "--title {params.title:q} --out tables/entropy"
