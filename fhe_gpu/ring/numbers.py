"""Number theory and exact CRT from the C++ core, for the layers above the ring."""
from __future__ import annotations

import numpy as np

from . import _core


def generate_primes(n: int, bits: int, count: int, exclude=()) -> list[int]:
    """NTT-friendly primes q = 1 (mod 2n) nearest to 2^bits (see reference.generate_primes)."""
    return list(_core.generate_primes(int(n), int(bits), int(count), [int(x) for x in exclude]))


def crt_compose(residues: np.ndarray, primes, scale: float) -> np.ndarray:
    """Centered CRT value of coefficient-form residues (R, L, n), divided by ``scale``."""
    res = np.ascontiguousarray(residues, dtype=np.uint64)
    return _core.crt_compose(res, [int(p) for p in primes], float(scale))
