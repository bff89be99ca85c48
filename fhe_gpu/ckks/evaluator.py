"""Homomorphic operations on batched CKKS ciphertexts.

Binary operations take Ciphertext, Plaintext or scalar operands (at least one
ciphertext), align levels by dropping the higher one, broadcast a batch of 1 against a
batch of B, and refuse scales that differ by more than a relative 1e-9 unless the
evaluator was made with ``strict=False``, which matches them with a constant (one level).
Scales are tracked exactly: rescale divides by the actual prime.

Every result carries its key set's id (operands of different key sets raise
KeyMismatchError), a bound on |slot value| and the predicted variance of its error
(:mod:`fhe_gpu.ckks.noise`); a result whose bound times scale does not fit the modulus of
its level raises ModulusOverflowError instead of decrypting to a wrong value.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import KeyMissingError, LevelError, ParameterError, ScaleMismatchError
from ..rlwe import keyswitch
from ..rlwe.keys import EvaluationKeys, check_context
from ..rlwe.objects import Ciphertext, Plaintext, check_fits, check_same_keys
from ..rlwe.slab import SlabKeys
from . import noise
from .encoder import Encoder
from .fused import FusedOps
from .raising import RaiseOps

SCALE_RTOL = 1e-9
#: largest |scalar| an operation accepts (beyond it no scale leaves room in any modulus)
MAX_SCALAR = 2.0 ** 100


def _sum_or_none(*xs):
    return None if any(x is None for x in xs) else float(sum(xs))


def _prod_or_none(*xs):
    return None if any(x is None for x in xs) else float(math.prod(xs))


def _scalar_var(a: Ciphertext, k: int):
    """Error variance of a times the integer constant k (None when a's noise is unknown)."""
    if a.noise_var is None or a.value_bound is None:
        return None
    return noise.scalar_variance(a.noise_var, k, a.scale, a.value_bound)


class Evaluator(RaiseOps, FusedOps):
    """Evaluates operations with public material only (evaluation keys, never a secret).

    ``evk=None`` allows every operation except relinearization and rotations. Ciphertexts
    must belong to the key set of ``evk`` (same ``key_id``), else KeyMismatchError. A
    key slab view (:class:`~fhe_gpu.rlwe.slab.SlabKeys`) serves as evk for a batch whose
    rows belong to different key sets.
    """

    def __init__(self, context, evk: EvaluationKeys | SlabKeys | None = None,
                 strict: bool = True):
        check_context(context, "Evaluator")
        if evk is not None:
            if not isinstance(evk, (EvaluationKeys, SlabKeys)):
                raise ParameterError(f"evk must be EvaluationKeys, SlabKeys or None, got "
                                     f"{type(evk).__name__}")
            context.check(evk, "evaluation keys")
        self.context = context
        self.evk = evk
        self.key_id = None if evk is None else evk.key_id
        self.strict = bool(strict)
        self._encoder = Encoder(context)

    # ------------------------------------------------------------ operand handling
    def _ct(self, x, what="operand") -> Ciphertext:
        if not isinstance(x, Ciphertext):
            raise ParameterError(f"{what} must be a Ciphertext, got {type(x).__name__}")
        self.context.check(x, what)
        check_same_keys(x.key_id, self.key_id, f"the {what}", "this Evaluator's keys")
        return x

    def _kind(self, x) -> str:
        if isinstance(x, Ciphertext):
            self._ct(x, "ciphertext operand")
            return "ct"
        if isinstance(x, Plaintext):
            self.context.check(x, "plaintext operand")
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
        raise ParameterError(f"operand must be a Ciphertext, Plaintext or scalar, got "
                             f"{type(x).__name__}")

    def _out(self, data, level, scale, key_id, var, bound, what, real=False) -> Ciphertext:
        """A result ciphertext, refused when its bound and scale do not fit its level."""
        check_fits(self.context, level, scale, bound, what=what)
        return Ciphertext(data, level, scale, self.context, key_id=key_id, noise_var=var,
                          value_bound=bound, real=real)

    def _batch(self, a, b) -> None:
        ba, bb = a.batch_size, b.batch_size
        if ba != bb and 1 not in (ba, bb):
            raise ParameterError(f"batch sizes {ba} and {bb} do not broadcast: need equal "
                                 f"sizes or a batch of 1")

    def _align(self, a, b):
        return align_levels(self, a, b)

    def _match_scales(self, a: Ciphertext, b):
        return match_scales(self, a, b, Ciphertext)

    def _mul_int(self, ct: Ciphertext, k: int):
        """ct.data times the integer k (one Shoup constant per limb)."""
        basis = self.context.q_basis(ct.level)
        consts = np.array([k % q for q in basis.primes], dtype=np.uint64)
        return self.context.backend.mul_scalar(ct.data, consts, basis)

    def _scalar_pt(self, c, level: int, scale: float) -> Plaintext:
        full = np.full(self.context.slots, complex(c))
        return self._encoder.encode(full, level=level, scale=scale)

    # ------------------------------------------------------------ add / sub / negate
    def add(self, a, b) -> Ciphertext:
        """a + b (at least one Ciphertext)."""
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"add needs a Ciphertext operand, got {ka} and {kb}")
            a, b, ka, kb = b, a, kb, ka
        return self._add_sub(a, b, kb, subtract=False)

    def sub(self, a, b) -> Ciphertext:
        """a - b (at least one Ciphertext)."""
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"sub needs a Ciphertext operand, got {ka} and {kb}")
            return self._add_sub(self.negate(b), a, ka, subtract=False)
        return self._add_sub(a, b, kb, subtract=True)

    def _add_sub(self, a: Ciphertext, b, kb: str, subtract: bool) -> Ciphertext:
        be = self.context.backend
        if kb == "scalar":
            c = complex(b)
            if c.imag == 0:
                return self._add_real(a, -c.real if subtract else c.real)
            b, kb = self._scalar_pt(c, a.level, a.scale), "pt"
        self._batch(a, b)
        if kb == "ct":
            check_same_keys(a.key_id, b.key_id, "the first ciphertext", "the second")
        a, b = self._match_scales(a, b)
        basis = self.context.q_basis(a.level)
        op = be.sub if subtract else be.add
        if kb == "ct":
            data = op(a.data, b.data, basis)
            var = _sum_or_none(a.noise_var, b.noise_var)
        else:
            c0 = op(a.data[:, 0], b.data, basis)
            data = be.xp.stack([c0, be.xp.broadcast_to(a.data[:, 1], c0.shape)], axis=1)
            var = _sum_or_none(a.noise_var, noise.encoding_variance(
                self.context.n, b.scale, b.value_bound))
        bound = _sum_or_none(a.value_bound, b.value_bound)
        return self._out(data, a.level, a.scale, a.key_id, var, bound, "the sum",
                         a.real and b.real)

    def _add_real(self, a: Ciphertext, c: float) -> Ciphertext:
        """Add the real constant c to every slot: round(c*scale) on coefficient 0."""
        be = self.context.backend
        bound = _sum_or_none(a.value_bound, abs(c))
        check_fits(self.context, a.level, a.scale, max(abs(c), bound or 0.0),
                   what="the sum with a constant")
        basis = self.context.q_basis(a.level)
        k = int(round(c * a.scale))
        col = np.array([k % q for q in basis.primes], dtype=np.uint64)[:, None]
        const = be.to_device(np.ascontiguousarray(np.broadcast_to(col, (len(basis), a.context.n))))
        c0 = be.add(a.data[:, 0], const, basis)
        var = _sum_or_none(a.noise_var, 1.0 / 12.0)
        return self._out(be.xp.stack([c0, a.data[:, 1]], axis=1), a.level, a.scale, a.key_id,
                         var, bound, "the sum with a constant", a.real)

    def negate(self, a) -> Ciphertext:
        """-a."""
        a = self._ct(a)
        data = self.context.backend.neg(a.data, self.context.q_basis(a.level))
        return a._like(data)

    # ------------------------------------------------------------ multiply
    def mul(self, a, b, rescale: bool = True) -> Ciphertext:
        """a * b. ct x ct is relinearized; every product is rescaled unless rescale=False.

        A real scalar is encoded at the scale q_l of the prime the rescale removes, so the
        result keeps the ciphertext's scale exactly.
        """
        ka, kb = self._kind(a), self._kind(b)
        if ka != "ct":
            if kb != "ct":
                raise ParameterError(f"mul needs a Ciphertext operand, got {ka} and {kb}")
            a, b, ka, kb = b, a, kb, ka
        level = a.level if kb == "scalar" else min(a.level, b.level)
        if rescale and level == 0:
            raise LevelError("cannot rescale: level 0 (the product needs one more level; "
                             "use rescale=False)")
        if kb == "scalar":
            out = self._mul_scalar(a, complex(b))
        else:
            self._batch(a, b)
            if kb == "ct":
                check_same_keys(a.key_id, b.key_id, "the first ciphertext", "the second")
            a, b = self._align(a, b)
            out = self._mul_ct(a, b) if kb == "ct" else self._mul_pt(a, b)
        return self.rescale(out) if rescale else out

    def mul_to_scale(self, a, c: float, scale: float) -> Ciphertext:
        """a * c (real scalar) rescaled, with the result's scale set to ``scale``.

        The constant is encoded at round(c * scale * q_l / a.scale), so terms of a sum
        computed along different paths can be given one common scale exactly.
        """
        a = self._ct(a)
        c, scale = _real("the constant", c), _real("scale", scale)
        if not scale >= 1.0:
            raise ParameterError(f"scale must be >= 1, got {scale!r}")
        if a.level == 0:
            raise LevelError("cannot rescale: level 0 (mul_to_scale needs one level)")
        q_l = self.context.q_primes[a.level]
        bound = _prod_or_none(a.value_bound, abs(c))
        check_fits(self.context, a.level, scale * q_l, bound, what="mul_to_scale's product")
        k = int(round(c * scale * q_l / a.scale))
        out = self.rescale(Ciphertext(self._mul_int(a, k), a.level, scale * q_l, self.context,
                                      key_id=a.key_id, noise_var=_scalar_var(a, k),
                                      value_bound=bound,
                                      real=a.real))
        return out._like(out.data, scale=scale)

    def _mul_scalar(self, a: Ciphertext, c: complex) -> Ciphertext:
        q_l = self.context.q_primes[a.level]
        if c.imag != 0:
            return self._mul_pt(a, self._scalar_pt(c, a.level, float(q_l)))
        bound = _prod_or_none(a.value_bound, abs(c.real))
        check_fits(self.context, a.level, a.scale * q_l, bound, what="the product")
        k = int(round(c.real * q_l))
        return self._out(self._mul_int(a, k), a.level, a.scale * q_l, a.key_id,
                         _scalar_var(a, k), bound,
                         "the product", a.real)

    def _mul_pt(self, a: Ciphertext, b: Plaintext) -> Ciphertext:
        be = self.context.backend
        bound = _prod_or_none(a.value_bound, b.value_bound)
        check_fits(self.context, a.level, a.scale * b.scale, bound, what="the product")
        data = be.mul(a.data, b.data[:, None], self.context.q_basis(a.level))
        var = None if None in (a.noise_var, a.value_bound, b.value_bound) else \
            noise.mul_variance(self.context.n, (a.noise_var, a.scale, a.value_bound),
                               (None, b.scale, b.value_bound), pt_b=True)
        return self._out(data, a.level, a.scale * b.scale, a.key_id, var, bound, "the product",
                         a.real and b.real)

    def _mul_ct(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        if self.evk is None:
            raise KeyMissingError("no relinearization key: this Evaluator was made with "
                                  "evk=None, ciphertext x ciphertext needs one")
        key = self.evk.relin_key()
        bound = _prod_or_none(a.value_bound, b.value_bound)
        check_fits(self.context, a.level, a.scale * b.scale, bound, what="the product")
        be, basis = self.context.backend, self.context.q_basis(a.level)
        d02 = be.mul(a.data, b.data, basis)
        d1 = be.mul_add(a.data[:, 0], b.data[:, 1], be.mul(a.data[:, 1], b.data[:, 0], basis),
                        basis)
        data = keyswitch.relinearize(self.context, d02[:, 0], d1, d02[:, 1], key, a.level)
        var = None if None in (a.noise_var, b.noise_var, bound) else \
            noise.mul_variance(self.context.n, (a.noise_var, a.scale, a.value_bound),
                               (b.noise_var, b.scale, b.value_bound)) \
            + noise.key_switch_variance(self.context, a.level)
        return self._out(data, a.level, a.scale * b.scale, a.key_id, var, bound, "the product",
                         a.real and b.real)

    def mul_plain_sum(self, cts, pts) -> Ciphertext:
        """sum_i cts[i] * pts[i] without rescale: one accumulator updated by a fused
        multiply-add per term (no temporaries). Ciphertexts of one level, scale and key
        set; plaintexts of one scale (batch 1 or the ciphertexts' batch)."""
        cts, pts = list(cts), list(pts)
        if not cts or len(cts) != len(pts):
            raise ParameterError(f"mul_plain_sum needs as many plaintexts as ciphertexts "
                                 f"(at least one), got {len(cts)} and {len(pts)}")
        first = self._ct(cts[0])
        for ct, pt in zip(cts, pts):
            self._ct(ct)
            if not isinstance(pt, Plaintext):
                raise ParameterError(f"mul_plain_sum needs Plaintexts, got {type(pt).__name__}")
            self.context.check(pt, "plaintext")
            check_same_keys(ct.key_id, first.key_id, "a ciphertext", "the first")
            if ct.level != first.level or ct.scale != first.scale or pt.scale != pts[0].scale \
                    or pt.level < first.level:
                raise ScaleMismatchError(
                    f"mul_plain_sum terms differ: level {ct.level} scale {ct.scale!r} x "
                    f"plaintext level {pt.level} scale {pt.scale!r}, needs level "
                    f"{first.level} scale {first.scale!r} x scale {pts[0].scale!r}")
            self._batch(ct, pt)
        scale = first.scale * pts[0].scale
        bound = _sum_or_none(*[_prod_or_none(c.value_bound, p.value_bound)
                               for c, p in zip(cts, pts)])
        check_fits(self.context, first.level, scale, bound, what="the sum of products")
        be, basis = self.context.backend, self.context.q_basis(first.level)
        lead = np.broadcast_shapes(*[(c.batch_size,) for c in cts], *[(p.batch_size,)
                                                                     for p in pts])
        acc = be.zeros((lead[0], 2, len(basis), self.context.n))
        var = 0.0
        for ct, pt in zip(cts, pts):
            pdata = pt.data if pt.level == first.level else pt.data[:, : first.level + 1]
            be.mul_add(ct.data, pdata[:, None], acc, basis, out=acc)
            var = None if None in (var, ct.noise_var, ct.value_bound, pt.value_bound) else \
                var + noise.mul_variance(self.context.n, (ct.noise_var, ct.scale,
                                                          ct.value_bound),
                                         (None, pt.scale, pt.value_bound), pt_b=True)
        return self._out(acc, first.level, scale, first.key_id, var, bound,
                         "the sum of products", all(c.real for c in cts + pts))

    def mul_by_scale(self, a, c: float) -> Ciphertext:
        """c * a for a real c != 0 with no level and no noise: the result is the same
        ciphertext read at scale a.scale / |c| (negated when c < 0). ModulusOverflowError
        when that scale would fall below 1."""
        a = self._ct(a)
        c = _real("the constant", c)
        if c == 0:
            raise ParameterError("mul_by_scale needs a nonzero constant, got 0")
        out = self.negate(a) if c < 0 else a
        bound = _prod_or_none(a.value_bound, abs(c))
        check_fits(self.context, a.level, a.scale / abs(c), bound,
                   what=f"the ciphertext read at scale / {abs(c)!r}")
        return Ciphertext(out.data, a.level, a.scale / abs(c), self.context, key_id=a.key_id,
                          noise_var=a.noise_var, value_bound=bound, real=a.real)

    def assume_bound(self, a, bound: float) -> Ciphertext:
        """The same ciphertext with ``value_bound`` set to ``bound``: for circuits that
        prove a tighter bound than interval arithmetic tracks (a Chebyshev T_k of an input
        in [-1, 1] stays in [-1, 1]). The caller answers for it: a wrong bound lets a value
        the modulus cannot hold through."""
        a = self._ct(a)
        bound = _real("bound", bound)
        if not bound > 0:
            raise ParameterError(f"bound must be positive, got {bound!r}")
        check_fits(self.context, a.level, a.scale, bound, what="the assumed bound")
        return Ciphertext(a.data, a.level, a.scale, self.context, key_id=a.key_id,
                          noise_var=a.noise_var, value_bound=bound, real=a.real)

    def square(self, a, rescale: bool = True) -> Ciphertext:
        """a * a."""
        return self.mul(a, a, rescale=rescale)

    # ------------------------------------------------------------ levels
    def rescale(self, ct) -> Ciphertext:
        """Divide by the last prime q_l and round: level - 1, scale / q_l."""
        ct = self._ct(ct)
        if ct.level == 0:
            raise LevelError("cannot rescale: level 0")
        q_l = self.context.q_primes[ct.level]
        check_fits(self.context, ct.level - 1, ct.scale / q_l, ct.value_bound,
                   what="the rescaled ciphertext")
        data = self.context.backend.rescale(ct.data, self.context.q_basis(ct.level))
        var = None if ct.noise_var is None else \
            noise.rescale_variance(self.context.n, ct.noise_var, q_l)
        return self._out(data, ct.level - 1, ct.scale / q_l, ct.key_id, var, ct.value_bound,
                         "the rescaled ciphertext", ct.real)

    def drop_level(self, x, to_level: int):
        """The same Ciphertext or Plaintext with its limbs above ``to_level`` dropped."""
        if isinstance(x, Ciphertext):
            self._ct(x, "ciphertext")
        elif isinstance(x, Plaintext):
            self.context.check(x, "plaintext")
        else:
            raise ParameterError(f"drop_level needs a Ciphertext or Plaintext, got "
                                 f"{type(x).__name__}")
        if isinstance(to_level, bool) or not isinstance(to_level, (int, np.integer)) \
                or not 0 <= to_level <= x.level:
            raise LevelError(f"cannot drop from level {x.level} to level {to_level!r}: "
                             f"needs 0 <= to_level <= {x.level}")
        if to_level == x.level:
            return x
        check_fits(self.context, int(to_level), x.scale, x.value_bound,
                   what=f"the {type(x).__name__} dropped to level {to_level}")
        xp = self.context.backend.xp
        data = xp.ascontiguousarray(x.data[..., : to_level + 1, :])
        return x._like(data, level=int(to_level))

    # ------------------------------------------------------------ rotations
    def _galois_key(self, galois_elt: int, what: str):
        if self.evk is None:
            raise KeyMissingError(f"no Galois key for {what}: this Evaluator was made with "
                                  f"evk=None")
        return self.evk.galois_key(galois_elt, what)

    def _switched(self, ct: Ciphertext, data) -> Ciphertext:
        var = None if ct.noise_var is None else \
            ct.noise_var + noise.key_switch_variance(self.context, ct.level)
        return Ciphertext(data, ct.level, ct.scale, self.context, key_id=ct.key_id,
                          noise_var=var, value_bound=ct.value_bound, real=ct.real)

    def rotate(self, ct, k: int) -> Ciphertext:
        """Rotate slots left by k: decode(result)[i] == decode(ct)[(i + k) % slots]."""
        return self.rotate_many(ct, [k])[0]

    def rotate_many(self, ct, steps) -> list[Ciphertext]:
        """Rotations of ``ct`` by each step, hoisted: one ModUp shared by all."""
        ct = self._ct(ct)
        try:
            steps = [self._step(k) for k in steps]
        except TypeError:
            raise ParameterError(f"steps must be a list of integers, got {steps!r:.60}") \
                from None
        keys = {k: self._galois_key(self.context.galois_element(k), f"rotation {k}")
                for k in steps if k % self.context.slots}
        ext = keyswitch.decompose(self.context, ct.data[:, 1], ct.level) if keys else None
        out = []
        for k in steps:
            if k % self.context.slots == 0:
                out.append(ct)
                continue
            g = self.context.galois_element(k)
            data = keyswitch.automorph(self.context, ct.data, g, keys[k], ct.level, ext=ext)
            out.append(self._switched(ct, data))
        return out

    def conjugate(self, ct) -> Ciphertext:
        """Complex conjugation of every slot."""
        ct = self._ct(ct)
        g = self.context.conjugation_element
        key = self._galois_key(g, "conjugation")
        data = keyswitch.automorph(self.context, ct.data, g, key, ct.level)
        return self._switched(ct, data)

    @staticmethod
    def _step(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ParameterError(f"rotation step must be an integer, got {k!r}")
        return int(k)


def _real(what: str, x) -> float:
    """A finite real number of magnitude at most MAX_SCALAR, or ParameterError."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ParameterError(f"{what} must be a real number, got {x!r:.40}")
    try:
        v = float(x)
    except OverflowError:
        v = math.inf
    if not (math.isfinite(v) and abs(v) <= MAX_SCALAR):
        raise ParameterError(f"{what} must be finite and at most 2^100 in magnitude, "
                             f"got {x!r:.40}")
    return v


def align_levels(ev, a, b):
    """a and b dropped to the lower of their levels (``ev.drop_level``)."""
    level = min(a.level, b.level)
    return ev.drop_level(a, level), ev.drop_level(b, level)


def match_scales(ev, a, b, ct_type):
    """Operands of one level and (within SCALE_RTOL) one scale, or ScaleMismatchError: the
    policy the Evaluator and the Simulator share (``ct_type``: their ciphertext class).

    With ``ev.strict`` False the operand that can spend a level (a ciphertext above the
    other's level, else any ciphertext) is brought to the other's scale with
    mul_to_scale before the levels are aligned."""
    if abs(a.scale - b.scale) <= SCALE_RTOL * max(a.scale, b.scale):
        return align_levels(ev, a, b)
    if ev.strict:
        raise ScaleMismatchError(
            f"scales differ: {a.scale!r} vs {b.scale!r} (relative difference "
            f"{abs(a.scale - b.scale) / max(a.scale, b.scale):.3g} > {SCALE_RTOL}); "
            f"rescale first or use {type(ev).__name__}(..., strict=False)")
    if isinstance(b, ct_type) and b.level > a.level:
        b = ev.mul_to_scale(b, 1.0, a.scale)
    elif a.level > b.level or not isinstance(b, ct_type):
        a = ev.mul_to_scale(a, 1.0, b.scale)
    else:
        b = ev.mul_to_scale(b, 1.0, a.scale)
    return align_levels(ev, a, b)
