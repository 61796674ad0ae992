#!/usr/bin/env python
"""The study's report: reads what the workflow's rules wrote (the recipes' tables under tables/, lskd-metrics
JSON under eta/ and analysis/, BLEU tables, training logs and metrics, the rules' logs) and writes report.md.
Run by the workflow's `report` rule, from the study's output directory:

    python scripts/workflow/report.py --config analysis/config.json --out report.md
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study as paths  # noqa: E402
from verdicts import (  # noqa: E402
    best_line,
    diffusion_line,
    eta_over_seeds,
    interval,
    level,
    p_text,
    t_critical_note,
    temperature_line,
)

from scripts.recipes.tables import scan_runs  # noqa: E402

ROOT = paths.ROOT


class Study:
    """What one run of the workflow left in its output directory ``out``, with its configuration."""

    def __init__(self, cfg: dict, out: Path, started: float | None = None):
        self.cfg, self.out = cfg, out
        self.size = cfg["size"]
        self.scale_epochs = cfg.get("scale_epochs", 1)
        self.alphas = [float(a) for a in cfg["alphas"]]
        self.temperatures = list(cfg["temperatures"])
        self.seeds = cfg["seeds"]
        self.seed = self.seeds[0]
        self.model = next(iter(cfg["students"]))
        self.eta_T1, self.eta_T2 = cfg["eta"][self.model]
        self.started = started if started is not None else time.time()
        self.cores = int(os.environ.get("LSKD_CORES", "0")) or os.cpu_count()
        self.invocation = os.environ.get("LSKD_INVOCATION", "snakemake -s scripts/workflow/Snakefile ...")
        self.logs = self._logs()
        self.stages = self._stages()

    def nmt_student_schedule(self) -> str:
        n = self.cfg["nmt"]
        return (
            f"at most {n['student_max_update']} updates"
            if n.get("student_max_update")
            else epochs(n["student_epochs"])
        )

    def json(self, rel: str) -> dict:
        return json.loads((self.out / rel).read_text())

    def table(self, name: str) -> str:
        """tables/NAME.md, its headings one level down (the recipes' table files start at `#`)."""
        text = (self.out / "tables" / f"{name}.md").read_text().strip()
        return "\n" + re.sub(r"^#", "##", text, flags=re.M) + "\n"

    def nmt_log(self, a: float, T) -> Path:
        return (
            self.out
            / "logs"
            / f"nmt-student-{paths.alpha_tag(a)}-seed{self.seed}-{paths.temperature_tag(T)}.log"
        )

    # ------------------------------------------------------------------ stages and commands
    def _logs(self) -> list[dict]:
        """Each rule's log as logged.sh frames it ("$ command", "# started EPOCH", the output, "# ended
        EPOCH STATUS"), read at its two ends only: name, command, started, ended (None unless it ended
        with status 0)."""
        found = []
        for log in (self.out / "logs").rglob("*.log"):
            if log.name == "report.log":  # this job's own, still being written
                continue
            with open(log, "rb") as f:
                head = [f.readline().decode(errors="replace") for _ in range(2)]
                f.seek(max(0, log.stat().st_size - 256))
                last = f.read().decode(errors="replace").rstrip("\n").rsplit("\n", 1)[-1]
            begun = re.fullmatch(r"# started ([0-9.]+)\n?", head[1])
            ended = re.fullmatch(r"# ended ([0-9.]+) 0", last)
            found.append(
                {
                    "name": str(log.relative_to(self.out / "logs").with_suffix("")),
                    "command": head[0][2:].strip() if head[0].startswith("$ ") else None,
                    "started": float(begun.group(1)) if begun else None,
                    "ended": float(ended.group(1)) if ended else None,
                }
            )
        return found

    def _stages(self) -> list[dict]:
        """One record per log of a finished job: name, start (s after this invocation began), seconds,
        skipped (done before it)."""
        rows = [
            {
                "name": log["name"],
                "seconds": max(0.0, log["ended"] - log["started"]),
                "start": log["started"] - self.started,
                "skipped": log["started"] < self.started,
            }
            for log in self.logs
            if log["started"] is not None and log["ended"] is not None
        ]
        return sorted(rows, key=lambda r: (not r["skipped"], r["start"]))

    def wall(self) -> float:
        return time.time() - self.started

    def idle(self) -> float:
        """Seconds of this invocation, up to now, during which no logged job was running: an
        upper bound on the time Snakemake itself took (DAG building, scheduling, job start-up)."""
        spans = sorted(
            (max(0.0, s["start"]), s["start"] + s["seconds"]) for s in self.stages if not s["skipped"]
        )
        busy, edge = 0.0, 0.0
        for a, b in spans:
            a = max(a, edge)
            if b > a:
                busy, edge = busy + b - a, b
        return max(0.0, self.wall() - busy)

    def commands(self) -> list[str]:
        """The command ("$ ..." line) of every rule's log, in the order the stages started."""
        order = {s["name"]: s["start"] for s in self.stages}
        found = [(order.get(log["name"], math.inf), log["name"], log["command"]) for log in self.logs]
        return [c for _, _, c in sorted(f for f in found if f[2] is not None)]


def last_valid_value(log: Path, key: str) -> float | None:
    """``key``'s value on the last "valid on 'valid' subset" line of a fairseq-train log (simple
    format), or None where there is none."""
    value = None
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            m = (
                re.search(rf"\| {re.escape(key)} ([-+0-9.eE]+)", line)
                if "valid on 'valid' subset" in line
                else None
            )
            if m:
                value = float(m.group(1))
    return value


def read_bleu(s: Study) -> tuple[dict, dict]:
    """Teachers' BLEU {α: value} and the students' {α: {T: [per-seed BLEU]}}, from the
    `nmt_plugin.bleu table` CSV (rows matched to seeds by their checkpoint's directory)."""
    teachers, students = {}, {a: {T: [None] * len(s.seeds) for T in s.temperatures} for a in s.alphas}
    with open(s.out / "nmt" / "bleu.csv") as f:
        for r in csv.DictReader(f):
            a, path = float(r["alpha"]), Path(r["checkpoint"])
            if r["role"] == "teacher":
                teachers[a] = float(r["bleu"])
                continue
            seed = int(path.parents[1].name.removeprefix("seed"))
            T = float(r["temperature"])
            T = int(T) if T.is_integer() else T
            students[a][T][s.seeds.index(seed)] = float(r["bleu"])
    return teachers, students


def nmt_results(s: Study) -> dict:
    """The translation analysis the report reads: BLEU (per seed), η per teacher and seed, the teachers'
    entropy per T (the `teacher_entropy` that ls_kd logs, in bits, with each validation of a student)."""
    res: dict = {"bleu_md": (s.out / "nmt" / "bleu.md").read_text()}
    res["teacher_bleu"], res["bleu"] = read_bleu(s)
    targets = s.json("analysis/nmt_targets.json")
    res["targets"], res["vocabulary"] = targets["targets"], targets["vocabulary"]
    res["eta"] = {
        a: [s.json(f"analysis/nmt/eta_{paths.alpha_tag(a)}_seed{k}.json")["targets"] for k in s.seeds]
        for a in s.alphas
    }
    res["entropy"] = {
        a: {T: last_valid_value(s.nmt_log(a, T), "teacher_entropy") for T in s.temperatures} for a in s.alphas
    }
    return res


def epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def shown(command: str) -> str:
    """A command as the report prints it: `python`, console scripts by name, paths from the repo root."""
    command = (
        command.replace(f"{sys.executable} -m shared_metrics", "lskd-metrics")
        .replace(sys.executable, "python")
        .replace(str(Path(sys.executable).parent) + "/", "")
        .replace(str(ROOT) + "/", "")
    )
    return re.sub(r"(?<!\S)/\S*/(fairseq-train)(?!\S)", r"\1", command)


def git_commit() -> str:
    """The checkout's commit, marked when it has uncommitted changes to tracked files."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def versions() -> dict:
    from importlib import metadata

    out = {
        "lskd commit": git_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
    }
    for dist in ("lskd", "torch", "torchvision", "fairseq-fixed", "numpy", "scikit-learn", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def unstable_epochs(records: list[dict], spike: float = 10.0, drop: float = 15.0) -> list[str]:
    """What looks like a blow-up in one run's metrics.jsonl records: after the first epoch (whose
    BatchNorm statistics are still settling), a validation loss above ``spike`` times the final one,
    or a validation top-1 falling by more than ``drop`` points from the epoch before."""
    found = []
    final = records[-1]["val_loss"]
    for prev, rec in zip(records, records[1:]):
        if rec["val_loss"] > spike * final:
            found.append(f"epoch {rec['epoch']}: validation loss {rec['val_loss']:.4g} (final {final:.4g})")
        if prev["val_acc1"] - rec["val_acc1"] > drop:
            found.append(f"epoch {rec['epoch']}: top-1 {prev['val_acc1']:.1f} -> {rec['val_acc1']:.1f} %")
    return found


def training_health(study: Study) -> str:
    """One report line: the vision runs whose training blew up on the way (their final accuracy then
    says little about α or T), or that none did."""
    bad = []
    runs = sorted(
        [*study.out.glob("teachers/*/metrics.jsonl"), *study.out.glob("students/*/T*/metrics.jsonl")]
    )
    for path in runs:
        with open(path) as f:
            records = [json.loads(line) for line in f if line.strip()]
        found = unstable_epochs(records)
        if found:
            bad.append(f"{path.parent.relative_to(study.out)} ({'; '.join(found)})")
    if not bad:
        return (
            f"- Training health: no vision run's validation loss spiked (> 10x its final value) or top-1 "
            f"fell by more than 15 points between epochs ({len(runs)} runs)."
        )
    return (
        "- **Unstable training**: " + "; ".join(bad) + ". These runs' final accuracy and η say little "
        "about α or T; re-run them with a lower --lr or --clip-grad-norm."
    )


def vision_results(s: Study) -> dict:
    """What the vision verdicts read: each student's top-1 (percent, the trainer's last evaluation)
    {α: {T: [per seed]}}, and each seed's `lskd-metrics eta --bootstrap` targets {α: [per seed]}."""
    top1 = {
        (r["alpha"], r["temperature"], r["seed"]): r["acc1"]
        for r in scan_runs(s.out / "students")
        if r["mode"] == "student"
    }
    acc = {a: {T: [top1[a, T, k] for k in s.seeds] for T in s.temperatures} for a in s.alphas}
    eta = {
        a: [s.json(f"eta/eta_{s.model}_{paths.alpha_tag(a)}_s{k}.json")["targets"] for k in s.seeds]
        for a in s.alphas
    }
    return {"acc": acc, "eta": eta, "stability": s.json("analysis/stability.json")["sets"]}


def vision_verdict(s: Study, v: dict) -> list[str]:
    T1, T2, Tmax = s.eta_T1, s.eta_T2, max(s.temperatures)
    lines = [best_line("student top-1", v["acc"], "percent", 1)]
    lines += [
        diffusion_line(f"Teacher α = {a:g} (train split)", eta_over_seeds(v["eta"][a])) for a in s.alphas
    ]
    lines.append(temperature_line("Top-1", v["acc"], "points", 1, 1, Tmax))
    return [line.replace("T1 to T2", f"T = {T1:g} to T = {T2:g}") for line in lines]


def nmt_verdict(s: Study, n: dict) -> list[str]:
    T1, T2, Tmax = s.eta_T1, s.eta_T2, max(s.temperatures)
    lines = [best_line("student BLEU", n["bleu"], "BLEU points", 1)]
    lines += [
        diffusion_line(
            f"Teacher α = {a:g} (decoder features, training tokens)",
            eta_over_seeds(n["eta"][a]),
            "target words",
        )
        for a in s.alphas
    ]
    lines.append(temperature_line("BLEU", n["bleu"], "BLEU points", 1, 1, Tmax))
    return [line.replace("T1 to T2", f"T = {T1:g} to T = {T2:g}") for line in lines]


def eta_table(rows: list[dict], valid: list[dict] | None) -> str:
    head = ["target", "S1", "η S1 train", "η S2 train", "p (Holm)", "bootstrap-significant seeds", "verdict"]
    body = []
    for i, r in enumerate(rows):
        line = [
            r["target"],
            ", ".join(r["similar"]),
            interval(r["s1"], 100),
            interval(r["s2"], 100),
            p_text(r["p_holm"]),
            f"{r['bootstrap_significant']} of {r['n']}",
            "significant diffusion" if r["significant"] else "not distinguishable at this scale",
        ]
        if valid is not None:
            line[4:4] = [interval(valid[i]["s1"], 100), interval(valid[i]["s2"], 100)]
        body.append(line)
    if valid is not None:
        head[4:4] = ["η S1 valid", "η S2 valid"]
    return md_table(head, body)


def nmt_report(study: Study, n: dict) -> list[str]:
    n_cfg = study.cfg["nmt"]
    parts = [
        "\n## Translation: BLEU (Table 7 layout)\n\n",
        f"Bible German→English ({'books ' + n_cfg['books'] if n_cfg['books'] else 'all books'}, "
        f"chapter-disjoint splits, joint BPE {n_cfg['bpe_merges']} merges), teachers "
        f"{epochs(n_cfg['teacher_epochs'])}, "
        f"students {study.nmt_student_schedule()}, {len(study.seeds)} seed(s) of each student; sacrebleu on "
        f"detokenised test output, beam {n_cfg.get('bleu_beam', 5)}; mean ± std (n) over seeds.\n\n",
        n["bleu_md"].strip() + "\n",
    ]
    parts += [study.table("paired_bleu")]
    parts += [
        f"\n## Translation: diffusion index η(T1 = {study.eta_T1:g}, T2 = {study.eta_T2:g})\n\n",
        "η in **percent**, mean [" + level() + " t-interval] over seeds; decoder output features of training "
        "target tokens (teacher-forced, at most 300 per word); S1/S2 from feature space (nearest 1 %, "
        "farthest "
        "90 % of the other words of 3+ letters that stand as whole words in most of their occurrences in the "
        "BPE'd training text — no word-final BPE pieces, no punctuation — by centroid distance in the first "
        "seed's T = 1 student); targets: the most frequent such content words. " + ETA_TESTS + "\n",
    ]
    for a in study.alphas:
        parts += [
            f"\n**Students of the α = {a:g} teacher**\n\n",
            eta_table(eta_over_seeds(n["eta"][a]), None),
        ]
    nats = {
        a: {T: None if b is None else b * math.log(2) for T, b in n["entropy"][a].items()}
        for a in study.alphas
    }
    parts += [
        "\n## Translation: smoothness of the teachers' targets (Table 13 layout)\n\n",
        "Mean entropy of the teacher's softmax(z/T) over the validation target tokens (teacher-forced), nats "
        f"(maximum ln {n['vocabulary']} = {math.log(n['vocabulary']):.3f}); `ls_kd` logs it as "
        "`teacher_entropy` "
        "in bits with each validation (of the first seed's students), converted here.\n\n",
        md_table(
            ["teacher α", *[f"T={T}" for T in study.temperatures]],
            [
                [f"{a:g}", *["–" if nats[a][T] is None else f"{nats[a][T]:.3f}" for T in study.temperatures]]
                for a in study.alphas
            ],
        ),
    ]
    return parts, nmt_verdict(study, n)


ETA_TESTS = (
    "Significant systematic diffusion: the one-sample t-tests over seeds of η S1 < 0 and of η S2 > 0 "
    "both reject after Holm's correction over the targets (p (Holm) = the adjusted larger of the two; 1 "
    "when a mean has the wrong sign). 'Bootstrap-significant seeds': in how many seeds the paired "
    "bootstrap over samples (`lskd-metrics eta --bootstrap`, percentile intervals, Holm over the "
    "targets) put η S1's interval below 0 and η S2's above 0."
)


def verdict_section(study: Study, v: dict, nmt_lines: list[str] | None) -> list[str]:
    n_seeds = len(study.seeds)
    return [
        "\n## Verdict\n\n",
        f"Every line says how sure it is: {level()} intervals over the {n_seeds} seeds of each student "
        f'(paired by seed), and the verdict "significant at {level()}" or "not distinguishable at this '
        f'scale"; {t_critical_note(n_seeds)}. The per-seed tests and every interval are in the tables '
        "below.\n",
        "\n### Vision (Fashion-MNIST)\n\n",
        *[line + "\n" for line in vision_verdict(study, v)],
        training_health(study) + "\n",
        "\n### Translation (Bible de→en)\n\n",
        *([line + "\n" for line in nmt_lines] if nmt_lines is not None else ["Not run (--no-nmt).\n"]),
    ]


def scale_note(study: Study) -> str:
    """What the study's size and --scale-epochs mean for reading its numbers."""
    note = {
        "quick": "Scaled down from the paper (90/200 epochs on ImageNet, IWSLT14 for translation, 3 seeds) "
        "to fit a 2-core CPU with three seeds of every student: the vision students train on part of the "
        "teachers' images for a few epochs, the translation students for a fraction of an epoch (see "
        "above), and BLEU decodes greedily. Read the numbers as a small study, not a reproduction.",
        "tiny": "The `tiny` size checks that every stage runs and the report is whole; its numbers mean "
        "nothing.",
    }.get(study.size, "")
    if study.scale_epochs != 1:
        note += (
            f" Every schedule length of the `{study.size}` study (epochs, lr steps, warm-up) was multiplied "
            f"by {study.scale_epochs:g} (`--scale-epochs`), rounded up: every number in this report is for "
            "these shorter runs."
        )
    return note


def what_ran_section(study: Study) -> list[str]:
    c, n = study.cfg, study.cfg["nmt"]
    te, st = c["teacher"], c["student"]
    flags = lambda f: " ".join(map(str, f)) or "none"  # noqa: E731
    listed = lambda xs: ", ".join(f"{x:g}" for x in xs)  # noqa: E731
    schedule = lambda r: f"{epochs(r['epochs'])}, lr {r['lr']} ×{c['lr_gamma']} every {r['lr_step']}"  # noqa: E731
    arch = n["arch"][1] if n["arch"][1] != "transformer" else "a small Transformer"
    return [
        "\n## What ran\n\n",
        f"Study size `{study.size}`: the vision recipes' rules on Fashion-MNIST, {te['model']} teachers "
        f"(α = {listed(study.alphas)}; {schedule(te)}; once, seed {study.seed}) and {study.model} students "
        f"at T = {listed(study.temperatures)} ({schedule(st)}, β = {st['beta']}; {len(study.seeds)} seeds: "
        f"{', '.join(map(str, study.seeds))}), batch {c['batch_size']}, SGD momentum {c['momentum']}, weight "
        f"decay {c['weight_decay']:g}, linear warm-up over {epochs(c['lr_warmup_epochs'])}; distill.py flags "
        f"of every training: `{flags(c['flags'])}`, the teachers': `{flags(te.get('flags', []))}`, the "
        f"students': `{flags(st.get('flags', []))}`. Translation: {arch} "
        f"({' '.join(n['arch'][2:]) or 'as in the paper'}), students {study.nmt_student_schedule()}, batches "
        f"of {n['max_tokens']} tokens, {'all books' if not n['books'] else 'books ' + n['books']} of the "
        "Bible. " + scale_note(study) + "\n",
    ]


def vision_sections(study: Study, v: dict) -> list[str]:
    """The recipes' vision tables (accuracy, paired tests, η with Table 12, η_pairwise, entropy, isotropy,
    per-class accuracy) as they wrote them, with the across-seed tests of η and the teachers' stability."""
    stability = "; ".join(
        f"{s['label']}: {s['stability']:.4f} / {s['inter_class_stability']:.4f}" for s in v["stability"]
    )
    parts = [study.table("accuracy"), study.table("paired_accuracy"), study.table(f"eta_{study.model}")]
    parts += [
        f"\n## Diffusion index η(T1 = {study.eta_T1:g}, T2 = {study.eta_T2:g}): across-seed tests\n\n",
        f"η in **percent** (JSON outputs carry fractions), mean [{level()} t-interval] over seeds; S1/S2 as "
        "above (the shipped Fashion-MNIST groups: tops, footwear, trousers, bags). "
        + ETA_TESTS
        + " The verdict uses the train split.\n",
    ]
    for a in study.alphas:
        parts += [
            f"\n**Students of the α = {a:g} teacher**\n\n",
            eta_table(eta_over_seeds(v["eta"][a]), eta_over_seeds(v["eta"][a], "_valid")),
        ]
    parts += [study.table(f"eta_pairwise_{study.model}"), study.table("entropy")]
    parts += [
        f"\nStability (Shen et al., Eq. 2 / Eq. 5) of the teachers on the validation images: {stability}.\n"
    ]
    parts += [
        "\n## Systematic, not isotropic (Supp. D)\n",
        study.table("isotropy"),
        study.table("per_class_accuracy"),
    ]
    return parts


def figures_section(study: Study) -> list[str]:
    c, s0, soft = study.cfg, study.seed, study.cfg["soft_targets"]
    return [
        "\n## Figures\n\n",
        f"Penultimate-layer projection (Supp. E) of {', '.join(c['projection'])}, first seed: the teachers "
        f"(train, valid), then the {study.model} students by teacher α and T (Figure 1 layout):\n\n",
        f"![projection of the teachers](figures/projection_teachers_s{s0}.png)\n\n",
        f"![projection of the students](figures/projection_{study.model}_s{s0}.png)\n\n",
        f"Mean soft targets of the α = {soft['alpha']:g} teacher for {soft['target']} at T = "
        f"{', '.join(map(str, soft['temperatures']))} (target, its similar classes, the rest; Figure 2 "
        "layout):\n\n",
        f"![soft targets](figures/soft_targets_s{s0}.png)\n",
    ]


def stages_section(study: Study) -> list[str]:
    setup_seconds = os.environ.get("LSKD_SETUP_SECONDS", "")  # set by scripts/demo.sh
    rows = (
        [["setup (`scripts/setup_env.sh`)", "–", setup_seconds, "before this invocation"]]
        if setup_seconds
        else []
    )
    for s in study.stages:
        start = "–" if s["skipped"] else f"{s['start']:.0f}"
        note = "skipped (done before; its time then)" if s["skipped"] else ""
        rows.append([s["name"], start, f"{s['seconds']:.0f}", note])
    setup = f" (plus {setup_seconds} s of setup before it)" if setup_seconds else ""
    return [
        "\n## Stages and wall time\n\n\n",
        "Start: seconds after this invocation began (each rule's log: its start and end); stages with "
        f"overlapping spans ran side by side, up to {study.cores} at a time (`--cores`), each with "
        "OMP_NUM_THREADS = its rule's threads.\n\n",
        md_table(["stage", "start (s)", "seconds", "note"], rows),
        f"\nTotal wall time of this invocation up to the report: {study.wall():.0f} s{setup}; time with no "
        f"job running (Snakemake's own overhead, at most): {study.idle():.0f} s.\n",
    ]


def commands_section(study: Study) -> list[str]:
    return [
        "\n## Commands\n\nRun from the study's output directory (Snakemake's `--directory`) in the "
        "repository's `.venv`; the study itself was started as\n\n"
        f"```\n{study.invocation}\n```\n\nand ran these:\n\n```\n",
        *[shown(c) + "\n" for c in study.commands()],
        "```\n",
        "\n## Versions\n\n\n",
        md_table(["component", "version"], [[k, val] for k, val in versions().items()]),
    ]


def report_text(study: Study, v: dict, n: dict | None = None) -> str:
    nmt_parts, nmt_lines = nmt_report(study, n) if n else ([], None)
    parts = [
        f"# lskd study report ({study.size} study)\n\n",
        "Should I smooth my teacher, and at which temperature? What happened on the data this run used.\n\n",
        *verdict_section(study, v, nmt_lines),
        *what_ran_section(study),
        *vision_sections(study, v),
        *nmt_parts,
        *figures_section(study),
        *stages_section(study),
        *commands_section(study),
    ]
    return "".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="the workflow's configuration (JSON)")
    ap.add_argument("--out", type=Path, default=Path("report.md"))
    args = ap.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    started = os.environ.get("LSKD_STUDY_STARTED")
    study = Study(cfg, Path.cwd(), float(started) if started else None)
    v = vision_results(study)
    n = nmt_results(study) if cfg["nmt"].get("enabled", True) else None
    tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
    tmp.write_text(report_text(study, v, n))
    tmp.replace(args.out)
    print(f"[report] {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
