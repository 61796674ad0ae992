"""The shared runner of the paper-experiment recipes (``scripts/recipes/*.py``).

A recipe is a list of named steps; each step is one command (run from the repository root)
plus the output paths that prove it finished::

    recipe = Recipe(args, "imagenet")
    recipe.add("teacher-a0.1-s1", recipe.vision("--mode", "teacher", ...),
               outputs=[out / "checkpoint.pt"], resume_dir=out)
    sys.exit(recipe.run())

* ``--dry-run`` prints every command, shell-quoted, one a line, each under a ``# step-name``
  comment: ``# step-name (done)`` when a re-run would skip it, ``# step-name (stale: command
  changed)`` or ``# step-name (stale: <other step> re-runs)`` when it would run again (followed by
  the ``rm -rf`` of its training directory, see below). The printout is a shell script; a dry run
  reads markers and deletes nothing.
* A real run executes the steps in order. After a step succeeds a marker
  ``OUT/.recipe/<step>.json`` is written atomically with the step's command (shell-quoted,
  :class:`Deferred` values unresolved, the interpreter written ``python``). A later run skips a
  step only when its marker records the same command, its outputs all exist and no step it
  depends on re-ran in this invocation; so an interrupted recipe continues where it stopped, and
  a changed command re-runs that step and everything downstream of it, nothing else.
* Dependencies are found, not declared: step B depends on an earlier step A when an argument of
  B's command (or the file of a Deferred in it) is, or lies under, one of A's outputs or A's
  ``resume_dir``, or is a directory inside OUT holding one of them (``--students OUT/students``,
  fairseq's data-bin folder); paths are compared resolved, glob patterns part by part.
* ``resume_dir`` is the directory a training step owns under OUT. An interrupted step (no marker)
  continues there: a vision training step whose OUTPUT/checkpoint.pt or OUTPUT/T*/checkpoint.pt
  exists gets ``--resume`` appended; ``fairseq-train`` resumes from ``checkpoint_last.pt`` in its
  ``--save-dir`` by itself. A stale step (marker with another command, or an upstream step
  re-ran) has its resume_dir deleted first, so it never resumes from a checkpoint of another
  configuration or of the old inputs (vision/distill.py also refuses to start over an existing
  checkpoint without --resume). A step whose outputs went missing re-runs as is (--resume).
* Each step's output is echoed and kept in ``OUT/.recipe/logs/<step>.log``. A failing step stops
  the recipe with a one-line message and exit status 1; bad input exits 2 with one line.

A command may hold :class:`Deferred` values: numbers an earlier step writes to a JSON file (e.g. an
entropy-matched temperature). They are read when the step starts; the dry run prints them as
``$(python -m scripts.recipes.tables get FILE KEY)``, which is what the shell would do.
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
PAPER_SEEDS = (1, 2, 3)


#: --toy vision data: the first 256/128 Fashion-MNIST train/valid images at 16 px, on the CPU.
TOY_VISION = {"data": ["--dataset", "fashion-mnist", "--image-size", "16", "--limit-train", "256",
                       "--limit-val", "128", "--device", "cpu", "--workers", "0"],
              "batch": 64, "epochs": 1, "lr": 0.01, "lr_step": 1}
#: SGD settings of every vision run (the paper: momentum 0.9; weight decay is our choice).
VISION_OPTIM = ["--momentum", "0.9", "--weight-decay", "1e-4", "--lr-gamma", "0.1"]


def alpha_tag(alpha: float) -> str:
    """Directory tag of a teacher α: a0, a0.1."""
    return f"a{alpha:g}"


class RecipeError(Exception):
    """Bad input or an unreadable intermediate file: reported as one line, exit 2."""


def fmt(x) -> str:
    """Numbers as the toolkit names them: 0.0 -> 0, 0.10 -> 0.1, 64.0 -> 64."""
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Deferred:
    """A value read from ``path`` (JSON, ``key`` a dotted path) when the step runs."""
    path: Path
    key: str

    def shell(self, python: str = PY) -> str:
        return "$(" + shlex.join([python, "-m", "scripts.recipes.tables", "get", str(self.path), self.key]) + ")"

    def resolve(self) -> str:
        from .tables import get_value
        try:
            return get_value(self.path, self.key)
        except (OSError, ValueError, KeyError) as e:
            raise RecipeError(f"cannot read {self.key} from {self.path}: {e}") from None


@dataclass
class Step:
    name: str
    cmd: list
    outputs: list[Path]
    resume_dir: Path | None = None      # the training's own directory: resumed, or cleared when stale
    group: str | None = None            # consecutive steps of one group may run side by side


#: why a step runs again although it has a marker (``Recipe.status``)
CHANGED = "command changed"
#: marker format: 3 records the command as one process would run it (``Recipe.command_text``) and
#: is written as "started" before the step runs; 2 recorded the unresolved command as run; 1 had
#: the resolved one
MARKER_VERSION = 3
STARTED = "started"


def _exists(path: Path) -> bool:
    p = str(path)
    if any(c in p for c in "*?["):
        return bool(glob.glob(p))
    return os.path.exists(p)


def _parts(path) -> tuple[str, ...]:
    """A path as resolved parts (relative paths are taken from the repository root, like the steps)."""
    return Path(os.path.realpath(os.path.join(ROOT, str(path)))).parts


def _part_match(a: str, b: str) -> bool:
    if a == b:
        return True
    return (any(c in b for c in "*?[") and fnmatch.fnmatchcase(a, b)) or \
        (any(c in a for c in "*?[") and fnmatch.fnmatchcase(b, a))


def _under(path: tuple[str, ...], top: tuple[str, ...]) -> bool:
    """True if ``path`` is ``top`` or lies under it; either may hold glob patterns (per part)."""
    return len(path) >= len(top) and all(_part_match(p, t) for p, t in zip(path, top))


def _stable_word(word: str) -> str:
    """The interpreter and this environment's console scripts by name, so a moved venv changes nothing."""
    if word == PY:
        return "python"
    if os.path.isabs(word) and os.path.basename(word) in ("torchrun", "fairseq-train"):
        return os.path.basename(word)
    return word


@dataclass
class Logged:
    returncode: int
    killed: bool   # by the timeout
    output: str    # what it printed (only when asked to keep it)


def run_logged(cmd: list[str], log, env: dict, prefix: str = "", echo: bool = True, timeout: float | None = None,
               keep: bool = False, lock=None) -> Logged:
    """Run ``cmd`` from the repository root, its stdout and stderr written line by line to the open
    file ``log`` and, when ``echo``, to stdout with ``prefix`` (under ``lock`` if several run at
    once). With ``timeout`` it runs in a process group of its own, killed whole after that many
    seconds."""
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                start_new_session=timeout is not None)
    except OSError as e:
        log.write(f"{e}\n")
        return Logged(127, False, str(e))
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(max(1.0, timeout), kill) if timeout is not None else None
    if timer:
        timer.start()
    lines = []
    try:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if keep:
                lines.append(line)
            if echo:
                with lock or contextlib.nullcontext():
                    sys.stdout.write(prefix + line)
                    sys.stdout.flush()
        rc = proc.wait()
    finally:
        if timer:
            timer.cancel()
    return Logged(rc, killed.is_set(), "".join(lines))


def vision_checkpoint_exists(output_dir: Path) -> bool:
    """True if a vision run in ``output_dir`` saved a checkpoint (teacher or any student T)."""
    return (output_dir / "checkpoint.pt").is_file() or bool(glob.glob(str(output_dir / "T*" / "checkpoint.pt")))


def threads_per_job(jobs: int) -> int:
    """OMP_NUM_THREADS of each of ``jobs`` steps running side by side: the CPUs shared among them."""
    return max(1, (os.cpu_count() or 1) // jobs)


def feature_set_files(d: Path, logits: bool = False) -> list[Path]:
    """The files that make a dumped feature set whole (DESIGN.md contract), as step outputs: a set
    missing one of them is dumped again, not read half."""
    names = ["meta.json", "features.npy", "labels.npy", "head_weight.npy", "head_bias.npy"]
    return [Path(d) / n for n in names + (["logits.npy"] if logits else [])]


def tool(name: str) -> str:
    """A console script of this environment (``torchrun``, ``fairseq-train``), else from PATH."""
    here = Path(PY).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def add_common_args(ap: argparse.ArgumentParser, default_out: str) -> None:
    g = ap.add_argument_group("running")
    g.add_argument("--out", type=Path, default=Path(default_out),
                   help=f"output directory (default {default_out}); a re-run continues there")
    g.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds, one full set of runs each (default 1 2 3, as the paper; --toy: 1)")
    g.add_argument("--nproc", type=int, default=1,
                   help="GPUs per node: torchrun --nproc_per_node N / fairseq --distributed-world-size N "
                        "(the paper's total batch is split over them)")
    g.add_argument("--amp", action="store_true",
                   help="mixed precision (vision: --amp --channels-last, bf16; fairseq: --fp16); "
                        "not in the paper, off by default")
    g.add_argument("--dry-run", action="store_true", help="print every command and stop")
    g.add_argument("--quiet", action="store_true", help="keep step output in the logs only")
    g.add_argument("--toy", action="store_true",
                   help="tiny CPU run on built-in data (see the recipe's docstring); checks the plumbing only")


def check_common_args(args) -> None:
    if args.seeds is None:
        args.seeds = [1] if args.toy else list(PAPER_SEEDS)
    if len(set(args.seeds)) != len(args.seeds):
        raise RecipeError(f"--seeds has duplicates: {args.seeds}")
    if args.nproc < 1:
        raise RecipeError(f"--nproc must be at least 1 (got {args.nproc})")
    if args.toy and args.nproc > 1:
        raise RecipeError("--toy runs in one CPU process; drop --nproc")
    args.out = args.out.expanduser().resolve()


def require_path(path: Path | None, flag: str, kind: str = "path") -> Path:
    if path is None:
        raise RecipeError(f"{flag} is required (or use --toy)")
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise RecipeError(f"{flag}: {kind} {path} not found")
    return path


def imagefolder_data(path: Path | None, recipe: str, kind: str) -> list[str]:
    """distill.py's data flags for an ImageFolder root with train/ and val/ (``--recipe``: its augmentations)."""
    root = require_path(path, "--data", kind)
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise RecipeError(f"--data {root}: expected ImageFolder train/ and val/ folders inside")
    return ["--dataset", "imagefolder", "--data", str(root), "--recipe", recipe]


def schedule_args(s: dict) -> list[str]:
    """--epochs / --lr / --lr-step of a schedule {"epochs", "lr", "lr_step"}."""
    return ["--epochs", str(s["epochs"]), "--lr", fmt(s["lr"]), "--lr-step", str(s["lr_step"])]


class Recipe:
    def __init__(self, args, name: str):
        self.args, self.name = args, name
        self.out: Path = args.out
        self.steps: list[Step] = []
        self._deps: dict[str, list[str]] | None = None
        #: extra environment of every step (printed as `export` lines by --dry-run)
        self.env: dict[str, str] = {"OMP_NUM_THREADS": "1"} if getattr(args, "toy", False) else {}
        #: steps of one group run at most this many at a time
        self.jobs: int = max(1, getattr(args, "jobs", None) or 1)
        #: each step's output goes to logs/<step>.log
        self.logs: Path = self.out / ".recipe" / "logs"
        #: what the last run did, a record a step: name, command, seconds, start (from the run's
        #: start; None when skipped), skipped
        self.records: list[dict] = []
        self.started_at: float | None = None  # time.perf_counter() when the last run began
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ commands
    def per_process_batch(self, total: int) -> int:
        if total % self.args.nproc:
            raise RecipeError(f"--nproc {self.args.nproc} does not divide the paper's batch of {total}")
        return total // self.args.nproc

    def vision(self, *args) -> list:
        """vision/distill.py under torchrun when --nproc > 1."""
        if self.args.nproc > 1:
            head = [tool("torchrun"), "--nproc_per_node", str(self.args.nproc), "--standalone"]
        else:
            head = [PY]
        return head + ["vision/distill.py", *args]

    def python(self, *args) -> list:
        return [PY, *args]

    def metrics(self, *args) -> list:
        return [PY, "-m", "shared_metrics", *args]

    def tables(self, *args) -> list:
        return [PY, "-m", "scripts.recipes.tables", *args]

    # --------------------------------------------------------------------- steps
    def add(self, name: str, cmd: list, outputs: list, resume_dir: Path | None = None,
            group: str | None = None) -> None:
        """Add a step. Consecutive steps with the same ``group`` are independent (none reads
        another's outputs) and run side by side, at most ``self.jobs`` at a time; each is judged
        stale against the steps before the group only, so siblings never invalidate each other."""
        if any(s.name == name for s in self.steps):
            raise ValueError(f"duplicate step name {name}")
        cmd = [c if isinstance(c, Deferred) else str(c) for c in cmd]
        self.steps.append(Step(name, cmd, [Path(o) for o in outputs], None if resume_dir is None else Path(resume_dir),
                               group))
        self._deps = None

    def batches(self) -> list[list[Step]]:
        """The steps in order, consecutive steps of one group together."""
        out: list[list[Step]] = []
        for s in self.steps:
            if out and s.group is not None and out[-1][0].group == s.group:
                out[-1].append(s)
            else:
                out.append([s])
        return out

    def marker(self, step: Step) -> Path:
        return self.out / ".recipe" / f"{step.name}.json"

    def command_text(self, step: Step, canonical: bool = True) -> str:
        """The step's command as its marker records it: shell-quoted, Deferred values unresolved
        (``$(python -m scripts.recipes.tables get FILE KEY)``), no ``--resume``; ``canonical``: as
        one process would run it (see ``_one_process``)."""
        words = [(c.shell("python"), True) if isinstance(c, Deferred) else (_stable_word(c), False)
                 for c in step.cmd]
        if canonical:
            words = self._one_process(words)
        return " ".join(w if deferred else shlex.quote(w) for w, deferred in words)

    def _one_process(self, words: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """What --nproc changes put back as one process runs it: no torchrun launcher, no
        --distributed-world-size, a distributed step's per-process --batch-size / --max-tokens as
        the global amount. The same training on another number of GPUs is the same step: it is
        not judged changed, so its finished outputs are not deleted and redone."""
        texts = [w for w, _ in words]
        distributed = texts[:1] == ["torchrun"] or "--distributed-world-size" in texts
        if texts[:1] == ["torchrun"] and "vision/distill.py" in texts:
            words = [("python", False)] + words[texts.index("vision/distill.py"):]
        out, i = [], 0
        while i < len(words):
            w, deferred = words[i]
            nxt = words[i + 1][0] if i + 1 < len(words) else ""
            if not deferred and w == "--distributed-world-size":
                i += 2
                continue
            if distributed and not deferred and w in ("--batch-size", "--max-tokens") and nxt.isdigit():
                out += [(w, False), (str(int(nxt) * getattr(self.args, "nproc", 1)), False)]
                i += 2
                continue
            out.append(words[i])
            i += 1
        return out

    def read_marker(self, step: Step) -> dict | None:
        try:
            rec = json.loads(self.marker(step).read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def same_command(self, step: Step, rec: dict) -> bool:
        if rec.get("version") == MARKER_VERSION:
            return rec.get("command") == self.command_text(step)
        if rec.get("version") == 2:
            return rec.get("command") == self.command_text(step, canonical=False)
        # a marker of the first runner recorded the resolved command (and --resume where added)
        try:
            ran = shlex.join([c.resolve() if isinstance(c, Deferred) else c for c in step.cmd])
        except RecipeError:
            return False
        return rec.get("command") in (ran, ran + " --resume")

    def is_done(self, step: Step) -> bool:
        """Finished marker with the same command and every output there (dependencies aside: see status)."""
        rec = self.read_marker(step)
        return (rec is not None and rec.get("state") != STARTED and self.same_command(step, rec)
                and all(_exists(o) for o in step.outputs))

    def dependencies(self, step: Step) -> list[str]:
        """Names of the earlier steps whose outputs or resume_dir ``step``'s command reads (module docstring)."""
        if self._deps is None:
            self._deps = {}
            out = _parts(self.out)
            roots: list[tuple[str, list[tuple]]] = []
            for s in self.steps:
                paths = [_parts(w) for w in self._path_words(s)]
                # a folder holding another step's output counts only inside --out (not --data, not OUT itself)
                folders = [p for p in paths if _under(p, out) and p != out]
                self._deps[s.name] = [a for a, tops in roots
                                      if any(_under(p, t) for p in paths for t in tops)
                                      or any(_under(t, p) for p in folders for t in tops)]
                tops = [_parts(o) for o in s.outputs] + ([_parts(s.resume_dir)] if s.resume_dir else [])
                roots.append((s.name, tops))
        return self._deps[step.name]

    @staticmethod
    def _path_words(step: Step) -> list[str]:
        words = []
        for c in step.cmd:
            if isinstance(c, Deferred):
                words.append(str(c.path))
            elif os.sep in c:
                words.append(c.split("=", 1)[1] if c.startswith("--") and "=" in c else c)
        return words

    def status(self, step: Step, rerun: set[str]) -> tuple[bool, str | None]:
        """(skip, why stale): skip a finished step; ``why`` is CHANGED or "<step> re-runs" for a
        step with a marker that must run again, None for an interrupted or incomplete one.
        ``rerun``: the steps that run (dry run: would run) in this invocation."""
        rec = self.read_marker(step)
        if rec is None:
            return False, None
        if not self.same_command(step, rec):
            return False, CHANGED
        upstream = [d for d in self.dependencies(step) if d in rerun]
        if upstream:
            return False, f"{upstream[0]} re-runs"
        if rec.get("state") == STARTED:  # interrupted with this very command: it resumes
            return False, None
        return all(_exists(o) for o in step.outputs), None

    def resolved(self, step: Step) -> list[str]:
        cmd = [c.resolve() if isinstance(c, Deferred) else c for c in step.cmd]
        if self._resumes(step):
            cmd.append("--resume")
        return cmd

    @staticmethod
    def _resumes(step: Step) -> bool:
        """A vision training with a checkpoint in its resume_dir continues with --resume."""
        return (step.resume_dir is not None and "vision/distill.py" in step.cmd
                and vision_checkpoint_exists(step.resume_dir))

    def clear(self, step: Step) -> None:
        """Delete a stale step's resume_dir (only a directory under --out, which the recipe owns)."""
        d = step.resume_dir
        if d is None or not d.exists():
            return
        if not _under(_parts(d), _parts(self.out)) or _parts(d) == _parts(self.out):
            raise RecipeError(f"step {step.name}: refusing to clear {d}: not inside --out {self.out}")
        shutil.rmtree(d)

    def dry_run(self) -> int:
        print(f"# lskd recipe {self.name}: {len(self.steps)} steps, output {self.out}")
        print(f"set -e\ncd {shlex.quote(str(ROOT))}")
        for k, v in self.env.items():
            print(f"export {k}={shlex.quote(v)}")
        rerun: set[str] = set()
        for batch in self.batches():
            before = set(rerun)
            for s in batch:
                skip, why = self.status(s, before)
                words = [c.shell() if isinstance(c, Deferred) else shlex.quote(c) for c in s.cmd]
                if why is None and self._resumes(s):
                    words.append("--resume")
                print(f"# {s.name}{' (done)' if skip else f' (stale: {why})' if why else ''}")
                if why and s.resume_dir is not None and s.resume_dir.exists():
                    print(f"rm -rf -- {shlex.quote(str(s.resume_dir))}")
                print(" ".join(words))
                if not skip:
                    rerun.add(s.name)
        return 0

    def run(self) -> int:
        if self.args.dry_run:
            return self.dry_run()
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.out / ".recipe").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        n, t_all = len(self.steps), time.perf_counter()
        self.started_at = t_all
        self.records = []
        rerun: set[str] = set()
        index = {s.name: i for i, s in enumerate(self.steps, 1)}
        for batch in self.batches():
            before = set(rerun)
            todo = []
            for s in batch:
                skip, why = self.status(s, before)
                tag = f"[{self.name} {index[s.name]}/{n}] {s.name}"
                if skip:
                    print(f"{tag}: done, skipped", flush=True)
                    rec = self.read_marker(s) or {}
                    self.records.append({"name": s.name, "command": self.command_text(s),
                                         "seconds": rec.get("seconds", 0.0), "start": None, "skipped": True})
                    continue
                if why:
                    cleared = s.resume_dir is not None and s.resume_dir.exists()
                    print(f"{tag}: stale ({why}), re-runs{f'; cleared {s.resume_dir}' if cleared else ''}", flush=True)
                    self.clear(s)
                self._write_marker(s, None, None)   # "started": an interrupted step knows its command
                todo.append(s)
            rerun.update(s.name for s in todo)
            if not todo:
                continue
            jobs = min(self.jobs, len(todo))
            step_env = dict(env)
            if jobs > 1:  # the CPU threads shared among the side-by-side steps
                threads = str(threads_per_job(jobs))
                step_env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)

            def one(s: Step) -> str | None:
                cmd = self.resolved(s)
                with self._lock:
                    print(f"[{self.name} {index[s.name]}/{n}] {s.name}: {shlex.join(cmd)}", flush=True)
                log = self.logs / f"{s.name}.log"
                t0 = time.perf_counter()
                rc = self._execute(cmd, log, step_env, prefix=f"[{s.name}] " if jobs > 1 else "")
                if rc != 0:
                    return f"step {s.name} failed (exit {rc}); log: {log}"
                missing = [str(o) for o in s.outputs if not _exists(o)]
                if missing:
                    return (f"step {s.name} finished but did not write {missing[0]}"
                            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; log: {log}")
                self._write_marker(s, cmd, time.perf_counter() - t0)
                with self._lock:
                    self.records.append({"name": s.name, "command": self.command_text(s),
                                         "seconds": time.perf_counter() - t0, "start": t0 - t_all, "skipped": False})
                return None

            if jobs == 1:
                errors = [one(s) for s in todo]
            else:
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    errors = list(pool.map(one, todo))
            errors = [e for e in errors if e]
            if errors:
                for e in errors:
                    print(f"{self.name}: error: {e}; re-run the same command to continue", file=sys.stderr, flush=True)
                return 1
        ran = len(rerun)
        tables = self.out / "tables"
        print(f"[{self.name}] finished: {ran} steps run, {n - ran} skipped, {time.perf_counter() - t_all:.0f} s"
              + (f"; tables in {tables}" if tables.is_dir() else ""), flush=True)
        return 0

    def _execute(self, cmd: list[str], log: Path, env: dict, prefix: str = "") -> int:
        with open(log, "w") as f:
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            return run_logged(cmd, f, env, prefix=prefix, echo=not getattr(self.args, "quiet", False),
                              lock=self._lock).returncode

    def _write_marker(self, s: Step, cmd: list[str] | None, seconds: float | None) -> None:
        """The step's marker: "started" (``cmd`` None) before it runs, then finished."""
        m = self.marker(s)
        tmp = m.with_name(m.name + ".tmp")
        rec = {"step": s.name, "version": MARKER_VERSION, "command": self.command_text(s)}
        if cmd is None:
            rec.update(state=STARTED, started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        else:
            rec.update(state="finished", ran=shlex.join(cmd), seconds=round(seconds, 3),
                       finished=time.strftime("%Y-%m-%dT%H:%M:%S"), outputs=[str(o) for o in s.outputs])
        tmp.write_text(json.dumps(rec, indent=1))
        os.replace(tmp, m)


def add_per_class_accuracy(r: Recipe, acc_dir: Path, sets: dict, temperatures, splits, sweeps,
                           table: Path, title: str) -> None:
    """Per-class top-1 (Tables 17-19): one ``lskd-metrics accuracy`` step per student sweep, for
    every class of ``sets`` ({set name: {class: label}}) at every T and split, then the step that
    writes the tables ``table``.md/.csv. ``sweeps``: (model, α, seed, sweep directory holding
    T<T>/features/<split>)."""
    classes = list(dict.fromkeys(c for members in sets.values() for c in members))
    files = []
    for model, alpha, seed, d in sweeps:
        o = acc_dir / f"per_class_{model}_{alpha_tag(alpha)}_s{seed}.json"
        r.add(f"accuracy-{model}-{alpha_tag(alpha)}-s{seed}",
              r.metrics("accuracy", "--features", *[d / f"T{T}" / "features" / sp for T in temperatures for sp in splits],
                        "--classes", ",".join(classes), "--format", "json", "-o", o),
              [o])
        files.append(o)
    set_args = []  # --set NAME CLASS[=LABEL],... per class set
    for name, members in sets.items():
        set_args += ["--set", name, ",".join(c if c == label else f"{c}={label}" for c, label in members.items())]
    r.add("table-per-class-accuracy",
          r.tables("per-class-accuracy", "--inputs", *files, *set_args, "--title", title, "--out", table),
          [Path(f"{table}.md"), Path(f"{table}.csv")])


def add_projection_figures(r: Recipe, fig_dir: Path, classes, seed, teacher_sets, student_sets: dict) -> None:
    """The projection figures (Supp. E; Figure 1 / Figure 4 layout) of ``classes``: one of the
    teachers (``teacher_sets``: their feature sets, train and valid), then one per student model
    (``student_sets``: {model: feature sets of its students across teacher α and T})."""
    for name, sets in {"teachers": teacher_sets, **student_sets}.items():
        png = fig_dir / f"projection_{name}_s{seed}.png"  # the seed in the name: another seed's is another file
        r.add(f"projection-{name}-s{seed}",
              r.metrics("project", "--features", *sets, "--classes", ",".join(classes), "--out", png,
                        "--format", "json", "-o", png.with_suffix(".json")),
              [png])


def main(build, ap: argparse.ArgumentParser, argv=None) -> int:
    """Parse, build the recipe with ``build(args) -> Recipe``, run it; RecipeError -> exit 2."""
    args = ap.parse_args(argv)
    try:
        check_common_args(args)
        recipe = build(args)
        return recipe.run()
    except RecipeError as e:
        print(f"{ap.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. --dry-run | head
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{ap.prog}: interrupted; re-run the same command to continue", file=sys.stderr)
        return 130
