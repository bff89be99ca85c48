"""Predicted against measured precision: the Simulator's ``predicted_bits`` next to the
max-error precision of the same circuit run encrypted, over a grid of settings.

A :class:`Setting` names parameters (N, the Q chain and scale, special primes, dnum) and a
circuit written once for both evaluators (Evaluator and Simulator answer the same calls):

* ``fresh``: an encryption; ``mul_chain`` (d): d products by fresh ciphertexts of unit
  modulus values; ``square_chain`` (d): d squarings of a unit-modulus value;
* ``rotate`` (m): m successive rotations by distinct steps (one key switch each);
  ``inner_sum`` (n): circuits.inner_sum over blocks of n slots;
* ``poly`` (d): circuits.evaluate of a degree-d Chebyshev interpolant of tanh(2x) on
  [-1, 1]; ``linear`` (d): a d x d circuits.LinearTransform with bias.

:func:`measure` runs a setting for ``seeds`` key sets, inputs and encryptions: the measured
precision is -log2 max |decrypt - exact| over every slot (complex error; the exact values
are the Simulator's, i.e. the circuit on cleartext), the predicted one the Simulator's
``predicted_bits`` (variance mode) and, for comparison, one sampled run's.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import circuits
from ..ckks import Context, Encoder, Evaluator, Parameters, Simulator
from ..rlwe import Decryptor, Encryptor, KeyGenerator


@dataclass(frozen=True)
class Setting:
    """One grid point: parameters and a circuit (see the module docstring)."""

    circuit: str
    arg: int
    log_n: int
    q_bits: tuple
    p_bits: tuple
    scale_bits: int
    dnum: int | None = None

    @property
    def name(self) -> str:
        """A short label: circuit, N, chain, P, dnum."""
        q = f"[{self.q_bits[0]}]+{len(self.q_bits) - 1}x[{self.q_bits[1]}]" \
            if len(set(self.q_bits[1:])) == 1 and len(self.q_bits) > 1 else str(list(self.q_bits))
        return (f"{self.circuit}({self.arg}) N=2^{self.log_n} Q={q} P={len(self.p_bits)}x"
                f"[{self.p_bits[0]}] dnum={self.dnum or 'auto'}")

    def params(self) -> Parameters:
        """The Parameters (security not checked: small N are experiments)."""
        quiet = logging.getLogger("fhe_gpu")
        was, quiet.disabled = quiet.disabled, True
        try:
            return Parameters(self.log_n, list(self.q_bits), list(self.p_bits),
                              self.scale_bits, self.dnum, security=None)
        finally:
            quiet.disabled = was


# ---------------------------------------------------------------- circuits
def _unit(rng, n):
    return np.exp(2j * np.pi * rng.uniform(size=n))


def _fresh(ev, encrypt, rng, ctx, arg):
    return encrypt(rng.uniform(-1, 1, ctx.slots))


def _mul_chain(ev, encrypt, rng, ctx, depth):
    ct = encrypt(_unit(rng, ctx.slots))
    for _ in range(depth):
        ct = ev.mul(ct, encrypt(_unit(rng, ctx.slots), level=ct.level))
    return ct


def _square_chain(ev, encrypt, rng, ctx, depth):
    ct = encrypt(_unit(rng, ctx.slots))
    for _ in range(depth):
        ct = ev.mul(ct, ct)
    return ct


def _rotate(ev, encrypt, rng, ctx, count):
    ct = encrypt(rng.uniform(-1, 1, ctx.slots))
    for k in _rotation_steps("rotate", count):
        ct = ev.rotate(ct, k)
    return ct


def _inner_sum(ev, encrypt, rng, ctx, n):
    return circuits.inner_sum(ev, encrypt(rng.uniform(-1, 1, ctx.slots) / n), n,
                              replicate=False)


def _poly(ev, encrypt, rng, ctx, degree):
    p = circuits.Chebyshev.fit(lambda x: np.tanh(2 * x), (-1.0, 1.0), degree, name="tanh2")
    return circuits.evaluate(ev, encrypt(rng.uniform(-1, 1, ctx.slots)), p)


def _linear(ev, encrypt, rng, ctx, dim):
    w = np.random.default_rng(dim).uniform(-1, 1, (dim, dim)) / math.sqrt(dim)
    lt = _transform(ctx, dim, w)
    x = rng.uniform(-1, 1, dim)
    return lt.apply(ev, encrypt(lt.input_slots(x)[0]))


_TRANSFORMS: dict = {}


def _transform(ctx, dim, w):
    key = (ctx.fingerprint, dim)
    if key not in _TRANSFORMS:
        _TRANSFORMS.clear()
        _TRANSFORMS[key] = circuits.LinearTransform(ctx, w, bias=np.full(dim, 0.25))
    return _TRANSFORMS[key]


CIRCUITS = {"fresh": _fresh, "mul_chain": _mul_chain, "square_chain": _square_chain,
            "rotate": _rotate, "inner_sum": _inner_sum, "poly": _poly, "linear": _linear}


def _rotation_steps(circuit: str, arg: int, ctx=None) -> list[int]:
    if circuit == "rotate":
        return [1, 2, 3, 5, 7, 11, 13, 17][:arg]
    if circuit == "inner_sum":
        return circuits.inner_sum_rotations(arg, replicate=False)
    if circuit == "linear":
        w = np.random.default_rng(arg).uniform(-1, 1, (arg, arg)) / math.sqrt(arg)
        return list(_transform(ctx, arg, w).rotations)
    return []


# ---------------------------------------------------------------- measurement
def _encrypted_run(setting: Setting, ctx, seed: int):
    """(measured bits, exact values' predicted bits in both modes, seconds encrypted,
    seconds simulated) of one seed."""
    kg = KeyGenerator(ctx, seed=f"grid-{seed}".encode().ljust(32, b"."))
    steps = _rotation_steps(setting.circuit, setting.arg, ctx)
    ev = Evaluator(ctx, kg.evaluation_keys(rotations=steps))
    encoder = Encoder(ctx)
    encryptor = Encryptor(ctx, kg.public_key(), seed=f"enc-{seed}".encode().ljust(32, b"."))

    def encrypt(values, level=None):
        return encryptor.encrypt(encoder.encode(values, level=level))

    build = CIRCUITS[setting.circuit]
    t0 = time.perf_counter()
    ct = build(ev, encrypt, np.random.default_rng(seed), ctx, setting.arg)
    t1 = time.perf_counter()
    got = encoder.decode(Decryptor(ctx, kg.secret_key).decrypt(ct))
    out = {"encrypted_s": t1 - t0}
    for mode in ("variance", "sample"):
        sim = Simulator(ctx, noise=mode, seed=seed)
        t0 = time.perf_counter()
        st = build(sim, sim.encrypt, np.random.default_rng(seed), ctx, setting.arg)
        out[f"{mode}_s"] = time.perf_counter() - t0
        out[mode] = st.predicted_bits
        want = st.values[0] if st.batch_size == 1 else st.values
    err = float(np.max(np.abs(got - want)))
    out["measured"] = math.inf if err == 0 else -math.log2(err)
    return out


def measure(setting: Setting, seeds: int = 5) -> dict:
    """Measured and predicted max-error precision of ``setting`` over ``seeds`` runs: a
    dict with the setting, per-seed lists and the means (``measured``, ``predicted`` (the
    variance mode), ``sampled``), ``error`` = predicted - measured, and timings."""
    ctx = Context(setting.params(), backend="cpu")
    runs = [_encrypted_run(setting, ctx, s) for s in range(seeds)]
    row = {"name": setting.name, **asdict(setting)}
    for key in ("measured", "variance", "sample", "encrypted_s", "variance_s", "sample_s"):
        row[f"{key}_runs"] = [r[key] for r in runs]
    row["measured"] = float(np.mean(row["measured_runs"]))
    row["measured_std"] = float(np.std(row["measured_runs"]))
    row["predicted"] = float(np.mean(row["variance_runs"]))
    row["sampled"] = float(np.mean(row["sample_runs"]))
    row["error"] = row["predicted"] - row["measured"]
    row["sampled_error"] = row["sampled"] - row["measured"]
    return row


def worst(rows, key: str = "error") -> dict:
    """The row whose |key| is largest."""
    return max(rows, key=lambda r: abs(r[key]))


def describe(row: dict) -> str:
    """One line: the setting, measured and predicted bits, the difference."""
    return (f"{row['name']}: measured {row['measured']:.2f} bits (sd {row['measured_std']:.2f}"
            f" over {len(row['measured_runs'])} seeds), predicted {row['predicted']:.2f} "
            f"(sampled {row['sampled']:.2f}): error {row['error']:+.2f}")


# ---------------------------------------------------------------- grids
def _q(first: int, bits: int, levels: int) -> tuple:
    return (first,) + (bits,) * levels


#: (P bits, dnum, Q chain) for rotations: 1 to 8 special primes, 1 to 6 digits
_SWITCHING = [
    ((60,), 3, (60, 40, 40)), ((60,) * 2, 3, (60, 40, 40)), ((60,) * 5, 1, _q(60, 40, 5)),
    ((60,) * 8, 1, _q(60, 40, 10)), ((60,) * 5, 2, _q(60, 40, 11)),
    ((60,) * 7, 2, _q(60, 40, 11)), ((60,) * 3, 3, _q(60, 40, 11)),
    ((60,) * 4, 3, _q(60, 40, 11)), ((60,) * 3, 4, _q(60, 40, 11)),
    ((60,) * 2, 5, _q(60, 40, 9)), ((60,) * 2, 6, _q(60, 40, 11)),
    ((50,) * 2, 6, _q(60, 40, 11)), ((61,), 6, _q(60, 30, 5)),
]


def grid() -> list[Setting]:
    """The acceptance grid (issue 14): 60+ settings over N = 2^12..2^16, scales 30..50
    bits, mul chains of depth 1..10, rotations with 1..8 special primes and dnum 1..6,
    polynomials of degree 3..63 and linear transforms."""
    out = []
    for s in (30, 35, 40, 45, 50):
        base = dict(log_n=12, q_bits=_q(60, s, 10), p_bits=(60,) * 3, scale_bits=s)
        out += [Setting("fresh", 0, **base), Setting("mul_chain", 1, **base),
                Setting("mul_chain", 4, **base), Setting("mul_chain", 10, **base),
                Setting("square_chain", 5, **base), Setting("poly", 7, **base)]
    for p_bits, dnum, q_bits in _SWITCHING:
        base = dict(log_n=13, q_bits=q_bits, p_bits=p_bits, scale_bits=q_bits[1], dnum=dnum)
        out += [Setting("rotate", 1, **base), Setting("rotate", 4, **base)]
    poly = dict(log_n=13, q_bits=_q(60, 40, 7), p_bits=(60, 60), scale_bits=40)
    out += [Setting("poly", d, **poly) for d in (3, 15, 31, 63)]
    out += [Setting("poly", 63, log_n=12, q_bits=_q(60, 50, 7), p_bits=(60, 60),
                    scale_bits=50),
            Setting("inner_sum", 16, log_n=13, q_bits=_q(60, 40, 3), p_bits=(60, 60),
                    scale_bits=40),
            Setting("linear", 16, log_n=12, q_bits=_q(60, 40, 3), p_bits=(60, 60),
                    scale_bits=40),
            Setting("linear", 64, log_n=13, q_bits=_q(60, 40, 3), p_bits=(60, 60),
                    scale_bits=40),
            Setting("linear", 128, log_n=14, q_bits=_q(60, 35, 4), p_bits=(60, 60),
                    scale_bits=35)]
    n14 = dict(log_n=14, q_bits=_q(60, 40, 6), p_bits=(60, 60), scale_bits=40)
    n15 = dict(log_n=15, q_bits=_q(60, 40, 13), p_bits=(60,) * 4, scale_bits=40, dnum=3)
    n16 = dict(log_n=16, q_bits=_q(60, 40, 27), p_bits=(60,) * 8, scale_bits=40, dnum=3)
    out += [Setting("mul_chain", 6, **n14), Setting("poly", 31, **n14),
            Setting("rotate", 2, **n14), Setting("mul_chain", 10, **n15),
            Setting("rotate", 2, **n15), Setting("mul_chain", 10, **n16),
            Setting("rotate", 2, **n16), Setting("poly", 15, **n16)]
    return out


def quick_grid() -> list[Setting]:
    """A bounded sample of the grid at N = 2^12 (seconds): one setting per circuit kind,
    the one-special-prime rotation loss among them."""
    base = dict(log_n=12, q_bits=_q(60, 40, 6), p_bits=(60, 60), scale_bits=40)
    return [Setting("fresh", 0, log_n=12, q_bits=_q(60, 30, 4), p_bits=(60,) * 2,
                    scale_bits=30),
            Setting("mul_chain", 3, **base), Setting("square_chain", 3, **base),
            Setting("rotate", 2, log_n=12, q_bits=(60, 40, 40), p_bits=(60,),
                    scale_bits=40, dnum=3),
            Setting("poly", 15, **base), Setting("linear", 16, **base),
            Setting("inner_sum", 8, **base)]
