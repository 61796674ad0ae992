# The part of scripts/demo.sh and scripts/recipe.sh they share, sourced by both: the common flags, the
# configuration check and the Snakemake call. The sourcing script sets `name` (its messages' prefix),
# defines own_flag (called with the remaining arguments: takes one of its own flags and sets used=N,
# the words it took, or returns 1), calls parse_flags "$@", sets configfiles and default_out, then
# calls run_study, which never returns.
setup_start=$SECONDS started=$(date +%s.%N) invocation="./scripts/$name.sh${*:+ $*}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="" jobs="" dry=() config=() extra=() configfiles=() default_out="" resources=()
die() { echo "[$name] error: $*" >&2; exit 2; }

parse_flags() {
  while [ $# -gt 0 ]; do
    if own_flag "$@"; then shift "$used"; continue; fi
    case "$1" in
      --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
      --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift 2 ;;
      --dry-run|-n) dry=(--dry-run --printshellcmds); shift ;;
      --set) [ $# -ge 2 ] && [[ "$2" == *=* ]] || die "--set needs KEY=VALUE"; config+=("$2"); shift 2 ;;
      --unlock) dry=(--unlock); shift ;;
      --) shift; extra=("$@"); break ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown flag $1 (see --help)" ;;
    esac
  done
  case "$jobs" in ''|*[!0-9]*|0) [ -z "$jobs" ] || die "--jobs must be a whole number >= 1, got $jobs" ;; esac
}

run_study() {
  source "$root/scripts/setup_env.sh"
  cd "$LSKD_ROOT"
  out="$(realpath -m "${out:-$default_out}")"
  # one line and exit 2 if the configuration is bad; else the flags' values as one more config file
  local overrides
  overrides="$("$LSKD_PYTHON" scripts/workflow/study.py check "${configfiles[@]}" ${config[@]+"${config[@]}"})"
  if [ -n "$overrides" ]; then
    mkdir -p "$out"
    printf '# the values of the last ./scripts/%s.sh flags (--set, ...), over %s\n%s\n' \
      "$name" "${configfiles[*]}" "$overrides" > "$out/config-overrides.yaml"
    configfiles+=("$out/config-overrides.yaml")
  fi
  export LSKD_SETUP_SECONDS=$((SECONDS - setup_start)) LSKD_STUDY_STARTED=$started LSKD_INVOCATION=$invocation
  export LSKD_CORES=${jobs:-$(nproc)}
  exec "$LSKD_PYTHON" -m snakemake --snakefile scripts/workflow/Snakefile --configfile "${configfiles[@]}" \
    --directory "$out" --cores "$LSKD_CORES" ${resources[@]+--resources "${resources[@]}"} \
    --rerun-incomplete ${dry[@]+"${dry[@]}"} ${extra[@]+"${extra[@]}"}
}
