"""Before Snakemake submits anything to SLURM: every job names its partition, and no
``$LSKD_SLURM_*`` variable of the SLURM profile (scripts/workflow/profiles/slurm) is left unset.

Called from a Snakefile's ``onstart`` (Snakemake runs it after building the DAG, before the
first submission, and not in dry runs)::

    onstart:
        from scripts.slurm.snakemake_check import check_slurm_submission
        check_slurm_submission(workflow)

Without this, an unset variable reaches sbatch as the literal text ``$LSKD_SLURM_PARTITION``
and fails there, one traceback per job; a missing partition silently falls back to the
cluster's default one.
"""

import re
import sys

HINTS = {
    "slurm_partition": "export LSKD_SLURM_PARTITION=<partition> (sinfo -s lists them)",
    "slurm_account": "export LSKD_SLURM_ACCOUNT=<account> (sacctmgr show associations user=$USER "
    "format=account lists yours), or LSKD_SLURM_ACCOUNT= on a cluster without accounts",
}
UNSET = re.compile(r"\$\{?(\w+)\}?")


def submission_problem(executor: str, jobs) -> str | None:
    """The first reason not to submit ``jobs`` (rule name, is_local, resources mapping), or None.

    Snakemake expands $VARS in resource values and leaves unset ones as they are, so a value
    still holding ``$NAME`` means NAME is unset. Local rules run on the submitting host.
    """
    if executor != "slurm":
        return None
    for rule, is_local, resources in jobs:
        if is_local:
            continue
        for key, hint in HINTS.items():
            value = resources.get(key)
            unset = UNSET.search(str(value)) if value is not None else None
            if unset:
                return f"{unset.group(1)} is not set: {hint}"
        if not str(resources.get("slurm_partition") or "").strip():
            return (
                f"rule {rule} has no slurm_partition: use --workflow-profile "
                f"scripts/workflow/profiles/slurm and {HINTS['slurm_partition']}, or "
                f"--set-resources {rule}:slurm_partition=<partition>"
            )
    return None


def check_slurm_submission(workflow) -> None:
    """Exit 2 with one line when submission_problem finds one among the jobs about to run."""
    plugin = workflow.executor_plugin
    jobs = [(job.rule.name, job.is_local, job.resources) for job in workflow.dag.needrun_jobs()]
    problem = submission_problem(plugin.name if plugin is not None else "", jobs)
    if problem:
        print(f"[workflow] error: {problem}", file=sys.stderr)
        sys.exit(2)
