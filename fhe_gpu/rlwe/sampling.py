"""Randomness: OS entropy seeding a SHAKE-256 XOF, expanded per use by domain separation.

* uniform mod q by rejection over 64-bit words (x < floor(2^64/q)*q, then x mod q),
* ternary secrets uniform in {-1, 0, 1} (bytes, reject 255, then mod 3),
* discrete Gaussian errors with sigma = 3.19, tail-cut at 6 sigma, by inversion of a
  cumulative table with 53-bit uniform reals.

A uniform polynomial expanded from a seed depends only on (seed, label, prime), so the
same seed gives the same limb whatever basis (level) it is expanded over.
"""
from __future__ import annotations

import hashlib
import math
import os

import numpy as np

SIGMA = 3.19
TAIL = int(math.ceil(6 * SIGMA))
SEED_BYTES = 32


def _gaussian_cdf() -> np.ndarray:
    xs = np.arange(-TAIL, TAIL + 1)
    w = np.exp(-(xs.astype(np.float64) ** 2) / (2 * SIGMA * SIGMA))
    return np.cumsum(w / w.sum())


_CDF = _gaussian_cdf()


def xof(seed: bytes, label: bytes, nbytes: int) -> bytes:
    """``nbytes`` of SHAKE-256(seed || label)."""
    return hashlib.shake_256(seed + b"|" + label).digest(nbytes)


def uniform_mod(seed: bytes, label: bytes, q: int, n: int) -> np.ndarray:
    """n values uniform in [0, q) expanded from (seed, label), by rejection."""
    limit = np.uint64(((1 << 64) // q) * q - 1)
    want, out, chunk = n, [], 0
    while want > 0:
        words = np.frombuffer(xof(seed, label + b"#%d" % chunk, 8 * (want + want // 8 + 16)),
                              dtype="<u8")
        ok = words[words <= limit]
        out.append(ok[:want])
        want -= len(out[-1])
        chunk += 1
    return np.concatenate(out) % np.uint64(q)


def uniform_poly(seed: bytes, label: bytes, primes, n: int, batch: int = 0) -> np.ndarray:
    """A uniform RNS polynomial (limbs, n); ``batch`` > 0 gives (batch, limbs, n)."""
    rows = range(max(batch, 1))
    data = np.stack([np.stack([uniform_mod(seed, label + b"/%d/%d" % (b, q), q, n)
                               for q in primes]) for b in rows])
    return data if batch else data[0]


class Sampler:
    """A CSPRNG stream: SHAKE-256 keyed by a 32-byte seed (OS entropy when None)."""

    def __init__(self, seed: bytes | None = None):
        if seed is None:
            seed = os.urandom(SEED_BYTES)
        self._key = hashlib.sha3_256(b"fhe_gpu sampler|" + bytes(seed)).digest()
        self._counter = 0

    def _bytes(self, nbytes: int) -> bytes:
        self._counter += 1
        return xof(self._key, b"stream%d" % self._counter, nbytes)

    def seed(self) -> bytes:
        """A fresh 32-byte seed for expanding a public uniform component."""
        return self._bytes(SEED_BYTES)

    def ternary(self, shape) -> np.ndarray:
        """int8 values uniform in {-1, 0, 1}."""
        size = int(np.prod(shape))
        got = np.empty(0, dtype=np.uint8)
        while got.size < size:
            raw = np.frombuffer(self._bytes(size + size // 16 + 64), dtype=np.uint8)
            got = np.concatenate([got, raw[raw < 255]])
        return ((got[:size] % 3).astype(np.int8) - 1).reshape(shape)

    def gaussian(self, shape) -> np.ndarray:
        """int64 discrete Gaussian values (sigma 3.19, |x| <= 6 sigma)."""
        size = int(np.prod(shape))
        words = np.frombuffer(self._bytes(8 * size), dtype="<u8")
        u = (words >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        idx = np.minimum(np.searchsorted(_CDF, u, side="right"), 2 * TAIL)
        return (idx.astype(np.int64) - TAIL).reshape(shape)


def to_rns(x: np.ndarray, primes) -> np.ndarray:
    """Small signed integers (..., n) as residues (..., limbs, n) uint64."""
    q = np.array(primes, dtype=np.int64).reshape(-1, 1)
    return (np.asarray(x, dtype=np.int64)[..., None, :] % q).astype(np.uint64)
