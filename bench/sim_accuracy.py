"""Issue 14 acceptance 1 and 4: the Simulator's predicted max-error precision against the
encrypted runs.

    python bench/sim_accuracy.py                 # the grid (77 settings, N = 2^12..2^16)
    python bench/sim_accuracy.py --quick         # the bounded sample the default tests run
    python bench/sim_accuracy.py --demo          # the demo model only

Writes bench/results/sim_accuracy.json (every setting: measured and predicted bits per
seed, their means, the difference, timings; the worst point; the demo model's
comparison) unless --json says otherwise. Measured: -log2 of the largest |decrypt - exact|
over every slot (complex error), exact = the circuit on cleartext (the Simulator's
values), mean over 5 seeds (keys, inputs, encryptions). Predicted: ct.predicted_bits of
the Simulator (variance mode), and for comparison one sampled run (noise="sample").
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import fhe_gpu as fg
from fhe_gpu.tooling import accuracy, timing

HERE = os.path.dirname(os.path.abspath(__file__))


def run_grid(settings, seeds: int) -> list[dict]:
    rows = []
    for i, setting in enumerate(settings, 1):
        row = accuracy.measure(setting, seeds=seeds)
        rows.append(row)
        print(f"[{i}/{len(settings)}] {accuracy.describe(row)}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the bounded sample only")
    ap.add_argument("--demo", action="store_true", help="the demo model only")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "sim_accuracy.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "machine": timing.machine(), "seeds": args.seeds}
    if not args.demo:
        rows = run_grid(accuracy.quick_grid() if args.quick else accuracy.grid(), args.seeds)
        worst = accuracy.worst(rows)
        out.update(settings=len(rows), rows=rows, worst=worst,
                   max_abs_error=abs(worst["error"]),
                   max_abs_sampled_error=abs(accuracy.worst(rows, "sampled_error")
                                             ["sampled_error"]))
        print(f"worst point of {len(rows)}: {accuracy.describe(worst)}")
    demo = accuracy.demo_comparison(fg.Parameters.preset("N14"), runs=3)
    out["demo"] = demo
    print(f"demo model {demo['model']} at N14: measured {demo['measured']:.2f} bits, "
          f"predicted {demo['predicted']:.2f}; Simulator {min(demo['simulated_s']) * 1e3:.1f}"
          f" ms vs encrypted {min(demo['encrypted_s']):.2f} s ({100 * demo['ratio']:.2f} %)")
    out["seconds"] = time.perf_counter() - started
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.json} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
