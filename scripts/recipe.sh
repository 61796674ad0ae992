#!/usr/bin/env bash
# Set up the environment if needed, then run one of the paper's experiments through the Snakemake
# workflow (scripts/workflow/, config/RECIPE.yaml: every hyper-parameter, checked against the paper
# line by line) and write its tables, mean ± std over seeds (OUT/tables/*.md, *.csv). A re-run after
# success does nothing; a re-run after an interruption resumes the interrupted trainings.
#
#   ./scripts/recipe.sh imagenet|cub|iwslt [--data PATH] [--pretrained MODEL=FILE ...] [--toy]
#                       [--out DIR] [--jobs N] [--gpus N] [--dry-run] [--set KEY=VALUE ...] [--unlock]
#                       [-- SNAKEMAKE_ARGS...]
#
#   imagenet        Tables 2-4, 10-12, 17-19, 21, Figures 1-3; cub: Tables 5, 6, 9, 13-16, 20, Figures
#                   2, 4, η and η_pairwise (ours: Tables 3, 4, 21 layout, feature-space S1/S2);
#                   iwslt: Tables 7, 8 (BLEU, English-German and English-Russian)
#   --data PATH     imagenet, cub: an ImageFolder root with train/ and val/; iwslt: the raw IWSLT14 files
#                   (the official 2014-01.tgz, or a folder with the pairs' archives); nothing is downloaded
#   --pretrained MODEL=FILE  cub: ImageNet weights of resnet50 (the teachers), resnet18, mobilenet_v2
#   --toy           the same jobs at toy size on a CPU on built-in data (config/RECIPE-toy.yaml merged
#                   over config/RECIPE.yaml), no --data; it checks the plumbing, its numbers mean nothing
#   --out DIR       the output directory (Snakemake's --directory; default runs/RECIPE[-toy])
#   --jobs N        jobs side by side (Snakemake's --cores; default: the CPU count)
#   --gpus N        this machine's GPUs (default: as many as nvidia-smi lists): one training at a time on
#                   at most N of them (Snakemake's --resources gpu=N gpu_jobs=1; the batch is split over
#                   the GPUs a training gets). Without GPUs, no limit: a training asks for the config's
#                   gpus_per_training, as a dry run or a cluster job shows it
#   --dry-run       Snakemake's -n -p: every job that would run, why, and its command; runs nothing
#   --set KEY=VALUE any value of the config (dotted keys for nested ones, e.g. --set seeds=[1]
#                   --set teacher.epochs=45; paths absolute); checked before anything runs
#   --unlock        remove the lock a killed Snakemake left in OUT (Snakemake's --unlock)
#   -- ARGS         passed to snakemake as they are, e.g. -- --profile scripts/workflow/profiles/slurm
#                   (see scripts/workflow/README.md, "Clusters (SLURM)")
set -euo pipefail
name=recipe
source "$(dirname "${BASH_SOURCE[0]}")/workflow/run.sh"   # the flags shared with demo.sh; run_study
toy=""
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); [ "$gpus" != 0 ] || gpus=""
own_flag() {
  case "$1" in
    --data) [ $# -ge 2 ] || die "--data needs a path"; config+=("data=$(realpath -m "$2")"); used=2 ;;
    --pretrained) [ $# -ge 2 ] && [[ "$2" == ?*=?* ]] || die "--pretrained needs MODEL=FILE"
                  config+=("pretrained.${2%%=*}=$(realpath -m "${2#*=}")"); used=2 ;;
    --toy) toy=-toy; used=1 ;;
    --gpus) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--gpus needs a whole number >= 1"; gpus=$2; used=2 ;;
    *) return 1 ;;
  esac
}
case "${1:-}" in
  imagenet|cub|iwslt) recipe=$1; shift ;;
  -h|--help) parse_flags --help ;;
  ''|-*) die "name the recipe first: ./scripts/recipe.sh imagenet|cub|iwslt ... (see --help)" ;;
  *) die "unknown recipe $1 (choose from: imagenet cub iwslt)" ;;
esac
parse_flags "$@"
case " ${extra[*]-} " in *" --profile"*|*" --workflow-profile"*|*" --executor"*) gpus="" ;; esac   # a cluster: no local cap
if [ -n "$gpus" ]; then   # Snakemake gives local jobs no GPUs of their own: one GPU training at a time
  config+=("local_gpus=$gpus") resources=("gpu=$gpus" gpu_jobs=1)   # (checked: the batch splits over them)
fi
configfiles=("scripts/workflow/config/$recipe.yaml" ${toy:+"scripts/workflow/config/$recipe$toy.yaml"})
default_out=runs/$recipe$toy
run_study
