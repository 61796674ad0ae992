#!/usr/bin/env bash
# Create .venv and install what is missing, idempotently. Sourced by demo.sh and test.sh;
# can also be run on its own. Re-runs are cheap: a stamp records what was installed.
# Exports LSKD_PYTHON, the interpreter the scripts then use.
#
#   LSKD_VENV                  where the virtual environment lives (default: <repo>/.venv)
#   LSKD_NO_APT=1              do not try to install Debian data packages (wordnet-base, Fashion-MNIST)
#   LSKD_USE_CURRENT_PYTHON=1  no venv, nothing installed: use $PYTHON (default python3) as it is,
#                              e.g. a cluster's own PyTorch environment; it must already have
#                              torch, torchvision, fairseq and the analysis stack (checked)
set -euo pipefail

LSKD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LSKD_VENV="${LSKD_VENV:-$LSKD_ROOT/.venv}"
PY="${PYTHON:-python3}"

# Debian data packages: WordNet (ImageNet hierarchy) and Fashion-MNIST (the demo's images).
apt_pkgs=()
[ -f /usr/share/wordnet/data.noun ] || apt_pkgs+=(wordnet-base)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt_pkgs+=(dataset-fashion-mnist)
if [ ${#apt_pkgs[@]} -gt 0 ] && [ "${LSKD_NO_APT:-0}" != 1 ]; then
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo -n)
  if command -v apt-get >/dev/null; then
    echo "[setup] installing Debian packages: ${apt_pkgs[*]}"
    "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${apt_pkgs[@]}" >/dev/null 2>&1 \
      || { "${sudo_cmd[@]}" apt-get update >/dev/null 2>&1 && \
           "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${apt_pkgs[@]}" >/dev/null 2>&1; } \
      || echo "[setup] warning: could not install ${apt_pkgs[*]}; the steps that read them will say so" >&2
  fi
fi

if [ "${LSKD_USE_CURRENT_PYTHON:-0}" = 1 ]; then
  LSKD_PYTHON="$(command -v "$PY" || true)"
  [ -n "$LSKD_PYTHON" ] || { echo "[setup] error: LSKD_USE_CURRENT_PYTHON=1 but no $PY on PATH" >&2; exit 1; }
  missing="$("$LSKD_PYTHON" -c '
import importlib.util as u
need = ["torch", "torchvision", "fairseq", "sacrebleu", "sacremoses", "sklearn", "matplotlib", "numpy",
        "snakemake", "snakemake_executor_plugin_slurm"]
print(" ".join(m for m in need if u.find_spec(m) is None))' 2>&1)" \
    || { echo "[setup] error: LSKD_USE_CURRENT_PYTHON=1 but $LSKD_PYTHON does not run: $missing" >&2; exit 1; }
  if [ -n "$missing" ]; then
    echo "[setup] error: LSKD_USE_CURRENT_PYTHON=1 but $LSKD_PYTHON lacks: $missing (install them, or unset it to use .venv)" >&2
    exit 1
  fi
  export PYTHONPATH="$LSKD_ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export LSKD_ROOT LSKD_PYTHON
  return 0 2>/dev/null || exit 0
fi

[ -x "$LSKD_VENV/bin/python" ] || { echo "[setup] creating $LSKD_VENV"; "$PY" -m venv "$LSKD_VENV"; }
VPY="$LSKD_VENV/bin/python"

# What decides the installed set: the package metadata and this script.
stamp="$LSKD_VENV/.lskd-stamp"
want="$(cat "$LSKD_ROOT/setup.cfg" "$LSKD_ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  t0=$SECONDS
  pip=("$VPY" -m pip install --quiet --disable-pip-version-check)
  # (pip warns about this machine's file:// index entries that are not folders: noise, hidden)
  # 1. torch first (the CUDA build from local disk; it runs on CPU too) and fairseq's build deps,
  #    so fairseq can compile with --no-build-isolation against this very torch.
  echo "[setup] installing torch, torchvision (from local disk where available)"
  "${pip[@]}" torch==2.14.1 torchvision==0.29.1 cython numpy setuptools wheel 2> >(grep -v "is ignored" >&2)
  # 2. fairseq-fixed (compiled once, then served from pip's wheel cache) and the rest.
  echo "[setup] installing fairseq-fixed, the analysis stack and Snakemake (first time: a few minutes)"
  "${pip[@]}" --no-build-isolation -e "$LSKD_ROOT[train,test,workflow]" 2> >(grep -v "is ignored" >&2)
  echo "$want" > "$stamp"
  echo "[setup] environment ready in $((SECONDS - t0)) s"
fi
export PATH="$LSKD_VENV/bin:$PATH"
LSKD_PYTHON="$VPY"
export LSKD_ROOT LSKD_VENV LSKD_PYTHON
