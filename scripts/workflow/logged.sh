#!/usr/bin/env bash
# logged.sh LOG COMMAND...: run COMMAND with its output in LOG, whose first line is the command
# itself ("$ ..."; the report's Commands section reads it). Exits with COMMAND's status.
set -euo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
python3 -c 'import shlex, sys; print("$ " + shlex.join(sys.argv[1:]))' "$@" > "$log"
exec "$@" >> "$log" 2>&1
