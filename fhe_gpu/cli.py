"""Command line: ``fhe-gpu demo`` runs an encrypted rectangular linear layer and a GELU end
to end."""
from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from . import (Context, Decryptor, Encoder, Encryptor, Evaluator, FHEError, KeyGenerator,
               Parameters, __version__, circuits, precision_bits)

#: the demo's activation: GELU on [-8, 8] as a degree-31 Chebyshev interpolant
ACTIVATION = ("gelu", (-8.0, 8.0), 31)


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


def _layer(ctx, dim, batch, rng):
    """A rectangular layer (2*dim x dim) with the activation's change of variable folded in
    (weights alpha*W, bias alpha*b + beta), so the activation costs ceil(log2(d + 1))
    levels; its twin is act(x @ W.T + b)."""
    name, interval, degree = ACTIVATION
    act = circuits.activation(name, interval=interval, degree=degree)
    w = rng.uniform(-1, 1, (2 * dim, dim)) / np.sqrt(dim)
    b = rng.uniform(-0.5, 0.5, 2 * dim)
    lt = circuits.LinearTransform(ctx, act.alpha * w, act.alpha * b + act.beta,
                                  vectors=batch)
    return act, lt, (lambda x: act(x @ w.T + b))


def _pipeline(params, backend, batch, dim, clock):
    """Client encrypts, server evaluates with evaluation keys only, client decrypts."""
    ctx = Context(params, backend=backend)
    rng = np.random.default_rng(2026)
    act, lt, twin = _layer(ctx, dim, batch, rng)
    kg = KeyGenerator(ctx)
    pk = clock.run("client: key generation (secret + public)", kg.public_key)
    evk = clock.run(f"client: evaluation keys (relin + {len(lt.rotations)} rotations + "
                    f"conjugation)", lambda: kg.evaluation_keys(lt.rotations, conjugation=True))
    x = rng.uniform(-1, 1, (batch, dim))
    encoder = Encoder(ctx)
    ct = clock.run(f"client: encode + encrypt {batch} vectors",
                   lambda: Encryptor(ctx, pk).encrypt(lt.encode_input(x)))
    server = Evaluator(ctx, evk)            # public material only
    y = clock.run(f"server: linear layer {lt.d_out}x{lt.d_in} (batch {batch})",
                  lt.apply, server, ct)
    z = clock.run(f"server: {act.name} (Chebyshev degree {act.degree}, {act.depth} levels)",
                  circuits.evaluate, server, y, act.in_unit_coordinates())
    got = clock.run("client: decrypt + decode",
                    lambda: lt.decode_output(encoder.decode(
                        Decryptor(ctx, kg.secret_key).decrypt(z)), count=batch))
    return ctx, got, twin(x), act


def demo(args) -> int:
    params = Parameters.preset(args.preset)
    print(f"fhe_gpu {__version__} demo: encrypted rectangular linear layer + GELU")
    warm = time.perf_counter()
    quiet = logging.getLogger("fhe_gpu")
    was, quiet.disabled = quiet.disabled, True   # the warm-up set is insecure on purpose
    small = Parameters(log_n=10, q_bits=[50] + [30] * 6, scale_bits=30, security=None)
    quiet.disabled = was
    _pipeline(small, args.backend, 2, min(args.dim, 16), _Clock())
    print(f"  kernel warm-up (JIT compile on first run, cached after): "
          f"{time.perf_counter() - warm:.1f} s")
    clock = _Clock()
    ctx, got, want, act = _pipeline(params, args.backend, args.batch, args.dim, clock)
    print(f"backend: {ctx.backend_name}")
    print(f"parameters: {args.preset}: N=2^{params.log_n}, slots {params.slots}, "
          f"log2(QP)={params.log_qp:.0f}, levels {params.max_level}, dnum {params.dnum}, "
          f"scale 2^{params.scale_bits}, {params.security}-bit security")
    clock.print()
    bits = precision_bits(want, got)
    print(f"precision: {bits:.1f} bits against the cleartext twin (max abs error "
          f"{np.max(np.abs(want - got)):.3g}) over {got.size} outputs; the interpolant's own "
          f"error against {act.name} is {act.max_error:.2g}")
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
