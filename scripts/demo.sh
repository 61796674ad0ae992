#!/usr/bin/env bash
# Set up the environment if needed, then run the study on built-in data through the Snakemake
# workflow (scripts/workflow/) and write OUT/report.md. A re-run after success does nothing; a re-run
# after an interruption resumes the interrupted trainings and runs what is left.
#
#   ./scripts/demo.sh [--size tiny|quick|full] [--full] [--out DIR] [--jobs N] [--dry-run]
#                     [--scale-epochs F] [--fashion-mnist DIR] [--nmt-data DIR] [--no-nmt]
#                     [--seed S] [--set KEY=VALUE ...] [--unlock] [-- SNAKEMAKE_ARGS...]
#
#   --size S        the study's size, a config file scripts/workflow/config/S.yaml: quick (default,
#                   a 2-core CPU, 16-22 min), full (a CUDA machine; --full is short for it), tiny (every
#                   step in a few minutes on a CPU, a plumbing check whose numbers mean nothing)
#   --out DIR       the study's output directory (Snakemake's --directory; default runs/demo, or
#                   runs/demo-SIZE for the other sizes)
#   --jobs N        jobs side by side (Snakemake's --cores; default: the CPU count); each training uses
#                   one thread on the CPU sizes
#   --dry-run       Snakemake's -n -p: every job that would run, why, and its command; runs nothing
#   --scale-epochs F  every schedule length (epochs, lr steps, warm-up) times F in (0, 1], rounded up
#   --fashion-mnist DIR  Fashion-MNIST's four .gz files here instead of Debian's package
#   --nmt-data DIR  Bible de-en data prepared elsewhere by the workflow's nmt_data command (checked)
#   --no-nmt        the vision half only
#   --seed S        base seed: the size's n seeds become S, S+1, ..., S+n-1 (the teachers' is S)
#   --set KEY=VALUE any value of the size's config file (dotted keys for nested ones, e.g.
#                   --set teacher.lr=0.1 --set seeds=[0,1,2]); checked before anything runs
#   --unlock        remove the lock a killed Snakemake left in OUT (Snakemake's --unlock); a study
#                   stopped with Ctrl-C releases it by itself
#   -- ARGS         passed to snakemake as they are, e.g. -- --executor slurm --profile
#                   scripts/workflow/profiles/slurm (see scripts/workflow/README.md)
set -euo pipefail
name=demo
source "$(dirname "${BASH_SOURCE[0]}")/workflow/run.sh"   # the flags shared with recipe.sh; run_study
size=quick resources=(gpu=1)   # one GPU job at a time (the full size's trainings use one each)
own_flag() {
  case "$1" in
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; used=2 ;;
    --full) size=full; used=1 ;;
    --profile) die "--profile is now --size (tiny, quick, full); Snakemake's own --profile goes after --" ;;
    --scale-epochs) [ $# -ge 2 ] || die "--scale-epochs needs a value"; config+=("scale_epochs=$2"); used=2 ;;
    --fashion-mnist) [ $# -ge 2 ] || die "--fashion-mnist needs a directory"
                     config+=("fashion_mnist=$(realpath -m "$2")"); used=2 ;;
    --nmt-data) [ $# -ge 2 ] || die "--nmt-data needs a directory"; config+=("nmt_data=$(realpath -m "$2")"); used=2 ;;
    --no-nmt) config+=("nmt.enabled=false"); used=1 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a number"; config+=("base_seed=$2"); used=2 ;;
    *) return 1 ;;
  esac
}
parse_flags "$@"
[ -f "$root/scripts/workflow/config/$size.yaml" ] && grep -q '^size:' "$root/scripts/workflow/config/$size.yaml" ||
  die "unknown --size $size (choose from: $(cd "$root/scripts/workflow/config" && grep -l '^size:' *.yaml | sed 's/\.yaml//' | tr '\n' ' '))"
configfiles=("scripts/workflow/config/$size.yaml")
default_out=runs/$([ "$size" = quick ] && echo demo || echo "demo-$size")
run_study
