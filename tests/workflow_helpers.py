"""Running ./scripts/demo.sh and ./scripts/recipe.sh as a user would, and reading Snakemake's job table."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the scripts with this interpreter as it is: no venv, nothing installed (the set-up has its own test)
ENV = dict(os.environ, LSKD_USE_CURRENT_PYTHON="1", LSKD_NO_APT="1", PYTHON=sys.executable)


def run_script(name: str, *args, check: bool = True, timeout: float = 900, env=None):
    """``bash scripts/NAME ARGS`` from the repository root; with ``check``, a failure is an assertion
    that shows the end of its output."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *map(str, args)],
        cwd=ROOT,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, (
            f"{name} {args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def job_counts(snakemake_output: str) -> dict:
    """{rule: count} from the "Job stats:" table Snakemake prints before it runs (or dry-runs) jobs."""
    lines = snakemake_output.splitlines()
    if "Job stats:" not in lines:
        return {}
    counts = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
