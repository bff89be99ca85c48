"""Meta-BTS against one bootstrap, same process: bits gained and time spent.

    NUMBA_NUM_THREADS=1 python bench/bootstrap_meta.py [--preset N16] [--seeds 5] \
        [--threads 1] [--out bench/results/bootstrap_meta_N16.json]

Keys once (``KeyGenerator.bootstrap_keys``), one untimed warm-up of each (plaintext
diagonals encoded, kernels compiled), then per seed a ciphertext of N/2 reals uniform in
[-1, 1] encrypted at level 0 and bootstrapped with iterations=1 and iterations=2, the order
alternating between seeds. Reported: median time of each, their ratio, median mean and
max-error bits (real parts, as bench/peers/bootstrap.py measures them), levels left, and
the peak RSS of the process (ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="N16")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    return ap.parse_args(argv)


def bits(x, y) -> dict:
    import numpy as np
    err = np.abs(np.asarray(x) - np.asarray(y).real)
    return {"mean_bits": float(-np.log2(err.mean())), "max_bits": float(-np.log2(err.max()))}


def run(args) -> dict:
    import numpy as np
    import fhe_gpu as fg
    from fhe_gpu import circuits as fc
    fg.set_num_threads(args.threads)
    bp = fc.BootstrapParameters.preset(args.preset)
    ctx = fg.Context(bp.params, backend="cpu")
    kg = fg.KeyGenerator(ctx, hamming_weight=None if bp.encapsulate else bp.sparse_weight)
    t0 = time.perf_counter()
    bt = fc.Bootstrapper(ctx, kg.bootstrap_keys(bp), bp)
    keygen = time.perf_counter() - t0
    enc, dec = fg.Encoder(ctx), fg.Decryptor(ctx, kg.secret_key)
    encryptor = fg.Encryptor(ctx, kg.public_key())

    def once(seed: int, k: int) -> dict:
        x = np.random.default_rng(seed).uniform(-1.0, 1.0, ctx.slots)
        ct = encryptor.encrypt(enc.encode(x, level=0))
        t = time.perf_counter()
        out = bt.bootstrap(ct, iterations=k)
        ctx.backend.synchronize()
        row = {"time_s": time.perf_counter() - t, "levels_left": out.level}
        return {**row, **bits(x, enc.decode(dec.decrypt(out)))}

    warm = {k: once(10 ** 6, k) for k in (1, 2)}
    runs: dict = {1: [], 2: []}
    for seed in range(args.seeds):
        for k in ((1, 2) if seed % 2 == 0 else (2, 1)):
            runs[k].append(once(seed, k))
            print(f"seed {seed} iterations {k}: {runs[k][-1]}", file=sys.stderr, flush=True)
    summary = {k: {"median_s": statistics.median(r["time_s"] for r in rs),
                   "median_mean_bits": statistics.median(r["mean_bits"] for r in rs),
                   "median_max_bits": statistics.median(r["max_bits"] for r in rs),
                   "worst_max_bits": min(r["max_bits"] for r in rs),
                   "levels_left": rs[0]["levels_left"], "runs": rs}
               for k, rs in runs.items()}
    return {"preset": bp.describe(), "keygen_s": keygen, "warmup": warm,
            "iterations": summary,
            "time_ratio": summary[2]["median_s"] / summary[1]["median_s"],
            "bits_ratio": summary[2]["median_mean_bits"] / summary[1]["median_mean_bits"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load_before": os.getloadavg()[0]}


def main(argv=None) -> None:
    args = parse_args(argv)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    result = run(args)
    result["load_after"] = os.getloadavg()[0]
    out = Path(args.out or f"bench/results/bootstrap_meta_{args.preset}.json")
    out.write_text(json.dumps(result, indent=1))
    it = result["iterations"]
    print(f"{args.preset}: 1 iteration {it[1]['median_s']:.2f} s, "
          f"{it[1]['median_mean_bits']:.1f}/{it[1]['median_max_bits']:.1f} bits; "
          f"2 iterations {it[2]['median_s']:.2f} s, {it[2]['median_mean_bits']:.1f}/"
          f"{it[2]['median_max_bits']:.1f} bits; time x{result['time_ratio']:.2f}, bits "
          f"x{result['bits_ratio']:.2f}; peak RSS {result['peak_rss_mib']:.0f} MiB; wrote {out}")


if __name__ == "__main__":
    main()
