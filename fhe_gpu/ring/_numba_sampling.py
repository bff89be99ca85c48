"""Numba kernels for sampling: a ChaCha20 keystream (RFC 8439) expanded into uniform
residues by rejection, and small signed integers lifted to RNS residues.

ChaCha20 words are uint32; Numba widens integer arithmetic to 64 bits, so every result
is truncated back with ``np.uint32`` (LLVM narrows the operations to 32-bit lanes). The
block loop has a straight-line body (10 double rounds written out), so LLVM vectorizes
it across blocks; the keystream buffer is word-major ``(16, blocks)`` for plain vector
stores, and is read back in the standard byte order.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_arith import mul_hi64

_U32 = np.uint32
_SHIFT = np.uint64(32)
CHUNK = 64  # ChaCha20 blocks per keystream refill: 4 KiB, 512 words of 64 bits
SIGMA_WORDS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


@njit(inline="always")
def _rotl(x, r):
    """32-bit left rotation of x (a uint32) by r in (0, 32)."""
    return _U32((x << np.uint32(r)) | (x >> np.uint32(32 - r)))  # in [0, 2^32)


@njit(inline="always")
def _qr(a, b, c, d):
    """The ChaCha quarter round on four uint32 words (all sums mod 2^32)."""
    a = _U32(a + b)
    d = _rotl(d ^ a, 16)
    c = _U32(c + d)
    b = _rotl(b ^ c, 12)
    a = _U32(a + b)
    d = _rotl(d ^ a, 8)
    c = _U32(c + d)
    b = _rotl(b ^ c, 7)
    return a, b, c, d


@njit(inline="always")
def _double_round(s):
    """A column round then a diagonal round on the 16-word state tuple."""
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = s
    x0, x4, x8, x12 = _qr(x0, x4, x8, x12)
    x1, x5, x9, x13 = _qr(x1, x5, x9, x13)
    x2, x6, x10, x14 = _qr(x2, x6, x10, x14)
    x3, x7, x11, x15 = _qr(x3, x7, x11, x15)
    x0, x5, x10, x15 = _qr(x0, x5, x10, x15)
    x1, x6, x11, x12 = _qr(x1, x6, x11, x12)
    x2, x7, x8, x13 = _qr(x2, x7, x8, x13)
    x3, x4, x9, x14 = _qr(x3, x4, x9, x14)
    return (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15)


@njit(error_model="numpy")
def chacha20_blocks(init, counter0, buf):
    """buf[i, b] = word i of ChaCha20 block counter0 + b; init: (16,) uint32 state with the
    key in words 4..11 and the nonce in 13..15 (word 12, the counter, is set here);
    buf: (16, blocks)."""
    i0, i1, i2, i3, i4, i5, i6, i7 = init[0], init[1], init[2], init[3], init[4], init[5], \
        init[6], init[7]
    i8, i9, i10, i11, i13, i14, i15 = init[8], init[9], init[10], init[11], init[13], \
        init[14], init[15]
    for b in range(np.uint64(buf.shape[1])):
        c = _U32(counter0 + b)  # block counter mod 2^32
        s = (i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11, c, i13, i14, i15)
        s = _double_round(_double_round(_double_round(_double_round(_double_round(s)))))
        s = _double_round(_double_round(_double_round(_double_round(_double_round(s)))))
        buf[0, b], buf[1, b], buf[2, b], buf[3, b] = _add4(s[0:4], (i0, i1, i2, i3))
        buf[4, b], buf[5, b], buf[6, b], buf[7, b] = _add4(s[4:8], (i4, i5, i6, i7))
        buf[8, b], buf[9, b], buf[10, b], buf[11, b] = _add4(s[8:12], (i8, i9, i10, i11))
        buf[12, b], buf[13, b], buf[14, b], buf[15, b] = _add4(s[12:16], (c, i13, i14, i15))


@njit(inline="always")
def _add4(x, y):
    """Four keystream words x + y mod 2^32."""
    return _U32(x[0] + y[0]), _U32(x[1] + y[1]), _U32(x[2] + y[2]), _U32(x[3] + y[3])


@njit(error_model="numpy")
def uniform_row(init, q, limit, ratio, out, buf):
    """out[k] = the k-th accepted 64-bit keystream word x (x <= limit) reduced mod q.

    Word k of the stream is bytes 8k..8k+7 (little endian): block k // 8, 32-bit words
    2*(k % 8) and 2*(k % 8) + 1. limit = floor(2^64 / q) * q - 1 makes x mod q uniform;
    ratio = floor(2^64 / q) gives the quotient estimate of the reduction.
    """
    n = np.uint64(out.shape[0])
    got, block = np.uint64(0), np.uint64(0)
    while got < n:
        chacha20_blocks(init, block, buf)
        block += np.uint64(buf.shape[1])
        for b in range(np.uint64(buf.shape[1])):
            for w in range(np.uint64(8)):
                x = np.uint64(buf[w + w, b]) | (np.uint64(buf[w + w + 1, b]) << _SHIFT)
                if x <= limit:
                    r = x - mul_hi64(x, ratio) * q  # x - floor(x*ratio/2^64)*q in [0, 2q)
                    out[got] = min(r, r - q)  # x mod q in [0, q)
                    got += np.uint64(1)
                    if got == n:
                        return


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def uniform_kernel(inits, qs, limits, ratios, out):
    """out[r] = uniform_row(inits[r], qs[r], limits[r], ratios[r]); inits: (R, 16) uint32;
    out: (R, n)."""
    for r in prange(out.shape[0]):
        buf = np.empty((16, CHUNK), dtype=np.uint32)
        uniform_row(inits[r], qs[r], limits[r], ratios[r], out[r], buf)


@njit(cache=True, nogil=True, error_model="numpy")
def keystream_kernel(init, buf):
    """buf[i, b] = word i of ChaCha20 block b (see chacha20_blocks); buf: (16, blocks)."""
    chacha20_blocks(init, np.uint64(0), buf)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def small_to_rns_kernel(x, qs, out):
    """out[r, l, k] = x[r, k] mod qs[l] for small signed x (|x| < q); x: (R, n) int64,
    out: (R, L, n) uint64."""
    nl, n = out.shape[1], out.shape[2]
    for row in prange(out.shape[0] * nl):
        r, l = row // nl, row % nl
        q = np.int64(qs[l])
        for k in range(n):
            v = x[r, k]
            out[r, l, k] = np.uint64(v + q if v < 0 else v)  # [0, q)
