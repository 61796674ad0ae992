#!/usr/bin/env python
"""Check the toolkit on a CUDA machine in one go, in about 9.5 minutes, and write a short summary.

    python3 scripts/gpu_check.py                                  # the default steps, 570 s in all
    python3 scripts/gpu_check.py --out DIR --budget 1800 --demo-scale 0.05
    python3 scripts/gpu_check.py --steps bench-dump               # one step (env always runs first)
    python3 scripts/gpu_check.py --bundle offline-bundle ...      # a machine without internet

Steps, in the default order, with the seconds each may run (the default steps' limits add up to the
default --budget, 570 s, so the whole run ends within ten minutes):

  env           30   python, torch, CUDA device, fairseq; with --bundle, installs its wheels first
                     (``pip install --no-index --no-deps --target``, nothing downloaded)
  tests         170  ``pytest -m cuda tests/test_cuda.py``: trainer on GPU vs CPU, bf16 +
                     channels_last, torch.compile, the sweep's CUDA RNG streams, NCCL under
                     torchrun, fairseq --fp16
  bench-vision  170  bench/vision_kd_throughput.py --compile (R50 -> R18, bf16, channels_last,
                     256 x 224², 2 rounds of 20 steps)
  bench-nmt     100  bench/nmt_kd_throughput.py --fp16 (transformer_iwslt_de_en, ls_kd vs fairseq's CE)
  bench-loader  45   bench/vision_loader_throughput.py (the trainer's train loader, --backend pil vs
                     tensor, 8 and 16 workers, 2,048 real JPEGs), set beside the KD step's img/s
  demo          rest ./scripts/demo.sh --full --scale-epochs F with this interpreter as it is
                     (LSKD_USE_CURRENT_PYTHON=1; Fashion-MNIST and Bible data from --bundle when
                     given): what is left of the budget, 55 s when every step before it used its
                     limit; its report, figures and logs so far are packed into demo_report.tar.gz
  bench-dump    120  (not a default step) bench/vision_dump_throughput.py: a sweep's feature dump,
                     one shared pass vs one per student, 4 resnet18s over 8,192 real JPEGs at 224²

A step past its limit is killed with its children; a failed step does not stop the others; no step
starts with less than it needs left of --budget, and none runs past it. OUT gets summary.md (a
table: step, result, seconds, the numbers that matter), results.json, the bench JSONs and
logs.tar.gz, rewritten after every step (and the logs every 20 s): few files, easy to copy off a
remote machine, and what a run cut off from outside did is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.run_logged import run_logged  # noqa: E402

PY = sys.executable


@dataclass
class Step:
    name: str
    limit: float | None  # seconds the step may run (None: what is left of the budget)
    needs: int  # seconds it must have left of the budget to be started
    commands: list = field(default_factory=list)
    env: dict = field(default_factory=dict)  # added to the environment of its commands


DEFAULT_STEPS = ("env", "tests", "bench-vision", "bench-nmt", "bench-loader", "demo")
DEFAULT_BUDGET = 570.0  # 9.5 minutes: the default steps' limits add up to it (the demo's is the rest)


def steps(args, out: Path, work: Path) -> dict[str, Step]:
    bundle = args.bundle
    # docs/environment.md's command, with this interpreter as it is (no venv: nothing can be installed here)
    demo = [
        "bash",
        "scripts/demo.sh",
        "--full",
        "--scale-epochs",
        str(args.demo_scale),
        "--out",
        str(work / "demo"),
        "--jobs",
        str(args.jobs),
    ]
    demo_env = {"LSKD_USE_CURRENT_PYTHON": "1", "LSKD_NO_APT": "1", "PYTHON": PY}
    if bundle and (bundle / "fashion-mnist").is_dir():
        demo += ["--fashion-mnist", str(bundle / "fashion-mnist")]
    if bundle and (bundle / "bible-de-en").is_dir():
        demo += ["--nmt-data", str(bundle / "bible-de-en")]
    return {
        s.name: s
        for s in [
            Step("env", 30, 10, [[PY, "-c", ENV_REPORT]]),
            Step(
                "tests",
                170,
                60,
                [[PY, "-m", "pytest", "-v", "-m", "cuda", "-p", "no:cacheprovider", "tests/test_cuda.py"]],
            ),  # -v: each result printed as it ends
            # the eager ratios are written to the JSON before anything compiles
            Step(
                "bench-vision",
                170,
                60,
                [
                    [
                        PY,
                        "bench/vision_kd_throughput.py",
                        "--compile",
                        "--rounds",
                        "2",
                        "--steps",
                        "20",
                        "--json",
                        str(out / "bench_vision.json"),
                    ]
                ],
            ),
            Step(
                "bench-nmt",
                100,
                60,
                [
                    [
                        PY,
                        "bench/nmt_kd_throughput.py",
                        "--fp16",
                        "--repeats",
                        "2",
                        "--json",
                        str(out / "bench_nmt.json"),
                    ]
                ],
            ),
            Step(
                "bench-loader",
                45,
                20,
                [
                    [
                        PY,
                        "bench/vision_loader_throughput.py",
                        "--images",
                        "2048",
                        "--workers",
                        "8",
                        "16",
                        "--json",
                        str(out / "bench_loader.json"),
                    ]
                ],
            ),
            Step("demo", None, 30, [demo], demo_env),
            Step(
                "bench-dump",
                120,
                60,
                [[PY, "bench/vision_dump_throughput.py", "--json", str(out / "bench_dump.json")]],
            ),
        ]
    }


ENV_REPORT = """
import platform, torch
print("python", platform.python_version())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", torch.cuda.get_device_name(0), f"{p.total_memory / 2**30:.0f} GiB",
          p.multi_processor_count, "SMs")
    print("nccl", ".".join(map(str, torch.cuda.nccl.version())), "bf16", torch.cuda.is_bf16_supported())
import torchvision; print("torchvision", torchvision.__version__)
import pytest; print("pytest", pytest.__version__)
import fairseq; print("fairseq", fairseq.__version__)
import nmt_plugin, shared_metrics, vision; print("lskd modules import")
"""


def install_wheels(bundle: Path, site: Path, log) -> str | None:
    """Install the bundle's wheels into ``site``; None, or what went wrong in one line."""
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    if not wheels:
        return f"no wheels in {bundle / 'wheels'} (make them with scripts/offline_bundle.py)"
    cmd = [
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
        str(site),
        *map(str, wheels),
    ]
    log.write(f"$ {shlex.join(cmd)}\n")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        why = tail[-1] if tail else f"pip exit {proc.returncode}"
        return f"installing the bundle's wheels failed: {why}"
    return None


def child_env(site: Path | None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    paths = (
        [str(ROOT)] + ([str(site)] if site else []) + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if site:  # console scripts (fairseq-train) installed with the wheels
        env["PATH"] = f"{site / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_step(step: Step, env: dict, log_path: Path, limit: float) -> tuple[str, float, str]:
    """(status, seconds, output) of the step's commands, run one after the other in the repo root.
    Output goes line by line to the log and, prefixed, to stdout (what a killed run shows last);
    a step still running after ``limit`` seconds is killed with its whole process group."""
    t0 = time.perf_counter()
    text: list[str] = []
    status = "ok"
    with open(log_path, "a") as log:
        for cmd in step.commands:
            log.write(f"$ {shlex.join(map(str, cmd))}\n")
            log.flush()
            done = run_logged(
                cmd,
                log,
                {**env, **step.env},
                prefix=f"[{step.name}] ",
                keep=True,
                timeout=limit - (time.perf_counter() - t0),
            )
            text.append(done.output)
            if done.killed:
                status = f"timed out after {limit:.0f} s"
                break
            if done.returncode != 0:
                status = f"failed (exit {done.returncode})"
                break
    return status, time.perf_counter() - t0, "".join(text)


def key_numbers(name: str, output: str, out: Path) -> str:
    """The figures that matter of a step, in one line."""
    if name == "env":
        return "; ".join(
            line for line in output.splitlines() if line.split(" ")[0] in ("torch", "device", "fairseq")
        )
    if name == "tests":
        m = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?)(?: in [\d.]+s.*)?=*$", output, re.M)
        return m[-1].strip() if m else ""
    if name == "bench-vision" and (out / "bench_vision.json").exists():
        r = json.loads((out / "bench_vision.json").read_text())
        ips = r["images_per_s"]
        return (
            ", ".join(f"{k} {v:.3f}" for k, v in r["ratios"].items())
            + " (goals 0.95, 1.5, 1.4); img/s "
            + ", ".join(f"{k} {v:.0f}" for k, v in ips.items())
        )
    if name == "bench-nmt" and (out / "bench_nmt.json").exists():
        r = json.loads((out / "bench_nmt.json").read_text())
        wps = r["rounds"][-1]
        return (
            f"ls_kd / CE {r['ratio_kd_over_ce']:.3f} (goal 0.75); target words/s "
            f"CE {wps['ce']['wps']:.0f}, KD {wps['kd']['wps']:.0f}"
        )
    if name == "bench-dump" and (out / "bench_dump.json").exists():
        r = json.loads((out / "bench_dump.json").read_text())
        return (
            f"shared / per-student {r['ratio_shared_per_student']:.2f} (up to {r['students']}x); "
            "student-img/s " + ", ".join(f"{k} {v:.0f}" for k, v in r["student_images_per_s"].items())
        )
    if name == "bench-loader" and (out / "bench_loader.json").exists():
        r = json.loads((out / "bench_loader.json").read_text())
        ips = r["images_per_s"]
        line = "img/s pil / tensor: " + ", ".join(
            f"{w} workers {ips['pil'][str(w)]:.0f} / {ips['tensor'][str(w)]:.0f} "
            f"({r['ratio_tensor_over_pil'][str(w)]:.2f}x)"
            for w in r["workers"]
        )
        if (out / "bench_vision.json").exists():  # the loader against what one KD step eats
            kd = json.loads((out / "bench_vision.json").read_text())["images_per_s"]
            step = "ours_compiled" if "ours_compiled" in kd else "ours"
            line += f"; KD step ({step}) {kd[step]:.0f} img/s"
        return line
    if name == "demo":
        m = re.search(r"\[demo\] report: (\S+)", output)
        return f"report {m.group(1)}" if m else ""
    return ""


def pack(tar_path: Path, folder: Path, patterns: list[str]) -> None:
    tmp = tar_path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for pattern in patterns:
            for p in sorted(folder.glob(pattern)):
                tar.add(p, arcname=str(p.relative_to(folder)))
    tmp.replace(tar_path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "runs" / "gpu-check",
        help="summary, results and bench JSONs here (default runs/gpu-check)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=ROOT / "runs" / "gpu-check-work",
        help="trainings and logs here (default runs/gpu-check-work; OUT gets only the summary files)",
    )
    ap.add_argument(
        "--steps",
        default=",".join(DEFAULT_STEPS),
        help=f"comma-separated, run in the order given: {', '.join(DEFAULT_STEPS)}, bench-dump "
        f"(default: {','.join(DEFAULT_STEPS)})",
    )
    ap.add_argument("--bundle", type=Path, default=None, help="an offline bundle (scripts/offline_bundle.py)")
    ap.add_argument("--site", type=Path, default=Path("/tmp/lskd-site"), help="where the bundle's wheels go")
    ap.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help=f"seconds in all (default {DEFAULT_BUDGET:.0f}); a step is not started without "
        "what it needs left, and stopped when the budget is spent",
    )
    ap.add_argument("--demo-scale", type=float, default=0.1, help="the demo's --scale-epochs (default 0.1)")
    ap.add_argument(
        "--jobs", type=int, default=4, help="the demo's --jobs: trainings side by side on the GPU (default 4)"
    )
    ap.add_argument("--dry-run", action="store_true", help="print the steps' commands, run nothing")
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.budget > 0:
        ap.error(f"--budget must be > 0 seconds, got {args.budget:g}")
    t_start = time.perf_counter()
    out = args.out.resolve()
    work = args.work.resolve()
    args.bundle = args.bundle.resolve() if args.bundle else None
    table = steps(args, out, work)
    chosen = ["env"] + [s.strip() for s in args.steps.split(",") if s.strip() and s.strip() != "env"]
    unknown = [s for s in chosen if s not in table]
    if unknown:
        ap.error(f"unknown step(s) {', '.join(unknown)}; choose among {', '.join(table)}")
    if args.bundle and not args.bundle.is_dir():
        ap.error(f"--bundle {args.bundle} is not a folder")
    if args.dry_run:
        print_commands(table, chosen)
        return 0
    (work / "logs").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    site, results = None, []
    if args.bundle:
        site = args.site.resolve()
        with open(work / "logs" / "env.log", "w") as log:
            problem = install_wheels(args.bundle, site, log)
        if problem:  # nothing can run without them: say so in the summary and stop
            print(f"[gpu_check] env: {problem}", flush=True)
            results.append({"step": "env", "status": "failed", "seconds": 0.0, "numbers": problem})
            chosen = []
    env = child_env(site)
    for name in chosen:
        left = args.budget - (time.perf_counter() - t_start)
        results.append(run_in_budget(name, table[name], env, left, out, work))
        write_summary(out, work, results, t_start)  # after every step: a killed run keeps what it did
    print("\n" + write_summary(out, work, results, t_start), flush=True)
    return 0 if all(r["status"] == "ok" for r in results) else 1


def print_commands(table: dict[str, Step], chosen: list[str]) -> None:
    """--dry-run: each chosen step's commands, with its environment and limit."""
    for name in chosen:
        for cmd in table[name].commands:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in table[name].env.items())
            limit = f"{table[name].limit} s" if table[name].limit else "the rest of the budget"
            print(f"# {name} (limit {limit})\n{env + ' ' if env else ''}{shlex.join(map(str, cmd))}")


def run_in_budget(name: str, step: Step, env: dict, left: float, out: Path, work: Path) -> dict:
    """Run ``step`` within its limit and the ``left`` seconds of the budget (not at all when that
    is less than it needs); its row of the summary."""
    if left < step.needs:
        print(f"[gpu_check] {name}: not started, {left:.0f} s of the budget left", flush=True)
        return {
            "step": name,
            "status": f"not started ({left:.0f} s of the budget left)",
            "seconds": 0.0,
            "numbers": "",
        }
    print(f"[gpu_check] {name} ...", flush=True)
    with packing_logs(out, work):  # a run killed from outside keeps this step's log so far
        status, secs, output = run_step(
            step, env, work / "logs" / f"{name}.log", left if step.limit is None else min(step.limit, left)
        )
    result = {
        "step": name,
        "status": status,
        "seconds": round(secs, 1),
        "numbers": key_numbers(name, output, out),
    }
    print(f"[gpu_check] {name}: {status} in {secs:.0f} s. {result['numbers']}", flush=True)
    if name == "demo" and (work / "demo").is_dir():
        pack(out / "demo_report.tar.gz", work / "demo", ["report.md", "figures/*", "logs/*", "analysis/*"])
    return result


@contextlib.contextmanager
def packing_logs(out: Path, work: Path, every: float = 20.0):
    """Re-pack OUT/logs.tar.gz every ``every`` seconds while a step runs."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every):
            try:
                pack(out / "logs.tar.gz", work, ["logs/*"])
            except OSError:
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def write_summary(out: Path, work: Path, results: list[dict], t_start: float) -> str:
    """OUT/summary.md, OUT/results.json and OUT/logs.tar.gz as they stand; returns the summary."""
    pack(out / "logs.tar.gz", work, ["logs/*"])
    rows = "\n".join(
        f"| {r['step']} | {r['status']} | {r['seconds']:.0f} | {r['numbers']} |" for r in results
    )
    summary = (
        f"# gpu_check ({time.strftime('%Y-%m-%d %H:%M')}, {time.perf_counter() - t_start:.0f} s)\n\n"
        "| step | result | seconds | numbers |\n|---|---|---|---|\n" + rows + "\n"
    )
    for path, text in (
        (out / "summary.md", summary),
        (out / "results.json", json.dumps(results, indent=1) + "\n"),
    ):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return summary


if __name__ == "__main__":
    sys.exit(main())
