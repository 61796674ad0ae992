#!/usr/bin/env bash
# Set up the environment if needed, check lint and format (ruff, configured in pyproject.toml), then
# run the test suite (CPU only). Extra args go to pytest.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup_env.sh"
cd "$LSKD_ROOT"
if [ "${LSKD_USE_CURRENT_PYTHON:-0}" = 1 ] && ! "$LSKD_PYTHON" -m ruff --version >/dev/null 2>&1; then
  echo "[test] warning: $LSKD_PYTHON has no ruff: lint and format checks skipped" >&2
else
  "$LSKD_PYTHON" -m ruff check --quiet . || { echo "[test] ruff check failed (ruff check --fix . repairs some)" >&2; exit 1; }
  "$LSKD_PYTHON" -m ruff format --check --quiet . || { echo "[test] ruff format --check failed (run ruff format .)" >&2; exit 1; }
fi
# One pytest-xdist worker a core (LSKD_TEST_WORKERS=N to choose, 0 for none); --dist loadscope keeps a
# module's tests in one worker, so its module fixtures (a toy teacher, the tiny study) are built once.
# Workers share the SLURM test cluster (tests/slurm_cluster.py joins one that is up).
workers=()
if "$LSKD_PYTHON" -c "import xdist" 2>/dev/null && [ "${LSKD_TEST_WORKERS:-auto}" != 0 ]; then
  workers=(-n "${LSKD_TEST_WORKERS:-auto}" --dist loadscope)
fi
exec "$LSKD_PYTHON" -m pytest -q "${workers[@]}" "$@"
