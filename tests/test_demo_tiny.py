"""The whole demo end to end at the `tiny` size (~6 min on 2 cores) through ./scripts/demo.sh and
the Snakemake workflow: every step runs through the real entry points, the report is whole, its
numbers agree with the files they come from, and a re-run does nothing."""

import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_helpers import run_script

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = [
    "## Verdict",
    "### Vision (Fashion-MNIST)",
    "### Translation (Bible de→en)",
    "## What ran",
    "## Fashion-MNIST: ResNet-18 teachers -> ResNet-18 students (Table 2 layout)",
    "## Fashion-MNIST: paired tests of the students' top-1",
    "## Fashion-MNIST η (Table 3 layout), resnet18 student, T1 = 1 -> T2 = 3",
    "### S1/S2 of η vs feature-space S1/S2 (Table 12 layout)",
    "## Diffusion index η(T1 = 1, T2 = 3): across-seed tests",
    "## Fashion-MNIST η_pairwise (Table 21 layout), resnet18 student, T1 = 1 -> T2 = 3",
    "## Fashion-MNIST: smoothness of the teachers' targets (Table 13 layout)",
    "## Systematic, not isotropic (Supp. D)",
    "## Fashion-MNIST: per-class accuracy of the η targets (Tables 17-19 layout)",
    "## Translation: BLEU (Table 7 layout)",
    "## Translation: paired tests of the students' BLEU",
    "## Translation: diffusion index η(T1 = 1, T2 = 3)",
    "## Translation: smoothness of the teachers' targets (Table 13 layout)",
    "## Figures",
    "## Stages and wall time",
    "## Commands",
    "## Versions",
]
TABLES = ["accuracy", "paired_accuracy", "eta_resnet18", "eta_pairwise_resnet18", "entropy", "isotropy"]
TABLES += ["per_class_accuracy", "paired_bleu"]


def demo(out: Path, *extra) -> subprocess.CompletedProcess:
    return run_script("demo.sh", "--size", "tiny", "--jobs", "2", "--out", out, *extra)


def table_rows(report: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after ``heading``."""
    lines = report[report.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [[c.strip() for c in line.strip("|").split("|")] for line in block[2:]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_tiny")
    demo(out)
    return out


def test_report_is_whole_and_links_its_figures(tiny):
    report = (tiny / "report.md").read_text()
    positions = [report.find(s) for s in SECTIONS]
    assert all(p >= 0 for p in positions), [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions)
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        png = tiny / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    for png in ("projection_teachers_s0", "projection_resnet18_s0", "soft_targets_s0"):
        assert f"(figures/{png}.png)" in report
    assert "its numbers mean nothing" in report and str(ROOT) not in report
    assert f"./scripts/demo.sh --size tiny --jobs 2 --out {tiny}\n" in report  # how it was started
    assert re.search(r"^\| lskd commit \| [0-9a-f]{12}", report, re.M)


SEEDS = (0, 1)  # the tiny size's student seeds


def final_val_acc1(d: Path) -> float:
    last = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["val_samples"] == 128
    return last["val_acc1"]


def test_accuracy_table_agrees_with_the_trainers_own_evaluation(tiny):
    """Report (the recipes' accuracy table): top-1 mean ± sample std (n) over the seeds; metrics.jsonl:
    the trainer's evaluation loop of each seed's run."""
    report = (tiny / "report.md").read_text()
    rows = table_rows(report, SECTIONS[4])
    assert [r[0] for r in rows] == ["Teacher: resnet18"] + [
        f"Student: resnet18 T = {T}" for T in (1, 2, 3, 64)
    ]
    for col, tag in ((1, "a0"), (2, "a0.1")):
        teacher = rows[0][col].split(" ± ")[0]
        assert float(teacher) == pytest.approx(final_val_acc1(tiny / "teachers" / f"{tag}_s0"), abs=5e-4)
        for row, T in zip(rows[1:], (1, 2, 3, 64)):
            runs = [final_val_acc1(tiny / "students" / f"resnet18_{tag}_s{k}" / f"T{T}") for k in SEEDS]
            top1, _ = row[col].split(" / ")
            mean, std = re.fullmatch(r"([-\d.]+) ± ([\d.]+)", top1).groups()
            assert row[col].endswith(f"({len(SEEDS)})")
            assert float(mean) == pytest.approx(sum(runs) / 2, abs=5e-4), (tag, T, row[col], runs)
            assert float(std) == pytest.approx(abs(runs[0] - runs[1]) / math.sqrt(2), abs=5e-4)  # n = 2


def test_report_inlines_the_recipes_tables_and_tests_pair_by_seed(tiny):
    """Each table the recipes' rules wrote is in the report as written (headings one level down); in the
    paired tests, B − A is the mean of the per-seed differences of the compare results, and each per-seed
    p that seed's McNemar p (lskd-metrics compare)."""
    report = (tiny / "report.md").read_text()
    for name in TABLES:
        text = (tiny / "tables" / f"{name}.md").read_text().strip()
        assert re.sub(r"^#", "##", text, flags=re.M) in report, name
    family = "### Student resnet18: each teacher α against α = 0, at each T"
    rows = {r[0]: r for r in table_rows(report, family)}
    cmp = [
        json.loads((tiny / "compare" / "alpha" / f"resnet18_s{k}_a0.1_T3.json").read_text()) for k in SEEDS
    ]
    row = rows["α = 0.1 − α = 0 at T = 3"]
    diff = sum(c["top1_b"] - c["top1_a"] for c in cmp) / len(cmp)
    assert float(row[3].split(" [")[0]) == pytest.approx(100 * diff, abs=0.006)
    p = [c["mcnemar"]["p_value"] for c in cmp]
    assert row[6] == ", ".join(f"{x:.3f}" if x >= 0.001 else f"{x:.1e}" for x in p)
    assert row[7] in ("significant at 95 %", "not distinguishable at this scale")


def test_bleu_table_is_the_scored_csv(tiny):
    rows = table_rows((tiny / "report.md").read_text(), "## Translation: BLEU (Table 7 layout)")
    with open(tiny / "nmt" / "bleu.csv") as f:
        scored = list(csv.DictReader(f))
    assert len(scored) == 2 + 2 * 4 * len(SEEDS)
    for row, alpha in zip(rows, ("0.0", "0.1")):
        teacher = next(float(r["bleu"]) for r in scored if r["alpha"] == alpha and r["role"] == "teacher")
        assert float(row[1].split(" ± ")[0]) == teacher
        for cell, T in zip(row[2:], (1, 2, 3, 64)):
            per_seed = [
                float(r["bleu"]) for r in scored if r["alpha"] == alpha and r["temperature"] == f"{T:.1f}"
            ]
            assert len(per_seed) == len(SEEDS) and cell.endswith(f"({len(SEEDS)})")
            assert float(cell.split(" ± ")[0]) == pytest.approx(sum(per_seed) / len(per_seed), abs=0.006)


def test_rerun_after_success_does_nothing(tiny):
    before = (tiny / "report.md").stat().st_mtime_ns
    proc = demo(tiny)
    assert "Nothing to be done (all requested files are present and up to date)." in proc.stdout + proc.stderr
    assert (tiny / "report.md").stat().st_mtime_ns == before


def test_translation_eta_words_are_whole_words_not_bpe_pieces(tiny):
    """Targets, S1 and S2 of the translation η: letters only, and standing alone (not after an
    '@@' piece, not one itself) in most of their occurrences in the BPE'd training targets."""
    alone, seen = {}, {}
    for line in (tiny / "nmt" / "data" / "text" / "train.en").read_text().splitlines():
        toks = line.split()
        for prev, tok in zip([""] + toks, toks):
            seen[tok] = seen.get(tok, 0) + 1
            alone[tok] = alone.get(tok, 0) + (not prev.endswith("@@") and not tok.endswith("@@"))
    sets = json.loads((tiny / "analysis" / "nmt_sets_a0.json").read_text())
    assert sets
    for target, s in sets.items():
        for word in (target, *s["similar"], *s["dissimilar"]):
            assert re.fullmatch("[a-z]{3,}", word) and 2 * alone[word] >= seen[word], word


def test_a_lost_array_comes_back_when_asked_for_with_no_other_training(tiny):
    """Snakemake re-creates a missing intermediate file only when something needs it (it treats
    intermediate files as possibly temporary): the study as a whole stays done, and naming the file
    as a target (`./scripts/demo.sh -- FILE`) re-runs only its sweep, which resumes at its last epoch
    and only dumps. The dump reproduces the lost array byte for byte, so the next plain run re-runs
    nothing (Snakemake compares the checksums of small inputs, not only their times)."""
    from test_workflow import job_counts

    lost = tiny / "students" / "resnet18_a0_s0" / "T2" / "features" / "valid" / "features.npy"
    old = lost.read_bytes()
    lost.unlink()
    proc = demo(tiny)
    assert "Nothing to be done" in proc.stdout + proc.stderr and not lost.exists()
    proc = demo(tiny, "--", lost.relative_to(tiny))
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"students": 1}, counts
    assert lost.read_bytes() == old
    assert "resumed from epoch 1" in (tiny / "logs" / "students_resnet18_a0_s0.log").read_text()
    proc = demo(tiny)
    assert job_counts(proc.stdout + proc.stderr) == {}
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_translation_entropy_table_is_the_logged_teacher_entropy_in_nats(tiny):
    """Each cell: the last validation's teacher_entropy (bits) of that student's log, times ln 2."""
    rows = table_rows(
        (tiny / "report.md").read_text(),
        "## Translation: smoothness of the teachers' targets (Table 13 layout)",
    )
    assert [r[0] for r in rows] == ["0", "0.1"]
    for row, tag in zip(rows, ("a0", "a0.1")):
        for cell, T in zip(row[1:], (1, 2, 3, 64)):
            lines = [
                ln
                for ln in (tiny / "logs" / f"nmt-student-{tag}-seed0-T{T}.log").read_text().splitlines()
                if "valid on 'valid' subset" in ln
            ]
            bits = float(lines[-1].split("| teacher_entropy ")[1].split()[0])
            assert float(cell) == pytest.approx(bits * math.log(2), abs=1e-3), (tag, T)
        assert (
            float(row[1]) <= float(row[2]) <= float(row[3]) <= float(row[4]) and row[1] != row[4]
        )  # softer with T


def test_the_vision_half_through_slurm_equals_the_local_run(tiny, slurm_cluster, tmp_path):
    """The same study (its first seed) through a real SLURM (`-- --profile
    scripts/workflow/profiles/slurm-localhost`): every training and analysis job ran as a SLURM job of
    its own, and the features and lskd-metrics results are those of the local run, byte for byte
    (same seeds, one thread a job both ways)."""
    out = tmp_path / "slurm"
    env = dict(
        os.environ,
        LSKD_USE_CURRENT_PYTHON="1",
        LSKD_NO_APT="1",
        PYTHON=sys.executable,
        **{k: v for k, v in slurm_cluster.env.items() if k.startswith(("SLURM", "PYTHONPATH", "PATH"))},
    )
    extra = ["--no-nmt", "--set", "seeds=[0]", "--", "--profile", "scripts/workflow/profiles/slurm-localhost"]
    proc = run_script("demo.sh", "--size", "tiny", "--out", out, *extra, env=env, timeout=1200)
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr)
    finished = slurm_cluster.jobs()
    assert len(submitted) >= 4 + 8 and all(finished[int(j)]["JobState"] == "COMPLETED" for j in submitted)
    logs = out / ".snakemake" / "slurm_logs"
    assert (logs / "rule_teacher").is_dir() and (logs / "rule_students").is_dir()
    for rel in [
        "teachers/a0.1_s0/features/train/features.npy",
        "students/resnet18_a0_s0/T64/features/valid/logits.npy",
        "students/resnet18_a0.1_s0/T3/features/train/features.npy",
    ]:
        assert (out / rel).read_bytes() == (tiny / rel).read_bytes(), rel
    # the first seed's and the teachers' lskd-metrics results (figures/*.json name their PNG: not compared)
    results = sorted(p for d in ("compare", "eta", "accuracy", "analysis") for p in (out / d).rglob("*.json"))
    results = [p for p in results if p.name != "config.json"]
    assert len(results) >= 20
    for result in results:
        rel = result.relative_to(out)
        assert json.loads(result.read_text()) == json.loads((tiny / rel).read_text()), rel
    assert (out / "report.md").is_file()
