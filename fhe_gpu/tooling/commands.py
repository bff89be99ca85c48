"""The researcher commands of the ``fhe-gpu`` CLI (DESIGN §10):

    fhe-gpu params --depth 10 --precision 25 [--security 128] [--log-n 15] [--slots 4096]
                   [--bootstrap] [--no-calibrate] [--json out.json]
    fhe-gpu bench --preset N14 [--plot out.png] [--json out.json] [--repeat 5]
    fhe-gpu bench --log-n 15 --q-bits 60 40 40 40 --p-bits 60 60 [--scale-bits 40]
    fhe-gpu sweep --log-n 16 --depth 27 [--scale-bits 40] [--plot sweep.png]

:func:`register` adds them to the CLI's subparsers; each sets ``run`` to its function.
"""
from __future__ import annotations

import datetime
import json
import os
import time

from ..ckks import Parameters
from ..ckks.suggest import suggest
from ..errors import ParameterError
from ..ring import get_backend
from . import plots, sweep, timing

_SECURITY = {"128": 128, "192": 192, "256": 256, "none": None}


def register(sub) -> None:
    """Add ``params``, ``bench`` and ``sweep`` to an argparse subparsers object."""
    p = sub.add_parser("params", help="suggest parameters for a depth and a precision")
    p.add_argument("--depth", type=int, required=True, help="levels the circuit needs")
    p.add_argument("--precision", type=float, required=True,
                   help="bits of max-error precision wanted after the depth")
    p.add_argument("--security", default="128", choices=sorted(_SECURITY))
    p.add_argument("--log-n", type=int, help="fix N = 2^LOG_N (default: smallest secure)")
    p.add_argument("--slots", type=int, help="at least this many slots")
    p.add_argument("--bootstrap", action="store_true",
                   help="add OpenFHE-style bootstrapping levels (modelled)")
    p.add_argument("--no-calibrate", action="store_true", help="skip the op timing")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per op (default 2)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.set_defaults(run=params_command)
    b = sub.add_parser("bench", help="time the scheme operations (JSON, optional PNG)")
    _chain_options(b)
    b.add_argument("--ops", nargs="+", choices=timing.BENCH_OPS, default=None)
    b.add_argument("--repeat", type=int, default=5, help="timed runs per op (default 5)")
    _output_options(b)
    b.set_defaults(run=bench_command)
    s = sub.add_parser("sweep", help="dnum / special primes / N trade-off for a depth")
    s.add_argument("--log-n", type=int, nargs="+", required=True)
    s.add_argument("--depth", type=int, required=True)
    s.add_argument("--scale-bits", type=int, default=40)
    s.add_argument("--security", default="128", choices=["128", "192", "256"])
    s.add_argument("--repeat", type=int, default=1,
                   help="timed key switches per configuration (default 1, after a warm-up)")
    s.add_argument("--time-insecure", action="store_true",
                   help="also time the configurations over the security bound")
    _output_options(s)
    s.set_defaults(run=sweep_command)


def _chain_options(b) -> None:
    b.add_argument("--preset", choices=sorted(Parameters.presets()))
    b.add_argument("--log-n", type=int)
    b.add_argument("--q-bits", type=int, nargs="+", help="the Q chain, base prime first")
    b.add_argument("--p-bits", type=int, nargs="+", help="special primes (default: auto)")
    b.add_argument("--scale-bits", type=int, default=40)
    b.add_argument("--dnum", type=int)
    b.add_argument("--security", default="128", choices=sorted(_SECURITY))


def _output_options(b) -> None:
    b.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--json", metavar="PATH", help="JSON output (default: beside the plot, "
                                                  "or fhe_gpu_<command>_<label>.json)")
    b.add_argument("--plot", metavar="PNG", help="write a PNG plot (needs matplotlib)")
    b.add_argument("--quiet", action="store_true", help="no progress display")


def _params_of(args) -> tuple[Parameters, str]:
    if args.preset:
        return Parameters.preset(args.preset), args.preset
    if args.log_n is None or not args.q_bits:
        raise ParameterError("bench needs --preset NAME, or --log-n and --q-bits (a custom "
                             "chain), got neither")
    params = Parameters(args.log_n, args.q_bits, args.p_bits, args.scale_bits, args.dnum,
                        _SECURITY[args.security])
    return params, f"N{args.log_n}-custom"


def _summary(params: Parameters) -> str:
    q = params.q_bits
    chain = f"[{q[0]}]+{len(q) - 1}x[{q[1]}]" if len(set(q[1:])) == 1 and len(q) > 1 \
        else str(q)
    return (f"N=2^{params.log_n}, Q={chain}, P={len(params.p_bits)}x[{params.p_bits[0]}], "
            f"dnum {params.dnum}, log QP {params.log_qp:.0f}")


def _json_path(args, command: str, label: str) -> str:
    if args.json:
        return args.json
    if args.plot:
        return os.path.splitext(args.plot)[0] + ".json"
    return f"fhe_gpu_{command}_{label}.json"


def _write_json(path: str, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def params_command(args) -> int:
    """``fhe-gpu params``: the suggestion's report (and op times unless --no-calibrate)."""
    s = suggest(args.depth, args.precision, _SECURITY[args.security], args.log_n,
                args.slots, args.bootstrap)
    if not args.no_calibrate:
        ops = timing.time_ops(s.params, timing.REPORT_OPS, repeat=args.repeat)
        s.op_ms = {k: v["ms"] for k, v in ops.items()}
        m = timing.machine()
        s.timing = (f"measured here at N=2^{s.params.log_n}: backend "
                    f"{get_backend('auto').name}, "
                    f"{m['threads']} thread(s), median of {args.repeat} runs after a warm-up")
    print(s)
    if args.json:
        p = s.params
        _write_json(args.json, {
            "log_n": p.log_n, "q_bits": p.q_bits, "p_bits": p.p_bits, "dnum": p.dnum,
            "scale_bits": p.scale_bits, "log_qp": p.log_qp, "bound": s.bound,
            "security": s.security, "depth": s.depth, "precision_bits": s.precision_bits,
            "fresh_bits": s.fresh_bits, "final_bits": s.final_bits,
            "rotation_bits": s.rotation_bits, "key_bytes": s.key_bytes,
            "bootstrap": None if s.bootstrap is None else str(s.bootstrap),
            "op_ms": s.op_ms, "report": str(s)})
    return 0


def bench_command(args) -> int:
    """``fhe-gpu bench``: times the ops with a progress display, prints a table, writes
    JSON and (with --plot) a PNG."""
    if args.plot:
        plots.require()
    params, label = _params_of(args)
    ops = args.ops or list(timing.BENCH_OPS)
    progress = timing.Progress(len(ops) + 1, f"bench {label}", enabled=not args.quiet)
    started = time.perf_counter()
    times = timing.time_ops(params, ops, repeat=args.repeat, backend=args.backend,
                            progress=progress)
    progress.close()
    result = {"label": label, "params": {"summary": _summary(params), "log_n": params.log_n,
                                         "q_bits": params.q_bits, "p_bits": params.p_bits,
                                         "dnum": params.dnum, "log_qp": params.log_qp},
              "backend": get_backend(args.backend).name,
              "machine": timing.machine(), "repeat": args.repeat, "ops": times,
              "seconds": time.perf_counter() - started,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    print(f"fhe_gpu bench {label}: {result['params']['summary']}, backend "
          f"{result['backend']}, median of {args.repeat} runs")
    for name, t in times.items():
        print(f"  {name:<20} {t['ms']:>10.3f} ms")
    path = _json_path(args, "bench", label)
    _write_json(path, result)
    print(f"wrote {path}" + (f" and {plots.bench(result, args.plot)}" if args.plot else ""))
    return 0


def sweep_command(args) -> int:
    """``fhe-gpu sweep``: the key-switching trade-off table, JSON and (with --plot) PNG."""
    if args.plot:
        plots.require()
    security = _SECURITY[args.security]
    count = sum(len(sweep.configs(ln, args.depth, args.scale_bits)[1]) for ln in args.log_n)
    progress = timing.Progress(count, "sweep", enabled=not args.quiet)
    started = time.perf_counter()
    rows = sweep.run(args.log_n, args.depth, args.scale_bits, security, args.repeat,
                     args.backend, args.time_insecure, progress)
    progress.close()
    m = timing.machine()
    how = (f"key-switch time: one hybrid key switch at the top level on random key material "
           f"of the real shape, at the real N, median of {args.repeat} run(s) after a "
           f"warm-up; backend {get_backend(args.backend).name}, {m['threads']} thread(s); "
           f"rotation bits: the "
           f"Simulator's prediction for one rotation of values in [-1, 1]")
    title = (f"fhe_gpu key-switching trade-off: depth {args.depth}, Q = [60] + {args.depth} x "
             f"[{args.scale_bits}] bits, {security}-bit security, N = "
             + ", ".join(f"2^{ln}" for ln in args.log_n))
    print(title)
    print(sweep.table(rows))
    print(f"({how}; {time.perf_counter() - started:.1f} s in all)")
    label = "N" + "-".join(str(ln) for ln in args.log_n) + f"_d{args.depth}"
    path = _json_path(args, "sweep", label)
    _write_json(path, {"title": title, "measured": how, "rows": rows, "machine": m})
    print(f"wrote {path}" + (f" and {plots.sweep(rows, args.plot, title)}" if args.plot
                             else ""))
    return 0
