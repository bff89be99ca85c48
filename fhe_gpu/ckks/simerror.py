"""Slot errors of simulated ciphertexts: tracked as variances, or sampled.

A :class:`~fhe_gpu.ckks.simulator.Simulator` ciphertext holds the exact slot values of the
computation and an error object describing decrypt(ct) - values slot by slot (value units,
batch x slots, broadcast from a scalar while the error is the same in every slot):

* :class:`VarianceError` tracks the variance of each slot's error. Errors of different
  origin are independent; an operation on one object with itself (x*x, x + x, x - x) is
  correlated exactly (x*x has error 2x*e + e^2, variance 4|x|^2 v + 2 v^2). Other
  correlations (T_3 = 2 T_2 T_1 - T_1 shares T_1's error along two paths) are treated as
  independent: the sampled mode handles them exactly.
* :class:`SampledError` carries one draw of the error: every noise term is sampled (a
  complex Gaussian per slot, independent across slots, as the error polynomial's values at
  the roots are) and propagates through the same arithmetic as the values, so every
  correlation is exact and the prediction is one run's outcome.

Both answer the same calls: ``combine`` (ga*a + gb*b), ``product`` (the error of a product
of two erroneous values), ``scaled``, ``rolled`` (rotation), ``conj`` and ``slot_var``.
"""
from __future__ import annotations

import numpy as np

from . import noise


def _abs2(g):
    """|g|^2 of a scalar or an array."""
    if isinstance(g, (int, float)):
        return g * g
    return g.real * g.real + g.imag * g.imag if np.iscomplexobj(g) else g * g


def _unit(g) -> bool:
    return isinstance(g, (int, float)) and (g == 1.0 or g == -1.0)


class VarianceError:
    """The per-slot variance ``state`` (a float, or an array broadcasting to batch x slots)."""

    sampled = False

    def __init__(self, state):
        self.state = state

    @classmethod
    def fresh(cls, var, shape, rng) -> "VarianceError":
        """An independent error of per-slot variance ``var`` (scalar or array)."""
        return cls(var)

    @classmethod
    def exact(cls, d) -> "VarianceError":
        """A known error ``d`` (a rounding of a constant), counted as its square."""
        return cls(_abs2(d))

    def combine(self, ga, other, gb) -> "VarianceError":
        """ga*self + gb*other (gains: scalars or per-slot arrays)."""
        if other is self:
            return VarianceError(_abs2(ga + gb) * self.state)
        if _unit(ga) and _unit(gb):
            return VarianceError(self.state + other.state)
        return VarianceError(_abs2(ga) * self.state + _abs2(gb) * other.state)

    def product(self, za, other, zb) -> "VarianceError":
        """The error of (za + self) * (zb + other) - za*zb: zb*self + za*other + self*other."""
        if other is self:
            return VarianceError(_abs2(za + zb) * self.state + 2.0 * self.state * self.state)
        return VarianceError(_abs2(zb) * self.state + _abs2(za) * other.state
                             + self.state * other.state)

    def scaled(self, g) -> "VarianceError":
        """g*self."""
        return self if _unit(g) else VarianceError(_abs2(g) * self.state)

    def rolled(self, k: int) -> "VarianceError":
        """The error after a rotation by k: slot i holds slot i + k's."""
        if np.ndim(self.state) == 0:
            return self
        return VarianceError(np.roll(self.state, -k, axis=-1))

    def conj(self) -> "VarianceError":
        """The error of the conjugated slots (same variances)."""
        return self

    def slot_var(self, shape) -> np.ndarray:
        """Per-slot variances as an array of ``shape``."""
        return np.broadcast_to(np.asarray(self.state, dtype=np.float64), shape)

    def draw(self, shape, rng) -> np.ndarray:
        """One sample of the error, for a decryption."""
        return _gaussian(self.slot_var(shape), rng)

    def max_error(self, shape, part: str, where=None) -> float:
        """The median of the largest slot error (see :func:`noise.max_error`)."""
        v = self.slot_var(shape)
        return noise.max_error(v if where is None else v[..., where], part)


class SampledError:
    """One draw ``state`` of the error (complex, broadcasting to batch x slots)."""

    sampled = True

    def __init__(self, state):
        self.state = state

    @classmethod
    def fresh(cls, var, shape, rng) -> "SampledError":
        """A draw of an independent error of per-slot variance ``var``."""
        return cls(_gaussian(np.broadcast_to(var, shape), rng))

    @classmethod
    def exact(cls, d) -> "SampledError":
        """A known error ``d``."""
        return cls(d)

    def combine(self, ga, other, gb) -> "SampledError":
        """ga*self + gb*other."""
        return SampledError(ga * self.state + gb * other.state)

    def product(self, za, other, zb) -> "SampledError":
        """zb*self + za*other + self*other."""
        return SampledError(zb * self.state + za * other.state + self.state * other.state)

    def scaled(self, g) -> "SampledError":
        """g*self."""
        return SampledError(g * self.state)

    def rolled(self, k: int) -> "SampledError":
        """The error after a rotation by k."""
        return SampledError(np.roll(self.state, -k, axis=-1))

    def conj(self) -> "SampledError":
        """The error of the conjugated slots."""
        return SampledError(np.conj(self.state))

    def slot_var(self, shape) -> np.ndarray:
        """|e|^2 per slot (the one-sample estimate of the variance)."""
        return np.broadcast_to(_abs2(np.asarray(self.state)), shape)

    def draw(self, shape, rng) -> np.ndarray:
        """The tracked sample."""
        return np.broadcast_to(self.state, shape)

    def max_error(self, shape, part: str, where=None) -> float:
        """The largest error of the sample (its real part with part="real")."""
        e = np.broadcast_to(self.state, shape)
        e = e if where is None else e[..., where]
        return float(np.max(np.abs(e.real if part == "real" else e)))


def _gaussian(var: np.ndarray, rng) -> np.ndarray:
    """Complex circular Gaussian samples of per-element variance ``var``."""
    sd = np.sqrt(np.asarray(var, dtype=np.float64) / 2.0)
    return sd * rng.standard_normal(sd.shape) + 1j * sd * rng.standard_normal(sd.shape)
