"""Numba kernels for sampling: a ChaCha20 keystream (RFC 8439) expanded into uniform
residues by rejection, and small signed integers lifted to RNS residues.

The ChaCha20 block function is an LLVM intrinsic (:func:`chacha20_block`, 32-bit words
throughout); the block loop around it has a straight-line body, so LLVM vectorizes it
across blocks. One kernel, :func:`uniform_rows_kernel`, runs it, for uniform residues and
for the raw keystream alike (modulus 0, i.e. 2^64).
"""
from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._numba_arith import mul_hi64
from .team import claim, launch

_U32 = np.uint32
_SHIFT = np.uint64(32)
CHUNK = 64  # ChaCha20 blocks per keystream refill: 4 KiB, 512 words of 64 bits
SIGMA_WORDS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


#: the quarter rounds of one ChaCha double round: four columns, then four diagonals
_DOUBLE_ROUND = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                 (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))
_STATE = types.UniTuple(types.uint32, 16)


@intrinsic
def chacha20_block(typingctx, state):
    """The ChaCha20 block function (RFC 8439 2.3) on a 16-word uint32 state tuple: 10
    double rounds, then the input added back (all words mod 2^32).

    Emitted as straight-line LLVM IR (320 add/xor/rotate triples; rotations are
    ``llvm.fshl``): a Numba-level version of the same code takes seconds to type and
    inline, this one milliseconds, and LLVM still vectorizes a loop of blocks around it.
    """
    if state != _STATE:
        return None
    sig = _STATE(_STATE)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fshl = builder.module.declare_intrinsic("llvm.fshl", [i32],
                                                ir.FunctionType(i32, [i32, i32, i32]))
        init = [builder.extract_value(args[0], i) for i in range(16)]
        x = list(init)

        def rotl(v, r):  # v <<< r in [0, 2^32)
            return builder.call(fshl, [v, v, ir.Constant(i32, r)])

        for _ in range(10):
            for a, b, c, d in _DOUBLE_ROUND:  # the quarter round, sums mod 2^32
                x[a] = builder.add(x[a], x[b])
                x[d] = rotl(builder.xor(x[d], x[a]), 16)
                x[c] = builder.add(x[c], x[d])
                x[b] = rotl(builder.xor(x[b], x[c]), 12)
                x[a] = builder.add(x[a], x[b])
                x[d] = rotl(builder.xor(x[d], x[a]), 8)
                x[c] = builder.add(x[c], x[d])
                x[b] = rotl(builder.xor(x[b], x[c]), 7)
        out = ir.Constant(context.get_value_type(_STATE), ir.Undefined)
        for i in range(16):
            out = builder.insert_value(out, builder.add(x[i], init[i]), i)  # mod 2^32
        return out

    return sig, codegen


#: serial kernels that release the GIL, run by the thread team (see team). Only one of
#: them holds the ChaCha20 loop: Numba compiles every function called from a kernel once
#: alone and again into the kernel, which for this loop takes 0.5-1 s each time.
_KERNEL = njit(cache=True, nogil=True, error_model="numpy")


@_KERNEL
def uniform_rows_kernel(inits, counter0, qs, limits, ratios, out, ctr):
    """out[r, k] = the k-th accepted 64-bit word x (x <= limits[r]) of the ChaCha20
    keystream of inits[r] from block counter0 on, reduced mod qs[r], for the rows r it
    claims; qs[r] = 0 stands for 2^64 (with limit 2^64 - 1: the raw keystream words).

    inits: (R, 16) uint32 states, the key in words 4..11 and the nonce in 13..15 (word 12,
    the block counter, is set here); out: (R, n) uint64. Word k of a stream is bytes
    8k..8k+7 (little endian): block k // 8, 32-bit words 2*(k % 8) and 2*(k % 8) + 1.
    limit = floor(2^64 / q) * q - 1 makes x mod q uniform; ratio = floor(2^64 / q) gives
    the quotient estimate of the reduction. Blocks are made CHUNK at a time into a
    word-major (16, CHUNK) buffer, a loop LLVM vectorizes across blocks.
    """
    n, chunk = np.uint64(out.shape[1]), np.uint64(CHUNK)
    buf = np.empty((16, CHUNK), dtype=np.uint32)
    r = claim(ctr)
    while r < out.shape[0]:
        s, q, limit, ratio, z = inits[r], qs[r], limits[r], ratios[r], out[r]
        s0, s1, s2, s3, s4, s5, s6, s7 = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
        s8, s9, s10, s11, s13, s14, s15 = s[8], s[9], s[10], s[11], s[13], s[14], s[15]
        got, block = np.uint64(0), np.uint64(counter0)
        while got < n:
            for b in range(chunk):
                c = _U32(block + b)  # block counter mod 2^32
                k = chacha20_block((s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, c, s13,
                                    s14, s15))
                buf[0, b], buf[1, b], buf[2, b], buf[3, b] = k[0:4]
                buf[4, b], buf[5, b], buf[6, b], buf[7, b] = k[4:8]
                buf[8, b], buf[9, b], buf[10, b], buf[11, b] = k[8:12]
                buf[12, b], buf[13, b], buf[14, b], buf[15, b] = k[12:16]
            block += chunk
            for b in range(chunk):
                for w in range(np.uint64(8)):
                    x = np.uint64(buf[w + w, b]) | (np.uint64(buf[w + w + 1, b]) << _SHIFT)
                    if x <= limit and got < n:
                        y = x - mul_hi64(x, ratio) * q  # x - floor(x*ratio/2^64)*q in [0, 2q)
                        z[got] = min(y, y - q)  # x mod q in [0, q); x itself when q = 0
                        got += np.uint64(1)
        r = claim(ctr)


def uniform_kernel(inits, qs, limits, ratios, out) -> None:
    """uniform_rows_kernel from block 0 over all rows of out (R, n) uint64, shared by the
    thread team; inits: (R, 16) uint32."""
    launch(uniform_rows_kernel, out.shape[0], inits, np.uint64(0), qs, limits, ratios, out)


_RAW = (np.zeros(1, dtype=np.uint64), np.full(1, (1 << 64) - 1, dtype=np.uint64))


def chacha20_blocks(init, counter0, buf) -> None:
    """buf[i, b] = word i of ChaCha20 block counter0 + b (the counter mod 2^32); init:
    (16,) uint32 state with the key in words 4..11 and the nonce in 13..15 (word 12 is
    set here); buf: (16, blocks) uint32.

    The raw stream comes from uniform_rows_kernel (modulus 0) as 64-bit words, so the
    ChaCha20 loop is compiled once; a raw-stream mode inside the kernel would cost 0.5 s
    more to compile than this transposing copy costs at run time (0.2 ms per MiB).
    """
    blocks = buf.shape[1]
    words = np.empty((1, 8 * blocks), dtype=np.uint64)
    zero, full = _RAW
    uniform_rows_kernel(np.array(init, dtype=np.uint32).reshape(1, 16), np.uint64(counter0),
                        zero, full, zero, words, np.zeros(1, dtype=np.int64))
    if sys.byteorder == "little":  # word 8b + w = 32-bit words 2w (low), 2w + 1 of block b
        buf[...] = words.view(np.uint32).reshape(blocks, 16).T
    else:
        pairs = words.reshape(blocks, 8).T
        buf[0::2], buf[1::2] = pairs & np.uint64(0xFFFFFFFF), pairs >> np.uint64(32)


def keystream_kernel(init, buf) -> None:
    """buf[i, b] = word i of ChaCha20 block b (see chacha20_blocks); buf: (16, blocks)."""
    chacha20_blocks(init, 0, buf)


@_KERNEL
def small_to_rns_rows_kernel(x, qs, out, ctr):
    """out[r, l, k] = x[r, k] mod qs[l] for small signed x (|x| < q) and the rows (r, l) it
    claims; x: (R, n) int64, out: (R, L, n) uint64."""
    nl, n = out.shape[1], out.shape[2]
    row = claim(ctr)
    while row < out.shape[0] * nl:
        r, l = row // nl, row % nl
        q = np.int64(qs[l])
        for k in range(n):
            v = x[r, k]
            out[r, l, k] = np.uint64(v + q if v < 0 else v)  # [0, q)
        row = claim(ctr)


def small_to_rns_kernel(x, qs, out) -> None:
    """out[r, l, k] = x[r, k] mod qs[l] for small signed x (|x| < q); x: (R, n) int64,
    out: (R, L, n) uint64 (rows shared by the thread team)."""
    launch(small_to_rns_rows_kernel, out.shape[0] * out.shape[1], x, qs, out)
