"""Predicted against measured precision: the Simulator's ``predicted_bits`` next to the
max-error precision of the same circuit run encrypted, over a grid of settings.

A :class:`Setting` names parameters (N, the Q chain and scale, special primes, dnum) and a
circuit written once for both evaluators (Evaluator and Simulator answer the same calls):

* ``fresh``: an encryption; ``mul_chain`` (d): d products by fresh ciphertexts of unit
  modulus values; ``square_chain`` (d): d squarings of a unit-modulus value;
* ``rotate`` (m): m successive rotations by distinct steps (one key switch each);
  ``inner_sum`` (n): circuits.inner_sum over blocks of n slots;
* ``poly`` (d): circuits.evaluate of a degree-d Chebyshev interpolant of tanh(2x) on
  [-1, 1]; ``gelu`` (d): the degree-d GELU on [-8, 8] of inputs in [-2, 2] (a change of
  variable, then a polynomial of inputs in a quarter of its interval, where the powers'
  errors are most correlated);
* ``linear`` (d): a d x d circuits.LinearTransform with bias; ``layer`` (d): the original
  demo's layer, a 32 x 16 transform packing 8 vectors then a degree-d GELU.

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


def _gelu(ev, encrypt, rng, ctx, degree):
    p = circuits.activation("gelu", interval=(-8.0, 8.0), degree=degree)
    return circuits.evaluate(ev, encrypt(rng.uniform(-2, 2, ctx.slots)), p)


def _layer(ev, encrypt, rng, ctx, degree):
    w = np.random.default_rng(5).uniform(-1, 1, (32, 16)) / 4.0
    act = circuits.activation("gelu", interval=(-8.0, 8.0), degree=degree)
    lt = _transform(ctx, ("layer", degree),
                    lambda: circuits.LinearTransform(ctx, act.alpha * w, np.full(32, act.beta),
                                                     vectors=8))
    x = rng.uniform(-1, 1, (8, 16))
    return circuits.evaluate(ev, lt.apply(ev, encrypt(lt.input_slots(x)[0])),
                             act.in_unit_coordinates())


def _linear(ev, encrypt, rng, ctx, dim):
    w = np.random.default_rng(dim).uniform(-1, 1, (dim, dim)) / math.sqrt(dim)
    lt = _transform(ctx, dim, lambda: circuits.LinearTransform(ctx, w, np.full(dim, 0.25)))
    x = rng.uniform(-1, 1, dim)
    return lt.apply(ev, encrypt(lt.input_slots(x)[0]))


_TRANSFORMS: dict = {}


def _transform(ctx, key, make):
    """The transform ``make()`` builds, kept while the parameters and key stay the same
    (one model per setting: its diagonals encoded once for every seed)."""
    key = (ctx.fingerprint, key)
    if key not in _TRANSFORMS:
        _TRANSFORMS.clear()
        _TRANSFORMS[key] = make()
    return _TRANSFORMS[key]


CIRCUITS = {"fresh": _fresh, "mul_chain": _mul_chain, "square_chain": _square_chain,
            "rotate": _rotate, "inner_sum": _inner_sum, "poly": _poly, "linear": _linear,
            "gelu": _gelu, "layer": _layer}


def _rotation_steps(circuit: str, arg: int, ctx=None) -> list[int]:
    if circuit == "rotate":
        return [1, 2, 3, 5, 7, 11, 13, 17][:arg]
    if circuit == "inner_sum":
        return circuits.inner_sum_rotations(arg, replicate=False)
    if circuit in ("linear", "layer"):      # the Simulator tells which keys it uses
        sim = Simulator(ctx)
        CIRCUITS[circuit](sim, sim.encrypt, np.random.default_rng(0), ctx, arg)
        return sorted(sim.used_rotations)
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
    """The acceptance grid (issue 14): 77 settings over N = 2^12..2^16, scales 30..50
    bits, mul chains of depth 1..10, rotations with 1..8 special primes and dnum 1..6,
    polynomials of degree 3..63, linear transforms and transform + activation layers."""
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
    gelu = dict(log_n=13, q_bits=_q(60, 40, 8), p_bits=(60, 60), scale_bits=40)
    out += [Setting("gelu", 15, **gelu), Setting("gelu", 31, **gelu),
            Setting("layer", 15, log_n=13, q_bits=_q(60, 40, 5), p_bits=(60, 60),
                    scale_bits=40),
            Setting("layer", 31, log_n=14, q_bits=_q(60, 40, 6), p_bits=(60, 60),
                    scale_bits=40)]
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


# ---------------------------------------------------------------- the demo's model
#: the demo model's activation (fhe_gpu.cli): GELU on [-8, 8], degree-15 Chebyshev
GELU = ("gelu", (-8.0, 8.0), 15)


class DemoModel:
    """The model of ``fhe-gpu demo`` written with circuits (what engine.Plan compiles it
    to): Linear(dim -> hidden) with the GELU's change of variable folded in (weights
    g*alpha*W, bias g*(alpha*b + beta), its output read at scale / g: the polynomial's
    input at exactly the prime its first product removes), the GELU in unit coordinates,
    Linear(hidden -> classes) on the padded layout; ``vectors`` per ciphertext."""

    def __init__(self, ctx, dim=384, hidden=256, classes=16, vectors=8):
        rng = np.random.default_rng(2026)
        name, interval, degree = GELU
        self.act = circuits.activation(name, interval=interval, degree=degree)
        self.w1 = rng.uniform(-1, 1, (hidden, dim)) * 2 / np.sqrt(dim)
        self.b1 = rng.uniform(-0.5, 0.5, hidden)
        self.w2 = rng.uniform(-1, 1, (classes, hidden)) / np.sqrt(hidden)
        self.b2 = rng.uniform(-0.1, 0.1, classes)
        self.level = 1 + self.act.depth + 1
        self.g = float(ctx.q_primes[self.level - 1]) / ctx.default_scale
        a, b = self.g * self.act.alpha, self.g * self.act.beta
        self.lt1 = circuits.LinearTransform(ctx, a * self.w1, a * self.b1 + b,
                                            vectors=vectors)
        self.lt2 = circuits.LinearTransform(ctx, self.w2, self.b2, vectors=vectors,
                                            input="padded")
        self.rotations = sorted(set(self.lt1.rotations) | set(self.lt2.rotations))
        self.vectors = vectors

    def apply(self, ev, ct):
        """The model on a ciphertext of the first transform's input layout."""
        ct = ev.drop_level(ct, self.level)
        y = ev.mul_by_scale(self.lt1.apply(ev, ct), 1.0 / self.g)
        y = circuits.evaluate(ev, y, self.act.in_unit_coordinates(), scale=ct.scale,
                              assume_in_interval=True)
        return self.lt2.apply(ev, y)

    def plain(self, x):
        """The cleartext twin (the Chebyshev GELU, as the demo compares against)."""
        return self.act(x @ self.w1.T + self.b1) @ self.w2.T + self.b2


def _encrypted_model(ctx, model: DemoModel, x, seed: int):
    t0 = time.perf_counter()
    kg = KeyGenerator(ctx, seed=f"demo-{seed}".encode().ljust(32, b"."))
    pk = kg.public_key()
    ev = Evaluator(ctx, kg.evaluation_keys(model.rotations))
    encoder = Encoder(ctx)
    ct = Encryptor(ctx, pk).encrypt(encoder.encode(model.lt1.input_slots(x)[0],
                                                   level=model.level))
    z = model.apply(ev, ct)
    got = model.lt2.decode_output(encoder.decode(Decryptor(ctx, kg.secret_key).decrypt(z)),
                                  count=x.shape[0])
    return got, time.perf_counter() - t0


def _simulated_model(ctx, model: DemoModel, x, outputs):
    t0 = time.perf_counter()
    sim = Simulator(ctx)
    z = model.apply(sim, sim.encrypt(model.lt1.input_slots(x)[0], level=model.level))
    bits = z.predict_bits(part="real", slots=outputs)
    return bits, time.perf_counter() - t0


def demo_comparison(params: Parameters, runs: int = 3, **shape) -> dict:
    """The demo's model run encrypted (key generation, encryption, evaluation,
    decryption) and in the Simulator (encryption, evaluation, the predicted precision of
    the real parts of the output slots), each ``runs`` times on one built model (its
    transforms and their encoded diagonals shared, as an Engine's plan is): the measured
    and predicted bits, the fastest run of each and their ratio."""
    ctx = Context(params, backend="cpu")
    model = DemoModel(ctx, **shape)
    x = np.random.default_rng(7).uniform(-1, 1, (model.vectors, model.w1.shape[1]))
    want = model.plain(x)
    outputs = np.unique(model.lt2.decode_output(np.arange(ctx.slots), count=len(x))
                        .astype(np.int64))
    measured, enc_s, sim_s, predicted = [], [], [], None
    for seed in range(runs):
        got, seconds = _encrypted_model(ctx, model, x, seed)
        measured.append(-math.log2(float(np.max(np.abs(got - want)))))
        enc_s.append(seconds)
        predicted, seconds = _simulated_model(ctx, model, x, outputs)
        sim_s.append(seconds)
    return {"params": repr(params), "model": f"{model.w1.shape[1]} -> {model.w1.shape[0]} "
            f"-> {model.w2.shape[0]}, GELU degree {GELU[2]}, {model.vectors} vectors",
            "runs": runs, "measured_bits": measured, "measured": float(np.mean(measured)),
            "predicted": predicted, "error": predicted - float(np.mean(measured)),
            "encrypted_s": enc_s, "simulated_s": sim_s, "ratio": min(sim_s) / min(enc_s)}
