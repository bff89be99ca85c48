"""fg.Simulator: the Evaluator's interface on cleartext slots, with the noise predicted.

    sim = fg.Simulator(params)                 # no key, no ring arithmetic
    ct = sim.encrypt(x)                        # values + the predicted fresh error
    y = circuits.evaluate(sim, lt.apply(sim, ct), p)   # circuits run unchanged
    y.level, y.scale, y.predicted_bits         # the max-error precision to expect
    sim.decrypt(y)                             # values + one draw of the error

Every operation of :class:`~fhe_gpu.ckks.Evaluator` is answered with the same checks
(levels, scales, value bounds against the modulus, Galois keys when ``rotations`` is given)
on exact slot values, while the error of each ciphertext is tracked with the noise model
of :mod:`fhe_gpu.ckks.noise` (the terms the Evaluator's ``noise_var`` uses) in the slot
domain: the encryption, encoding, rescale and ModDown roundings, the key-switching terms
(centred digits spread over the slots, the digit mean concentrated near slot 0: the term
that makes a digit as large as P cost rotations bits), and the products of messages and
errors with each slot's actual value rather than a bound, the secret's spectrum that gives
the roundings r0 + r1*s their heavy tail over the slots. ``noise="variance"`` (default)
tracks each slot's error variance, scaled by what a draw carried alongside shows of the
correlations between operands' errors (:mod:`fhe_gpu.ckks.simerror`), and predicts
2^E[log2 max |error|] over the slots (:func:`fhe_gpu.ckks.noise.max_error`): what
``precision_bits`` of an encrypted run averages to. ``noise="sample"`` only draws (one
Monte-Carlo run: its own maximum). Plaintext operands' encoding roundings, 2^-scale of
their values, are counted in variance only.

The ~7 bits one 60-bit special prime costs rotations against a 60-bit base prime, the
precision of mul chains, rotations with any dnum and special-prime count, polynomials of
degree 3..63, linear transforms and the demo's layers are predicted within 0.4 bit of the
measured mean (bench/results/sim_accuracy.json).

Time: rotations are evaluated when first read, sums of plaintext products over rotations
of one ciphertext (LinearTransforms) and the per-slot work of rotations, products and
rescales run as Numba kernels (:mod:`fhe_gpu.ckks.simfast`), and the plaintexts an
Encoder made are read from the values it kept, not decoded: the demo model's Engine plan
(655 diagonals, 69 rotations, a degree-15 GELU at N = 2^14) runs in about 9 ms on a new
Simulator, 0.6 % of a tenant's encrypted run with key generation, 1 % of its evaluation
alone (bench/results/sim_demo.json). The first Simulator of a process also loads its
kernels (about 20 ms).
"""
from __future__ import annotations

import collections
import math
import numbers
import weakref

import numpy as np

from ..errors import KeyMissingError, LevelError, ParameterError, ScaleMismatchError
from ..rlwe.sampling import SIGMA
from ..rlwe.objects import (FIT_MARGIN_BITS, Ciphertext, Plaintext, check_fits,
                            log2_modulus)
from . import noise as model
from . import simfast
from .context import Context
from .evaluator import MAX_SCALAR, _real, align_levels, match_scales
from .parameters import Parameters
from .simerror import NormalPool, SampledError, VarianceError
from .simfused import SimFusedOps
from .simnoise import NoiseTerms
from .simobjects import (SIM_PLAINTEXTS, SimCiphertext, SimKeys, SimPlaintext,
                         slot_values, decode_plaintexts)

MODES = {"variance": VarianceError, "sample": SampledError}


def _sum_or_none(*xs):
    return None if any(x is None for x in xs) else float(sum(xs))


def _prod_or_none(*xs):
    return None if any(x is None for x in xs) else float(math.prod(xs))


class Simulator(SimFusedOps):
    """The Evaluator's interface over cleartext slots, predicting the error.

    Parameters
    ----------
    params : a Parameters object, or a ckks Context (share the one LinearTransforms were
        built with, so their encoded diagonals are reused).
    noise : "variance" (each slot's error variance, corrected for correlations by a draw
        carried alongside) or "sample" (the draw alone: one Monte-Carlo run).
    seed : seed of the sampling (NumPy Generator), for reproducible samples.
    rotations : the rotation steps whose Galois keys the simulated key set holds (None:
        every rotation; ``used_rotations`` then lists those the circuit asked for).
    conjugation : whether it holds the conjugation key.
    public : fresh ciphertexts as public-key encryption makes them (the ModDown rounding)
        or as symmetric encryption does (the Gaussian error).
    strict : as the Evaluator's: scales differing by more than SCALE_RTOL are refused.

    ``sim.counts`` counts the operations run (key switches, rescales, products...).
    """

    def __init__(self, params, noise: str = "variance", seed=None, rotations=None,
                 conjugation: bool = True, public: bool = True, strict: bool = True):
        if isinstance(params, Parameters):
            params = Context(params, backend="cpu")
        if not isinstance(params, Context):
            raise ParameterError(f"Simulator needs Parameters or a ckks Context, got "
                                 f"{type(params).__name__}")
        if noise not in MODES:
            raise ParameterError(f"noise must be one of {sorted(MODES)}, got {noise!r:.40}")
        self.context = params
        self.params = params.params
        self.mode = noise
        self._err = MODES[noise]
        self.rng = np.random.default_rng(seed)
        self.pool = NormalPool(self.rng, 4 * params.slots)
        self.evk = SimKeys(params, rotations, conjugation)
        self.key_id = None
        self.public = bool(public)
        self.strict = bool(strict)
        self.counts: collections.Counter = collections.Counter()
        self.used_rotations: set[int] = set()
        self.key_power = model.key_power(params.n, self.rng if noise == "sample" else None)
        self.terms = NoiseTerms(params, self.key_power)
        self._limits = [log2_modulus(params, lv) - 1 - FIT_MARGIN_BITS
                        for lv in range(params.max_level + 1)]
        simfast.warm()

    # ------------------------------------------------------------ noise terms
    def _fresh(self, slot_var, shape=None, sd=None):
        shape = (1, self.context.slots) if shape is None else shape
        return self._err.fresh(slot_var, shape, self.pool, sd)

    def _rounding(self, scale: float, shape):
        """The error of a rounding r0 + r1*s read at ``scale`` (per-slot variance)."""
        var, sd = self.terms.rounding(scale)
        return self._fresh(var, shape, sd)

    def _switch_noise(self, level: int, scale: float, shift: int, shape):
        """The error one key switch adds (:meth:`NoiseTerms.switch`), counted by the
        caller."""
        var, sd = self.terms.switch(level, scale, shift)
        return self._fresh(var, shape, sd)

    # ------------------------------------------------------------ encode / encrypt
    def encode(self, values, level=None, scale=None) -> SimPlaintext:
        """Values (k,) or (batch, k), k <= slots (zero-padded), as a simulated plaintext
        (its encoding rounding counted as a variance); the Encoder's checks."""
        ctx = self.context
        level = ctx.max_level if level is None else self._level(level)
        scale = ctx.default_scale if scale is None else _real("scale", scale)
        if not scale > 0:
            raise ParameterError(f"scale must be a positive finite number, got {scale}")
        z = slot_values(values, ctx.slots)
        bound = float(np.max(np.abs(z)))
        self._fits(level, scale, bound, "the encoded values")
        var = self.terms.encoding(bound, scale)
        real = not np.any(z.imag)
        return SimPlaintext(z.real.copy() if real else z, level, scale, ctx,
                            self._err.quiet(var), bound, real)

    def encrypt(self, x, level=None, scale=None) -> SimCiphertext:
        """A simulated fresh ciphertext of ``x``: values (encoded first, at ``level`` and
        ``scale``), a SimPlaintext or a Plaintext; its error is the fresh noise of
        public-key (``public=True``) or symmetric encryption."""
        pt = x if isinstance(x, (SimPlaintext, Plaintext)) else \
            self.encode(x, level=level, scale=scale)
        pt = self._plaintext(pt)
        extra = self._rounding(pt.scale, pt.values.shape) if self.public else \
            self._fresh(self.terms.slot_var(SIGMA * SIGMA, pt.scale), pt.values.shape)
        err = pt.error.combine(1.0, extra, 1.0)
        self.counts["encrypt"] += 1
        return SimCiphertext(pt.values, pt.level, pt.scale, self.context, err,
                             pt.value_bound, pt.real, key_id=self.key_id)

    def decrypt(self, ct) -> np.ndarray:
        """The slot values a decryption would give (decode(decrypt(ct))): the exact values
        plus the error's tracked draw. Shape (slots,) for a batch of one, else (batch,
        slots)."""
        ct = self._ct(ct)
        z = ct.values + ct.error.draw(ct.values.shape)
        return z[0] if z.shape[0] == 1 else z

    def decode(self, pt) -> np.ndarray:
        """The exact values of a SimPlaintext (or a Plaintext's decoding)."""
        z = self._plaintext(pt).values
        return z[0] if z.shape[0] == 1 else z

    def _plaintext(self, pt) -> SimPlaintext:
        """A SimPlaintext, or a Plaintext's (its decoding cached per object)."""
        return self._plaintexts_of([pt])[0]

    def _plaintexts_of(self, pts) -> list[SimPlaintext]:
        """SimPlaintexts of SimPlaintexts and Plaintexts (those decoded in one batch)."""
        for pt in pts:
            if not isinstance(pt, (SimPlaintext, Plaintext)):
                raise ParameterError(f"expected a SimPlaintext or Plaintext, got "
                                     f"{type(pt).__name__}")
            self.context.check(pt, "plaintext")
        cache = SIM_PLAINTEXTS.setdefault(self._err, weakref.WeakKeyDictionary())
        todo = [pt for pt in pts if isinstance(pt, Plaintext) and pt not in cache]
        for pt, z in zip(todo, decode_plaintexts(self.context, todo)):
            var = self.terms.encoding(pt.value_bound, pt.scale)
            cache[pt] = SimPlaintext(z, pt.level, pt.scale, self.context,
                                     self._err.quiet(var), pt.value_bound, pt.real)
        return [pt if isinstance(pt, SimPlaintext) else cache[pt] for pt in pts]

    # ------------------------------------------------------------ operands
    def _ct(self, x, what="operand") -> SimCiphertext:
        if not isinstance(x, SimCiphertext):
            raise ParameterError(f"{what} must be a SimCiphertext (from Simulator.encrypt), "
                                 f"got {type(x).__name__}")
        return self.context.check(x, what)

    def _kind(self, x) -> str:
        if isinstance(x, SimCiphertext):
            self._ct(x)
            return "ct"
        if isinstance(x, (SimPlaintext, Plaintext)):
            return "pt"
        if isinstance(x, numbers.Number) and not isinstance(x, bool):
            try:
                c = complex(x)
            except (OverflowError, TypeError, ValueError):
                c = complex(math.inf)
            if not (np.isfinite(c) and abs(c) <= MAX_SCALAR):
                raise ParameterError(f"scalar operand must be finite and at most 2^100 in "
                                     f"magnitude, got {x!r:.40}")
            return "scalar"
        if isinstance(x, Ciphertext):
            raise ParameterError("a Simulator works on its own ciphertexts (Simulator."
                                 "encrypt), got an encrypted Ciphertext")
        raise ParameterError(f"operand must be a SimCiphertext, Plaintext or scalar, got "
                             f"{type(x).__name__}")

    def _fits(self, level: int, scale: float, bound, what: str) -> None:
        """rlwe.objects.check_fits, with the limits of the levels cached."""
        need = math.log2(scale) + (math.log2(bound) if bound is not None and bound > 1.0
                                   else 0.0) if scale >= 1.0 and math.isfinite(scale) \
            else math.inf
        if need > self._limits[level]:
            check_fits(self.context, level, scale, bound, what=what)

    def _out(self, values, level, scale, error, bound, what, real,
             zero=False) -> SimCiphertext:
        self._fits(level, scale, bound, what)
        return SimCiphertext(values, level, scale, self.context, error, bound, real,
                             key_id=self.key_id, zero=zero)

    @staticmethod
    def _batch(a, b) -> None:
        ba, bb = a.batch_size, b.batch_size
        if ba != bb and 1 not in (ba, bb):
            raise ParameterError(f"batch sizes {ba} and {bb} do not broadcast: need equal "
                                 f"sizes or a batch of 1")

    def _level(self, level) -> int:
        top = self.context.max_level
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) \
                or not 0 <= level <= top:
            raise LevelError(f"level {level!r} is outside [0, {top}]")
        return int(level)

    def _align(self, a, b):
        return align_levels(self, a, b)

    def _match_scales(self, a, b):
        return match_scales(self, a, b, SimCiphertext)

    def _scalar_pt(self, c: complex, level: int, scale: float) -> SimPlaintext:
        return self.encode(np.full(self.context.slots, c), level=level, scale=scale)

    # ------------------------------------------------------------ add / sub / negate
    def add(self, a, b) -> SimCiphertext:
        """a + b (at least one SimCiphertext)."""
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"add needs a ciphertext operand, got {ka} and {kb}")
            a, b, kb = b, a, ka
        return self._add_sub(a, b, kb, 1.0)

    def sub(self, a, b) -> SimCiphertext:
        """a - b (at least one SimCiphertext)."""
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"sub needs a ciphertext operand, got {ka} and {kb}")
            return self._add_sub(self.negate(b), a, ka, 1.0)
        return self._add_sub(a, b, kb, -1.0)

    def _add_sub(self, a: SimCiphertext, b, kb: str, sign: float) -> SimCiphertext:
        if kb == "scalar":
            c = complex(b) * sign
            if c.imag == 0:
                return self._add_real(a, c.real)
            b, sign = self._scalar_pt(c, a.level, a.scale), 1.0
        elif kb == "pt":
            b = self._plaintext(b)
        self._batch(a, b)
        if a.level != b.level or a.scale != b.scale:
            a, b = self._match_scales(a, b)
        self.counts["add"] += 1
        if sign > 0 and kb == "ct":
            merged = simfast.merged(self, a, b)
            if merged is not None:
                self._fits(a.level, a.scale, merged.value_bound, "the sum")
                return merged
        values = a.values + b.values if sign > 0 else a.values - b.values
        return self._out(values, a.level, a.scale,
                         a.error.combine(1.0, b.error, sign),
                         _sum_or_none(a.value_bound, b.value_bound), "the sum",
                         a.real and b.real, zero=a.zero and getattr(b, "zero", False))

    def _add_real(self, a: SimCiphertext, c: float) -> SimCiphertext:
        bound = _sum_or_none(a.value_bound, abs(c))
        self._fits(a.level, a.scale, max(abs(c), bound or 0.0), "the sum with a constant")
        added = round(c * a.scale) / a.scale
        err = a.error.combine(1.0, self._err.exact(added - c), 1.0)
        self.counts["add"] += 1
        return self._out(a.values + c, a.level, a.scale, err, bound,
                         "the sum with a constant", a.real)

    def negate(self, a) -> SimCiphertext:
        """-a."""
        a = self._ct(a)
        return a._like(values=-a.values, error=a.error.scaled(-1.0))

    # ------------------------------------------------------------ multiply
    def mul(self, a, b, rescale: bool = True) -> SimCiphertext:
        """a * b: ct x ct relinearized (one key switch); every product rescaled unless
        rescale=False; a real scalar encoded at the prime the rescale removes."""
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"mul needs a ciphertext operand, got {ka} and {kb}")
            a, b, ka, kb = b, a, kb, ka
        level = a.level if kb == "scalar" else min(a.level, b.level)
        if rescale and level == 0:
            raise LevelError("cannot rescale: level 0 (the product needs one more level; "
                             "use rescale=False)")
        if kb == "scalar":
            out = self._mul_scalar(a, complex(b))
        else:
            b = self._plaintext(b) if kb == "pt" else b
            self._batch(a, b)
            a, b = self._align(a, b)
            out = self._mul_ct(a, b) if kb == "ct" else self._mul_pt(a, b)
        return self.rescale(out) if rescale else out

    def square(self, a, rescale: bool = True) -> SimCiphertext:
        """a * a."""
        return self.mul(a, a, rescale=rescale)

    def _mul_scalar(self, a: SimCiphertext, c: complex) -> SimCiphertext:
        q_l = self.context.q_primes[a.level]
        if c.imag != 0:
            return self._mul_pt(a, self._scalar_pt(c, a.level, float(q_l)))
        bound = _prod_or_none(a.value_bound, abs(c.real))
        k = round(c.real * q_l)
        self.counts["mul_scalar"] += 1
        return self._out(a.values * c.real, a.level, a.scale * q_l,
                         self._gain_error(a, k / q_l, c.real), bound, "the product", a.real,
                         zero=a.zero or k == 0)

    def _gain_error(self, a: SimCiphertext, gain: float, c: float):
        """The error of a times the rounded constant ``gain`` standing for c: the
        rounding's error (gain - c) * values, in variance mode counted at the value
        bound (it is 2^-40 of the values: a bound costs nothing)."""
        bound = a.value_bound
        if self._err is VarianceError and bound is not None:
            return a.error.combine(gain, self._err.exact(bound * (gain - c)), 1.0)
        return a.error.combine(gain, self._err.exact(a.values * (gain - c)), 1.0)

    def _mul_pt(self, a: SimCiphertext, b: SimPlaintext) -> SimCiphertext:
        bound = _prod_or_none(a.value_bound, b.value_bound)
        self.counts["mul_plain"] += 1
        return self._out(a.values * b.values, a.level, a.scale * b.scale,
                         a.error.plain_product(a, b), bound, "the product",
                         a.real and b.real)

    def _mul_ct(self, a: SimCiphertext, b: SimCiphertext) -> SimCiphertext:
        bound = _prod_or_none(a.value_bound, b.value_bound)
        scale = a.scale * b.scale
        self._fits(a.level, scale, bound, "the product")
        zero = a.zero or b.zero
        self.counts["key_switch"] += 0 if zero else 1
        if self._err is VarianceError:
            switch = None if zero else self.terms.switch(a.level, scale, 0)
            values, err = simfast.product(self, a, b, switch)
        else:
            values = a.values * b.values
            err = a.error.product(a, b.error, b)
            if not zero:
                err = err.combine(1.0, self._switch_noise(a.level, scale, 0, values.shape),
                                  1.0)
        self.counts["mul"] += 1
        return self._out(values, a.level, scale, err, bound, "the product",
                         a.real and b.real, zero=zero)

    def mul_to_scale(self, a, c: float, scale: float) -> SimCiphertext:
        """a * c (real) rescaled, the result's scale set to exactly ``scale``."""
        a = self._ct(a)
        c, scale = _real("the constant", c), _real("scale", scale)
        if not scale >= 1.0:
            raise ParameterError(f"scale must be >= 1, got {scale!r}")
        if a.level == 0:
            raise LevelError("cannot rescale: level 0 (mul_to_scale needs one level)")
        q_l = self.context.q_primes[a.level]
        bound = _prod_or_none(a.value_bound, abs(c))
        self._fits(a.level, scale * q_l, bound, "mul_to_scale's product")
        k = round(c * scale * q_l / a.scale)
        self.counts["mul_scalar"] += 1
        wide = SimCiphertext(a.values * c, a.level, scale * q_l, self.context,
                             self._gain_error(a, k * a.scale / (scale * q_l), c), bound,
                             a.real, key_id=a.key_id, zero=a.zero or k == 0)
        return self.rescale(wide)._like(scale=scale)

    def mul_plain_sum(self, cts, pts) -> SimCiphertext:
        """sum_i cts[i] * pts[i] without rescale (the Evaluator's checks); over rotations
        of one ciphertext (a LinearTransform's giant step) by :mod:`simfast`."""
        cts, pts = list(cts), list(pts)
        if not cts or len(cts) != len(pts):
            raise ParameterError(f"mul_plain_sum needs as many plaintexts as ciphertexts "
                                 f"(at least one), got {len(cts)} and {len(pts)}")
        first, p0 = self._ct(cts[0]), pts[0]
        terms = None
        if self._err is VarianceError and isinstance(p0, (SimPlaintext, Plaintext)):
            terms = simfast.fast_terms(self, cts, pts, (SimPlaintext, Plaintext),
                                       first.level)
        self.counts["mul_plain"] += len(cts)
        if terms is not None:
            return simfast.pending_sum(self, first, pts, terms)
        self._check_terms(cts, pts, first, p0)
        bounds = [(c.value_bound, p.value_bound) for c, p in zip(cts, pts)]
        bound = None if any(None in b for b in bounds) else sum(x * y for x, y in bounds)
        values, err = self._err.plain_sum(zip(cts, self._plaintexts_of(pts)))
        real = all(c.real and p.real for c, p in zip(cts, pts))
        return self._out(values, first.level, first.scale * p0.scale, err, bound,
                         "the sum of products", real)

    def _check_terms(self, cts, pts, first, p0) -> None:
        """The Evaluator's checks of mul_plain_sum's terms: kinds, parameters, one level
        and scale, plaintexts at or above it, batches that broadcast."""
        fp, level, scale, p_scale = self.context.fingerprint, first.level, first.scale, \
            p0.scale
        for ct, pt in zip(cts, pts):
            if not isinstance(ct, SimCiphertext) or ct.fingerprint != fp:
                self._ct(ct)
            if not isinstance(pt, (SimPlaintext, Plaintext)):
                raise ParameterError(f"expected a SimPlaintext or Plaintext, got "
                                     f"{type(pt).__name__}")
            if pt.fingerprint != fp:
                self.context.check(pt, "plaintext")
            if ct.level != level or ct.scale != scale or pt.scale != p_scale \
                    or pt.level < level:
                raise ScaleMismatchError(
                    f"mul_plain_sum terms differ: level {ct.level} scale {ct.scale!r} x "
                    f"plaintext level {pt.level} scale {pt.scale!r}, needs level "
                    f"{level} scale {scale!r} x scale {p_scale!r}")
            if pt.batch_size != 1:
                self._batch(ct, pt)

    def mul_by_scale(self, a, c: float) -> SimCiphertext:
        """c * a for a real c != 0, no level: the ciphertext read at scale / |c|."""
        a = self._ct(a)
        c = _real("the constant", c)
        if c == 0:
            raise ParameterError("mul_by_scale needs a nonzero constant, got 0")
        bound = _prod_or_none(a.value_bound, abs(c))
        self._fits(a.level, a.scale / abs(c), bound,
                   f"the ciphertext read at scale / {abs(c)!r}")
        return a._like(values=a.values * c, scale=a.scale / abs(c), value_bound=bound,
                       error=a.error.scaled(c))

    def assume_bound(self, a, bound: float) -> SimCiphertext:
        """The same ciphertext with ``value_bound`` set to ``bound`` (the caller answers
        for it; the Simulator, knowing the values, checks it)."""
        a = self._ct(a)
        bound = _real("bound", bound)
        if not bound > 0:
            raise ParameterError(f"bound must be positive, got {bound!r}")
        self._fits(a.level, a.scale, bound, "the assumed bound")
        peak = float(np.max(np.abs(a.values)))
        if peak > bound * (1 + 1e-6) + 1e-9:
            raise ParameterError(f"assume_bound({bound!r}) is wrong: the simulated values "
                                 f"reach {peak!r}")
        return a._like(value_bound=bound)

    # ------------------------------------------------------------ levels
    def rescale(self, ct) -> SimCiphertext:
        """Divide by the last prime q_l: level - 1, scale / q_l, plus its rounding."""
        ct = self._ct(ct)
        if ct.level == 0:
            raise LevelError("cannot rescale: level 0")
        scale = ct.scale / self.context.q_primes[ct.level]
        self._fits(ct.level - 1, scale, ct.value_bound, "the rescaled ciphertext")
        self.counts["rescale"] += 1
        if ct.zero:
            return ct._like(level=ct.level - 1, scale=scale)
        if self._err is VarianceError:
            err = simfast.noisy(self, ct.error, ct.values.shape, self.terms.rounding(scale))
        else:
            err = ct.error.combine(1.0, self._rounding(scale, ct.values.shape), 1.0)
        return ct._like(level=ct.level - 1, scale=scale, error=err)

    def drop_level(self, x, to_level: int):
        """The same SimCiphertext or plaintext at ``to_level`` (no noise)."""
        if isinstance(x, SimCiphertext):
            if type(to_level) is int and to_level == x.level:
                return x
            self._ct(x, "ciphertext")
        elif isinstance(x, (SimPlaintext, Plaintext)):
            x = self._plaintext(x)
        else:
            raise ParameterError(f"drop_level needs a ciphertext or plaintext, got "
                                 f"{type(x).__name__}")
        if isinstance(to_level, bool) or not isinstance(to_level, (int, np.integer)) \
                or not 0 <= to_level <= x.level:
            raise LevelError(f"cannot drop from level {x.level} to level {to_level!r}: "
                             f"needs 0 <= to_level <= {x.level}")
        if to_level == x.level:
            return x
        self._fits(int(to_level), x.scale, x.value_bound,
                   f"the {type(x).__name__} dropped to level {to_level}")
        return x._like(level=int(to_level))

    # ------------------------------------------------------------ rotations
    def _need_key(self, galois_elt: int, what: str) -> None:
        if galois_elt not in self.evk.galois:
            raise KeyMissingError(f"no Galois key for {what} (Galois element {galois_elt}) "
                                  f"in the simulated key set")

    def rotate(self, ct, k: int) -> SimCiphertext:
        """Rotate slots left by k: result[i] == ct[(i + k) % slots]."""
        return self.rotate_many(ct, [k])[0]

    def rotate_many(self, ct, steps) -> list[SimCiphertext]:
        """Rotations of ``ct`` by each step (hoisted: the digits' mean term moves with
        the rotation, as the Evaluator's shared ModUp makes it), evaluated when first
        read: a sum of plaintext products over them reads ``ct`` instead
        (:mod:`~fhe_gpu.ckks.simfast`)."""
        ct = self._ct(ct)
        try:
            steps = [_step(k) for k in steps]
        except TypeError:
            raise ParameterError(f"steps must be a list of integers, got {steps!r:.60}") \
                from None
        slots = self.context.slots
        for k in steps:
            if k % slots:
                self._need_key(self.context.galois_element(k), f"rotation {k}")
        out = []
        for k in steps:
            if k % slots == 0:
                out.append(ct)
                continue
            self.used_rotations.add(k)
            self.counts["rotate"] += 1
            self.counts["key_switch"] += 0 if ct.zero else 1
            out.append(ct.pending(self, k % slots))
        return out

    def _rotated(self, ct: SimCiphertext, k: int):
        """(values, error) of ``ct`` rotated by k (a pending rotation's evaluation)."""
        if self._err is VarianceError:
            switch = None if ct.zero else self.terms.switch(ct.level, ct.scale, k)
            return simfast.rotated(self, ct, k, switch)
        values = np.roll(ct.values, -k, axis=-1)
        err = ct.error.rolled(k)
        if not ct.zero:
            err = err.combine(1.0, self._switch_noise(ct.level, ct.scale, k, values.shape),
                              1.0)
        return values, err

    def conjugate(self, ct) -> SimCiphertext:
        """Complex conjugation of every slot."""
        ct = self._ct(ct)
        self._need_key(self.context.conjugation_element, "conjugation")
        self.counts["conjugate"] += 1
        err = ct.error.conj()
        if not ct.zero:
            self.counts["key_switch"] += 1
            err = err.combine(1.0, self._switch_noise(ct.level, ct.scale, 0, ct.values.shape),
                              1.0)
        return ct._like(values=np.conj(ct.values), error=err)


def _step(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError(f"rotation step must be an integer, got {k!r}")
    return int(k)
