#!/usr/bin/env bash
# logged.sh LOG COMMAND...: run COMMAND with its output in LOG, framed by its command line ("$ ...", the
# first line; the report's Commands section reads it), its start ("# started EPOCH-SECONDS") and, when it
# ends, "# ended EPOCH-SECONDS STATUS" (the report's stages). Exits with COMMAND's status.
set -uo pipefail
log=$1
shift
mkdir -p "$(dirname "$log")"
now() { date +%s.%N | cut -c1-14; }   # epoch seconds, to the millisecond
python3 -c 'import shlex, sys; print("$ " + shlex.join(sys.argv[1:]))' "$@" > "$log"
echo "# started $(now)" >> "$log"
"$@" >> "$log" 2>&1
status=$?
echo "# ended $(now) $status" >> "$log"
exit "$status"
