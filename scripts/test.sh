#!/usr/bin/env bash
# Set up the environment if needed, then run the test suite (CPU only). Extra args go to pytest.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup_env.sh"
cd "$LSKD_ROOT"
exec "$LSKD_PYTHON" -m pytest -q "$@"
