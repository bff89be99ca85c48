"""Randomness: OS entropy keying a ChaCha20 keystream per use, by domain separation
(the ChaCha20 key of a use is SHAKE-256 of the seed and the use's label).

* uniform mod q by rejection over 64-bit words (x < floor(2^64/q)*q, then x mod q) of a
  ChaCha20 keystream keyed per (seed, label, batch row, prime),
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
import threading
import weakref

import numpy as np

from ..errors import ParameterError
from ..ring import _numba_sampling

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


def _chacha_state(seed: bytes, label: bytes) -> np.ndarray:
    """The ChaCha20 input state (16 uint32 words) keyed by SHAKE-256(seed || label)."""
    key = np.frombuffer(xof(seed, label, 32), dtype="<u4")
    return np.concatenate([np.array(_numba_sampling.SIGMA_WORDS, dtype=np.uint32), key,
                           np.zeros(4, dtype=np.uint32)])


def keystream(seed: bytes, label: bytes, nbytes: int) -> bytes:
    """``nbytes`` of the ChaCha20 keystream (nonce 0, counter from 0) keyed by
    SHAKE-256(seed || label)."""
    buf = np.empty((16, -(-nbytes // 64)), dtype=np.uint32)
    _numba_sampling.keystream_kernel(_chacha_state(seed, label), buf)
    return buf.T.astype("<u4").tobytes()[:nbytes]


def _uniform_rows(seed: bytes, label: bytes, rows, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (len(rows), n) with the uniform rows (batch row b, prime q) of ``rows``:
    the ChaCha20 keystream keyed by SHAKE-256(seed || label/b/q), rejection-sampled."""
    inits = np.stack([_chacha_state(seed, label + b"/%d/%d" % (b, q)) for b, q in rows]) \
        if rows else np.zeros((0, 16), dtype=np.uint32)
    qs = np.array([q for _, q in rows], dtype=np.uint64)
    ratios = np.array([(1 << 64) // q for _, q in rows], dtype=np.uint64)
    limits = np.array([((1 << 64) // q) * q - 1 for _, q in rows], dtype=np.uint64)
    _numba_sampling.uniform_kernel(inits, qs, limits, ratios, out)
    return out


def uniform_poly(seed: bytes, label: bytes, primes, n: int, batch: int = 0) -> np.ndarray:
    """A uniform RNS polynomial (limbs, n); ``batch`` > 0 gives (batch, limbs, n).

    Row (b, q) is the ChaCha20 keystream (RFC 8439, nonce 0) keyed by SHAKE-256(seed ||
    label/b/q), read as little-endian 64-bit words x, keeping x < floor(2^64/q)*q, mod q.
    """
    primes = [int(q) for q in primes]
    rows = [(b, q) for b in range(max(batch, 1)) for q in primes]
    out = _uniform_rows(seed, label, rows, np.empty((len(rows), n), dtype=np.uint64))
    data = out.reshape(max(batch, 1), len(primes), n)
    return data if batch else data[0]


def uniform_poly_row(seed: bytes, label: bytes, primes, n: int, row: int, out) -> np.ndarray:
    """Batch row ``row`` of :func:`uniform_poly` (seed, label, primes, n, batch > row)
    written into ``out`` (len(primes), n), C-contiguous uint64: the same values."""
    return _uniform_rows(seed, label, [(row, int(q)) for q in primes], out)


class Sampler:
    """A CSPRNG stream: ChaCha20 keystreams keyed from a 32-byte seed (OS entropy when None).

    ``purpose`` separates the streams of one seed: a KeyGenerator (b"keygen") and an
    Encryptor (b"encrypt") given the same test seed draw independent streams, so their
    samples (the secret and the encryption's u) never coincide.

    ``seed`` is for reproducible tests only: a seeded sampler is deterministic, also across
    ``os.fork()`` (parent and child then draw the same stream). A sampler seeded from OS
    entropy (``seed=None``) re-keys itself from fresh ``os.urandom`` in the child of every
    fork, so a forked worker never repeats its parent's (or a sibling's) randomness.
    Samplers are thread-safe: concurrent draws never share a stream position.
    """

    def __init__(self, seed: bytes | None = None, purpose: bytes = b""):
        if seed is not None and (not isinstance(seed, (bytes, bytearray)) or len(seed) < 16):
            raise ParameterError(f"seed must be bytes of at least 16 bytes (for reproducible "
                                 f"tests only) or None, got {seed!r:.60}")
        self._purpose = bytes(purpose)
        self._lock = threading.Lock()
        self._rekey(seed)
        if seed is None:
            _ENTROPY_SAMPLERS.add(self)

    def _rekey(self, seed: bytes | None) -> None:
        """Key the stream from ``seed`` (fresh OS entropy when None), counter back to 0."""
        if seed is None:
            seed = os.urandom(SEED_BYTES)
        self._key = hashlib.sha3_256(b"fhe_gpu sampler|" + self._purpose + b"|"
                                     + bytes(seed)).digest()
        self._counter = 0

    def _after_fork_in_child(self) -> None:
        """Fresh OS entropy in a forked child; a new lock (the parent's may have been held
        by a thread that does not exist in the child)."""
        self._lock = threading.Lock()
        self._rekey(None)

    def _bytes(self, nbytes: int) -> bytes:
        with self._lock:
            self._counter += 1
            key, counter = self._key, self._counter
        return keystream(key, b"stream%d" % counter, nbytes)

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

    def sparse_ternary(self, n: int, weight: int) -> np.ndarray:
        """int8 (n,) with exactly ``weight`` nonzero values, each +1 or -1, at positions
        uniform among the C(n, weight) subsets (a partial Fisher-Yates shuffle with
        rejection-sampled indices: no modulo bias)."""
        n, weight = int(n), int(weight)
        if not 0 < weight <= n:
            raise ParameterError(f"hamming weight must be in [1, {n}], got {weight}")
        pos = np.arange(n)
        bits = max(1, (n - 1).bit_length())
        words = np.empty(0, dtype=np.uint32)
        for i in range(weight):
            span = n - i
            while True:
                if not words.size:
                    words = np.frombuffer(self._bytes(4 * (2 * weight + 16)), dtype="<u4")
                j, words = int(words[0]) & ((1 << bits) - 1), words[1:]
                if j < span:
                    break
            pos[i], pos[i + j] = pos[i + j], pos[i]
        signs = np.frombuffer(self._bytes(weight), dtype=np.uint8) & 1
        out = np.zeros(n, dtype=np.int8)
        out[pos[:weight]] = (2 * signs.astype(np.int8) - 1)
        return out

    def gaussian(self, shape) -> np.ndarray:
        """int64 discrete Gaussian values (sigma 3.19, |x| <= 6 sigma)."""
        size = int(np.prod(shape))
        words = np.frombuffer(self._bytes(8 * size), dtype="<u8")
        u = (words >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        idx = np.minimum(np.searchsorted(_CDF, u, side="right"), 2 * TAIL)
        return (idx.astype(np.int64) - TAIL).reshape(shape)


#: samplers keyed from OS entropy, re-keyed in the child of every fork
_ENTROPY_SAMPLERS: "weakref.WeakSet[Sampler]" = weakref.WeakSet()


def _rekey_after_fork() -> None:
    for sampler in list(_ENTROPY_SAMPLERS):
        sampler._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rekey_after_fork)


def to_rns(x: np.ndarray, primes) -> np.ndarray:
    """Small signed integers (..., n) as residues (..., limbs, n) uint64."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    q = np.array(primes, dtype=np.uint64)
    if x.ndim == 0 or not len(q) or (x.size and int(np.abs(x).max()) >= int(q.min())):
        return (x[..., None, :] % q.astype(np.int64).reshape(-1, 1)).astype(np.uint64)
    out = np.empty(x.shape[:-1] + (len(q), x.shape[-1]), dtype=np.uint64)
    _numba_sampling.small_to_rns_kernel(x.reshape(-1, x.shape[-1]),
                                        q, out.reshape(-1, len(q), x.shape[-1]))
    return out
