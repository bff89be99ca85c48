"""Plaintexts and ciphertexts: RNS tensors in evaluation form with level, scale, batch."""
from __future__ import annotations

from ..errors import ContextMismatchError, ParameterError
from . import wire_hook


class _Batched(wire_hook.WireMethods):
    """Shared behaviour: a leading batch axis, level, scale and the parameter fingerprint."""

    #: number of polynomial axes between batch and limbs (0 for plaintexts, 1 for ciphertexts)
    _poly_axes = 0

    def __init__(self, data, level: int, scale: float, context):
        self.data = data
        self.level = int(level)
        self.scale = float(scale)
        self.context = context
        self.fingerprint = context.fingerprint
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

    def _like(self, data, level=None, scale=None):
        return type(self)(data, self.level if level is None else level,
                          self.scale if scale is None else scale, self.context)

    def __getitem__(self, i):
        """Batch item(s): ``ct[i]`` keeps a batch axis of 1; slices keep theirs."""
        if isinstance(i, int):
            if not -self.batch_size <= i < self.batch_size:
                raise IndexError(f"batch index {i} out of range for batch {self.batch_size}")
            i = slice(i, i + 1 if i != -1 else None)
        return self._like(self.data[i])

    def __len__(self):
        return self.batch_size

    @classmethod
    def stack(cls, items):
        """Concatenate objects of one level, scale and context along the batch axis."""
        items = list(items)
        if not items:
            raise ParameterError("stack needs at least one object, got an empty list")
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
        xp = first.context.backend.xp
        return first._like(xp.concatenate([it.data for it in items], axis=0))

    def __repr__(self):
        return (f"{type(self).__name__}(batch={self.batch_size}, level={self.level}, "
                f"scale=2^{_log2(self.scale):.2f}, n={self.context.n})")


def _log2(x: float) -> float:
    import math
    return math.log2(x) if x > 0 else float("-inf")


class Plaintext(_Batched):
    """An encoded vector (batch, limbs, n) in evaluation form, at a level and scale."""

    _poly_axes = 0


class Ciphertext(_Batched):
    """An RLWE ciphertext (batch, 2, limbs, n) in evaluation form: m = c0 + c1*s.

    ``seed`` is set on fresh symmetric ciphertexts whose c1 is expanded from it.
    """

    _poly_axes = 1

    def __init__(self, data, level: int, scale: float, context, seed: bytes | None = None):
        super().__init__(data, level, scale, context)
        self.seed = seed
