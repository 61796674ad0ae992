"""The workflow machinery for SLURM clusters: a real one-node SLURM (scripts/slurm/cluster.sh,
fixture `slurm_cluster`) runs a small Snakemake workflow through `--executor slurm` with the
localhost profile, and its outputs equal a local run's; the cluster profile without a partition
stops with one line before anything is submitted."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from slurm_cluster import CLUSTER_SH, PROFILES, ROOT, slurm_cluster_session

from scripts.slurm.snakemake_check import submission_problem

# Four jobs on three levels: numbers (1..10) -> power k=2, k=3 (one per job) -> total.
# Each job also logs the SLURM job id and CPUs it ran with ("none" outside SLURM), outside the
# outputs that the two runs must share.
SNAKEFILE = r"""
import sys
from scripts.slurm.snakemake_check import check_slurm_submission

PY = sys.executable
WHERE = "echo ${{SLURM_JOB_ID:-none}} ${{SLURM_CPUS_PER_TASK:-none}} > {log}"

onstart:
    check_slurm_submission(workflow)

rule all:
    input: "total.txt"

rule numbers:
    output: "numbers.txt"
    log: "jobs/numbers.txt"
    shell: "{PY} -c 'print(*range(1, 11), sep=chr(10))' > {output}; " + WHERE

rule power:
    input: "numbers.txt"
    output: "power{k}.txt"
    log: "jobs/power{k}.txt"
    resources: cpus_per_task=1
    shell:
        "{PY} -c 'import sys; print(sum(int(x) ** {wildcards.k} for x in open(sys.argv[1])))' "
        "{input} > {output}; " + WHERE

rule total:
    input: expand("power{k}.txt", k=[2, 3])
    output: "total.txt"
    log: "jobs/total.txt"
    shell:
        "{PY} -c 'import sys; print(sum(int(open(p).read()) for p in sys.argv[1:]))' "
        "{input} > {output}; " + WHERE
"""
OUTPUTS = ["numbers.txt", "power2.txt", "power3.txt", "total.txt"]
JOB_LOGS = ["numbers", "power2", "power3", "total"]


def snakemake(workdir, *args, env, timeout=300):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(workdir.parent / "Snakefile"),
            "-d",
            str(workdir),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submission_problem_names_the_unset_variable_or_the_missing_partition():
    """Only `--executor slurm` is checked, and only jobs that are submitted (not local rules)."""
    unset = {"slurm_partition": "$LSKD_SLURM_PARTITION", "slurm_account": "a"}
    assert submission_problem("local", [("train", False, unset)]) is None
    assert submission_problem("slurm", [("all", True, {})]) is None
    assert (
        submission_problem("slurm", [("train", False, unset)])
        == "LSKD_SLURM_PARTITION is not set: export LSKD_SLURM_PARTITION=<partition> (sinfo -s lists them)"
    )
    braced = {"slurm_partition": "gpu", "slurm_account": "${LSKD_SLURM_ACCOUNT}"}
    assert submission_problem("slurm", [("train", False, braced)]).startswith(
        "LSKD_SLURM_ACCOUNT is not set: export LSKD_SLURM_ACCOUNT=<account>"
    )
    # an account set empty (a cluster without accounts) or absent is fine; a partition is not
    assert (
        submission_problem("slurm", [("train", False, {"slurm_partition": "gpu", "slurm_account": ""})])
        is None
    )
    assert submission_problem("slurm", [("train", False, {"slurm_partition": "gpu"})]) is None
    assert submission_problem("slurm", [("train", False, {"slurm_partition": " "})]).startswith(
        "rule train has no slurm_partition: use --workflow-profile scripts/workflow/profiles/slurm"
    )


def test_the_fixture_skips_without_root_or_packages_but_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match=r"needs root"):
        next(slurm_cluster_session())
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda c: None if c in ("slurmd", "apt-get") else which(c))
    with pytest.raises(pytest.skip.Exception, match=r"missing slurmd\) and no apt-get"):
        next(slurm_cluster_session())
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true, so the SLURM tests must run, but no SLURM"):
        next(slurm_cluster_session())


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LSKD_SLURM_PORT": "68x17"}, "LSKD_SLURM_PORT must be a port number, got '68x17'"),
        ({"LSKD_SLURM_PORT": "80"}, "LSKD_SLURM_PORT must be in 1024..65400, got 80"),
        ({"LSKD_SLURM_DIR": "relative/dir"}, "LSKD_SLURM_DIR must be an absolute path, got 'relative/dir'"),
        ({}, "usage: "),
    ],
)
def test_cluster_script_refuses_bad_input_with_one_line(env, message):
    args = ["bash", str(CLUSTER_SH)] + ([] if not env else ["up"])
    proc = subprocess.run(args, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"[slurm] error: {message}"), proc.stderr


def test_workflow_through_slurm_equals_a_local_run(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    t0 = time.monotonic()
    local = snakemake(tmp_path / "local", "--cores", "2", env=slurm_cluster.env)
    local_seconds = time.monotonic() - t0
    assert local.returncode == 0, local.stderr[-3000:]
    t0 = time.monotonic()
    proc = snakemake(
        tmp_path / "slurm", "--profile", str(PROFILES / "slurm-localhost"), env=slurm_cluster.env
    )
    slurm_seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(
        f"\n[timing] cluster up {slurm_cluster.timings['up']:.1f} s; 4 jobs locally "
        f"{local_seconds:.1f} s, through SLURM {slurm_seconds:.1f} s"
    )

    # Σ k² for k = 1..10 = 10·11·21/6 = 385; Σ k³ = (10·11/2)² = 3025; together 3410.
    assert (tmp_path / "slurm" / "total.txt").read_text() == "3410\n"
    for name in OUTPUTS:
        assert (tmp_path / "slurm" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name

    # Locally no job saw SLURM; through it, every job ran as a job of its own, with one CPU
    # (the plugin's --cpus-per-task from `cpus_per_task=1` / threads = 1), and slurmctld logged
    # each as COMPLETED under the plugin's run id (the sbatch --job-name).
    for name in JOB_LOGS:
        assert (tmp_path / "local" / "jobs" / f"{name}.txt").read_text() == "none none\n"
    where = {name: (tmp_path / "slurm" / "jobs" / f"{name}.txt").read_text().split() for name in JOB_LOGS}
    assert all(cpus == "1" for _, cpus in where.values()), where
    ids = {name: int(job_id) for name, (job_id, _) in where.items()}
    assert len(set(ids.values())) == 4, ids
    run_id = re.search(r"SLURM run ID: (\S+)", proc.stdout + proc.stderr).group(1)
    finished = slurm_cluster.jobs()
    for name, job_id in ids.items():
        assert finished[job_id]["JobState"] == "COMPLETED" and finished[job_id]["Name"] == run_id, (
            name,
            finished.get(job_id),
        )
    # the plugin's per-rule sbatch logs: .snakemake/slurm_logs/rule_<rule>[/<wildcards>]/<job id>.log
    logs = tmp_path / "slurm" / ".snakemake" / "slurm_logs"
    assert (logs / "rule_numbers" / f"{ids['numbers']}.log").exists()
    assert (logs / "rule_power" / "2" / f"{ids['power2']}.log").exists()
    assert (logs / "rule_total" / f"{ids['total']}.log").exists()


def test_cluster_profile_without_partition_stops_before_submitting(slurm_cluster, tmp_path):
    """The cluster profile (profiles/slurm) takes partition and account from LSKD_SLURM_*: unset,
    one line and exit 2 from the onstart check, and slurmctld saw no new job."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    before = set(slurm_cluster.jobs())
    env = {k: v for k, v in slurm_cluster.env.items() if not k.startswith("LSKD_SLURM_")}
    cases = [
        ({}, "[workflow] error: LSKD_SLURM_PARTITION is not set: export LSKD_SLURM_PARTITION=<partition>"),
        (
            {"LSKD_SLURM_PARTITION": "debug"},
            "[workflow] error: LSKD_SLURM_ACCOUNT is not set: export LSKD_SLURM_ACCOUNT=<account>",
        ),
    ]
    for extra, line in cases:
        proc = snakemake(tmp_path / "run", "--profile", str(PROFILES / "slurm"), env={**env, **extra})
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.splitlines()[-1].startswith(line), proc.stderr[-1000:]
    assert not (tmp_path / "run" / "numbers.txt").exists()
    assert slurm_cluster.queued() == [] and set(slurm_cluster.jobs()) == before


def test_profiles_name_the_cluster_settings():
    """The localhost profile fits scripts/slurm/slurm.conf.in (its partition, squeue without a
    database); the cluster profile leaves partition and account to the user."""
    yaml = pytest.importorskip("yaml")
    conf = (ROOT / "scripts" / "slurm" / "slurm.conf.in").read_text()
    local = yaml.safe_load((PROFILES / "slurm-localhost" / "config.yaml").read_text())
    assert local["executor"] == "slurm" and local["slurm-status-command"] == "squeue"
    assert f"PartitionName={local['default-resources']['slurm_partition']} " in conf
    assert "AccountingStorageType=accounting_storage/none" in conf and "MinJobAge=300" in conf
    cluster = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    assert cluster["executor"] == "slurm"
    assert cluster["default-resources"]["slurm_partition"] == "$LSKD_SLURM_PARTITION"
    assert cluster["default-resources"]["slurm_account"] == "$LSKD_SLURM_ACCOUNT"
