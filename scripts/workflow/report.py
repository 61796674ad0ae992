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

ROOT = paths.ROOT
# The study's grid and classes, set from its configuration by configure().
ALPHAS: tuple = (0.0, 0.1)
TEMPERATURES: tuple = (1, 2, 3, 64)
FASHION_TARGETS: list = []
PROJECTION_CLASSES = SOFT_TARGET_CLASS = SOFT_TARGET_SIMILAR = ""


def configure(cfg: dict) -> None:
    """Set the module's grid (α, T) and named classes from the workflow's configuration."""
    global ALPHAS, TEMPERATURES, FASHION_TARGETS, PROJECTION_CLASSES, SOFT_TARGET_CLASS, SOFT_TARGET_SIMILAR
    v = cfg["vision"]
    ALPHAS, TEMPERATURES = tuple(float(a) for a in cfg["alphas"]), tuple(cfg["temperatures"])
    FASHION_TARGETS, PROJECTION_CLASSES = list(v["targets"]), v["projection_classes"]
    SOFT_TARGET_CLASS, SOFT_TARGET_SIMILAR = v["soft_target"]["class"], v["soft_target"]["similar"]


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
        v, n = cfg["vision"], cfg["nmt"]
        # the flat view the report's sentences use
        self.p = {**v, **{f"nmt_{k}": val for k, val in n.items()}, "nmt_bpe": n["bpe_merges"]}
        self.started = started if started is not None else time.time()
        self.cores = int(os.environ.get("LSKD_CORES", "0")) or os.cpu_count()
        self.invocation = os.environ.get("LSKD_INVOCATION", "snakemake -s scripts/workflow/Snakefile ...")
        self.stages = self._stages()

    def json(self, rel: str) -> dict:
        return json.loads((self.out / rel).read_text())

    def vision_teacher_dir(self, a: float) -> str:
        return paths.vision_teacher_dir(a)

    def vision_student_dir(self, a: float, T) -> str:
        return f"{paths.vision_sweep_dir(a, self.seed)}/{paths.temperature_tag(T)}"

    def nmt_log(self, a: float, T) -> Path:
        return self.out / "logs" / f"nmt-student-{paths.alpha_tag(a)}-seed{self.seed}-{paths.temperature_tag(T)}.log"

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
            rows.append({"name": str(tsv.relative_to(self.out / "benchmarks").with_suffix("")), "seconds": seconds,
                         "start": end - seconds - self.started, "skipped": end < self.started})
        return sorted(rows, key=lambda r: (not r["skipped"], r["start"]))

    def wall(self) -> float:
        return time.time() - self.started

    def idle(self) -> float:
        """Seconds of this invocation, up to now, during which no benchmarked job was running: an
        upper bound on the time Snakemake itself took (DAG building, scheduling, job start-up)."""
        spans = sorted((max(0.0, s["start"]), s["start"] + s["seconds"]) for s in self.stages if not s["skipped"])
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
            m = re.search(rf"\| {re.escape(key)} ([-+0-9.eE]+)", line) if "valid on 'valid' subset" in line else None
            if m:
                value = float(m.group(1))
    return value


def vision_results(s: Study) -> dict:
    """The vision analysis the report reads, from analysis/vision/*.json."""
    tag, seed = paths.alpha_tag, s.seed
    res: dict = {"accuracy": {}, "eta": {}, "entropy": {}, "per_class": {}}
    for a in s.alphas:
        row = {"teacher": s.json(f"analysis/vision/accuracy_teacher_{tag(a)}.json")["top1"]}
        res["per_class"][a] = {}
        for T in s.temperatures:
            acc = s.json(f"analysis/vision/accuracy_{tag(a)}_seed{seed}_{paths.temperature_tag(T)}.json")
            row[f"T={T}"], res["per_class"][a][T] = acc["top1"], acc["per_class"]
        res["accuracy"][a] = row
        res["eta"][a] = s.json(f"analysis/vision/eta_{tag(a)}_seed{seed}.json")["targets"]
        res["entropy"][a] = s.json(f"analysis/vision/entropy_{tag(a)}.json")
    res["sets"] = s.json("analysis/fashion_sets.json")
    res["matched"] = s.json("analysis/vision/matched_temperature.json")
    res["stability"] = s.json("analysis/vision/stability.json")["sets"]
    return res


def nmt_results(s: Study) -> dict:
    """The translation analysis the report reads: BLEU, η per teacher, the teachers' entropy per T
    (the `teacher_entropy` that ls_kd logs, in bits, with each validation of a student)."""
    tag = paths.alpha_tag
    res: dict = {"bleu_md": (s.out / "nmt" / "bleu.md").read_text(), "eta": {}}
    targets = s.json("analysis/nmt_targets.json")
    res["targets"], res["vocabulary"] = targets["targets"], targets["vocabulary"]
    for a in s.alphas:
        res["eta"][a] = s.json(f"analysis/nmt/eta_{tag(a)}_seed{s.seed}.json")["targets"]
    res["entropy"] = {a: {T: last_valid_value(s.nmt_log(a, T), "teacher_entropy") for T in s.temperatures}
                      for a in s.alphas}
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
    command = (command.replace(f"{sys.executable} -m shared_metrics", "lskd-metrics")
               .replace(sys.executable, "python").replace(str(Path(sys.executable).parent) + "/", "")
               .replace(str(ROOT) + "/", ""))
    return re.sub(r"(?<!\S)/\S*/(fairseq-train)(?!\S)", r"\1", command)


def git_commit() -> str:
    """The checkout's commit, marked when it has uncommitted changes to tracked files."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def versions() -> dict:
    from importlib import metadata

    out = {"lskd commit": git_commit(), "python": platform.python_version(),
           "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs"}
    for dist in ("lskd", "torch", "torchvision", "fairseq-fixed", "numpy", "scikit-learn", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def best_setting(scores: dict) -> tuple[str, float]:
    """'T = t (score)' of the best student in one teacher's row {"T=1": score, ...}."""
    col = max((c for c in scores if c.startswith("T=")), key=lambda c: scores[c])
    return col.replace("=", " = "), scores[col]


def answer(metric: str, scores: dict, unit: float, noise: float) -> str:
    """The report's one-line answer: which teacher (α) and which T gave the best student, and by how
    much the LS teacher's best student beat (or lost to) the plain teacher's. ``scores``: {α: {"T=1":
    score, ...}}; ``unit`` scales scores for printing; ``noise``: differences below it are called
    within one seed's noise."""
    best = {a: best_setting(scores[a]) for a in ALPHAS}
    (t0, s0), (t1, s1) = best[0.0], best[0.1]
    gap = (s1 - s0) * unit
    verdict = ("smoothing the teacher helped its best student" if gap > 0 else
               "smoothing the teacher did not help its best student")
    return (f"Best {metric}: plain teacher (α = 0) at {t0}: {s0 * unit:.2f}; LS teacher (α = 0.1) at {t1}: "
            f"{s1 * unit:.2f}. On this run {verdict} ({gap:+.2f}"
            + (", within the noise of one seed" if abs(gap) < noise * unit else "") + ").")


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


def training_health(study: "Study") -> str:
    """One report line: the vision runs whose training blew up on the way (their final accuracy then
    says little about α or T), or that none did."""
    bad = []
    for a in ALPHAS:
        for T in (None, *TEMPERATURES):
            d = study.out / (study.vision_teacher_dir(a) if T is None else study.vision_student_dir(a, T))
            with open(d / "metrics.jsonl") as f:
                records = [json.loads(line) for line in f if line.strip()]
            found = unstable_epochs(records)
            if found:
                who = f"teacher α = {a:g}" if T is None else f"student of α = {a:g} at T = {T}"
                bad.append(f"{who} ({'; '.join(found)})")
    if not bad:
        return ("- Training health: no vision run's validation loss spiked (> 10x its final value) or top-1 "
                "fell by more than 15 points between epochs.")
    return ("- **Unstable training**: " + "; ".join(bad) + ". These runs' final accuracy and η say little "
            "about α or T; re-run them with a lower --lr or --clip-grad-norm.")


def vision_verdict(v: dict) -> list[str]:
    lines = []
    for a in ALPHAS:
        diffused = [r["target"] for r in v["eta"][a] if r["systematic_diffusion"]]
        both = [r["target"] for r in v["eta"][a] if r["systematic_diffusion"] and r["systematic_diffusion_valid"]]
        lines.append(f"- Teacher α = {a:g}: systematic diffusion from T = 1 to T = 3 (η S1 < 0 and η S2 > 0) "
                     f"on the train split for {len(diffused)} of {len(v['eta'][a])} targets"
                     f"{' (' + ', '.join(diffused) + ')' if diffused else ''}; on train and valid both "
                     f"for {len(both)}.")
    drop = {a: v["accuracy"][a]["T=1"] - v["accuracy"][a]["T=64"] for a in ALPHAS}
    lines.append(f"- Accuracy change of the students from T = 1 to T = 64: α = 0: {100 * -drop[0.0]:+.2f} points, "
                 f"α = 0.1: {100 * -drop[0.1]:+.2f} points. The LS teacher's students "
                 f"{'degraded more' if drop[0.1] > drop[0.0] else 'did not degrade more'} with T than the "
                 "plain teacher's" + (" (differences this small are within run-to-run noise at this scale)."
                                      if abs(drop[0.1] - drop[0.0]) < 0.01 else "."))
    return lines


def read_bleu(study: "Study") -> dict:
    """{(α, T or None): BLEU} from the `nmt_plugin.bleu table` CSV (one seed in the demo)."""
    import csv

    with open(f"{study.out / 'nmt' / 'bleu'}.csv") as f:
        return {(float(r["alpha"]), float(r["temperature"]) if r["temperature"] else None): float(r["bleu"])
                for r in csv.DictReader(f)}


def nmt_verdict(n: dict, bleu: dict) -> list[str]:
    scores = {a: {f"T={T:g}": bleu[(a, float(T))] for T in TEMPERATURES} for a in ALPHAS}
    lines = ["- " + answer("student BLEU", scores, 1, 0.5)]
    for a in ALPHAS:
        diffused = [r["target"] for r in n["eta"][a] if r["systematic_diffusion"]]
        lines.append(f"- Teacher α = {a:g}: systematic diffusion from T = 1 to T = 3 (decoder features, "
                     f"training tokens) for {len(diffused)} of {len(n['eta'][a])} target words"
                     f"{' (' + ', '.join(diffused) + ')' if diffused else ''}.")
    drop = {a: bleu[(a, 1.0)] - bleu[(a, 64.0)] for a in ALPHAS}
    lines.append(f"- BLEU change of the students from T = 1 to T = 64: α = 0: {-drop[0.0]:+.2f}, α = 0.1: "
                 f"{-drop[0.1]:+.2f}. The LS teacher's students "
                 f"{'degraded more' if drop[0.1] > drop[0.0] else 'did not degrade more'} with T than the plain "
                 "teacher's" + (" (at BLEU this low the difference says little)." if max(bleu.values()) < 10 else "."))
    return lines


def nmt_report(study: "Study", n: dict) -> list[str]:
    p = study.p
    bleu = read_bleu(study)
    parts = ["\n## Translation: BLEU (Table 7 layout)\n\n",
             f"Bible German→English ({'books ' + p['nmt_books'] if p['nmt_books'] else 'all books'}, "
             f"chapter-disjoint splits, joint BPE {p['nmt_bpe']} merges), teachers {epochs(p['nmt_teacher_epochs'])}, "
             f"students {epochs(p['nmt_student_epochs'])}, one seed; sacrebleu on detokenised test output, beam 5.\n\n",
             n["bleu_md"].strip() + "\n",
             "\n## Translation: diffusion index η(T1 = 1, T2 = 3)\n\n",
             "η in **percent**, decoder output features of training target tokens (teacher-forced, at most 300 per word); "
             "S1/S2 from feature space (nearest 1 %, farthest 90 % of the other words of 3+ letters that stand "
             "as whole words in most of their occurrences in the BPE'd training text — no word-final BPE pieces, "
             "no punctuation — by centroid distance in the T = 1 student); targets: the most frequent such "
             "content words.\n"]
    for a in ALPHAS:
        parts += [f"\n**Students of the α = {a:g} teacher**\n\n",
                  md_table(["target", "S1", "S2 size", "η S1", "η S2", "diffusion"],
                           [[r["target"], ", ".join(r["similar"]), len(r["dissimilar"]), pct(r["eta_similar"]),
                             pct(r["eta_dissimilar"]), "yes" if r["systematic_diffusion"] else "no"]
                            for r in n["eta"][a]])]
    nats = {a: {T: None if b is None else b * math.log(2) for T, b in n["entropy"][a].items()} for a in ALPHAS}
    parts += ["\n## Translation: smoothness of the teachers' targets (Table 13 layout)\n\n",
              "Mean entropy of the teacher's softmax(z/T) over the validation target tokens (teacher-forced), nats "
              f"(maximum ln {n['vocabulary']} = {math.log(n['vocabulary']):.3f}); `ls_kd` logs it as `teacher_entropy` "
              "in bits with each validation, converted here.\n\n",
              md_table(["teacher α", *[f"T={T}" for T in TEMPERATURES]],
                       [[f"{a:g}", *["–" if nats[a][T] is None else f"{nats[a][T]:.3f}" for T in TEMPERATURES]]
                        for a in ALPHAS])]
    return parts, nmt_verdict(n, bleu)


def report_text(study: "Study", v: dict, n: dict | None = None) -> str:
    p = study.p
    setup_seconds = os.environ.get("LSKD_SETUP_SECONDS", "")  # set by scripts/demo.sh
    T_cols = [f"T={T}" for T in TEMPERATURES]
    nmt_parts, nmt_lines = nmt_report(study, n) if n else ([], [])
    parts = [f"# lskd study report ({study.size} study)\n\n",
             "Should I smooth my teacher, and at which temperature? What happened on the data this run used.\n\n",
             "\n## Verdict\n\n", "\n### Vision (Fashion-MNIST)\n\n",
             "- " + answer("student top-1 (percent)", v["accuracy"], 100, 0.01) + "\n",
             *[line + "\n" for line in vision_verdict(v)], training_health(study) + "\n",
             "\n### Translation (Bible de→en)\n\n",
             *([line + "\n" for line in nmt_lines] if n else ["Not run (--no-nmt).\n"]),
             "\n## What ran\n\n",
             f"Study size `{study.size}`: model {p['model']} on Fashion-MNIST "
             f"({p['limit_train'] or 60000} training / {p['limit_val'] or 10000} validation images), teachers "
             f"{epochs(p['teacher_epochs'])}, students {epochs(p['student_epochs'])}, batch {p['batch_size']}, "
             f"lr {p['lr']} (linear warm-up over {epochs(p['lr_warmup_epochs'])}, "
             f"{'gradient norm clipped at ' + str(p['clip_grad_norm']) + ', ' if p['clip_grad_norm'] else ''}×0.1 every "
             f"{p['teacher_lr_step']}/{p['student_lr_step']} epochs), pure KD (β = 1), device {p['device']}. "
             f"Translation: {p['nmt_arch'][1] if p['nmt_arch'][1] != 'transformer' else 'a small Transformer'} "
             f"({' '.join(p['nmt_arch'][2:]) or 'as in the paper'}), batches of {p['nmt_max_tokens']} tokens, "
             f"{'all books' if not p['nmt_books'] else 'books ' + p['nmt_books']} of the Bible. "
             + ("Scaled down from the paper (90/200 epochs on ImageNet, IWSLT14 for translation) to fit a "
                "2-core CPU: read the numbers as a small study, one seed, not a reproduction."
                if study.size == "quick" else "")
             + ("The `tiny` size checks that every stage runs and the report is whole; its numbers mean "
                "nothing." if study.size == "tiny" else "")
             + (f" Every schedule length of the `{study.size}` study (epochs, lr steps, warm-up) was "
                f"multiplied by {study.scale_epochs:g} (`--scale-epochs`), rounded up: every number in this report is for "
                "these shorter runs." if study.scale_epochs != 1 else "") + "\n",
             "\n## Accuracy (Table 2 layout)\n\n",
             "Top-1 on the validation images, percent.\n\n",
             md_table(["teacher α", "teacher", *T_cols],
                      [[f"{a:g}", pct(v["accuracy"][a]["teacher"]), *[pct(v["accuracy"][a][c]) for c in T_cols]]
                       for a in ALPHAS]),
             "\n## Diffusion index η(T1 = 1, T2 = 3) (Table 3 layout)\n\n",
             "η in **percent** (JSON outputs carry fractions). S1/S2 from the shipped Fashion-MNIST hierarchy "
             "(tops, footwear, trousers, bags): S1 = the target's group, S2 = the other groups. Systematic "
             "diffusion: η S1 < 0 and η S2 > 0.\n"]
    for a in ALPHAS:
        parts += [f"\n**Students of the α = {a:g} teacher**\n\n",
                  md_table(["target", "S1", "train η S1", "train η S2", "valid η S1", "valid η S2", "diffusion"],
                           [[r["target"], ", ".join(r["similar"]), pct(r["eta_similar"]), pct(r["eta_dissimilar"]),
                             pct(r["eta_similar_valid"]), pct(r["eta_dissimilar_valid"]),
                             "yes" if r["systematic_diffusion"] else "no"] for r in v["eta"][a]])]
    parts += ["\n## Smoothness of the teachers' targets (Table 13 layout)\n\n",
              "Mean entropy of softmax(z/T) over the training images, nats (maximum ln 10 = 2.303).\n\n",
              md_table(["teacher α", *T_cols],
                       [[f"{a:g}", *[f"{v['entropy'][a][str(T)]:.3f}" for T in TEMPERATURES]] for a in ALPHAS]),
              f"\nThe α = 0 teacher's targets match the α = 0.1 teacher's entropy at T = 1 "
              f"({v['matched']['entropy']:.3f} nats) at **T = {v['matched']['temperature']:.4f}**.\n",
              "\nStability (Shen et al., Eq. 2 / Eq. 5) of the teachers on the validation images: "
              + "; ".join(f"{s['label']}: {s['stability']:.4f} / {s['inter_class_stability']:.4f}"
                          for s in v["stability"]) + ".\n",
              "\n## Per-class accuracy of the η targets (Tables 17–19 layout)\n\n",
              "Validation top-1 per class, percent.\n"]
    for a in ALPHAS:
        parts += [f"\n**Students of the α = {a:g} teacher**\n\n",
                  md_table(["class", *T_cols], [[c, *[pct(v["per_class"][a][T][c]) for T in TEMPERATURES]]
                                                for c in FASHION_TARGETS])]
    parts += nmt_parts
    parts += ["\n## Figures\n\n",
              f"Penultimate-layer projection (Supp. E) of {PROJECTION_CLASSES.replace(',', ', ')} — rows: teachers "
              "α = 0 and α = 0.1 with their students; columns: the teacher, then the students by T (Figure 1 layout):\n\n",
              "![projection](figures/projection_fashion.png)\n\n",
              f"Mean soft targets of the α = 0.1 teacher for {SOFT_TARGET_CLASS} at T = 1 and T = 2 "
              "(target, its group, the rest; Figure 2 layout):\n\n",
              "![soft targets](figures/soft_targets_fashion.png)\n",
              "\n## Stages and wall time\n\n\n",
              "Start: seconds after this invocation began (Snakemake's benchmark records); stages with overlapping "
              f"spans ran side by side, up to {study.cores} at a time (`--cores`), each with OMP_NUM_THREADS = its "
              "rule's threads.\n\n",
              md_table(["stage", "start (s)", "seconds", "note"],
                       ([["setup (`scripts/setup_env.sh`)", "–", setup_seconds, "before this invocation"]]
                        if setup_seconds else [])
                       + [[s["name"], "–" if s["skipped"] else f"{s['start']:.0f}", f"{s['seconds']:.0f}",
                           "skipped (done before; its time then)" if s["skipped"] else ""]
                          for s in study.stages]),
              f"\nTotal wall time of this invocation up to the report: {study.wall():.0f} s"
              + (f" (plus {setup_seconds} s of setup before it)" if setup_seconds else "")
              + f"; time with no job running (Snakemake's own overhead, at most): {study.idle():.0f} s.\n",
              "\n## Commands\n\nRun from the study's output directory (Snakemake's `--directory`) in the repository's "
              "`.venv`; the study itself was started as\n\n"
              f"```\n{study.invocation}\n```\n\nand ran these:\n\n```\n",
              *[shown(c) + "\n" for c in study.commands()], "```\n",
              "\n## Versions\n\n\n", md_table(["component", "version"], [[k, val] for k, val in versions().items()])]
    return "".join(parts)



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="the workflow's configuration (JSON)")
    ap.add_argument("--out", type=Path, default=Path("report.md"))
    args = ap.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    configure(cfg)
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
