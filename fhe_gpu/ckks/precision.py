"""Precision in bits, as Lattigo reports it: -log2 of the error.

:func:`precision_bits` is the worst slot; :func:`precision_stats` the distribution (min,
mean, median over the slots, for the complex error and for its real and imaginary parts,
and the L2 precision -log2 of the RMS error), modelled on Lattigo's GetPrecisionStats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

#: bits reported for an exact slot (error 0): the precision of float64
EXACT_BITS = 53.0


def precision_bits(expected, got) -> float:
    """-log2(max |expected - got|) over all slots (inf when exact)."""
    err = float(np.max(np.abs(np.asarray(expected) - np.asarray(got))))
    return float("inf") if err == 0 else -float(np.log2(err))


@dataclass(frozen=True)
class PartPrecision:
    """Bits of one error part over the slots: ``min`` (worst slot), ``mean``, ``median``,
    and ``l2`` (-log2 of the RMS error)."""

    min: float
    mean: float
    median: float
    l2: float

    @classmethod
    def of(cls, err: np.ndarray) -> "PartPrecision":
        """The statistics of absolute errors ``err`` (exact slots count EXACT_BITS)."""
        bits = np.minimum(-np.log2(np.maximum(err, 2.0 ** -EXACT_BITS)), EXACT_BITS)
        rms = float(np.sqrt(np.mean(err * err)))
        return cls(float(bits.min()), float(bits.mean()), float(np.median(bits)),
                   EXACT_BITS if rms == 0 else min(EXACT_BITS, -float(np.log2(rms))))


@dataclass(frozen=True)
class PrecisionStats:
    """Precision of ``got`` against ``expected``: the complex error (``min``, ``mean``,
    ``median``, ``l2`` bits), its ``real`` and ``imag`` parts (:class:`PartPrecision`),
    ``max_abs_error`` and the number of ``slots``."""

    min: float
    mean: float
    median: float
    l2: float
    real: PartPrecision
    imag: PartPrecision
    max_abs_error: float
    slots: int

    def __str__(self):
        rows = [("complex", self.min, self.mean, self.median, self.l2)]
        rows += [(name, p.min, p.mean, p.median, p.l2)
                 for name, p in (("real", self.real), ("imag", self.imag))]
        lines = [f"precision over {self.slots} slots (bits; max |error| "
                 f"{self.max_abs_error:.3g})",
                 f"{'':8} {'min':>7} {'mean':>7} {'median':>7} {'L2':>7}"]
        lines += [f"{name:8} {a:7.2f} {b:7.2f} {c:7.2f} {d:7.2f}" for name, a, b, c, d in rows]
        return "\n".join(lines)


def precision_stats(expected, got) -> PrecisionStats:
    """The :class:`PrecisionStats` of ``got`` against ``expected`` (arrays of one shape,
    real or complex; every element counts as a slot)."""
    try:
        want = np.asarray(expected, dtype=np.complex128)
        have = np.asarray(got, dtype=np.complex128)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"precision_stats needs numeric arrays: {exc}") from None
    if want.shape != have.shape or want.size == 0:
        raise ParameterError(f"precision_stats needs two non-empty arrays of one shape, got "
                             f"{want.shape} and {have.shape}")
    diff = (have - want).ravel()
    if not np.all(np.isfinite(diff)):
        raise ParameterError("precision_stats got non-finite values")
    whole = PartPrecision.of(np.abs(diff))
    return PrecisionStats(whole.min, whole.mean, whole.median, whole.l2,
                          PartPrecision.of(np.abs(diff.real)),
                          PartPrecision.of(np.abs(diff.imag)),
                          float(np.max(np.abs(diff))), int(diff.size))
