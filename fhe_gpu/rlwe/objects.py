"""Plaintexts and ciphertexts: RNS tensors in evaluation form with level, scale, batch.

Besides level and scale every object carries what the layers above need to refuse a wrong
answer instead of returning one:

* ``value_bound``: an upper bound on |slot value| (known exactly at encoding, propagated by
  the Evaluator by interval arithmetic; None when unknown);
* ``noise_var`` (ciphertexts): the predicted variance of each coefficient of the error
  polynomial, in integer units at the ciphertext's scale (see :mod:`fhe_gpu.ckks.noise`);
* ``key_id`` (ciphertexts): the public id of the key set the ciphertext decrypts under
  (None when unknown), so that objects of different key sets are never mixed silently;
* ``real``: True when every slot is known to be real (set at encoding, kept by operations
  on real operands; False when unknown, e.g. after loading from bytes).

:func:`check_fits` is the one rule for what a level's modulus holds.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import (BatchIndexError, ContextMismatchError, KeyMismatchError,
                      ModulusOverflowError, ParameterError)
from . import wire_hook

#: bits of headroom kept between |value| * scale and Q_level / 2 (for noise and rounding):
#: an object fits when bound * scale <= Q_level / 2^(1 + FIT_MARGIN_BITS)
FIT_MARGIN_BITS = 1
#: the smallest scale an object may carry (below it no bit of the value survives)
MIN_SCALE = 1.0


def log2_modulus(context, level: int) -> float:
    """log2(Q_level) = log2(q_0 * ... * q_level)."""
    return sum(math.log2(q) for q in context.q_primes[: level + 1])


def check_fits(context, level: int, scale: float, bound=None, what: str = "the result"):
    """ModulusOverflowError unless ``scale`` (and ``bound`` * scale, when a value bound is
    given) fits the modulus of ``level``: 1 <= scale and max(bound, 1) * scale <=
    Q_level / 2^(1 + FIT_MARGIN_BITS). Returns ``scale``."""
    scale = float(scale)
    if not math.isfinite(scale) or scale < MIN_SCALE:
        raise ModulusOverflowError(f"{what} would have scale {scale!r}: needs a finite scale "
                                   f">= {MIN_SCALE}")
    limit = log2_modulus(context, level) - 1 - FIT_MARGIN_BITS
    b = 1.0 if bound is None or not bound > 1.0 else float(bound)
    need = math.log2(scale) + math.log2(b) if math.isfinite(b) else math.inf
    if need > limit:
        held = f"|value| <= {b:.6g} at scale 2^{math.log2(scale):.2f}" if bound is not None \
            else f"scale 2^{math.log2(scale):.2f}"
        raise ModulusOverflowError(
            f"{what}: {held} needs 2^{need:.2f}, but level {level} holds at most "
            f"2^{limit:.2f} (log2 Q_{level} = {limit + 1 + FIT_MARGIN_BITS:.2f}, minus "
            f"{1 + FIT_MARGIN_BITS} bits for the sign and headroom): use a smaller scale or "
            f"smaller values, or a higher level")
    return scale


class _Batched(wire_hook.WireMethods):
    """Shared behaviour: a leading batch axis, level, scale and the parameter fingerprint."""

    #: number of polynomial axes between batch and limbs (0 for plaintexts, 1 for ciphertexts)
    _poly_axes = 0

    def __init__(self, data, level: int, scale: float, context, value_bound=None,
                 real: bool = False):
        self.data = data
        self.real = bool(real)
        self.level = int(level)
        self.scale = float(scale)
        self.context = context
        self.fingerprint = context.fingerprint
        self.value_bound = None if value_bound is None else float(value_bound)
        want = (self.level + 1, context.n)
        if tuple(data.shape[-2:]) != want or data.ndim != 2 + 1 + self._poly_axes:
            raise ParameterError(
                f"{type(self).__name__} data of shape {tuple(data.shape)} does not match "
                f"level {self.level} and n={context.n}")

    @property
    def batch_size(self) -> int:
        """Number of independent vectors held along the batch axis."""
        return int(self.data.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the coefficient array."""
        return int(self.data.nbytes)

    def _meta(self) -> dict:
        """Keyword arguments (besides data, level, scale, context) that copies carry."""
        return {"value_bound": self.value_bound, "real": self.real}

    def _like(self, data, level=None, scale=None):
        return type(self)(data, self.level if level is None else level,
                          self.scale if scale is None else scale, self.context,
                          **self._meta())

    def __getitem__(self, i):
        """Batch item(s): ``ct[i]`` keeps a batch axis of 1; slices keep theirs."""
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            i = int(i)
            if not -self.batch_size <= i < self.batch_size:
                raise BatchIndexError(f"batch index {i} out of range for batch "
                                      f"{self.batch_size}: needs {-self.batch_size} <= i < "
                                      f"{self.batch_size}")
            i = slice(i, i + 1 if i != -1 else None)
        if not isinstance(i, slice):
            raise ParameterError(f"batch index must be an int or a slice, got {i!r}")
        if len(range(*i.indices(self.batch_size))) == 0:
            raise BatchIndexError(f"batch slice {i} selects nothing from batch "
                                  f"{self.batch_size}")
        return self._like(self.data[i])

    def __len__(self):
        return self.batch_size

    @classmethod
    def stack(cls, items):
        """Concatenate objects of one level, scale, context and key set along the batch
        axis."""
        try:
            items = list(items)
        except TypeError:
            raise ParameterError(f"stack needs a list of {cls.__name__} objects, got "
                                 f"{type(items).__name__}") from None
        if not items:
            raise ParameterError("stack needs at least one object, got an empty list")
        for it in items:
            if not isinstance(it, cls) or type(it) is not type(items[0]):
                raise ParameterError(f"stack needs {cls.__name__} objects of one kind, got "
                                     f"{type(it).__name__} beside {type(items[0]).__name__}")
        first = items[0]
        for it in items[1:]:
            if it.fingerprint != first.fingerprint:
                raise ContextMismatchError(
                    f"cannot stack objects of fingerprints {it.fingerprint.hex()[:16]} and "
                    f"{first.fingerprint.hex()[:16]}")
            if it.level != first.level or abs(it.scale - first.scale) > 1e-9 * first.scale:
                raise ParameterError(
                    f"cannot stack level {it.level} scale {it.scale} with level "
                    f"{first.level} scale {first.scale}: drop levels / rescale first")
        meta = first._stack_meta(items)
        xp = first.context.backend.xp
        data = xp.concatenate([it.data for it in items], axis=0)
        return type(first)(data, first.level, first.scale, first.context, **meta)

    def _stack_meta(self, items) -> dict:
        bounds = [it.value_bound for it in items]
        return {"value_bound": None if None in bounds else max(bounds),
                "real": all(it.real for it in items)}

    def __repr__(self):
        return (f"{type(self).__name__}(batch={self.batch_size}, level={self.level}, "
                f"scale=2^{_log2(self.scale):.2f}, n={self.context.n})")


def _log2(x: float) -> float:
    return math.log2(x) if x > 0 else float("-inf")


class Plaintext(_Batched):
    """An encoded vector (batch, limbs, n) in evaluation form, at a level and scale;
    ``value_bound`` bounds |slot value| (set by the Encoder)."""

    _poly_axes = 0


class Ciphertext(_Batched):
    """An RLWE ciphertext (batch, 2, limbs, n) in evaluation form: m = c0 + c1*s.

    ``seed`` is set on fresh symmetric ciphertexts whose c1 is expanded from it;
    ``key_id`` names the key set it decrypts under; ``noise_var`` is the predicted
    variance of its error coefficients (None when unknown); ``value_bound`` bounds
    |slot value|.
    """

    _poly_axes = 1

    def __init__(self, data, level: int, scale: float, context, seed: bytes | None = None,
                 key_id: bytes | None = None, noise_var=None, value_bound=None,
                 real: bool = False):
        super().__init__(data, level, scale, context, value_bound, real)
        self.seed = seed
        self.key_id = None if key_id is None else bytes(key_id)
        self.noise_var = None if noise_var is None else float(noise_var)

    def _meta(self) -> dict:
        return {"key_id": self.key_id, "noise_var": self.noise_var,
                "value_bound": self.value_bound, "real": self.real}

    def _stack_meta(self, items) -> dict:
        ids = {it.key_id for it in items}
        if len(ids) > 1:
            raise KeyMismatchError(f"cannot stack ciphertexts of key sets "
                                   f"{sorted(k.hex() if k else 'None' for k in ids)}")
        noise = [it.noise_var for it in items]
        meta = super()._stack_meta(items)
        meta.update(key_id=items[0].key_id, noise_var=None if None in noise else max(noise))
        return meta


def check_same_keys(a_id, b_id, what_a: str, what_b: str) -> None:
    """KeyMismatchError when two known key ids differ (None means unknown: not checked)."""
    if a_id is not None and b_id is not None and a_id != b_id:
        raise KeyMismatchError(f"{what_a} belongs to key set {a_id.hex()}, but {what_b} "
                               f"belongs to key set {b_id.hex()}: objects of different "
                               f"key sets (tenants) cannot be combined")
