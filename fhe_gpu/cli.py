"""Command line: ``fhe-gpu demo`` runs an encrypted linear layer + activation end to end."""
from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from . import (Context, Decryptor, Encoder, Encryptor, Evaluator, FHEError, KeyGenerator,
               Parameters, __version__, engine, precision_bits)

ACTIVATION = [0.5, 0.197, 0.0, -0.004]  # sigmoid on [-4, 4], degree 3


class _Clock:
    def __init__(self):
        self.rows = []

    def run(self, label, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.rows.append((label, (time.perf_counter() - t0) * 1e3))
        return out

    def print(self):
        for label, ms in self.rows:
            print(f"  {label:<52} {ms:>10.1f} ms")


def _pipeline(params, backend, batch, dim, clock):
    """Client encrypts, server evaluates with evaluation keys only, client decrypts."""
    ctx = Context(params, backend=backend)
    kg = KeyGenerator(ctx)
    pk = clock.run("client: key generation (secret + public)", kg.public_key)
    rotations = engine.matvec_rotations(dim)
    evk = clock.run(f"client: evaluation keys (relin + {len(rotations)} rotations)",
                    kg.evaluation_keys, rotations)
    rng = np.random.default_rng(2026)
    x = rng.uniform(-1, 1, (batch, dim))
    w = rng.uniform(-1, 1, (dim, dim)) / np.sqrt(dim)
    encoder = Encoder(ctx)
    ct = clock.run(f"client: encode + encrypt {batch} vectors",
                   lambda: Encryptor(ctx, pk).encrypt(
                       encoder.encode(engine.replicate(x, params.slots))))
    server = Evaluator(ctx, evk)            # public material only
    y = clock.run(f"server: linear layer {dim}x{dim} (batch {batch})",
                  engine.matvec, server, encoder, ct, w)
    bound = max(4.0, y.value_bound or 0.0)
    z = clock.run("server: activation 0.5 + 0.197x - 0.004x^3",
                  lambda: engine.polyval(server, y, ACTIVATION, bound=bound))
    got = clock.run("client: decrypt + decode",
                    lambda: encoder.decode(Decryptor(ctx, kg.secret_key).decrypt(z)))
    want = np.polyval(ACTIVATION[::-1], x @ w.T)
    return ctx, np.atleast_2d(got)[:, :dim], want


def demo(args) -> int:
    params = Parameters.preset(args.preset)
    print(f"fhe_gpu {__version__} demo: encrypted linear layer + polynomial activation")
    warm = time.perf_counter()
    quiet = logging.getLogger("fhe_gpu")
    was, quiet.disabled = quiet.disabled, True   # the warm-up set is insecure on purpose
    small = Parameters(log_n=10, q_bits=[50, 30, 30, 30, 30], p_bits=[60], scale_bits=30,
                       security=None)
    quiet.disabled = was
    _pipeline(small, args.backend, 2, min(args.dim, 16), _Clock())
    print(f"  kernel warm-up (JIT compile on first run, cached after): "
          f"{time.perf_counter() - warm:.1f} s")
    clock = _Clock()
    ctx, got, want = _pipeline(params, args.backend, args.batch, args.dim, clock)
    print(f"backend: {ctx.backend_name}")
    print(f"parameters: {args.preset}: N=2^{params.log_n}, slots {params.slots}, "
          f"log2(QP)={params.log_qp:.0f}, levels {params.max_level}, dnum {params.dnum}, "
          f"scale 2^{params.scale_bits}, {params.security}-bit security")
    clock.print()
    bits = precision_bits(want, got)
    print(f"precision: {bits:.1f} bits (max abs error {np.max(np.abs(want - got)):.3g}) "
          f"over {got.size} outputs")
    return 0 if bits >= 20 else 1


def main(argv=None) -> int:
    """Entry point of the ``fhe-gpu`` command."""
    parser = argparse.ArgumentParser(prog="fhe-gpu", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="encrypt, evaluate a linear layer + activation, decrypt")
    d.add_argument("--preset", default="N14", choices=sorted(Parameters.presets()))
    d.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--batch", type=int, default=8)
    d.add_argument("--dim", type=int, default=16)
    args = parser.parse_args(argv)
    try:
        return demo(args)
    except FHEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
