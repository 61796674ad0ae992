#!/usr/bin/env bash
# Set up the environment if needed, then run the study on built-in data and write
# runs/demo/report.md. Flags: --full (CUDA-scale profile), --out DIR. A re-run skips finished stages.
set -euo pipefail
setup_start=$SECONDS
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup_env.sh"
cd "$LSKD_ROOT"
export LSKD_SETUP_SECONDS=$((SECONDS - setup_start))   # the report's setup row
exec "$LSKD_PYTHON" scripts/demo.py "$@"
