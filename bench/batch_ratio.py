"""Batched vs one-at-a-time: time of one batch-16 call / time of 16 batch-1 calls.

    python bench/batch_ratio.py [--preset N14 | --log-n 11] [--backend cpu]

Shows that encode, encrypt, decrypt and every Evaluator op run one kernel launch per
verb per batch (no Python loop over limbs, coefficients or ciphertexts).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fhe_gpu as fg

BATCH = 16


def _median_time(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _ops(ctx, kg, evk):
    enc, ev = fg.Encoder(ctx), fg.Evaluator(ctx, evk)
    encryptor, dec = fg.Encryptor(ctx, kg.public_key()), fg.Decryptor(ctx, kg.secret_key)
    rng = np.random.default_rng(0)

    def prepare(batch):
        x = rng.uniform(-1, 1, (batch, ctx.slots))
        pt = enc.encode(x)
        ct = encryptor.encrypt(pt)
        return {"x": x, "pt": pt, "ct": ct}

    return {
        "encode": lambda d: enc.encode(d["x"]),
        "encrypt": lambda d: encryptor.encrypt(d["pt"]),
        "decrypt+decode": lambda d: enc.decode(dec.decrypt(d["ct"])),
        "add": lambda d: ev.add(d["ct"], d["ct"]),
        "mul ct*pt": lambda d: ev.mul(d["ct"], d["pt"]),
        "mul ct*ct (relin+rescale)": lambda d: ev.mul(d["ct"], d["ct"]),
        "rotate 1": lambda d: ev.rotate(d["ct"], 1),
        "rescale": lambda d: ev.rescale(d["ct"]),
    }, prepare


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="N14")
    ap.add_argument("--log-n", type=int, default=None,
                    help="small insecure ring instead of a preset: Q=[50,30,30,30], P=[60]")
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args(argv)
    if args.log_n is None:
        params = fg.Parameters.preset(args.preset)
    else:
        params = fg.Parameters(log_n=args.log_n, q_bits=[50, 30, 30, 30], p_bits=[60],
                               scale_bits=30, security=None)
        args.preset = f"N=2^{args.log_n}"
    ctx = fg.Context(params, backend=args.backend)
    kg = fg.KeyGenerator(ctx)
    ops, prepare = _ops(ctx, kg, kg.evaluation_keys(rotations=[1]))
    batched, single = prepare(BATCH), prepare(1)
    print(f"{args.preset} on {ctx.backend_name}: batch of {BATCH} vs {BATCH} single calls")
    print(f"{'op':<28}{'batch-16 ms':>14}{'16 x single ms':>16}{'ratio':>8}")
    for name, fn in ops.items():
        tb = _median_time(lambda: fn(batched))
        ts = _median_time(lambda: [fn(single) for _ in range(BATCH)])
        print(f"{name:<28}{tb * 1e3:>14.1f}{ts * 1e3:>16.1f}{tb / ts:>8.2f}")


if __name__ == "__main__":
    main()
