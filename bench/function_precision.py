"""Encrypted activations against their cleartext twins at N = 2^16 (issue 10, point 4).

    python bench/function_precision.py [--chains ref hi] [--degrees 27 59 119]
        [--json bench/results/function_precision.json]

For sigmoid [-8, 8], GELU [-8, 8], tanh [-4, 4], exp [-8, 0] at each degree, and 1/sqrt on
[0.01, 1] (degree-31 seed and two Newton steps): one ciphertext of N/2 uniform values on
the interval, the change of variable folded into the client's encoding (levels consumed
== ceil(log2(d + 1)), asserted), encrypted under the public key.
Reported per case, in bits (-log2 of the largest slot error):

* ``twin``: the cleartext twin p(x) against the exact function (the fit);
* ``he``: the decrypted result against the exact function;
* ``noise``: the decrypted result against the twin (the scheme's error alone);
* ``within_1_bit``: he >= twin - 1.

Chains (both 128-bit at N = 2^16, hybrid key switching, dnum 3, dense ternary secret):
``ref`` is the issue's reference case, Q = [60] + 12 x [50] bits at scale 2^50 (OpenFHE
1.6.1 EvalChebyshevFunction reaches 29.7-29.9 bits there at degree 59); ``hi`` is
Q = [60] + 12 x [58] at scale 2^58, 8 bits more headroom for the noise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import fhe_gpu as fg
from fhe_gpu import circuits as fc
from fhe_gpu.circuits.functions import inv_sqrt_seed

CHAINS = {"ref": 50, "hi": 58}
CASES = (("sigmoid", (-8.0, 8.0)), ("gelu", (-8.0, 8.0)), ("tanh", (-4.0, 4.0)),
         ("exp", (-8.0, 0.0)))


class World:
    """Keys and codecs of one chain: Q = [60] + 12 x [bits], scale 2^bits."""

    def __init__(self, bits: int):
        self.params = fg.Parameters(log_n=16, q_bits=[60] + [bits] * 12, p_bits=None,
                                    scale_bits=bits, security=128)
        self.ctx = fg.Context(self.params, backend="cpu")
        kg = fg.KeyGenerator(self.ctx)
        self.ev = fg.Evaluator(self.ctx, kg.evaluation_keys())
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, kg.public_key())
        self.dec = fg.Decryptor(self.ctx, kg.secret_key)

    def encrypt(self, x, alpha: float):
        """x at alpha times the top prime: the change of variable folded into the encoding."""
        scale = alpha * float(self.ctx.q_primes[self.params.max_level])
        return self.encryptor.encrypt(self.enc.encode(x, scale=scale))

    def decrypt(self, ct):
        return self.enc.decode(self.dec.decrypt(ct)).real


def case(w: World, name: str, x, exact, twin, run, levels_stated: int) -> dict:
    ct = w.encrypt(x, run.alpha)
    t0 = time.perf_counter()
    y = run(w.ev, ct)
    seconds = time.perf_counter() - t0
    got = w.decrypt(y)
    levels = ct.level - y.level
    assert levels == levels_stated, (name, levels, levels_stated)
    out = {"case": name, "levels": levels, "seconds": round(seconds, 3),
           "twin": round(fg.precision_bits(exact, twin), 2),
           "he": round(fg.precision_bits(exact, got), 2),
           "noise": round(fg.precision_bits(twin, got), 2)}
    out["within_1_bit"] = bool(out["he"] >= out["twin"] - 1.0)
    print(json.dumps(out), flush=True)
    return out


class Activation:
    def __init__(self, p):
        self.p, self.alpha = p, p.alpha

    def __call__(self, ev, ct):
        return fc.evaluate(ev, ct, self.p, assume_in_interval=True)


class InvSqrt:
    def __init__(self):
        self.alpha = inv_sqrt_seed().alpha

    def __call__(self, ev, ct):
        return fc.inv_sqrt(ev, ct, assume_in_interval=True)


def run_chain(bits: int, degrees, rng) -> list[dict]:
    w = World(bits)
    rows = []
    for name, (a, b) in CASES:
        x = rng.uniform(a, b, w.ctx.slots)
        exact = fc.ACTIVATIONS[name][0](x)
        for d in degrees:
            p = fc.activation(name, interval=(a, b), degree=d)
            rows.append(case(w, f"{name} d={d}", x, exact, p(x), Activation(p), p.depth))
    x = rng.uniform(0.01, 1.0, w.ctx.slots)
    seed = inv_sqrt_seed()  # its map folded into the encoding: the seed costs its depth only
    seed_levels = fc.inv_sqrt_depth() - (seed.evaluation_depth() - seed.depth)
    rows.append(case(w, "inv_sqrt d=31+2 newton", x, 1 / np.sqrt(x), fc.inv_sqrt_plain(x),
                     InvSqrt(), seed_levels))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", nargs="+", default=list(CHAINS), choices=list(CHAINS))
    ap.add_argument("--degrees", nargs="+", type=int, default=[27, 59, 119])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    fg.set_num_threads(args.threads)
    rng = np.random.default_rng(11)
    load = os.getloadavg()[0]
    result = {"benchmark": "bench/function_precision.py", "argv": sys.argv[1:],
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "threads": args.threads, "loadavg_1min_before": round(load, 2), "chains": {}}
    for chain in args.chains:
        print(f"chain {chain}: Q = [60] + 12 x [{CHAINS[chain]}], scale 2^{CHAINS[chain]}")
        result["chains"][chain] = run_chain(CHAINS[chain], args.degrees, rng)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
