"""Issue 14 acceptance 2: fg.Parameters.suggest for depth 1, 6, 13, 27 at 20, 25, 30 bits
and 128/192/256-bit security, each suggestion run encrypted (a chain of ``depth`` ct x ct
products of unit-modulus values) and its measured max-error precision compared with the
requirement; plus the OpenFHE N = 2^16 bootstrapping configurations of the model.

    python bench/suggest_precision.py [--seeds 1] [--json bench/results/suggest_precision.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

import fhe_gpu as fg
from fhe_gpu.ckks.suggest import bootstrap_configs, suggest
from fhe_gpu.tooling import accuracy

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(params, depth: int, seeds: int) -> list[float]:
    setting = accuracy.Setting("mul_chain", depth, params.log_n, tuple(params.q_bits),
                               tuple(params.p_bits), params.scale_bits, params.dnum)
    ctx = fg.Context(params, backend="cpu")
    return [accuracy._encrypted_run(setting, ctx, s)["measured"] for s in range(seeds)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "suggest_precision.json"))
    args = ap.parse_args(argv)
    rows = []
    for depth, precision, security in itertools.product((1, 6, 13, 27), (20, 25, 30),
                                                        (128, 192, 256)):
        t0 = time.perf_counter()
        s = suggest(depth, precision, security)
        got = measure(s.params, depth, args.seeds)
        p = s.params
        row = {"depth": depth, "precision_bits": precision, "security": security,
               "log_n": p.log_n, "q_bits": p.q_bits, "p_bits": p.p_bits, "dnum": p.dnum,
               "log_qp": p.log_qp, "bound": s.bound, "predicted": s.final_bits,
               "measured": float(np.mean(got)), "measured_runs": got,
               "meets": bool(np.mean(got) >= precision), "key_bytes": s.key_bytes,
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"depth {depth:2} at {precision} bits, {security}-bit: N=2^{p.log_n} scale "
              f"2^{p.scale_bits} P={len(p.p_bits)}x60 dnum {p.dnum} log QP {p.log_qp:.0f}/"
              f"{s.bound}: predicted {s.final_bits:.2f}, measured {row['measured']:.2f} "
              f"{'ok' if row['meets'] else 'SHORT'} ({row['seconds']:.0f} s)", flush=True)
    boot = [dict(str=str(c), secret=c.secret, budget=list(c.budget), depth=c.depth,
                 levels_left=c.levels_left, fits=c.fits, log_qp=c.log_qp, bound=c.bound)
            for c in bootstrap_configs(16, 128)]
    for c in boot:
        print(c["str"])
    with open(args.json, "w") as f:
        json.dump({"rows": rows, "all_meet": all(r["meets"] for r in rows),
                   "bootstrap_n16_128": boot}, f, indent=1)
    print(f"wrote {args.json}: {sum(r['meets'] for r in rows)}/{len(rows)} meet their "
          f"precision")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
