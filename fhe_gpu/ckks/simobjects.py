"""The Simulator's plaintexts and ciphertexts (exact slot values, level, scale, bound and
an error object, :mod:`fhe_gpu.ckks.simerror`), its stand-in for evaluation keys, and the
slot values of real Plaintexts the circuits encode (those the Encoder kept, else decoded;
cached per object).

A ciphertext may be pending (a rotation, or a sum of :mod:`fhe_gpu.ckks.simfast`): its
``values`` and ``error`` are evaluated when first read, once (copies evaluate it first,
so that they share its error draw); everything else is known at once.

They carry what the real objects carry for the layers above (``level``, ``scale``,
``value_bound``, ``real``, ``key_id``, ``fingerprint``, ``batch_size``, ``noise_var``,
``nbytes`` of the real object they stand for) and, for ciphertexts, the prediction:
``slot_var`` (per-slot error variance), ``predicted_error`` and ``predicted_bits`` (the
max-error precision to expect: -log2 of the largest slot error, averaged in bits over
runs).
"""
from __future__ import annotations

import functools
import math
import weakref

import numpy as np

from ..errors import BatchIndexError, ContextMismatchError, ParameterError
from . import noise as model
from . import simfast
from .encoder import Encoder, encoded_values
from .simerror import concat


#: cached quantities derived from the values or the error (dropped when they change)
_DERIVED = ("abs2", "cvalues", "_slot_var_cache")


class _SimObject:
    """Shared behaviour: slot values (batch, slots; float64 while every slot is known to be
    real, else complex128), level, scale, context, error."""

    _poly_count = 1

    def __init__(self, values, level: int, scale: float, context, error, value_bound=None,
                 real: bool = False):
        self.values = values
        self.level = int(level)
        self.scale = float(scale)
        self.context = context
        self.fingerprint = context.fingerprint
        self.error = error
        self.value_bound = None if value_bound is None else float(value_bound)
        self.real = bool(real)

    @functools.cached_property
    def abs2(self) -> np.ndarray:
        """|values|^2 per slot."""
        v = self.values
        return v.real * v.real + v.imag * v.imag if np.iscomplexobj(v) else v * v

    @functools.cached_property
    def cvalues(self) -> np.ndarray:
        """The values as complex128 (for products with complex arrays)."""
        return self.values.astype(np.complex128)

    @property
    def batch_size(self) -> int:
        """Number of vectors along the batch axis."""
        pending = self.__dict__.get("_pending")
        if pending is not None:
            return pending[1].batch_size
        return int(self.values.shape[0])

    def __len__(self):
        return self.batch_size

    @property
    def nbytes(self) -> int:
        """Bytes the real object would hold: batch x polynomials x limbs x N x 8."""
        return self.batch_size * self._poly_count * (self.level + 1) * self.context.n * 8

    def _like(self, **changes):
        """A copy with ``changes`` (attribute values) applied (a pending object is
        evaluated first: the copy shares its error draw)."""
        if "_pending" in self.__dict__:
            self._evaluate()
        new = object.__new__(type(self))
        state = dict(self.__dict__)
        if "values" in changes or "error" in changes:
            for name in _DERIVED:
                state.pop(name, None)
        state.update(changes)
        new.__dict__ = state
        return new

    def pending(self, sim, k: int):
        """This object rotated by k slots, evaluated when its values or error are first
        read (a sum over rotations reads ``self`` instead: :mod:`fhe_gpu.ckks.simfast`);
        a pending sum of simfast takes the rotation into its own evaluation."""
        pending = self.__dict__.get("_pending")
        if pending is not None and pending[3] is not None and pending[0] is sim \
                and k % pending[3].r == 0:
            spec = pending[3].rotated(sim, k, self.scale)
            return self._deferred(sim, pending[1], 0, spec)
        return self._deferred(sim, self, k, None)

    def _deferred(self, sim, src, k: int, spec, **changes):
        """A copy of this object (with ``changes``) whose values and error are evaluated
        when first read: ``src`` rotated by k slots when ``spec`` is None, else the sum
        ``spec`` (:class:`fhe_gpu.ckks.simfast.PendingSum`) over rotations of ``src``."""
        new = object.__new__(type(self))
        state = {key: v for key, v in self.__dict__.items()
                 if key not in ("values", "error", "_pending") + _DERIVED}
        state.update(changes, _pending=(sim, src, k, spec))
        new.__dict__ = state
        return new

    def _evaluate(self) -> None:
        """Set the values and error of a pending object."""
        sim, src, k, spec = self.__dict__.pop("_pending")
        if spec is None:
            self.values, self.error = sim._rotated(src, k)
        else:
            self.values, self.error = simfast.evaluate_sum(sim, spec)

    def __getattr__(self, name):
        if name in ("values", "error") and "_pending" in self.__dict__:
            self._evaluate()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getitem__(self, i):
        """Batch item(s): ``ct[i]`` keeps a batch axis of 1; slices keep theirs."""
        b = self.batch_size
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            if not -b <= i < b:
                raise BatchIndexError(f"batch index {i} out of range for batch {b}: needs "
                                      f"{-b} <= i < {b}")
            i = slice(int(i) % b, int(i) % b + 1)
        if not isinstance(i, slice) or not range(*i.indices(b)):
            raise BatchIndexError(f"batch index must be an int or a non-empty slice of "
                                  f"batch {b}, got {i!r}")
        return self._like(values=self.values[i], error=self.error.rows(i, b))

    @classmethod
    def stack(cls, items):
        """Concatenate objects of one level, scale and context along the batch axis."""
        items = list(items)
        if not items or any(type(it) is not cls for it in items):
            raise ParameterError(f"stack needs a non-empty list of {cls.__name__}")
        first = items[0]
        for it in items[1:]:
            if it.fingerprint != first.fingerprint:
                raise ContextMismatchError("cannot stack objects of different parameters")
            if it.level != first.level or abs(it.scale - first.scale) > 1e-9 * first.scale:
                raise ParameterError(f"cannot stack level {it.level} scale {it.scale} with "
                                     f"level {first.level} scale {first.scale}")
        err = concat([it.error for it in items], [it.values.shape for it in items])
        bounds = [it.value_bound for it in items]
        return first._like(values=np.concatenate([it.values for it in items]), error=err,
                           value_bound=None if None in bounds else max(bounds),
                           real=all(it.real for it in items))

    def __repr__(self):
        return (f"{type(self).__name__}(batch={self.batch_size}, level={self.level}, "
                f"scale=2^{math.log2(self.scale):.2f}, n={self.context.n})")


class SimPlaintext(_SimObject):
    """A simulated plaintext: ``values`` (batch, slots) and its encoding rounding as
    ``error`` (a variance, not drawn)."""


class SimCiphertext(_SimObject):
    """A simulated ciphertext: the exact slot ``values`` (batch, slots) of the computation
    and the ``error`` a decryption would add, with its prediction (``predicted_bits``)."""

    _poly_count = 2

    def __init__(self, values, level, scale, context, error, value_bound=None, real=False,
                 key_id=None, zero=False):
        super().__init__(values, level, scale, context, error, value_bound, real)
        self.key_id = key_id
        #: the real ciphertext would be all zeros (a product by a constant that rounds to
        #: 0): rescaling, rotating or relinearizing it adds no noise
        self.zero = bool(zero)


    @property
    def slot_var(self) -> np.ndarray:
        """The predicted variance of each slot's error, shape (batch, slots) (the squared
        sample in sampled mode)."""
        return self.error.slot_var(self.values.shape)

    @property
    def noise_var(self) -> float:
        """The mean slot variance as the Evaluator's ``noise_var`` counts it: the variance
        of an error coefficient in integer units at this scale."""
        return float(np.mean(self.slot_var)) * self.scale * self.scale / self.context.n

    def predicted_error_of(self, part: str = "complex", slots=None) -> float:
        """The largest slot error to expect (2^E[log2 max] over runs; the draw's own in
        sampled mode) of the complex error or its ``"real"`` part, over every slot of
        every batch row or over ``slots`` (an index or mask of the slot axis)."""
        if part not in ("complex", "real"):
            raise ParameterError(f"part must be 'complex' or 'real', got {part!r}")
        return self.error.max_error(self.values.shape, part, slots)

    def predict_bits(self, part: str = "complex", slots=None) -> float:
        """-log2 of :meth:`predicted_error_of`: bits of max-error precision."""
        err = self.predicted_error_of(part, slots)
        return math.inf if err == 0 else -math.log2(err)

    @property
    def predicted_error(self) -> float:
        """The largest |slot error| to expect over all slots."""
        return self.predicted_error_of()

    @property
    def predicted_bits(self) -> float:
        """The max-error precision to expect: -log2 of :attr:`predicted_error`, what
        ``fg.precision_bits(values, decrypted)`` measures on the encrypted run."""
        return self.predict_bits()


class _Everything:
    """A container holding every Galois element (a Simulator made with rotations=None)."""

    def __contains__(self, item):
        return True

    def __repr__(self):
        return "every Galois element"


class SimKeys:
    """The evaluation keys a Simulator pretends to hold: ``galois`` answers ``in`` for the
    Galois elements of ``rotations`` (all when None) and of conjugation."""

    key_id = None

    def __init__(self, context, rotations=None, conjugation: bool = True):
        if rotations is None:
            self.galois = _Everything()
            return
        try:
            steps = [int(k) for k in rotations]
        except (TypeError, ValueError):
            raise ParameterError(f"rotations must be a list of integers or None, got "
                                 f"{rotations!r:.60}") from None
        self.galois = {context.galois_element(k): k for k in steps if k % context.slots}
        if conjugation:
            self.galois[context.conjugation_element] = "conjugation"


#: slot values of Plaintexts already decoded (shared by every Simulator; weak references)
_DECODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: error class -> Plaintext -> its SimPlaintext
SIM_PLAINTEXTS: dict = {}


@functools.lru_cache(maxsize=8)
def _fft_tables(n: int):
    """The twist zeta^k and the FFT positions of the slots (the Encoder's)."""
    return np.exp(1j * np.pi * np.arange(n) / n), (model.slot_exponents(n) - 1) // 2


def decode_plaintexts(context, pts) -> list[np.ndarray]:
    """Slot values (batch, slots) of Plaintexts, cached per object: the values the Encoder
    kept (:func:`~fhe_gpu.ckks.encoder.encoded_values`), else decoded. Plaintexts whose
    coefficients fit the base prime (scale * bound < q_0 / 8) are decoded from that limb
    alone, all in one inverse NTT and one FFT; others by the Encoder."""
    out = {pt: _DECODED[pt] for pt in pts if pt in _DECODED}
    for pt in pts:
        kept = encoded_values(pt)
        if pt not in out and kept is not None:
            out[pt] = kept.full(context.slots)
    todo = [pt for pt in pts if pt not in out]
    q0 = context.q_primes[0]
    fast = [pt for pt in todo if pt.scale * max(1.0, pt.value_bound or 1.0) < q0 / 8]
    if fast:
        be = context.backend
        rows = be.xp.concatenate([pt.data[:, :1] for pt in fast])
        m = be.to_host(be.intt(be.xp.ascontiguousarray(rows), context.q_basis(0)))[:, 0]
        m = m.astype(np.int64)
        m = (m - np.where(m > q0 // 2, q0, 0)).astype(np.float64)
        twist, pos = _fft_tables(context.n)
        z = np.fft.ifft(m * twist, axis=-1)[:, pos] * context.n
        at = 0
        for pt in fast:
            out[pt] = z[at:at + pt.batch_size] / pt.scale
            at += pt.batch_size
    slow = [pt for pt in todo if pt not in out]
    if slow:
        encoder = Encoder(context)
        out.update({pt: np.atleast_2d(encoder.decode(pt)) for pt in slow})
    for pt in todo:
        if pt.real:
            out[pt] = np.ascontiguousarray(out[pt].real)
        _DECODED[pt] = out[pt]
    return [out[pt] for pt in pts]


def slot_values(values, slots: int) -> np.ndarray:
    """Values (k,) or (batch, k), 1 <= k <= slots, finite: complex (batch, slots)."""
    try:
        z = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"values must be a numeric array: {exc}") from None
    if z.dtype.kind not in "biufc" or z.ndim not in (1, 2) or z.size == 0 \
            or z.shape[-1] > slots:
        raise ParameterError(f"values must be numbers of shape (k,) or (batch, k) with "
                             f"1 <= k <= {slots} slots, got shape {z.shape} dtype {z.dtype}")
    z = np.atleast_2d(z).astype(np.complex128)
    if not np.all(np.isfinite(z)):
        raise ParameterError("values must be finite")
    out = np.zeros((z.shape[0], slots), dtype=np.complex128)
    out[:, : z.shape[1]] = z
    return out
