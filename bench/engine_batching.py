"""Engine throughput: cross-tenant batching against one-at-a-time, and two worker threads
against one (the GIL check), in the same run.

    python bench/engine_batching.py [--preset N14] [--tenants 8] [--repeat 5]
        [--json bench/results/engine_batching.json]

A 2-layer model (Linear 64 -> 128 with GELU degree 15 folded in, Linear 128 -> 16) at the
preset; every tenant has its own keys and sends one request per round. "batched": an
Engine with max_batch = tenants evaluates the round as one batch of rows from all
tenants; "one at a time": max_batch = 1 (same caches, warmed first). "two workers": the
round split into two batches of tenants / 2 evaluated by two Engine worker threads at
once, against one worker doing both: with the kernels' default thread team (both cores
already busy inside each kernel) and with one kernel thread per worker (the GIL check:
nogil kernels let the two workers run on both cores). Times are medians of wall time per round, all
results awaited; the load average is printed (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import fhe_gpu as fg
from fhe_gpu import engine


def build(preset: str, tenants: int):
    params = fg.Parameters.preset(preset)
    rng = np.random.default_rng(1)
    model = engine.Model([
        engine.Linear(rng.uniform(-1, 1, (128, 64)) / 8, rng.uniform(-0.5, 0.5, 128)),
        engine.Activation("gelu", interval=(-8, 8), degree=15),
        engine.Linear(rng.uniform(-1, 1, (16, 128)) / 12, rng.uniform(-0.5, 0.5, 16))],
        name="bench")
    clients = {f"t{i}": engine.Client(params, model, seed=bytes([i + 1]) * 32)
               for i in range(tenants)}
    return params, model, clients


def one_round(eng, requests) -> float:
    t0 = time.perf_counter()
    futs = [eng.submit(t, "bench", data) for t, data in requests]
    for f in futs:
        f.result(timeout=600)
    return time.perf_counter() - t0


def measure(params, model, clients, repeat: int, **engine_kw) -> float:
    rng = np.random.default_rng(2)
    requests = [(t, c.encrypt(rng.uniform(-1, 1, (1, 64)))) for t, c in clients.items()]
    with engine.Engine(params, {"bench": model}, **engine_kw) as eng:
        for t, c in clients.items():
            eng.register_tenant(t, c.evaluation_key_bytes())
        one_round(eng, requests)                            # warm caches and kernels
        times = [one_round(eng, requests) for _ in range(repeat)]
        batches = eng.metrics()["fhe_engine_batch_size_count"]["model=bench"]
    return statistics.median(times), batches / (repeat + 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="N14")
    ap.add_argument("--tenants", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    params, model, clients = build(args.preset, args.tenants)
    n = args.tenants
    load = os.getloadavg()[0]
    rows = {}
    wait = 200.0
    rows["batched"] = measure(params, model, clients, args.repeat, max_batch=n,
                              max_wait_ms=wait)
    rows["one_at_a_time"] = measure(params, model, clients, args.repeat, max_batch=1,
                                    max_wait_ms=0.0)
    rows["one_worker_two_batches"] = measure(params, model, clients, args.repeat,
                                             max_batch=n // 2, max_wait_ms=wait, workers=1)
    rows["two_workers_two_batches"] = measure(params, model, clients, args.repeat,
                                              max_batch=n // 2, max_wait_ms=wait, workers=2)
    threads = fg.get_num_threads()
    fg.set_num_threads(1)          # the GIL check proper: one kernel thread per worker
    rows["one_worker_two_batches_1_thread"] = measure(
        params, model, clients, args.repeat, max_batch=n // 2, max_wait_ms=wait, workers=1)
    rows["two_workers_two_batches_1_thread"] = measure(
        params, model, clients, args.repeat, max_batch=n // 2, max_wait_ms=wait, workers=2)
    fg.set_num_threads(threads)
    out = {
        "preset": args.preset, "tenants": n, "repeat": args.repeat,
        "load_average_1min_before": load, "numba_threads": fg.get_num_threads(),
        "seconds_per_round": {k: v[0] for k, v in rows.items()},
        "batches_per_round": {k: v[1] for k, v in rows.items()},
        "batched_speedup_vs_one_at_a_time": rows["one_at_a_time"][0] / rows["batched"][0],
        "two_workers_over_one": rows["two_workers_two_batches"][0]
        / rows["one_worker_two_batches"][0],
        "two_workers_over_one_1_thread": rows["two_workers_two_batches_1_thread"][0]
        / rows["one_worker_two_batches_1_thread"][0],
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
