"""Command line: ``fhe-gpu demo`` serves a 2-layer model to several tenants through an
Engine (their keys, cross-tenant batches, decrypted per tenant)."""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import FHEError, Parameters, __version__, engine, precision_bits
from .serving import command as serve_command
from .tooling import commands as tooling_commands

#: the demo model's activation: GELU on [-8, 8] as a degree-15 Chebyshev interpolant
ACTIVATION = ("gelu", (-8.0, 8.0), 15)


def _model(dim: int, hidden: int, classes: int, vectors: int) -> engine.Model:
    """A classifier head on dim-wide embeddings: Linear(dim -> hidden) + GELU (its change
    of variable folded into the Linear) + Linear(hidden -> classes), seeded weights."""
    rng = np.random.default_rng(2026)
    name, interval, degree = ACTIVATION
    return engine.Model([
        engine.Linear(rng.uniform(-1, 1, (hidden, dim)) * 2 / np.sqrt(dim),
                      rng.uniform(-0.5, 0.5, hidden)),
        engine.Activation(name, interval=interval, degree=degree),
        engine.Linear(rng.uniform(-1, 1, (classes, hidden)) / np.sqrt(hidden),
                      rng.uniform(-0.1, 0.1, classes))], vectors=vectors, name="head")


def _step(label: str, fn, *args):
    t0 = time.perf_counter()
    print(f"  {label} ...", end="", flush=True)
    out = fn(*args)
    print(f" {time.perf_counter() - t0:.2f} s", flush=True)
    return out


def _warm_up(backend) -> None:
    """Compile the kernels the run needs (cached on disk after the first run), showing
    progress."""
    from .ring import warm_up

    def show(name, i, n, seconds):
        print(f"\r  compiling kernels {i}/{n} ({name}, {seconds:.1f} s)   ", end="",
              flush=True)
    t0 = time.perf_counter()
    warm_up(backend, progress=show)
    print(f"\r  kernels ready in {time.perf_counter() - t0:.1f} s" + " " * 40, flush=True)


def _serve(eng, clients, inputs):
    """Every tenant sends its requests from its own thread; results per tenant."""
    def run(tenant):
        futs = [eng.submit(tenant, "head", clients[tenant].encrypt(x)) for x in inputs[tenant]]
        return [f.result() for f in futs]

    with ThreadPoolExecutor(len(clients)) as pool:
        return dict(zip(clients, pool.map(run, list(clients))))


def demo(args) -> int:
    params = Parameters.preset(args.preset)
    print(f"fhe_gpu {__version__} demo: {args.tenants} tenants, a {args.dim} -> {args.hidden} "
          f"-> {args.classes} model with GELU, served by one Engine")
    _warm_up(args.backend)
    model = _model(args.dim, args.hidden, args.classes, args.vectors)
    eng = _step("server: Engine (model compiled, key slab allocated)",
                lambda: engine.Engine(params, {"head": model}, args.backend,
                                      max_batch=args.tenants, max_wait_ms=50.0))
    clients = {}
    for i in range(args.tenants):
        t = f"tenant-{i}"
        clients[t] = engine.Client(params, model, backend=args.backend)
        evk = _step(f"{t}: evaluation keys ({len(clients[t].plan.rotations)} rotations)",
                    clients[t].evaluation_key_bytes)
        _step(f"server: {t} registered ({len(evk) / 2**20:.0f} MB of keys)",
              eng.register_tenant, t, evk)
    rng = np.random.default_rng(7)
    inputs = {t: [rng.uniform(-1, 1, (args.vectors, args.dim)) for _ in range(args.requests)]
              for t in clients}
    t0 = time.perf_counter()
    results = _serve(eng, clients, inputs)
    wall = time.perf_counter() - t0
    m = eng.metrics()
    eng.close()
    return _report(args, params, eng, model, clients, inputs, results, wall, m)


def _report(args, params, eng, model, clients, inputs, results, wall, m) -> int:
    requests = args.tenants * args.requests
    batches = m["fhe_engine_batch_size_count"]["model=head"]
    print(f"backend: {eng.ctx.backend_name}; parameters {args.preset}: N=2^{params.log_n}, "
          f"{params.slots} slots, {params.max_level} levels, {params.security}-bit security; "
          f"model depth {model.depth}")
    print(f"served {requests} requests ({requests * args.vectors} vectors) in {wall:.2f} s: "
          f"{requests / wall:.2f} requests/s, {batches:.0f} batches "
          f"(mean {m['fhe_engine_batch_size_sum']['model=head'] / batches:.1f} rows)")
    worst = np.inf
    for t, client in clients.items():
        bits = min(precision_bits(model.forward_plain(x), client.decrypt(out, count=len(x)))
                   for x, out in zip(inputs[t], results[t]))
        worst = min(worst, bits)
        print(f"  {t}: {len(results[t])} results, precision {bits:.1f} bits against the "
              f"cleartext twin")
    return 0 if worst >= 20 else 1


def main(argv=None) -> int:
    """Entry point of the ``fhe-gpu`` command."""
    parser = argparse.ArgumentParser(prog="fhe-gpu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="serve a 2-layer model to several tenants via an Engine")
    d.add_argument("--preset", default="N14", choices=sorted(Parameters.presets()))
    d.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--tenants", type=int, default=4)
    d.add_argument("--requests", type=int, default=1, help="requests per tenant")
    d.add_argument("--vectors", type=int, default=8, help="embeddings per request")
    d.add_argument("--dim", type=int, default=128,
                   help="embedding width (128: FaceNet-style; 384: MiniLM, ~3x the keys)")
    d.add_argument("--hidden", type=int, default=64)
    d.add_argument("--classes", type=int, default=8)
    tooling_commands.register(sub)          # params, bench, sweep (fhe_gpu.tooling)
    serve_command.add_parser(sub)           # serve (fhe_gpu.serving)
    args = parser.parse_args(argv)
    try:
        return getattr(args, "run", demo)(args)
    except FHEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
