"""Sums and replication over blocks of slots, by rotate-and-add (log2 n rotations each).

Slot layout: a *block* of n elements with stride ``stride`` is the set of slots
{base + j*stride : 0 <= j < n}; blocks tile the slot vector, block b of lane t (0 <= t <
stride) starting at slot b*n*stride + t. With ``stride=1`` the blocks are runs of n
consecutive slots; with ``stride = slots / n`` (n*stride == slots) there is one block per
lane spanning the whole slot vector, which is the interleaved layout of
:class:`~fhe_gpu.circuits.linear.LinearTransform` (element j of vector t at slot
j*stride + t), where rotations are cyclic within a block.

* :func:`inner_sum` (ct, n): the sum of each block. Rotations by stride*2^i, i < log2 n,
  leave in every slot s the window sum sum_j x[s + j*stride]; the first element of each
  block therefore holds its block's sum (``replicate=False``; the other elements hold
  window sums that straddle blocks). With ``replicate=True`` every element of the block
  holds the sum: free when n*stride == slots (the window is the block itself), otherwise
  one level (a 0/1 mask keeps the first elements) and log2 n more rotations (by
  -stride*2^i) to spread them.
* :func:`dot` (a, b, n): a*b (one rescale), then :func:`inner_sum`.
* :func:`replicate` (ct, n, m): a vector held in the first m elements of each block (the
  other elements zero) extended periodically: element i holds x[i mod m] for i < c, zero
  beyond, c = m * 2^r the smallest such multiple >= ``length`` (default n); c must not
  exceed n. Rotations by -stride*m*2^i, no level.

Each has a ``*_rotations`` helper listing exactly the Galois steps it needs, and a
cleartext twin (``*_plain``) computing the same thing on slot vectors.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..ckks import CIPHERTEXT_TYPES, EVALUATOR_TYPES, Ciphertext, Encoder, Evaluator
from ..errors import KeyMissingError, LevelError, ParameterError


def _pow2(what: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 or n & (n - 1):
        raise ParameterError(f"{what} must be a power of two >= 1, got {n!r}")
    return int(n)


def _positive(what: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ParameterError(f"{what} must be an integer >= 1, got {n!r}")
    return int(n)


def _check_blocks(n: int, stride: int, slots: int | None) -> None:
    if slots is not None and (n * stride > slots or slots % (n * stride)):
        raise ParameterError(f"blocks of n = {n} elements with stride {stride} span "
                             f"{n * stride} slots, which must divide the slot count {slots}")


def _cyclic(n: int, stride: int, slots: int | None) -> bool:
    return slots is not None and n * stride == slots


def inner_sum_rotations(n, replicate: bool = True, stride=1, slots=None) -> list[int]:
    """The rotation steps :func:`inner_sum` needs: stride*2^i for i < log2 n, and with
    ``replicate`` (unless n*stride == slots) also -stride*2^i."""
    n, stride = _pow2("n", n), _positive("stride", stride)
    _check_blocks(n, stride, slots)
    up = [stride << i for i in range(n.bit_length() - 1)]
    if replicate and not _cyclic(n, stride, slots):
        return up + [-k for k in up]
    return up


def inner_sum_depth(n, replicate: bool = True, stride=1, slots=None) -> int:
    """Levels :func:`inner_sum` consumes: 1 when it masks (replicate with n*stride <
    slots and n > 1), else 0."""
    n, stride = _pow2("n", n), _positive("stride", stride)
    return int(bool(replicate) and n > 1 and not _cyclic(n, stride, slots))


def _rotate_add(ev: Evaluator, ct: Ciphertext, steps) -> Ciphertext:
    for k in steps:
        ct = ev.add(ct, ev.rotate(ct, k))
    return ct


def _check_ct(ev: Evaluator, ct, what: str) -> Ciphertext:
    if not isinstance(ev, EVALUATOR_TYPES):
        raise ParameterError(f"{what} needs an Evaluator, got {type(ev).__name__}")
    if not isinstance(ct, CIPHERTEXT_TYPES):
        raise ParameterError(f"{what} needs a Ciphertext, got {type(ct).__name__}")
    ev.context.check(ct, f"{what}'s ciphertext")
    return ct


def check_galois_keys(ev: Evaluator, steps, what: str) -> None:
    """KeyMissingError listing every missing step, before any work."""
    galois = {} if ev.evk is None else ev.evk.galois
    missing = [k for k in steps if k % ev.context.slots
               and ev.context.galois_element(k) not in galois]
    if missing:
        raise KeyMissingError(f"{what} needs Galois keys for rotations {missing} (missing), "
                              f"of {list(steps)} in all")


def _first_mask(ev: Evaluator, ct: Ciphertext, n: int, stride: int) -> Ciphertext:
    """ct times the 0/1 mask of each block's first element, at scale q_l (scale kept)."""
    slots = ev.context.slots
    mask = ((np.arange(slots) // stride) % n == 0).astype(np.float64)
    pt = Encoder(ev.context).encode(mask, level=ct.level,
                                    scale=float(ev.context.q_primes[ct.level]))
    return ev.mul(ct, pt)


def inner_sum(ev: Evaluator, ct, n, replicate: bool = True, stride=1) -> Ciphertext:
    """The sum of each block of n elements (n a power of two; see the module docstring
    for the layout). ``replicate=True``: in every element of its block (one level unless
    n*stride == slots); False: in the block's first element only. Needs the Galois keys of
    :func:`inner_sum_rotations` (checked first: KeyMissingError lists the missing ones)."""
    ct = _check_ct(ev, ct, "inner_sum")
    n, stride = _pow2("n", n), _positive("stride", stride)
    slots = ev.context.slots
    _check_blocks(n, stride, slots)
    steps = inner_sum_rotations(n, replicate, stride, slots)
    check_galois_keys(ev, steps, f"inner_sum over n = {n} (stride {stride})")
    depth = inner_sum_depth(n, replicate, stride, slots)
    if ct.level < depth:
        raise LevelError(f"inner_sum with replicate=True over blocks of {n} < {slots} "
                         f"slots masks once and needs 1 level, the ciphertext is at level "
                         f"{ct.level}")
    half = len(steps) // 2 if depth else len(steps)
    out = _rotate_add(ev, ct, steps[:half])
    if depth:
        out = _rotate_add(ev, _first_mask(ev, out, n, stride), steps[half:])
    return out


def dot_rotations(n, replicate: bool = True, stride=1, slots=None) -> list[int]:
    """The rotation steps :func:`dot` needs (those of its inner_sum)."""
    return inner_sum_rotations(n, replicate, stride, slots)


def dot(ev: Evaluator, a, b, n, replicate: bool = True, stride=1) -> Ciphertext:
    """Blockwise inner products: inner_sum(a * b, n). ``b`` is a Ciphertext (relinearized
    product) or a Plaintext; depth 1 + :func:`inner_sum_depth`."""
    a = _check_ct(ev, a, "dot")
    n, stride = _pow2("n", n), _positive("stride", stride)
    slots = ev.context.slots
    _check_blocks(n, stride, slots)
    check_galois_keys(ev, inner_sum_rotations(n, replicate, stride, slots),
                f"dot over n = {n} (stride {stride})")
    need = 1 + inner_sum_depth(n, replicate, stride, slots)
    if a.level < need:
        raise LevelError(f"dot needs {need} levels (the product's rescale"
                         f"{' and the mask' if need > 1 else ''}), the ciphertext is at "
                         f"level {a.level}")
    return inner_sum(ev, ev.mul(a, b), n, replicate, stride)


def _replicate_steps(n: int, m: int, length: int) -> list[int]:
    steps, covered = [], m
    while covered < length:
        steps.append(covered)
        covered *= 2
    if covered > n and steps:
        raise ParameterError(f"replicating a period of m = {m} to length {length} writes "
                             f"{covered} elements, more than the block of n = {n}: use a "
                             f"power-of-two period dividing n, or a shorter length")
    return steps


def replicate_rotations(n, m=1, stride=1, length=None) -> list[int]:
    """The rotation steps :func:`replicate` needs: -stride*m*2^i while m*2^i < length."""
    n, m, stride = _positive("n", n), _positive("m", m), _positive("stride", stride)
    length = n if length is None else _positive("length", length)
    if m > n or length > n:
        raise ParameterError(f"replicate needs m <= n and length <= n, got m = {m}, "
                             f"length = {length}, n = {n}")
    return [-stride * k for k in _replicate_steps(n, m, length)]


def replicate(ev: Evaluator, ct, n, m=1, stride=1, length=None) -> Ciphertext:
    """Extend the vector held in the first m elements of each block of n (zeros beyond
    them, see the module docstring) periodically: element i holds x[i mod m] up to the
    first multiple m*2^r >= length (default n). No level; log2 rotations."""
    ct = _check_ct(ev, ct, "replicate")
    steps = replicate_rotations(n, m, stride, length)
    check_galois_keys(ev, steps, f"replicate (n = {n}, m = {m}, stride {stride})")
    return _rotate_add(ev, ct, steps)


# ---------------------------------------------------------------- cleartext twins
def _roll_add(z: np.ndarray, steps) -> np.ndarray:
    for k in steps:
        z = z + np.roll(z, -k, axis=-1)
    return z


def inner_sum_plain(z, n, replicate: bool = True, stride=1) -> np.ndarray:
    """:func:`inner_sum` on slot vectors z of shape (..., slots)."""
    z = np.asarray(z)
    slots = z.shape[-1]
    steps = inner_sum_rotations(n, replicate, stride, slots)
    if not inner_sum_depth(n, replicate, stride, slots):
        return _roll_add(z, steps)
    half = len(steps) // 2
    mask = (np.arange(slots) // stride) % n == 0
    return _roll_add(_roll_add(z, steps[:half]) * mask, steps[half:])


def replicate_plain(z, n, m=1, stride=1, length=None) -> np.ndarray:
    """:func:`replicate` on slot vectors z of shape (..., slots)."""
    return _roll_add(np.asarray(z), replicate_rotations(n, m, stride, length))
