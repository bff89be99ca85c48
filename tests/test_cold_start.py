"""Cold start of the CPU kernels: fhe_gpu.ring.warm_up and the thread team that runs them.

* warm_up compiles every kernel specialization a run uses: after it, a workload touching
  every verb (keys, public-key encryption, a ciphertext loaded from bytes, products,
  rotations and conjugation through a key slab, rescale, decryption, read-only inputs)
  adds no kernel signature and compiles nothing. Checked in a fresh interpreter, where no
  other test compiled or loaded a kernel first.
* From an empty Numba cache, warm_up reports 11 steps in order, the helper process's
  kernels reach this process through the on-disk cache, and a second process starts warm
  (and starts no helper process).
* team.launch gives every work item to exactly one thread, re-raises a helper's error,
  and keeps one thread when set_num_threads(1).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import fhe_gpu as fg
from fhe_gpu.ring import team

TIMEOUT = 300

DRIFT = """
import json
import numpy as np
from numba.core import event
from numba.core.registry import CPUDispatcher
import fhe_gpu as fg
from fhe_gpu.ring import _numba_kernels as K, _numba_sampling as S, warm_up
from fhe_gpu.rlwe import KeySlab, stack_rows

kernels = {f"{m.__name__}.{k}": d for m in (K, S) for k, d in vars(m).items()
           if isinstance(d, CPUDispatcher)}
steps = []
warm_up("cpu", progress=lambda *a: steps.append(a[:3]), helper_process=False)
before = {k: sorted(map(str, d.signatures)) for k, d in kernels.items()}
compiled = []

class Log(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Log())
params = fg.Parameters(log_n=10, q_bits=[50, 30, 30, 30], p_bits=[60, 60], scale_bits=30,
                       dnum=2, security=None)
ctx = fg.Context(params, backend="cpu")
enc, rng = fg.Encoder(ctx), np.random.default_rng(1)
kgs = [fg.KeyGenerator(ctx) for _ in range(2)]
evks = [kg.evaluation_keys(rotations=[1], conjugation=True) for kg in kgs]
cts = [fg.Encryptor(ctx, kg.public_key()).encrypt(enc.encode(rng.uniform(-1, 1, (1, 512))))
       for kg in kgs]
loaded = fg.Ciphertext.from_bytes(cts[0].to_bytes(), ctx)
ev = fg.Evaluator(ctx, evks[0])
y = ev.conjugate(ev.rotate(ev.mul(cts[0], loaded), 1))
dec = fg.Decryptor(ctx, kgs[0].secret_key)
enc.decode(dec.decrypt(ev.add(y, y)))
enc.decode(dec.decrypt(ev.sub(ev.mul(cts[0], 0.5), ev.mul(cts[0], 0.25))))
slab = KeySlab(ctx, 2, [ctx.galois_element(1), ctx.conjugation_element])
for i, evk in enumerate(evks):
    slab.put(i, evk)
view = slab.view([0, 1])
both = fg.Evaluator(ctx, view).rotate(stack_rows(cts, view.key_id), 1)
ro = np.array(cts[0].data[0])
ro.flags.writeable = False
ctx.backend.ntt(ro, ctx.q_basis(cts[0].level))
after = {k: sorted(map(str, d.signatures)) for k, d in kernels.items()}
print("RESULT " + json.dumps({"steps": steps, "before": before, "after": after,
                              "compiled": compiled}))
"""

COLD = """
import json, os
from fhe_gpu.ring import _numba_kernels as K, _numba_sampling as S, warm_up, warmup as W
started, start = [], W._start_helper
W._start_helper = lambda *a: started.append(start(*a)) or started[-1]
steps = []
helper = {"on": True, "auto": None}[os.environ["HELPER"]]
total = warm_up("cpu", progress=lambda *a: steps.append(a), helper_process=helper)
hits = {d.py_func.__name__: sum(d.stats.cache_hits.values())
        for d in (S.uniform_rows_kernel, K.key_switch_kernel, K.ntt_kernel)}
print("RESULT " + json.dumps({"steps": steps, "total": total, "hits": hits,
                              "helper": started[0] is not None}))
"""


def run(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; the dict it printed after RESULT."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          cwd=Path(__file__).resolve().parent,   # the installed package
                          text=True, timeout=TIMEOUT, env={**os.environ, **(env or {})})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_a_workload_after_warm_up_compiles_nothing():
    out = run(DRIFT)
    assert [s[1] for s in out["steps"]] == list(range(1, 12))
    assert {s[2] for s in out["steps"]} == {11}
    grown = {k: (v, out["after"][k]) for k, v in out["before"].items() if out["after"][k] != v}
    assert not grown, f"kernels specialized again after warm_up: {grown}"
    assert not out["compiled"], f"compiled after warm_up: {out['compiled']}"
    kernels = {k: v for k, v in out["before"].items()
               if k.endswith("_kernel")}
    assert len(kernels) == 13 and all(len(v) == 1 for v in kernels.values()), kernels


def test_cold_cache_then_warm(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "HELPER": "on"}
    cold = run(COLD, env)
    names = [s[0] for s in cold["steps"]]
    assert sorted(names) == sorted({"chacha20", "small_to_rns", "ntt", "intt", "pointwise",
                                    "mul_scalar", "automorphism", "mod_up",
                                    "key_switch_inner", "mod_down", "rescale"})
    assert [s[1] for s in cold["steps"]] == list(range(1, 12))
    assert all(s[2] == 11 and s[3] >= 0 for s in cold["steps"])
    # the helper process compiled these two, this process loaded them from the cache
    assert cold["hits"]["uniform_rows_kernel"] == 1, cold["hits"]
    assert cold["hits"]["key_switch_kernel"] == 1, cold["hits"]
    assert cold["hits"]["ntt_kernel"] == 0 and cold["helper"], cold
    warm = run(COLD, {**env, "HELPER": "auto"})
    assert not warm["helper"]
    assert all(h == 1 for h in warm["hits"].values()), warm["hits"]
    assert warm["total"] < cold["total"]


@njit(nogil=True)
def _count_items(hits, items, ctr):
    """hits[i] += 1 for every item i it claims (a busy loop per item)."""
    i = team.claim(ctr)
    while i < items:
        s = 0
        for k in range(20000):
            s += k ^ i
        hits[i] += 1 + (s < 0)
        i = team.claim(ctr)


def test_launch_gives_each_item_to_one_thread():
    for items in (0, 1, 2, 7, 1000):
        hits = np.zeros(items, dtype=np.int64)
        team.launch(_count_items, items, hits, items)
        assert (hits == 1).all()


def test_launch_reraises_a_kernel_error_and_stays_usable():
    def bad(x, ctr):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        team.launch(bad, 10, 0)
    hits = np.zeros(50, dtype=np.int64)
    team.launch(_count_items, 50, hits, 50)
    assert (hits == 1).all()


def test_one_thread_runs_on_the_caller_only():
    was = fg.get_num_threads()
    try:
        fg.set_num_threads(1)
        hits = np.zeros(100, dtype=np.int64)
        team.launch(_count_items, 100, hits, 100)
        assert (hits == 1).all() and team._TEAM.size == 0
    finally:
        fg.set_num_threads(was)
