"""First-call latency of fhe_gpu in a fresh process: import, setup and each op's first call
(JIT compilation or cache loading included), then the same op once more for comparison.

    NUMBA_CACHE_DIR=$(mktemp -d) python bench/first_call.py --preset N14 --backend cpu

Prints one JSON object: {"import_s", "steps": {step: {"first_ms", "second_ms"}}, "total_s"}.
Run with an empty NUMBA_CACHE_DIR (and CUPY_CACHE_DIR) for a cold start, or with one that a
previous run filled for a warm-cache start. Used by bench/test_scheme.py::test_first_call.
"""
from __future__ import annotations

import argparse
import json
import time

T_START = time.perf_counter()


def _step(steps: dict, name: str, fn, sync):
    t0 = time.perf_counter()
    out = fn()
    sync()
    t1 = time.perf_counter()
    fn()
    sync()
    steps[name] = {"first_ms": (t1 - t0) * 1e3, "second_ms": (time.perf_counter() - t1) * 1e3}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="N14")
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args(argv)
    import numpy as np

    import fhe_gpu as fg
    import_s = time.perf_counter() - T_START
    steps: dict = {}
    ctx = fg.Context(fg.Parameters.preset(args.preset), backend=args.backend)
    sync = ctx.backend.synchronize
    kg = _step(steps, "key_generator", lambda: fg.KeyGenerator(ctx), sync)
    pk = _step(steps, "public_key", kg.public_key, sync)
    evk = _step(steps, "evaluation_keys", lambda: kg.evaluation_keys(rotations=[1]), sync)
    enc, ev = fg.Encoder(ctx), fg.Evaluator(ctx, evk)
    x = np.random.default_rng(0).uniform(-1, 1, ctx.slots)
    pt = _step(steps, "encode", lambda: enc.encode(x), sync)
    ct = _step(steps, "encrypt", lambda: fg.Encryptor(ctx, pk).encrypt(pt), sync)
    _step(steps, "add", lambda: ev.add(ct, ct), sync)
    _step(steps, "mul_plain", lambda: ev.mul(ct, pt, rescale=False), sync)
    prod = _step(steps, "mul_relin", lambda: ev.mul(ct, ct, rescale=False), sync)
    _step(steps, "rescale", lambda: ev.rescale(prod), sync)
    _step(steps, "rotate", lambda: ev.rotate(ct, 1), sync)
    dec = fg.Decryptor(ctx, kg.secret_key)
    _step(steps, "decrypt_decode", lambda: enc.decode(dec.decrypt(ct)), sync)
    print(json.dumps({"preset": args.preset, "backend": ctx.backend_name, "import_s": import_s,
                      "steps": steps, "total_s": time.perf_counter() - T_START}))


if __name__ == "__main__":
    main()
