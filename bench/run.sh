#!/usr/bin/env bash
# Reproduces bench/results/: fhe_gpu, OpenFHE and SEAL timed in one invocation
# (1 and 2 threads, N = 2^14, 2^15, 2^16), then the Markdown table and the PNG plots.
#
#   bash bench/run.sh                      # everything (about 6 minutes on 2 cores)
#   bash bench/run.sh --logn 14 --repeats 3 --threads 1   # arguments go to compare.py
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$HOME/.cache/fhe_gpu-bench/py310}"
PY="$VENV/bin/python"
if ! [[ -x "$PY" ]] || ! "$PY" -c 'import openfhe, tenseal.sealapi, matplotlib, fhe_gpu' 2>/dev/null; then
  BENCH_VENV="$VENV" bash "$ROOT/bench/peers/setup_peers.sh"
fi
cd "$ROOT"
# refresh the compiled extensions of the editable install if their sources changed
"$PY" setup.py --quiet build_ext --inplace >/dev/null 2>&1 || \
  "$PY" -m pip install --quiet --no-build-isolation --no-deps -e "$ROOT"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/peers/compare.py "$@"
REPORT_ARGS=()
if [[ -f bench/results/pytest_bench.json ]]; then
  REPORT_ARGS=(--pytest-json bench/results/pytest_bench.json)
fi
"$PY" bench/report.py "${REPORT_ARGS[@]}"
