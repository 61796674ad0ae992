"""``--help`` of every entry point and of every subcommand exits 0 (argparse formats help strings
with %, so a bare % in one would crash --help).

The entry points are found, not listed: every file of the project's folders with an
``if __name__ == "__main__":`` block, run the way the READMEs run it (``python -m`` for the
preprocess, nmt_plugin and shared_metrics packages, ``python path/to/file.py`` elsewhere);
the subcommands are read from each entry point's own parser as parsing starts, and their help is
formatted as ``ENTRY SUB --help`` formats it (HELP_ALL below). Plus ``fairseq-train --user-dir
nmt_plugin --task kd_translation --criterion ls_kd --help`` (and the plugin's own options, which
that help leaves out) and the installed ``lskd-metrics`` console script where there is one."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("vision", "nmt_plugin", "shared_metrics", "preprocess", "bench", "scripts")
AS_MODULE = ("nmt_plugin", "shared_metrics", "preprocess", "scripts/recipes")
#: the ones the READMEs name, which the search below must find
KNOWN = {
    "vision/distill.py",
    "vision/dump_features.py",
    "nmt_plugin/bleu.py",
    "nmt_plugin/dump_features.py",
    "shared_metrics/cli.py",
    "preprocess/bible.py",
    "preprocess/iwslt14.py",
    "bench/nmt_kd_throughput.py",
}

#: runs an entry point, ENTRY --help, and formats the help of each subcommand of its parser exactly
#: as ENTRY SUB --help does (argparse's help action calls print_help, i.e. format_help, then exits)
HELP_ALL = r"""
import argparse, json, runpy, sys

parse = argparse.ArgumentParser.parse_known_args

def help_all(self, args=None, namespace=None):
    argparse.ArgumentParser.parse_known_args = parse
    names = []
    for action in self._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.format_help()
                names.append(name)
    print("SUBCOMMANDS " + json.dumps(names), flush=True)
    return parse(self, ["--help"], namespace)

argparse.ArgumentParser.parse_known_args = help_all
kind, target = sys.argv[1], sys.argv[2]
sys.argv = [target]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


def entry_points() -> dict:
    """{relative path: the command that runs it}"""
    found = {}
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" in path.parts or not re.search(
                r'^if __name__ == "__main__":', path.read_text(), re.M
            ):
                continue
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(AS_MODULE):
                module = rel[:-3].replace("/", ".")
                found[rel] = ["-m", "shared_metrics" if module == "shared_metrics.cli" else module]
            else:
                found[rel] = [rel]
    return found


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run_all(commands: dict) -> dict:
    """{name: CompletedProcess-like (returncode, stdout, stderr)}, all started at once."""
    procs = {
        name: subprocess.Popen(
            cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, cmd in commands.items()
    }
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[name] = (p.returncode, stdout, stderr)
    return out


def test_help_of_every_entry_point_and_subcommand():
    entries = entry_points()
    assert KNOWN <= set(entries), KNOWN - set(entries)
    commands = {
        rel: [sys.executable, "-c", HELP_ALL, *(cmd if cmd[0] == "-m" else ["path", cmd[0]])]
        for rel, cmd in entries.items()
    }
    # as a newcomer types them: the crash of issue 14 was here
    commands["python -m shared_metrics --help"] = [sys.executable, "-m", "shared_metrics", "--help"]
    commands["python -m shared_metrics eta --help"] = [
        sys.executable,
        "-m",
        "shared_metrics",
        "eta",
        "--help",
    ]
    console = shutil.which("lskd-metrics")
    if console:
        commands["lskd-metrics --help (console script)"] = [console, "--help"]
    commands["fairseq-train --task kd_translation --criterion ls_kd --help"] = [
        sys.executable,
        "-m",
        "fairseq_cli.train",
        "--user-dir",
        str(REPO / "nmt_plugin"),
        "--task",
        "kd_translation",
        "--criterion",
        "ls_kd",
        "--help",
    ]
    results = run_all(commands)
    failed = {
        name: f"exit {code}: {stderr.strip().splitlines()[-1:]}"
        for name, (code, stdout, stderr) in results.items()
        if code != 0 or "usage:" not in stdout
    }
    assert failed == {}, failed
    subcommands = {
        rel: json.loads(re.search(r"^SUBCOMMANDS (.*)$", results[rel][1], re.M).group(1)) for rel in entries
    }
    assert set(subcommands["shared_metrics/cli.py"]) >= {"eta", "entropy", "accuracy", "stability", "similar"}
    assert subcommands["nmt_plugin/bleu.py"] == ["paired", "score", "table"]
    assert sum(map(len, subcommands.values())) >= 10


def test_plugin_options_format_as_fairseq_shows_them():
    """fairseq-train --help stops before it adds the chosen task's and criterion's options (it
    parses --help first), so their help strings are formatted here as fairseq adds them."""
    pytest.importorskip("fairseq")
    import argparse

    from fairseq.dataclass.utils import gen_parser_from_dataclass

    from nmt_plugin.kd_translation import KdTranslationConfig
    from nmt_plugin.ls_kd import LsKdCriterionConfig

    for config, flags in (
        (KdTranslationConfig(), ("--teacher-path", "--kd-temperature", "--teacher-topk", "--teacher-data")),
        (LsKdCriterionConfig(), ("--kd-beta", "--label-smoothing")),
    ):
        parser = argparse.ArgumentParser()
        gen_parser_from_dataclass(parser, config)
        text = parser.format_help()
        for flag in flags:
            assert flag in text, flag
