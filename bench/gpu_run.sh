#!/usr/bin/env bash
# One pass on a GPU runner: build the extensions in place, compile the kernels (NVRTC),
# run the cuda tests on the real device, then `pytest bench -k cuda`, then the whole test
# suite with the default ("auto" = cuda) backend. Each step has its own time limit and log,
# and a failing step does not stop the next one.
#
#   OUT=/tmp/gpu bash bench/gpu_run.sh        # logs and bench_cuda.json land in $OUT
#
# Environment: STEPS (default: build smoke tests_cuda bench_cuda tests_all; bench_slow adds
# the N = 2^16 bootstrap), PY (python, default python3), TOTAL (seconds for the pass,
# default 560), BUDGET_TESTS / BUDGET_BENCH / BUDGET_ALL / BUDGET_SLOW (seconds per step).
# The serving tests are left out: they need the serve extra (Starlette, uvicorn).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench/results/gpu}"
PY="${PY:-python3}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# the in-place build is the package, also for the tests' subprocesses (they start elsewhere)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS=" ${STEPS:-build smoke tests_cuda bench_cuda tests_all} "
TOTAL="${TOTAL:-560}"  # seconds for the whole pass; each step gets at most what is left
step() {  # step NAME SECONDS CMD...: run CMD under a limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  [[ "$STEPS" == *" $name "* ]] || return 0
  local left=$((TOTAL - SECONDS - 5))
  if ((left < 10)); then echo "== $name: skipped, $left s left"; return; fi
  ((limit > left)) && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t0)) s"
  tail -n 4 "$OUT/$name.log"
}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PY" -c 'import sys, cupy, numba, numpy; print(sys.version.split()[0], "cupy", cupy.__version__,
    "numba", numba.__version__, "numpy", numpy.__version__)'
  nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
step build 240 "$PY" setup.py build_ext --inplace -j "$(nproc)"
step smoke 240 "$PY" -c '
import time, numpy as np
t = time.perf_counter()
import fhe_gpu as fg
from fhe_gpu.ring import get_backend
be = get_backend("cuda")
print("backend", be.name, getattr(be, "device_name", "?"), "emulate", getattr(be, "emulate", None))
params = fg.Parameters.preset("N14")
ctx = fg.Context(params, backend="cuda")
kg = fg.KeyGenerator(ctx)
enc = fg.Encoder(ctx)
ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=[1]))
x = np.random.default_rng(1).uniform(-1, 1, (4, params.slots))
ct = fg.Encryptor(ctx, kg.public_key()).encrypt(enc.encode(x))
y = ev.add(ev.mul(ct, ct), ev.mul_to_scale(ev.rotate(ct, 1), 1.0, ev.mul(ct, ct).scale))
z = enc.decode(fg.Decryptor(ctx, kg.secret_key).decrypt(y))
print("x*x + rot(x,1):", round(fg.precision_bits(x * x + np.roll(x, -1, axis=1), z), 2), "bits;",
      "first context + ops", round(time.perf_counter() - t, 2), "s")
'
SERVING=(--ignore tests/test_serving_http.py --ignore tests/test_serving_ray.py)
step tests_cuda "${BUDGET_TESTS:-180}" "$PY" -m pytest -q -p no:cacheprovider tests -k cuda -rfE \
  "${SERVING[@]}" --maxfail=20 -o addopts="-m 'not slow'"
step bench_cuda "${BUDGET_BENCH:-200}" "$PY" -m pytest bench -k cuda \
  --benchmark-json "$OUT/bench_cuda.json"
step tests_all "${BUDGET_ALL:-300}" "$PY" -m pytest -q -p no:cacheprovider tests -rfE \
  --maxfail=30 "${SERVING[@]}"
step bench_slow "${BUDGET_SLOW:-400}" "$PY" -m pytest bench -m slow -k "cuda and N16" \
  --benchmark-json "$OUT/bench_slow.json"
