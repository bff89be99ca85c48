"""Issue 14 acceptance 1 and 4: the Simulator's predicted max-error precision against the
encrypted runs, and its time.

    python bench/sim_accuracy.py                 # the grid (77 settings, N = 2^12..2^16)
    python bench/sim_accuracy.py --quick         # the bounded sample the default tests run
    python bench/sim_accuracy.py --demo          # the demo model only
    python bench/sim_accuracy.py --plan          # the demo's Engine plan: sim_demo.json

Writes bench/results/sim_accuracy.json (every setting: measured and predicted bits per
seed, their means, the difference, timings; the worst point; the demo model's
comparison) unless --json says otherwise. Measured: -log2 of the largest |decrypt - exact|
over every slot (complex error), exact = the circuit on cleartext (the Simulator's
values), mean over 5 seeds (keys, inputs, encryptions). Predicted: ct.predicted_bits of
the Simulator (variance mode), and for comparison one sampled run (noise="sample").

``--plan`` (:func:`plan_comparison`) runs the model of ``fhe-gpu demo`` (fhe_gpu.cli) as
an Engine serves it, its Plan at N14, encrypted and on Simulators in one process, and
writes bench/results/sim_demo.json: the timings (medians, the load average), their
ratios, the measured and predicted precision of the output lanes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time

import numpy as np

import fhe_gpu as fg
from fhe_gpu import cli, engine
from fhe_gpu.ckks import encoder as ckks_encoder
from fhe_gpu.tooling import accuracy, timing

HERE = os.path.dirname(os.path.abspath(__file__))


def run_grid(settings, seeds: int) -> list[dict]:
    rows = []
    for i, setting in enumerate(settings, 1):
        row = accuracy.measure(setting, seeds=seeds)
        rows.append(row)
        print(f"[{i}/{len(settings)}] {accuracy.describe(row)}", flush=True)
    return rows


def _encrypted_run(params, model, x, want, seed: int) -> dict:
    """One tenant's encrypted run of ``model`` (its plan shared, diagonals encoded): key
    generation, then encryption, evaluation and decryption, timed apart."""
    t0 = time.perf_counter()
    client = engine.Client(params, model, seed=bytes([seed + 1]) * 32, backend="cpu")
    ev = fg.Evaluator(client.context, client.evaluation_keys())
    t1 = time.perf_counter()
    got = client.decrypt(client.plan.apply(ev, client.encrypt_ciphertext(x)), len(x))
    t2 = time.perf_counter()
    return {"keygen_s": t1 - t0, "eval_s": t2 - t1,
            "bits": -float(np.log2(np.max(np.abs(got - want))))}


def _simulated_run(params, plan, x, outputs) -> tuple[float, float, float]:
    """A new Simulator's run of ``plan``: (seconds, predicted bits of the real parts of
    the output lanes, predicted bits over every slot)."""
    t0 = time.perf_counter()
    sim = fg.Simulator(params)
    y = plan.apply(sim, sim.encrypt(plan.input_slots(x), level=plan.input_level))
    bits = y.predict_bits(part="real", slots=outputs)
    return time.perf_counter() - t0, bits, y.predicted_bits


def _kept_fraction(plan) -> float:
    """Bytes of the slot values the Encoder kept for the plan's cached plaintexts over
    the bytes of those plaintexts."""
    kept = getattr(ckks_encoder, "encoded_values", lambda pt: None)
    pts = [pt for lt in plan.transforms for entries in lt._cache._levels.values()
           for pt in entries.values()]
    return sum(kept(pt).nbytes for pt in pts if kept(pt) is not None) / \
        max(1, sum(pt.nbytes for pt in pts))


def plan_comparison(params=None, shape=(384, 256, 16, 8), runs: int = 5) -> dict:
    """The demo model's Plan (``cli._model(*shape)``), ``runs`` times in one process: a
    model built and compiled anew, its diagonals encoded (untimed, as an Engine does),
    one tenant's encrypted run (key generation, then encryption, evaluation, decryption),
    then two runs of new Simulators (construction, encryption, evaluation, prediction):
    "cold", the first Simulator to see the plan's plaintexts, and "warm". One untimed
    Simulator first loads the kernels; "fresh_plan_s" is a simulated run of a plan whose
    diagonals are not encoded yet (it encodes them). Ratios of medians."""
    params = fg.Parameters.preset("N14") if params is None else params
    x = np.random.default_rng(7).uniform(-1, 1, (shape[3], shape[0]))
    load, rows = [os.getloadavg()], []
    fg.Simulator(params)
    for seed in range(runs):
        model = cli._model(*shape)
        plan = model.compile(fg.Context(params, backend="cpu"))
        plan.warm()
        row = _encrypted_run(params, model, x, model.forward_plain(x), seed)
        outputs = np.unique(plan.output_vectors(np.arange(params.slots), len(x))
                            .astype(np.int64))
        row["cold"] = _simulated_run(params, plan, x, outputs)
        row["warm"] = _simulated_run(params, plan, x, outputs)
        rows.append(row)
    fresh = cli._model(*shape).compile(fg.Context(params, backend="cpu"))
    fresh_s = _simulated_run(params, fresh, x, outputs)[0]
    load.append(os.getloadavg())
    keygen, evals = [r["keygen_s"] for r in rows], [r["eval_s"] for r in rows]
    cold, warm = [r["cold"][0] for r in rows], [r["warm"][0] for r in rows]
    measured = float(np.mean([r["bits"] for r in rows]))
    out = {"params": repr(params), "model": f"cli._model{tuple(shape)} (GELU degree 15)",
           "runs": runs, "load_average": load, "machine": timing.machine(),
           "encrypted_keygen_s": keygen, "encrypted_eval_s": evals, "cold_runs_s": cold,
           "warm_runs_s": warm, "cold_s": float(np.median(cold)),
           "warm_s": float(np.median(warm)), "fresh_plan_s": fresh_s,
           "median_encrypted_s": float(np.median(np.add(keygen, evals))),
           "median_encrypted_eval_s": float(np.median(evals)),
           "measured_bits": [r["bits"] for r in rows], "measured": measured,
           "predicted": float(np.mean([r["cold"][1] for r in rows])),
           "predicted_all_slots": float(np.mean([r["cold"][2] for r in rows])),
           "kept_values_fraction": _kept_fraction(plan)}
    out["error"] = out["predicted"] - measured
    for name in ("cold", "warm"):
        out[f"ratio_{name}"] = out[f"{name}_s"] / out["median_encrypted_s"]
        out[f"ratio_{name}_eval"] = out[f"{name}_s"] / out["median_encrypted_eval_s"]
    return out


def describe_plan(r: dict) -> str:
    """One paragraph of :func:`plan_comparison`'s figures."""
    return (f"demo plan {r['model']}: Simulator cold {r['cold_s'] * 1e3:.1f} ms, warm "
            f"{r['warm_s'] * 1e3:.1f} ms (fresh plan {r['fresh_plan_s']:.2f} s); encrypted "
            f"{r['median_encrypted_s']:.2f} s (key generation included; evaluation alone "
            f"{r['median_encrypted_eval_s']:.2f} s): cold {100 * r['ratio_cold']:.2f} % "
            f"({100 * r['ratio_cold_eval']:.2f} % of the evaluation), warm "
            f"{100 * r['ratio_warm']:.2f} %; precision measured {r['measured']:.2f} bits, "
            f"predicted {r['predicted']:.2f} ({r['error']:+.2f}); load average "
            f"{r['load_average'][0][0]:.2f} -> {r['load_average'][1][0]:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the bounded sample only")
    ap.add_argument("--demo", action="store_true", help="the demo model only")
    ap.add_argument("--plan", action="store_true",
                    help="the demo's Engine plan only (writes results/sim_demo.json)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "sim_accuracy.json"))
    args = ap.parse_args(argv)
    if args.plan:
        r = plan_comparison(runs=args.seeds)
        r["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        print(describe_plan(r))
        path = os.path.join(HERE, "results", "sim_demo.json")
        with open(path, "w") as f:
            json.dump(r, f, indent=1)
        print(f"wrote {path}")
        return 0
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
