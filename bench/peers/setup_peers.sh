#!/usr/bin/env bash
# Creates the Python 3.10 environment of the peer comparison (the openfhe wheel imports on
# Python 3.10 only): OpenFHE, SEAL (TenSEAL's sealapi bindings), matplotlib for the plots,
# and fhe_gpu itself (editable, so the benchmark always runs the working tree). Everything
# comes from PyPI.
#
#   bash bench/peers/setup_peers.sh            # venv at $BENCH_VENV (default below)
#   PYTHON310=/path/to/python3.10 bash bench/peers/setup_peers.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${BENCH_VENV:-$HOME/.cache/fhe_gpu-bench/py310}"
PY="${PYTHON310:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.10 "$HOME/.pyenv/versions/3.10.13/bin/python" /usr/bin/python3.10; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      PY="$cand"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  echo "setup_peers.sh: no Python 3.10 found; set PYTHON310=/path/to/python3.10" >&2
  exit 1
fi

echo "creating $VENV with $("$PY" --version)"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" --upgrade pip
# build requirements of fhe_gpu (installed with --no-build-isolation below)
"${PIP[@]}" "setuptools>=64" wheel "pybind11>=2.10" "Cython>=3.0" "numpy>=1.24"
# the peers, the plots, and fhe_gpu's runtime and benchmark dependencies
"${PIP[@]}" "openfhe==1.6.1.0.22.4" "tenseal==0.3.16" matplotlib "numba>=0.59" \
  pytest pytest-benchmark
# fhe_gpu's threading layer (pyproject's marker: Linux x86_64 wheels only)
if [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]]; then "${PIP[@]}" "tbb>=2021.6,<2024"; fi
"${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
"$VENV/bin/python" - <<'PY'
import openfhe, tenseal.sealapi, matplotlib, fhe_gpu
print("peer environment ready: openfhe, tenseal.sealapi, matplotlib, fhe_gpu", fhe_gpu.__version__)
PY
