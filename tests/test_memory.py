"""Tables live exactly as long as their parameter set.

Every table derived from a parameter set (PrimeSet, bases, base-conversion constants,
Galois permutations, the CPU backend's plans, the CUDA backend's device constants) is kept
on the PrimeSet or its bases, never in a process-wide cache: Contexts of one parameter set
share them, and dropping the last Context (and the objects made under it) frees them.

The RSS checks run in a subprocess (``python tests/test_memory.py BACKEND COUNT LOG_N``
prints the growth as JSON; run it with ``PYTHONPATH`` on an older tree to compare).
"""
from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.ring import tables

RSS_LIMIT_MB = 50


def param_sets(count: int, log_n: int) -> list[fg.Parameters]:
    """``count`` distinct small parameter sets (distinct primes) at ring degree 2^log_n."""
    out = []
    for k in range(1, 9):
        for b in range(22, 50):
            for p in (55, 58, 60):
                out.append(fg.Parameters(log_n=log_n, q_bits=[50] + [b] * k, p_bits=[p],
                                         scale_bits=30, security=None))
                if len(out) == count:
                    return out
    raise ValueError(f"the grid holds fewer than {count} parameter sets")


def emulated_cuda():
    """A CudaBackend on the CPU emulator, or None when it is not built."""
    try:
        from fhe_gpu.ring.cuda import CudaBackend
        return CudaBackend(emulate=True)
    except (ImportError, fg.BackendUnavailableError):
        return None


def exercise(ctx: fg.Context):
    """Encode, encrypt, one relinearized multiplication and a rotation under ``ctx``."""
    kg = fg.KeyGenerator(ctx, seed=b"memory-test-seed")
    ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=[1], conjugation=False))
    enc = fg.Encoder(ctx)
    ct = fg.Encryptor(ctx, kg.public_key()).encrypt(enc.encode(np.arange(4) / 4))
    return ev.rotate(ev.mul(ct, ct), 1)


def exercise_ring(ctx: fg.Context):
    """Every ring verb once under ``ctx`` (fills the backend's per-basis caches cheaply)."""
    be, n = ctx.backend, ctx.n
    q, p = ctx.q_basis(ctx.max_level), ctx.p_basis
    rng = np.random.default_rng(len(q))
    x = be.ntt(be.to_device(rng.integers(0, 1 << 20, (1, len(q), n), dtype=np.uint64)), q)
    be.mul(be.intt(x, q), x, q)
    be.mul_scalar(be.automorphism(x, 5, q), np.ones(len(q), dtype=np.uint64), q)
    ext = be.mod_up(x, q, p, ctx.alpha)
    key = be.zeros((ext.shape[-3], 2, len(ctx.full_qp), n))
    be.mod_down(be.key_switch_inner(ext, key, q + p, ctx.full_qp), q, p)
    return be.rescale(x, q)


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_growth(backend_name: str, count: int, log_n: int) -> dict:
    """RSS before and after creating, using and dropping ``count`` distinct Contexts."""
    logging.getLogger("fhe_gpu").setLevel(logging.ERROR)
    backend = emulated_cuda() if backend_name == "emu" else backend_name
    use = exercise_ring if backend_name == "emu" else exercise
    params = param_sets(count + 2, log_n)
    for warm in params[count:]:  # compile kernels, import everything
        use(fg.Context(warm, backend=backend))
    gc.collect()
    start = rss_mb()
    for prm in params[:count]:
        use(fg.Context(prm, backend=backend))
    gc.collect()
    end = rss_mb()
    return {"backend": backend_name, "count": count, "log_n": log_n,
            "start_mb": round(start, 1), "end_mb": round(end, 1),
            "growth_mb": round(end - start, 1)}


def _child(backend_name: str, count: int, log_n: int) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), backend_name,
                           str(count), str(log_n)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_same_parameters_share_tables():
    a = fg.Context(param_sets(1, 10)[0], backend="cpu")
    b = fg.Context(param_sets(1, 10)[0], backend="cpu")
    assert a.universe is b.universe
    assert a.q_basis(1) is b.q_basis(1) and a.full_qp is b.full_qp
    assert tables.base_conv(a.p_basis, a.q_basis(1)) is tables.base_conv(b.p_basis,
                                                                           b.q_basis(1))
    perm = a.universe.galois_permutation(5)
    assert perm is b.universe.galois_permutation(5 + 2 * a.n) and not perm.flags.writeable


@pytest.mark.parametrize("backend_name", ["cpu", "emu"])
def test_tables_freed_with_last_object(backend_name):
    backend = emulated_cuda() if backend_name == "emu" else backend_name
    if backend is None:
        pytest.skip("the CUDA emulator is not built")
    ctx = fg.Context(param_sets(3, 10)[2], backend=backend)
    exercise_ring(ctx)
    ct = exercise(ctx) if backend_name == "cpu" else None
    universe, q = weakref.ref(ctx.universe), weakref.ref(ctx.q_basis(ctx.max_level))
    del ctx
    gc.collect()
    if ct is not None:
        assert universe() is not None, "tables freed while a ciphertext still uses them"
        del ct
        gc.collect()
    assert universe() is None and q() is None, "tables outlive every object of their parameters"


@pytest.mark.parametrize("backend_name, count, log_n", [("cpu", 500, 10), ("emu", 250, 11)])
def test_rss_returns_after_many_parameter_sets(backend_name, count, log_n):
    if backend_name == "emu" and emulated_cuda() is None:
        pytest.skip("the CUDA emulator is not built")
    got = _child(backend_name, count, log_n)
    print(json.dumps(got))
    assert got["growth_mb"] < RSS_LIMIT_MB, got


if __name__ == "__main__":
    print(json.dumps(rss_growth(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
