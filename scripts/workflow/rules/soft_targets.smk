# Figure 2 and Supp. D, included by rules/imagenet.smk and rules/cub.smk after paper_vision.smk: the LS
# teacher's mean soft targets softmax(z/T) over one class's training samples, one panel per T
# (config soft_targets), and for a few classes how many of the other K - 1 mean probabilities are at
# least `ratio` times below the second largest (config isotropy: "systematic, not isotropic"). Both
# read the first seed's teacher's train features: its logits.npy, or, where the recipe dumps no train
# logits (ImageNet: logits_splits [valid]), its features and head, streamed for the asked classes only.
SOFT, ISO = config["soft_targets"], config["isotropy"]
for _part, _alpha in (("soft_targets", SOFT["alpha"]), ("isotropy", ISO["alpha"])):
    if _alpha not in config["alphas"]:
        sys.exit(f"[workflow] error: config: {_part}.alpha {_alpha} is not among the teachers' alphas {config['alphas']}")


def teacher_train(alpha):
    """The first seed's teacher of ``alpha``: its training-set feature set and the files that make it."""
    d = f"teachers/a{fmt(alpha)}_s{S0}/features/train"
    return d, feature_files(d, "train" in config["logits_splits"])


rule soft_targets:
    """Figure 2: mean soft targets of the target's training samples at each T: the target, its similar
    classes, then the others."""
    input:
        teacher_train(SOFT["alpha"])[1],
    output:
        png=f"figures/soft_targets_s{S0}.png",
        json=f"figures/soft_targets_s{S0}.json",
    params:
        feats=teacher_train(SOFT["alpha"])[0],
        target=names([SOFT["target"]])[0],
        similar=",".join(names(SOFT["similar"])),
        temps=[fmt(T) for T in SOFT["temperatures"]],
    log: "logs/soft_targets.log"
    shell:
        METRICS + " soft-targets --features {params.feats} --target {params.target:q} --similar {params.similar:q} "
        "--temperature {params.temps} --out {output.png} --format json -o {output.json}"


ISOTROPY = ("{PY} -m shared_metrics isotropy --features {params.feats} --target {params.targets:q} "
            "--temperature {params.T} --ratio {params.ratio}")


rule isotropy:
    """Supp. D: per target, the mean probability vector's negligible classes (at least `ratio` times below
    the largest non-target probability), as JSON and as a markdown table."""
    input:
        teacher_train(ISO["alpha"])[1],
    output:
        json=f"analysis/isotropy_s{S0}.json",
        md="tables/isotropy.md",
    params:
        feats=teacher_train(ISO["alpha"])[0],
        targets=",".join(names(ISO["targets"])),
        T=fmt(ISO["temperature"]),
        ratio=fmt(ISO["ratio"]),
    log:
        json=f"logs/isotropy_s{S0}.log",
        md="logs/table_isotropy.log",
    shell:
        "{ROOT}/scripts/workflow/logged.sh {log.json} " + ISOTROPY + " --format json -o {output.json} && "
        "{ROOT}/scripts/workflow/logged.sh {log.md} " + ISOTROPY + " --format markdown -o {output.md}"


SOFT_TARGETS_OUTPUTS = rules.soft_targets.output + rules.isotropy.output
