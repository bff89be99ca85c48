"""Fork and thread safety of the CPU kernels and of the randomness; fg.set_num_threads.

Every test that runs kernels in a forked child or in concurrent threads does so in a fresh
Python subprocess with a timeout: an abort (Numba's workqueue layer on concurrent access,
GNU OpenMP in a forked child) or a hang then becomes a test failure instead of killing or
blocking pytest.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import textwrap

import pytest

import fhe_gpu as fg
from fhe_gpu.ring import threads

TIMEOUT = 120
#: where pyproject declares the tbb dependency, the fork-safe layer must be there; elsewhere
#: (no tbb wheel) the kernels run on passive OpenMP, which a forked child cannot use
NEEDS_TBB = pytest.mark.skipif(
    threads._TBB is None and not (sys.platform.startswith("linux")
                                  and platform.machine() == "x86_64"),
    reason="no tbb on this platform: forked children cannot run the OpenMP kernels")

#: a small insecure world with an unseeded KeyGenerator and Encryptor; work(i) encrypts,
#: squares, rotates and decrypts with kernels and returns (max error, ciphertext digest)
PRELUDE = textwrap.dedent("""
    import hashlib, json, os, sys, threading, time
    import numpy as np
    import fhe_gpu as fg
    params = fg.Parameters(log_n=10, q_bits=[50, 30, 30, 30], p_bits=[60], scale_bits=30,
                           security=None)
    ctx = fg.Context(params, backend="cpu")
    kg = fg.KeyGenerator(ctx)
    enc, dec = fg.Encoder(ctx), fg.Decryptor(ctx, kg.secret_key)
    ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=[1]))
    encryptor = fg.Encryptor(ctx, kg.public_key())
    x = np.linspace(-1, 1, ctx.slots)
    pt = enc.encode(x)

    def digest(ct):
        return hashlib.sha256(np.ascontiguousarray(ctx.backend.to_host(ct.data))).hexdigest()

    def work(i=0, encryptor=encryptor):
        ct = encryptor.encrypt(pt)
        got = enc.decode(dec.decrypt(ev.rotate(ev.mul(ct, ct), 1)))
        return float(np.abs(got - np.roll(x * x, -1)).max()), digest(ct)

    def emit(obj):
        print("RESULT " + json.dumps(obj), flush=True)
""")


def run_script(body: str, env: dict | None = None) -> dict:
    """Run PRELUDE + body in a fresh interpreter; the dict it emitted. Fails on a crash, an
    abort or a timeout (the child is killed)."""
    code = PRELUDE + textwrap.dedent(body)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=TIMEOUT, env={**os.environ, **(env or {})},
                              cwd=os.path.dirname(os.path.abspath(__file__)))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"subprocess hung for {TIMEOUT} s and was killed; stderr:\n{exc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"subprocess exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


FORK_BODY = """
work()                                   # kernels and the sampler used before the fork
seeded = fg.Encryptor(ctx, kg.public_key(), seed=b"t" * 32)
seeded.encrypt(pt)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.write(w, json.dumps({"work": work(), "seeded": digest(seeded.encrypt(pt))}).encode())
    finally:
        os._exit(0)
os.close(w)
mine = {"work": work(), "seeded": digest(seeded.encrypt(pt))}
deadline, status = time.monotonic() + 60, None
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
child = os.read(r, 1 << 16)
emit({"status": status, "child": json.loads(child) if child else None, "parent": mine})
"""


@NEEDS_TBB
def test_fork_child_gets_fresh_randomness_and_working_kernels():
    out = run_script(FORK_BODY)
    assert out["status"] == 0 and out["child"], f"forked child died or hung: {out}"
    (child_err, child_ct), (parent_err, parent_ct) = out["child"]["work"], out["parent"]["work"]
    assert child_err < 1e-3 and parent_err < 1e-3
    assert child_ct != parent_ct, "the forked child repeated its parent's random stream"
    assert out["child"]["seeded"] == out["parent"]["seeded"], "test seeds stay deterministic"


POOL_BODY = """
import multiprocessing as mp
work()
with mp.get_context("fork").Pool(2) as pool:
    res = pool.map_async(work, range(6))
    try:
        emit({"results": res.get(timeout=60)})
    except mp.TimeoutError:
        pool.terminate()
        emit({"results": None})
"""


@NEEDS_TBB
def test_fork_pool_runs_kernels():
    results = run_script(POOL_BODY)["results"]
    assert results is not None, "the fork Pool hung"
    assert all(err < 1e-3 for err, _ in results)
    assert len({ct for _, ct in results}) == len(results), "pool workers repeated randomness"


THREADS_BODY = """
results, errors = [], []
barrier = threading.Barrier(8)

def job(i):
    try:
        barrier.wait(timeout=30)
        for _ in range(3):
            results.append(work(i))
    except BaseException as exc:
        errors.append(repr(exc))

pool = [threading.Thread(target=job, args=(i,)) for i in range(8)]
for t in pool:
    t.start()
for t in pool:
    t.join(timeout=90)
emit({"results": results, "errors": errors, "alive": sum(t.is_alive() for t in pool),
      "layer": fg.ring.threading_layer()})
os._exit(0)
"""


def test_concurrent_threads_share_one_encryptor():
    out = run_script(THREADS_BODY)
    assert out["alive"] == 0 and not out["errors"], out
    assert len(out["results"]) == 24
    assert all(err < 1e-3 for err, _ in out["results"])
    assert len({ct for _, ct in out["results"]}) == 24, "two threads drew the same randomness"


@pytest.mark.parametrize("bad", [0, -1, 10_000, 1.5, True, "2", None])
def test_set_num_threads_rejects(bad):
    with pytest.raises(fg.ParameterError, match=re.escape(repr(bad))):
        fg.set_num_threads(bad)


EFFECT_BODY = """
import numba
from numba import njit, prange
from fhe_gpu.ring import threads

@njit(parallel=True)
def probe(m):
    ids = np.empty(m, np.int64)
    for i in prange(m):
        s = 0.0
        for j in range(3_000_000):
            s += j * 1e-9
        ids[i] = numba.get_thread_id() + (s < 0)
    return ids

def ids(in_thread):
    if not in_thread:
        return sorted(set(probe(8).tolist()))
    out = []
    t = threading.Thread(target=lambda: out.append(sorted(set(probe(8).tolist()))))
    t.start(); t.join()
    return out[0]

work()
fg.set_num_threads(1)
one = {"n": fg.get_num_threads(), "main": ids(False), "thread": ids(True), "err": work()[0]}
fg.set_num_threads(2)
two, deadline = [], time.monotonic() + 20   # TBB starts its workers asynchronously
while len(two) < 2 and time.monotonic() < deadline:
    two = ids(False)
emit({"one": one, "two": two, "layer": threads.threading_layer()})
"""


@pytest.mark.skipif(threads.available_threads() < 2, reason="needs 2 CPUs for the effect")
def test_set_num_threads_bounds_every_thread():
    out = run_script(EFFECT_BODY)
    assert out["one"]["n"] == 1 and out["one"]["err"] < 1e-3
    assert out["one"]["main"] == [0], "set_num_threads(1) left helper threads in the caller"
    if out["layer"] == "tbb":
        assert out["one"]["thread"] == [0], "the bound did not hold in another Python thread"
    assert len(out["two"]) == 2, f"2 threads never ran in parallel: {out['two']}"


def test_get_num_threads_default_and_threading_layer():
    assert 1 <= fg.get_num_threads() <= threads.available_threads()
    if threads._TBB is not None and not os.environ.get(threads.ENV_LAYER):
        assert threads.threading_layer() == "tbb"


def test_explicit_numba_threading_layer_is_respected():
    out = run_script("work()\nemit({'layer': fg.ring.threading_layer()})\n",
                     env={threads.ENV_LAYER: "workqueue"})
    assert out["layer"] == "workqueue"
