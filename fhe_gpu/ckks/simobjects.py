"""The Simulator's plaintexts and ciphertexts: exact slot values, level, scale, bound and
an error object (:mod:`fhe_gpu.ckks.simerror`).

They carry what the real objects carry for the layers above (``level``, ``scale``,
``value_bound``, ``real``, ``key_id``, ``fingerprint``, ``batch_size``, ``noise_var``,
``nbytes`` of the real object they stand for) and, for ciphertexts, the prediction:
``slot_var`` (per-slot error variance), ``predicted_error`` and ``predicted_bits`` (the
max-error precision to expect: -log2 of the median over runs of the largest slot error).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import BatchIndexError, ContextMismatchError, ParameterError


def _rows(x, i: slice, batch: int):
    """Rows ``i`` of a value or error array broadcasting to (batch, slots)."""
    if np.ndim(x) == 2 and np.shape(x)[0] == batch and batch > 1:
        return x[i]
    return x


class _SimObject:
    """Shared behaviour: slot values (batch, slots), level, scale, context, error."""

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

    @property
    def batch_size(self) -> int:
        """Number of vectors along the batch axis."""
        return int(self.values.shape[0])

    def __len__(self):
        return self.batch_size

    @property
    def nbytes(self) -> int:
        """Bytes the real object would hold: batch x polynomials x limbs x N x 8."""
        return self.batch_size * self._poly_count * (self.level + 1) * self.context.n * 8

    def _like(self, **changes):
        kw = {k: getattr(self, k) for k in self._fields()}
        kw.update(changes)
        return type(self)(**kw)

    def _fields(self):
        return ("values", "level", "scale", "context", "error", "value_bound", "real")

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
        err = type(self.error)(_rows(self.error.state, i, b))
        return self._like(values=self.values[i], error=err)

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
        err = type(first.error)(np.concatenate(
            [np.broadcast_to(it.error.state, it.values.shape) for it in items]))
        bounds = [it.value_bound for it in items]
        return first._like(values=np.concatenate([it.values for it in items]), error=err,
                           value_bound=None if None in bounds else max(bounds),
                           real=all(it.real for it in items))

    def __repr__(self):
        return (f"{type(self).__name__}(batch={self.batch_size}, level={self.level}, "
                f"scale=2^{math.log2(self.scale):.2f}, n={self.context.n})")


class SimPlaintext(_SimObject):
    """A simulated plaintext: ``values`` (batch, slots) and its encoding ``error``."""


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

    def _fields(self):
        return super()._fields() + ("key_id", "zero")

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
        """The largest slot error to expect (median over runs; the sample's own in sampled
        mode) of the complex error or its ``"real"`` part, over every slot of every batch
        row or over ``slots`` (an index or mask of the slot axis)."""
        if part not in ("complex", "real"):
            raise ParameterError(f"part must be 'complex' or 'real', got {part!r}")
        return self.error.max_error(self.values.shape, part, slots)

    def predict_bits(self, part: str = "complex", slots=None) -> float:
        """-log2 of :meth:`predicted_error_of`: bits of max-error precision."""
        err = self.predicted_error_of(part, slots)
        return math.inf if err == 0 else -math.log2(err)

    @property
    def predicted_error(self) -> float:
        """The largest |slot error| to expect over all slots (median over runs)."""
        return self.predicted_error_of()

    @property
    def predicted_bits(self) -> float:
        """The max-error precision to expect: -log2 of :attr:`predicted_error`, what
        ``fg.precision_bits(values, decrypted)`` measures on the encrypted run."""
        return self.predict_bits()
