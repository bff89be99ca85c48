"""CKKS operations by preset (N13..N16) and backend, plus first-call (JIT) latency.

``mul`` is ct x ct + relinearize without rescale; ``rescale`` divides that product;
``rotate_many`` is the hoisted rotation by 1, 2, 3 and 4 slots; ``keygen`` makes the
relinearization key (``evaluation_keys()``). ``test_first_call`` runs bench/first_call.py
in a fresh process with an empty JIT cache (cold) and with the cache that run filled
(warm); the per-step first-call latencies are in its extra_info.

    pytest bench/test_scheme.py -k "N15" --benchmark-json scheme.json
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROTATION_STEPS, SchemeWorld, backend_or_skip, run_benchmark


def _ops(w: SchemeWorld) -> dict:
    ev = w.ev
    return {
        "keygen": lambda: w.kg.evaluation_keys(),
        "encode": lambda: w.enc.encode(w.values[0]),
        "encrypt": lambda: w.encryptor.encrypt(w.pt),
        "decrypt": lambda: w.dec.decrypt(w.ct),
        "decode": lambda: w.enc.decode(w.pt),
        "add": lambda: ev.add(w.ct, w.ct2),
        "mul_plain": lambda: ev.mul(w.ct, w.pt, rescale=False),
        "mul": lambda: ev.mul(w.ct, w.ct2, rescale=False),
        "rescale": lambda: ev.rescale(w.prod),
        "rotate": lambda: ev.rotate(w.ct, 1),
        "rotate_many": lambda: ev.rotate_many(w.ct, list(ROTATION_STEPS)),
    }


OPS = ("keygen", "encode", "encrypt", "decrypt", "decode", "add", "mul_plain", "mul",
       "rescale", "rotate", "rotate_many")


@pytest.mark.parametrize("op", OPS)
def test_op(benchmark, world, op):
    params = world.ctx.params
    run_benchmark(benchmark, world.ctx.backend, _ops(world)[op], group=f"scheme {op}", op=op,
                  log_n=params.log_n, limbs=len(params.q_bits), level=world.ct.level,
                  special_primes=len(params.p_bits), dnum=params.dnum,
                  backend=world.ctx.backend_name, batch=1)


# ------------------------------------------------------------------ first-call latency
FIRST_CALL = Path(__file__).resolve().parent / "first_call.py"
FIRST_CALL_PRESET = "N14"


def _first_call(backend: str, cache_dir: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), CUPY_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, str(FIRST_CALL), "--preset", FIRST_CALL_PRESET,
                          "--backend", backend], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def jit_caches(tmp_path_factory) -> dict:
    """backend -> a JIT cache directory that a cold run has filled."""
    return {}


def _cache_for(jit_caches: dict, backend: str, start: str, tmp_path_factory) -> Path:
    if start == "cold":
        path = tmp_path_factory.mktemp(f"jit_{backend}_cold")
        jit_caches.setdefault(backend, path)
        return path
    if backend not in jit_caches:
        path = tmp_path_factory.mktemp(f"jit_{backend}_fill")
        _first_call(backend, path)
        jit_caches[backend] = path
    return jit_caches[backend]


@pytest.mark.parametrize("start", ("cold", "warm"))
@pytest.mark.parametrize("preset", (FIRST_CALL_PRESET,))
@pytest.mark.parametrize("backend", ("cpu", "cuda"))
def test_first_call(benchmark, backend, preset, start, jit_caches, tmp_path_factory):
    """Wall time of a fresh process that sets up N14 and calls every op once, with an
    empty (cold) or a filled (warm) JIT cache; per-step latencies in extra_info."""
    backend_or_skip(backend)
    cache = _cache_for(jit_caches, backend, start, tmp_path_factory)
    result = {}
    benchmark.group = "first call (fresh process)"
    benchmark.pedantic(lambda: result.update(_first_call(backend, cache)), rounds=1,
                       iterations=1)
    steps = result["steps"]
    benchmark.extra_info.update(
        preset=preset, backend=backend, start=start, import_s=result["import_s"],
        total_s=result["total_s"], **{f"{k}_first_ms": v["first_ms"] for k, v in steps.items()},
        **{f"{k}_second_ms": v["second_ms"] for k, v in steps.items()})
