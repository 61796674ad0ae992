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
#                   a 2-core CPU, ~15 min), full (a CUDA machine; --full is short for it), tiny (every
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
#                   --set vision.lr=0.1 --set seeds=[0,1,2]); checked before anything runs
#   --unlock        remove the lock a killed Snakemake left in OUT (Snakemake's --unlock); a study
#                   stopped with Ctrl-C releases it by itself
#   -- ARGS         passed to snakemake as they are, e.g. -- --executor slurm --profile
#                   scripts/workflow/profiles/slurm (see scripts/workflow/README.md)
set -euo pipefail
setup_start=$SECONDS
started=$(date +%s.%N)
invocation="./scripts/demo.sh${*:+ $*}"
size=quick out="" jobs="" dry=() config=() extra=()
die() { echo "[demo] error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; shift 2 ;;
    --full) size=full; shift ;;
    --profile) die "--profile is now --size (tiny, quick, full); Snakemake's own --profile goes after --" ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift 2 ;;
    --dry-run|-n) dry=(--dry-run --printshellcmds); shift ;;
    --scale-epochs) [ $# -ge 2 ] || die "--scale-epochs needs a value"; config+=("scale_epochs=$2"); shift 2 ;;
    --fashion-mnist) [ $# -ge 2 ] || die "--fashion-mnist needs a directory"
                     config+=("fashion_mnist=$(realpath -m "$2")"); shift 2 ;;
    --nmt-data) [ $# -ge 2 ] || die "--nmt-data needs a directory"; config+=("nmt_data=$(realpath -m "$2")"); shift 2 ;;
    --no-nmt) config+=("nmt.enabled=false"); shift ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a number"; config+=("base_seed=$2"); shift 2 ;;
    --set) [ $# -ge 2 ] && [[ "$2" == *=* ]] || die "--set needs KEY=VALUE"; config+=("$2"); shift 2 ;;
    --unlock) dry=(--unlock); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
done
case "$jobs" in ''|*[!0-9]*|0) [ -z "$jobs" ] || die "--jobs must be a whole number >= 1, got $jobs" ;; esac

source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup_env.sh"
cd "$LSKD_ROOT"
configfile="scripts/workflow/config/$size.yaml"
[ -f "$configfile" ] || die "unknown --size $size (choose from: $(cd scripts/workflow/config && ls *.yaml | sed 's/\.yaml//' | tr '\n' ' '))"
out="$(realpath -m "${out:-runs/$([ "$size" = quick ] && echo demo || echo "demo-$size")}")"
# one line and exit 2 if the configuration is bad; else the flags' values as a second config file
overrides="$("$LSKD_PYTHON" scripts/workflow/study.py check "$configfile" ${config[@]+"${config[@]}"})"
configfiles=("$configfile")
if [ -n "$overrides" ]; then
  mkdir -p "$out"
  printf '# the values of the last ./scripts/demo.sh flags (--set, --scale-epochs, ...), over %s\n%s\n' \
    "$configfile" "$overrides" > "$out/config-overrides.yaml"
  configfiles+=("$out/config-overrides.yaml")
fi

export LSKD_SETUP_SECONDS=$((SECONDS - setup_start)) LSKD_STUDY_STARTED=$started LSKD_INVOCATION=$invocation
export LSKD_CORES=${jobs:-$(nproc)}
exec "$LSKD_PYTHON" -m snakemake --snakefile scripts/workflow/Snakefile --configfile "${configfiles[@]}" \
  --directory "$out" --cores "$LSKD_CORES" --resources gpu=1 \
  --rerun-incomplete ${dry[@]+"${dry[@]}"} ${extra[@]+"${extra[@]}"}
