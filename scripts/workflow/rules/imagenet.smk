# The ImageNet-1K recipe (config/imagenet.yaml): teachers (or the official α = 0 teacher) and student
# sweeps (rules/paper_vision.smk), S1/S2 of the η targets (default: the paper's Table 3 groups, shipped in
# config/imagenet_table3_sets.json; or WordNet's k nearest) with their feature-space agreement (Table 12),
# η per student model (Tables 3, 4) and η_pairwise (Table 21), per-class accuracy (Tables 17-19), the
# Figure 1 projections, the tables and the accuracy table's paired tests.
TITLES = {"accuracy": "ImageNet-1K: ResNet-50 teachers -> ResNet-18 / ResNet-50 students (Tables 2, 10, 11)",
          "per_class_accuracy": "ImageNet-1K: per-class accuracy of the target classes, ResNet-50 teachers -> "
                                "ResNet-18 / ResNet-50 students (Tables 17-19)",
          "eta": "ImageNet-1K η, {model} student, T1 = {T1} -> T2 = {T2}",
          "eta_pairwise": "ImageNet-1K η_pairwise (Table 21), {model} student, T1 = {T1} -> T2 = {T2}"}


include: "paper_vision.smk"


# ---- S1/S2 of the η targets (config similar), η (Tables 3, 4, with Table 12) and η_pairwise (Table 21).
# Default S1/S2 (similar.sets_file): the paper's reading of Table 3, two groups of five (retrievers, snakes)
# with each target's S1 the other four of its group, shipped as a sets file; its S2 are 20 classes drawn
# once from the WordNet-dissimilar ones (select_from_hierarchy, seed 0). WordNet's k nearest
# (similar.sets_file: null, the similar.hierarchy/k/n/seed draw) ties the colubrid snakes at distance 2 and
# gives green_snake instead of a Table 3 snake to 4 of the 5 snake targets.
include: "eta.smk"


TARGETS = VISION_TARGETS + ETA_OUTPUTS


# ---- Figure 2 (soft targets) and Supp. D (systematic, not isotropic): config soft_targets, isotropy
include: "soft_targets.smk"


TARGETS = TARGETS + SOFT_TARGETS_OUTPUTS
