#!/usr/bin/env python
"""The study's report: reads what the workflow's rules wrote (lskd-metrics JSON under analysis/,
BLEU tables, training logs, Snakemake benchmark records) and writes report.md. Run by the
workflow's `report` rule, from the study's output directory:

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
from verdicts import (
    best_line,
    cell,
    diffusion_line,
    eta_over_seeds,
    interval,
    level,
    p_text,  # noqa: E402
    t_critical_note,
    temperature_line,
    tests_table_rows,
)

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
        self.eta_T1, self.eta_T2 = cfg["eta"]["T1"], cfg["eta"]["T2"]
        v, n = cfg["vision"], cfg["nmt"]
        # the flat view the report's sentences use
        self.p = {**v, **{f"nmt_{k}": val for k, val in n.items()}, "nmt_bpe": n["bpe_merges"]}
        self.started = started if started is not None else time.time()
        self.cores = int(os.environ.get("LSKD_CORES", "0")) or os.cpu_count()
        self.invocation = os.environ.get("LSKD_INVOCATION", "snakemake -s scripts/workflow/Snakefile ...")
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

    def vision_teacher_dir(self, a: float) -> str:
        return paths.vision_teacher_dir(a)

    def vision_student_dir(self, a: float, T, seed: int) -> str:
        return f"{paths.vision_sweep_dir(a, seed)}/{paths.temperature_tag(T)}"

    def nmt_log(self, a: float, T) -> Path:
        return (
            self.out
            / "logs"
            / f"nmt-student-{paths.alpha_tag(a)}-seed{self.seed}-{paths.temperature_tag(T)}.log"
        )

    # ------------------------------------------------------------------ stages and commands
    def _stages(self) -> list[dict]:
        """One record per Snakemake benchmark file: name, start (s after this invocation began),
        seconds, skipped (finished before this invocation)."""
        rows = []
        for tsv in (self.out / "benchmarks").rglob("*.tsv"):
            with open(tsv) as f:
                rec = next(csv.DictReader(f, delimiter="\t"), None)
            if rec is None:
                continue
            seconds, end = float(rec["s"]), tsv.stat().st_mtime
            rows.append(
                {
                    "name": str(tsv.relative_to(self.out / "benchmarks").with_suffix("")),
                    "seconds": seconds,
                    "start": end - seconds - self.started,
                    "skipped": end < self.started,
                }
            )
        return sorted(rows, key=lambda r: (not r["skipped"], r["start"]))

    def wall(self) -> float:
        return time.time() - self.started

    def idle(self) -> float:
        """Seconds of this invocation, up to now, during which no benchmarked job was running: an
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
        """The first line ("$ command") of every rule's log, in the order the stages started."""
        order = {s["name"]: s["start"] for s in self.stages}
        found = []
        for log in (self.out / "logs").rglob("*.log"):
            if log.name == "report.log":
                continue
            with open(log, errors="replace") as f:
                first = f.readline()
            if first.startswith("$ "):
                name = str(log.relative_to(self.out / "logs").with_suffix(""))
                found.append((order.get(name, math.inf), name, first[2:].strip()))
        return [c for _, _, c in sorted(found)]


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


def vision_results(s: Study) -> dict:
    """The vision analysis the report reads, from analysis/vision/*.json; student values are lists
    over the seeds, in seed order."""
    tag, tt = paths.alpha_tag, paths.temperature_tag
    res: dict = {
        "teacher": {},
        "acc": {},
        "per_class": {},
        "eta": {},
        "entropy": {},
        "vs_alpha": {},
        "vs_T1": {},
    }
    for a in s.alphas:
        res["teacher"][a] = s.json(f"analysis/vision/accuracy_teacher_{tag(a)}.json")["top1"]
        accs = {
            T: [s.json(f"analysis/vision/accuracy_{tag(a)}_seed{k}_{tt(T)}.json") for k in s.seeds]
            for T in s.temperatures
        }
        res["acc"][a] = {T: [x["top1"] for x in accs[T]] for T in s.temperatures}
        res["per_class"][a] = {
            T: {c: [x["per_class"][c] for x in accs[T]] for c in accs[T][0]["per_class"]}
            for T in s.temperatures
        }
        res["eta"][a] = [s.json(f"analysis/vision/eta_{tag(a)}_seed{k}.json")["targets"] for k in s.seeds]
        res["entropy"][a] = s.json(f"analysis/vision/entropy_{tag(a)}.json")
        res["vs_T1"][a] = {
            T: [s.json(f"analysis/vision/compare/{tag(a)}_seed{k}_T1_{tt(T)}.json") for k in s.seeds]
            for T in s.temperatures
            if T != 1
        }
    res["vs_alpha"] = {
        T: [s.json(f"analysis/vision/compare/alpha_seed{k}_{tt(T)}.json") for k in s.seeds]
        for T in s.temperatures
    }
    res["sets"] = s.json("analysis/fashion_sets.json")
    res["matched"] = s.json("analysis/vision/matched_temperature.json")
    res["stability"] = s.json("analysis/vision/stability.json")["sets"]
    return res


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
    """The translation analysis the report reads: BLEU (per seed) and its paired tests, η per
    teacher and seed, the teachers' entropy per T (the `teacher_entropy` that ls_kd logs, in bits,
    with each validation of a student)."""
    tag, tt = paths.alpha_tag, paths.temperature_tag
    res: dict = {"bleu_md": (s.out / "nmt" / "bleu.md").read_text(), "eta": {}}
    res["teacher_bleu"], res["bleu"] = read_bleu(s)
    targets = s.json("analysis/nmt_targets.json")
    res["targets"], res["vocabulary"] = targets["targets"], targets["vocabulary"]
    res["vs_alpha"] = {
        T: [s.json(f"analysis/nmt/bleu_alpha_seed{k}_{tt(T)}.json") for k in s.seeds] for T in s.temperatures
    }
    res["vs_T1"] = {}
    for a in s.alphas:
        res["eta"][a] = [s.json(f"analysis/nmt/eta_{tag(a)}_seed{k}.json")["targets"] for k in s.seeds]
        res["vs_T1"][a] = [s.json(f"analysis/nmt/bleu_{tag(a)}_seed{k}_T1.json") for k in s.seeds]
    res["entropy"] = {
        a: {T: last_valid_value(s.nmt_log(a, T), "teacher_entropy") for T in s.temperatures} for a in s.alphas
    }
    return res


def epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


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
    runs = [(a, None, None) for a in study.alphas]
    runs += [(a, T, k) for a in study.alphas for k in study.seeds for T in study.temperatures]
    for a, T, seed in runs:
        d = study.out / (study.vision_teacher_dir(a) if T is None else study.vision_student_dir(a, T, seed))
        with open(d / "metrics.jsonl") as f:
            records = [json.loads(line) for line in f if line.strip()]
        found = unstable_epochs(records)
        if found:
            who = f"teacher α = {a:g}" if T is None else f"student of α = {a:g} at T = {T} (seed {seed})"
            bad.append(f"{who} ({'; '.join(found)})")
    if not bad:
        return (
            f"- Training health: no vision run's validation loss spiked (> 10x its final value) or top-1 "
            f"fell by more than 15 points between epochs ({len(runs)} runs)."
        )
    return (
        "- **Unstable training**: " + "; ".join(bad) + ". These runs' final accuracy and η say little "
        "about α or T; re-run them with a lower --lr or --clip-grad-norm."
    )


def per_seed_p(results: list[dict], system_suffix: str | None = None) -> list:
    """Per-seed p-values of the paired tests the workflow ran: `lskd-metrics compare` (McNemar's
    exact test) or, with ``system_suffix``, `nmt_plugin.bleu paired` (sacrebleu's paired bootstrap:
    the system whose checkpoint path ends so)."""
    if system_suffix is None:
        return [r["mcnemar"]["p_value"] for r in results]
    return [
        next(
            x["p_value"]
            for x in r["systems"]
            if x["p_value"] is not None and x["system"].endswith(system_suffix)
        )
        for r in results
    ]


def vision_verdict(s: Study, v: dict) -> list[str]:
    T1, T2, Tmax = s.eta_T1, s.eta_T2, max(s.temperatures)
    lines = [best_line("student top-1", v["acc"], "percent", 100)]
    lines += [
        diffusion_line(f"Teacher α = {a:g} (train split)", eta_over_seeds(v["eta"][a])) for a in s.alphas
    ]
    lines.append(temperature_line("Top-1", v["acc"], "points", 100, 1, Tmax))
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


def tests_section(
    title: str, scores: dict, vs_alpha: dict, vs_T1: dict, scale: float, unit: str, bleu: bool
) -> list[str]:
    """The paired tests of one task: the LS teacher's student against the plain teacher's at each T,
    and each T against T = 1 per teacher; per seed on the same images / sentences, across seeds by
    the paired t-interval."""
    a0, a1 = scores
    temperatures = list(scores[a0])
    pairs = [
        (
            f"α = {a1:g} − α = {a0:g} at T = {T:g}",
            scores[a0][T],
            scores[a1][T],
            per_seed_p(vs_alpha[T], f"/{paths.temperature_tag(T)}/model.pt" if bleu else None),
        )
        for T in temperatures
    ]
    for a in (a0, a1):
        for T in temperatures:
            if T != 1:
                per_seed = (
                    per_seed_p(vs_T1[a], f"/{paths.temperature_tag(T)}/model.pt")
                    if bleu
                    else per_seed_p(vs_T1[a][T])
                )
                pairs.append((f"α = {a:g}: T = {T:g} − T = 1", scores[a][1], scores[a][T], per_seed))
    test = (
        "sacrebleu's paired bootstrap on the test sentences (Holm over the T compared to T = 1)"
        if bleu
        else "McNemar's exact test on the validation images"
    )
    return [
        f"\n## {title}\n\n",
        f"A and B are students of the same seed; B − A is the mean of the per-seed differences with its "
        f"{level()} paired t-interval and the paired t-test over seeds; per seed, {test} (p per seed, in "
        "seed "
        f"order). {unit}. Each row is one question asked on its own: read several rows together with care "
        "(no correction across rows).\n\n",
        md_table(
            ["comparison", "A", "B", f"B − A [{level()} CI]", "paired t p", "per-seed p", "verdict"],
            tests_table_rows(pairs, scale),
        ),
    ]


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
    p = study.p
    parts = [
        "\n## Translation: BLEU (Table 7 layout)\n\n",
        f"Bible German→English ({'books ' + p['nmt_books'] if p['nmt_books'] else 'all books'}, "
        f"chapter-disjoint splits, joint BPE {p['nmt_bpe']} merges), teachers "
        f"{epochs(p['nmt_teacher_epochs'])}, "
        f"students {study.nmt_student_schedule()}, {len(study.seeds)} seed(s) of each student; sacrebleu on "
        f"detokenised test output, beam {p.get('nmt_bleu_beam', 5)}; mean ± std (n) over seeds.\n\n",
        n["bleu_md"].strip() + "\n",
    ]
    parts += tests_section(
        "Translation: paired tests of BLEU", n["bleu"], n["vs_alpha"], n["vs_T1"], 1, "BLEU points", bleu=True
    )
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
    p, seeds = study.p, study.seeds
    n_train = p["limit_train"] or 60000
    clip = f"gradient norm clipped at {p['clip_grad_norm']}, " if p["clip_grad_norm"] else ""
    arch = p["nmt_arch"][1] if p["nmt_arch"][1] != "transformer" else "a small Transformer"
    return [
        "\n## What ran\n\n",
        f"Study size `{study.size}`: model {p['model']} on Fashion-MNIST ({n_train} training images for "
        f"the teachers, the first {p.get('student_limit_train') or n_train} "
        f"of them for the students; {p['limit_val'] or 10000} validation images), teachers "
        f"{epochs(p['teacher_epochs'])}, students {epochs(p['student_epochs'])} ({len(seeds)} seeds of each: "
        f"{', '.join(map(str, seeds))}; the teachers once, seed {seeds[0]}), batch {p['batch_size']}, "
        f"lr {p['lr']} (linear warm-up over {epochs(p['lr_warmup_epochs'])}, {clip}×0.1 every "
        f"{p['teacher_lr_step']}/{p['student_lr_step']} epochs), pure KD (β = 1), device {p['device']}. "
        f"Translation: {arch} ({' '.join(p['nmt_arch'][2:]) or 'as in the paper'}), students "
        f"{study.nmt_student_schedule()}, batches of {p['nmt_max_tokens']} tokens, "
        f"{'all books' if not p['nmt_books'] else 'books ' + p['nmt_books']} of the Bible. "
        + scale_note(study)
        + "\n",
    ]


def vision_sections(study: Study, v: dict) -> list[str]:
    """Accuracy and its paired tests, η, the teachers' entropy and stability, per-class accuracy."""
    temps, alphas = study.temperatures, study.alphas
    T_cols = [f"T={T}" for T in temps]
    parts = [
        "\n## Accuracy (Table 2 layout)\n\n",
        "Top-1 on the validation images, percent: the teacher (one run), its students mean ± std (n) over "
        "seeds.\n\n",
        md_table(
            ["teacher α", "teacher", *T_cols],
            [[f"{a:g}", pct(v["teacher"][a]), *[cell(v["acc"][a][T], 100) for T in temps]] for a in alphas],
        ),
        *tests_section(
            "Paired tests of top-1", v["acc"], v["vs_alpha"], v["vs_T1"], 100, "Percent", bleu=False
        ),
        f"\n## Diffusion index η(T1 = {study.eta_T1:g}, T2 = {study.eta_T2:g}) (Table 3 layout)\n\n",
        f"η in **percent** (JSON outputs carry fractions), mean [{level()} t-interval] over seeds. S1/S2 "
        "from the shipped Fashion-MNIST hierarchy (tops, footwear, trousers, bags): S1 = the target's group, "
        "S2 = the other groups. " + ETA_TESTS + " The verdict uses the train split.\n",
    ]
    for a in alphas:
        parts += [
            f"\n**Students of the α = {a:g} teacher**\n\n",
            eta_table(eta_over_seeds(v["eta"][a]), eta_over_seeds(v["eta"][a], "_valid")),
        ]
    stability = "; ".join(
        f"{s['label']}: {s['stability']:.4f} / {s['inter_class_stability']:.4f}" for s in v["stability"]
    )
    parts += [
        "\n## Smoothness of the teachers' targets (Table 13 layout)\n\n",
        "Mean entropy of softmax(z/T) over the training images, nats (maximum ln 10 = 2.303).\n\n",
        md_table(
            ["teacher α", *T_cols],
            [[f"{a:g}", *[f"{v['entropy'][a][str(T)]:.3f}" for T in temps]] for a in alphas],
        ),
        f"\nThe α = 0 teacher's targets match the α = 0.1 teacher's entropy at T = 1 "
        f"({v['matched']['entropy']:.3f} nats) at **T = {v['matched']['temperature']:.4f}**.\n",
        f"\nStability (Shen et al., Eq. 2 / Eq. 5) of the teachers on the validation images: {stability}.\n",
        "\n## Per-class accuracy of the η targets (Tables 17–19 layout)\n\n",
        "Validation top-1 per class, percent, mean ± std (n) over seeds.\n",
    ]
    for a in alphas:
        rows = [[c, *[cell(v["per_class"][a][T][c], 100) for T in temps]] for c in study.p["targets"]]
        parts += [f"\n**Students of the α = {a:g} teacher**\n\n", md_table(["class", *T_cols], rows)]
    return parts


def figures_section(study: Study) -> list[str]:
    p = study.p
    return [
        "\n## Figures\n\n",
        f"Penultimate-layer projection (Supp. E) of {p['projection_classes'].replace(',', ', ')} — rows: "
        "teachers α = 0 and α = 0.1 with their students; columns: the teacher, then the students by T "
        "(Figure 1 layout):\n\n",
        "![projection](figures/projection_fashion.png)\n\n",
        f"Mean soft targets of the α = 0.1 teacher for {p['soft_target']['class']} at T = 1 and T = 2 "
        "(target, its group, the rest; Figure 2 layout):\n\n",
        "![soft targets](figures/soft_targets_fashion.png)\n",
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
        "Start: seconds after this invocation began (Snakemake's benchmark records); stages with overlapping "
        f"spans ran side by side, up to {study.cores} at a time (`--cores`), each with OMP_NUM_THREADS = its "
        "rule's threads.\n\n",
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
