"""Time a LinearTransform: 32 vectors of 768 (lanes of 1024) x a 768 x 768 matrix at N=2^16.

    python bench/linear_speed.py [--preset N16] [--level 9] [--vectors 32] [--dim 768]
                                 [--threads 1] [--repeat 3] [--batch 8] [--complex]
                                 [--json out.json]

One ciphertext packs ``--vectors`` vectors (interleaved lanes, see fhe_gpu.circuits.linear),
dropped to ``--level`` (level 9 = 10 limbs) before the transform; the diagonal cache is
warmed first (its size is printed) and sized to hold every diagonal. Prints the median of
``--repeat`` calls, the precision against the cleartext twin, the time of one call on a
batch of ``--batch`` ciphertexts against that many single calls, and the load average.
``--complex`` packs two vectors per lane (real and imaginary parts): lanes of 2048.

At batch 8 the temporaries (84 MB each at level 9) exceed glibc's 32 MB mmap threshold;
the CPU backend takes them from its buffer pool (fhe_gpu/ring/pool.py), which the first
call fills: every timing (single and batch) therefore follows one untimed call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import fhe_gpu as fg
from fhe_gpu import circuits as fc


def _timed(fn, repeat: int):
    times, out = [], fn()
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _bits(lt, enc, dec, y, x) -> float:
    """-log2 of max|error| / (||W||_inf ||x||_inf + ||b||_inf)."""
    got = lt.decode_output(enc.decode(dec.decrypt(y)), count=len(x))
    ref = float(np.abs(lt.W).sum(axis=1).max() * np.abs(x).max() + np.abs(lt.bias).max())
    return float(-np.log2(np.abs(got - lt.forward_plain(x)).max() / ref))


def _setup(args):
    ctx = fg.Context(fg.Parameters.preset(args.preset), backend=args.backend)
    rng = np.random.default_rng(0)
    W = rng.uniform(-1, 1, (args.dim, args.dim))
    b = rng.uniform(-1, 1, args.dim)
    lt = fc.LinearTransform(ctx, W, b, vectors=args.vectors, complex_packing=args.complex,
                            cache_bytes=1 << 40)
    print(f"{lt}\n{len(lt.rotations)} Galois keys: {lt.rotations}")
    t0 = time.perf_counter()
    kg = fg.KeyGenerator(ctx, seed=b"\x05" * 32)
    evk = kg.evaluation_keys(rotations=lt.rotations, conjugation=False)
    print(f"keys: {time.perf_counter() - t0:.1f} s, {len(evk.galois) * evk.key_bytes() / 2**30:.2f}"
          f" GiB")
    enc, dec = fg.Encoder(ctx), fg.Decryptor(ctx, kg.secret_key)
    encryptor, ev = fg.Encryptor(ctx, kg.public_key()), fg.Evaluator(ctx, evk)
    x = rng.uniform(-1, 1, (args.vectors, args.dim))
    ct = ev.drop_level(encryptor.encrypt(lt.encode_input(x)), args.level)
    return ctx, lt, ev, enc, dec, ct, x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="N16")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--level", type=int, default=9)
    ap.add_argument("--vectors", type=int, default=32)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="0 skips the batch comparison")
    ap.add_argument("--complex", action="store_true", help="complex packing")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    fg.set_num_threads(args.threads)
    ctx, lt, ev, enc, dec, ct, x = _setup(args)
    t0 = time.perf_counter()
    lt.warm(ct.level)
    warm_s = time.perf_counter() - t0
    print(f"cache warmed in {warm_s:.1f} s: {lt.cache_nbytes / 2**30:.2f} GiB "
          f"({lt.diagonals} diagonals at level {ct.level})")
    median, times, y = _timed(lambda: lt.apply(ev, ct), args.repeat)
    bits = _bits(lt, enc, dec, y, x)
    print(f"apply ({args.threads} thread(s), level {ct.level}): median {median:.2f} s of "
          f"{[round(t, 2) for t in times]}; precision {bits:.1f} bits")
    report = dict(preset=args.preset, level=ct.level, vectors=args.vectors, dim=args.dim,
                  complex_packing=args.complex,
                  threads=args.threads, median_s=median, times_s=times, bits=bits,
                  cache_bytes=lt.cache_nbytes, warm_s=warm_s, diagonals=lt.diagonals,
                  key_switches=lt.key_switches, baby=lt.baby, load=os.getloadavg())
    if args.batch:
        cts = fg.Ciphertext.stack([ct] * args.batch)
        batch_s, batch_times, _ = _timed(lambda: lt.apply(ev, cts), 2)
        print(f"batch of {args.batch}: median {batch_s:.2f} s of "
              f"{[round(t, 2) for t in batch_times]} = {batch_s / median:.2f} single calls")
        report.update(batch=args.batch, batch_s=batch_s, batch_times_s=batch_times)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
