"""Modular arithmetic for the Numba kernels: the twin of ``csrc/modarith.h``.

Every value is a ``uint64``; moduli are primes q < 2^61, so 4q < 2^64 and the lazy
(Harvey) ranges [0, 2q) and [0, 4q) never overflow. Numba has no 128-bit integer type:
:func:`mul_wide` and :func:`mul_hi64` are LLVM intrinsics that zero-extend to i128,
multiply and split, which compiles to one ``mul`` instruction.

Numba promotes ``uint64 op int64`` to float64, so every constant used with uint64
values below is a ``np.uint64``. Numba's on-disk cache checks only the timestamp of the
file defining a cached kernel: after editing this file, touch ``_numba_kernels.py``.

Constants per modulus q (computed on the host, see :func:`barrett_ratio`, :func:`shoup`):
* Shoup: ``w' = floor(w * 2^64 / q)`` for a constant multiplier ``w < q``.
* Barrett: ``ratio = floor(2^128 / q)`` as two words (hi, lo).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: decorator of the functions that only Numba code calls (never Python): without the
#: CPython and cfunc wrappers Numba would otherwise build for each, they compile faster
inner = njit(error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)

ZERO = np.uint64(0)
ONE = np.uint64(1)
TWO = np.uint64(2)
HALF = np.uint64(1 << 63)


@intrinsic
def mul_hi64(typingctx, a, b):
    """The high 64 bits of the 128-bit product a*b (a, b: uint64)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        x = builder.zext(args[0], i128)
        y = builder.zext(args[1], i128)
        hi = builder.lshr(builder.mul(x, y), ir.Constant(i128, 64))
        return builder.trunc(hi, ir.IntType(64))

    return sig, codegen


@intrinsic
def mul_wide(typingctx, a, b):
    """The 128-bit product a*b as a tuple (hi, lo) of uint64."""
    ret = types.UniTuple(types.uint64, 2)
    sig = ret(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), i64)
        lo = builder.trunc(p, i64)
        return context.make_tuple(builder, ret, (hi, lo))

    return sig, codegen


@inner
def reduce_2q(x, q):
    """x mod q for x in [0, 2q): the smaller of x and x - q (wraps when x < q)."""
    return min(x, x - q)  # r in [0, q)


@inner
def shoup_mul(a, w, w_shoup, q):
    """a*w mod q up to one q, for any a < 2^64 and w < q with its Shoup quotient."""
    qhat = mul_hi64(a, w_shoup)  # qhat in {floor(a*w/q) - 1, floor(a*w/q)}
    return a * w - qhat * q  # r = a*w mod q; a in [0, 2^64), r in [0, 2q)


@inner
def shoup_mul_reduced(a, w, w_shoup, q):
    """a*w mod q for any a < 2^64 and w < q with its Shoup quotient."""
    return reduce_2q(shoup_mul(a, w, w_shoup, q), q)  # r in [0, q)


@inner
def add_mod(a, b, q):
    """(a + b) mod q for a, b in [0, q)."""
    return reduce_2q(a + b, q)  # a + b in [0, 2q), r in [0, q)


@inner
def sub_mod(a, b, q):
    """(a - b) mod q for a, b in [0, q)."""
    return reduce_2q(a + (q - b), q)  # a + q - b in (0, 2q), r in [0, q)


@inner
def barrett_reduce_128(hi, lo, q, ratio_hi, ratio_lo):
    """(hi*2^64 + lo) mod q for any 128-bit value; ratio = floor(2^128 / q).

    The quotient estimate floor(x * ratio / 2^128) (taken mod 2^64, which is all the
    final subtraction needs) is at most one below floor(x / q).
    """
    c0 = mul_hi64(lo, ratio_lo)  # word 1 of lo*ratio_lo
    p1_hi, p1_lo = mul_wide(lo, ratio_hi)  # lo*ratio_hi, words 1-2
    t1 = p1_lo + c0  # word 1 partial sum, carry below
    t3 = p1_hi + (ONE if t1 < p1_lo else ZERO)  # word 2 partial, no overflow (< 2^64)
    p2_hi, p2_lo = mul_wide(hi, ratio_lo)  # hi*ratio_lo, words 1-2
    t1b = t1 + p2_lo  # word 1 complete, carry below
    est = hi * ratio_hi + t3 + p2_hi + (ONE if t1b < t1 else ZERO)  # word 2 = quotient mod 2^64
    r = lo - est * q  # r = x - est*q in [0, 2q) (exact mod 2^64)
    return reduce_2q(r, q)  # r in [0, q)


@inner
def reduce_wide(hi, lo, q, mu, sh):
    """(hi*2^64 + lo) mod q for x = hi*2^64 + lo < 2^(k+63), k the bit length of q.

    sh = k - 1 and mu = floor(2^(64+sh) / q) < 2^64 (see :func:`wide_consts`): the
    estimate floor(floor(x / 2^sh) * mu / 2^64) is at most two below floor(x / q).
    """
    x1 = (hi << (np.uint64(64) - sh)) | (lo >> sh)  # floor(x / 2^sh) < 2^64
    est = mul_hi64(x1, mu)  # est in [floor(x/q) - 2, floor(x/q)]
    r = lo - est * q  # x - est*q in [0, 3q) (exact mod 2^64)
    r = min(r, r - q)  # [0, 2q)
    return min(r, r - q)  # [0, q)


@inner
def mul_mod_wide(a, b, c, q, mu, sh):
    """(a*b + c) mod q for a, b, c in [0, q) by :func:`reduce_wide` (3 multiplications)."""
    hi, lo = mul_wide(a, b)  # a*b <= (q-1)^2
    lo2 = lo + c  # a*b + c < q^2 < 2^(2k) <= 2^(k+63), carry below
    hi = hi + (ONE if lo2 < lo else ZERO)
    return reduce_wide(hi, lo2, q, mu, sh)  # [0, q)


@inner
def mul_mod(a, b, q, ratio_hi, ratio_lo):
    """a*b mod q for a, b < 2^64 (Barrett on the 128-bit product)."""
    hi, lo = mul_wide(a, b)  # a*b < 2^128
    return barrett_reduce_128(hi, lo, q, ratio_hi, ratio_lo)  # r in [0, q)


@inner
def mul_add_mod(a, b, c, q, ratio_hi, ratio_lo):
    """(a*b + c) mod q for a, b, c in [0, q)."""
    hi, lo = mul_wide(a, b)  # a*b < q^2 < 2^122
    lo2 = lo + c  # a*b + c < 2^123, carry below
    hi = hi + (ONE if lo2 < lo else ZERO)
    return barrett_reduce_128(hi, lo2, q, ratio_hi, ratio_lo)  # r in [0, q)


@inner
def shoup_quotient(w, q, ratio_hi, ratio_lo):
    """floor(w * 2^64 / q) for w < q (the Shoup constant), by Barrett division."""
    c0 = mul_hi64(w, ratio_lo)  # x = w*2^64: words (hi=w, lo=0); est = w*ratio >> 64
    est = w * ratio_hi + c0  # est in {floor(x/q) - 1, floor(x/q)}
    r = ZERO - est * q  # r = x - est*q in [0, 2q) (exact mod 2^64)
    return est + (ONE if r >= q else ZERO)  # quotient floor(w*2^64/q)


def barrett_ratio(q: int) -> tuple[int, int]:
    """(hi, lo) words of floor(2^128 / q) (host side)."""
    r = (1 << 128) // int(q)
    return r >> 64, r & ((1 << 64) - 1)


def wide_consts(q: int) -> tuple[int, int]:
    """(mu, sh) of :func:`reduce_wide`: sh = bit_length(q) - 1, mu = floor(2^(64+sh) / q)."""
    sh = int(q).bit_length() - 1
    return (1 << (64 + sh)) // int(q), sh


def wide_ok(bound: int, q: int) -> bool:
    """True when values below ``bound`` may be reduced mod q by :func:`reduce_wide`."""
    return int(bound) <= 1 << (int(q).bit_length() + 63)


def shoup(w: int, q: int) -> int:
    """floor(w * 2^64 / q) for w < q (host side)."""
    return (int(w) << 64) // int(q)
