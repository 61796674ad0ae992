"""The one-node SLURM cluster of scripts/slurm/cluster.sh for the tests (fixture `slurm_cluster`
in conftest.py, session-scoped, so every SLURM test of a session shares one cluster).

Without root or without slurm-wlm/munge (and no apt-get to install them) the tests using it skip
with that reason; with CI=true they fail instead. The daemons are stopped by their PIDs at the
end of the session, also after failures. Test sessions running at once share the cluster (only
one fits on a machine: it links /run/slurm/conf): a shared lock counts them, and the last one
out stops a cluster that a test session started (one started by hand with `up` is left running).
"""

import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "scripts" / "slurm" / "cluster.sh"
PROFILES = ROOT / "scripts" / "workflow" / "profiles"
COMMANDS = ["munged", "munge", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "scancel"]
STARTED_BY_TESTS = ".started-by-tests"  # in the state directory: the last session out stops it


@dataclass
class SlurmCluster:
    state: Path  # LSKD_SLURM_DIR: slurm.conf, logs/jobcomp.txt, ...
    env: dict  # os.environ + SLURM_CONF, for subprocesses that talk to it
    timings: dict = field(default_factory=dict)  # seconds: "up" (and "down" once stopped)

    def jobs(self) -> dict[int, dict[str, str]]:
        """Finished jobs by id, as slurmctld's jobcomp/filetxt logged them (JobState, Name, ...)."""
        log = self.state / "log" / "jobcomp.txt"
        text = log.read_text() if log.exists() else ""
        rows = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines() if line.strip()]
        return {int(r["JobId"]): r for r in rows}

    def queued(self) -> list[str]:
        """Ids of the jobs pending or running now (squeue)."""
        out = subprocess.run(
            ["squeue", "-h", "-o", "%A"], env=self.env, capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return out.split()


def why_not_here() -> str | None:
    """Why the cluster cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (slurmd starts jobs as their users)"
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing and (os.environ.get("LSKD_NO_APT") == "1" or shutil.which("apt-get") is None):
        return f"no SLURM here (missing {' '.join(missing)}) and no apt-get to install slurm-wlm munge"
    if Path("/etc/slurm/slurm.conf").exists():
        return "this machine has a SLURM of its own (/etc/slurm/slurm.conf); the test cluster would clash"
    for module in ("snakemake", "snakemake_executor_plugin_slurm"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[workflow]')"
    return None


def _cluster_sh(command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), command], env=env, capture_output=True, text=True, timeout=600
    )


def slurm_cluster_session():
    """Generator behind the fixture: bring the cluster up (or join it), yield it, stop it."""
    why = why_not_here()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so the SLURM tests must run, but {why}")
        pytest.skip(why)
    state = Path(os.environ.get("LSKD_SLURM_DIR", "/tmp/lskd-slurm"))
    env = {
        **os.environ,
        "LSKD_SLURM_DIR": str(state),
        "SLURM_CONF": str(state / "slurm.conf"),
        # the jobs run Snakemake with this interpreter and import scripts.slurm from the checkout
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ['PYTHONPATH']}"
        if os.environ.get("PYTHONPATH")
        else str(ROOT),
    }
    # setup.lock serialises up and down; users.lock is held shared by every session using the cluster
    setup = open(f"{state}.setup.lock", "w")
    users = open(f"{state}.users.lock", "w")
    try:
        fcntl.flock(setup, fcntl.LOCK_EX)
        t0 = time.monotonic()
        proc = _cluster_sh("up", env)
        up_seconds = time.monotonic() - t0
        if proc.returncode != 0:
            _cluster_sh("down", env)
            pytest.fail(
                f"the SLURM test cluster did not come up ({up_seconds:.1f} s):\n{proc.stdout}{proc.stderr}",
                pytrace=False,
            )
        if "already up" not in proc.stdout:
            (state / STARTED_BY_TESTS).touch()
        fcntl.flock(users, fcntl.LOCK_SH)
        fcntl.flock(setup, fcntl.LOCK_UN)
        cluster = SlurmCluster(state, env, {"up": up_seconds})
        yield cluster
        fcntl.flock(setup, fcntl.LOCK_EX)
        fcntl.flock(users, fcntl.LOCK_UN)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another session still uses it: the last one stops it
        if (state / STARTED_BY_TESTS).exists():
            t0 = time.monotonic()
            proc = _cluster_sh("down", env)
            cluster.timings["down"] = time.monotonic() - t0
            print(f"\n[timing] cluster down {cluster.timings['down']:.1f} s")
            assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        users.close()
        setup.close()
