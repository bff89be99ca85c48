"""Precision in bits, as Lattigo reports it: -log2 of the error."""
from __future__ import annotations

import numpy as np


def precision_bits(expected, got) -> float:
    """-log2(max |expected - got|) over all slots (inf when exact)."""
    err = float(np.max(np.abs(np.asarray(expected) - np.asarray(got))))
    return float("inf") if err == 0 else -float(np.log2(err))


def precision_stats(expected, got) -> dict:
    """Min (worst), mean and median precision in bits over the slots."""
    err = np.abs(np.asarray(expected) - np.asarray(got)).ravel()
    bits = -np.log2(np.maximum(err, np.finfo(np.float64).tiny))
    return {"min_bits": float(bits.min()), "mean_bits": float(bits.mean()),
            "median_bits": float(np.median(bits)), "max_abs_error": float(err.max())}
