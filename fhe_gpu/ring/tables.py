"""RNS bases and their precomputed tables (computed once, by the C++ core, and cached).

A :class:`PrimeSet` is the ordered list of every prime a parameter set uses (Q then P)
with its NTT tables stacked, shape ``(primes, n)``. A :class:`Basis` is a selection of
those primes by index: the limb axis of an array. Kernels receive the stacked tables and
the index vector, so a basis at any level costs no table copies.

Cache lifetime: every table derived from a PrimeSet (its bases, base-conversion constants,
Galois permutations, and the backends' own constants in :attr:`PrimeSet.cache` and
:attr:`Basis.cache`) is stored on the PrimeSet or on one of its bases, never in a
process-wide cache that holds it strongly. A PrimeSet is shared while it is alive
(:func:`prime_set` keeps weak references only), so when the last Context of a parameter
set and the objects made under it are dropped, all of its tables are freed together.
"""
from __future__ import annotations

import threading
import weakref
from functools import cached_property

import numpy as np

from . import _core

_PRIME_SETS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_PERMS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


class PrimeSet:
    """Every prime of a parameter set with NTT tables (bit-reversed, Shoup constants)."""

    def __init__(self, n: int, primes: tuple[int, ...]):
        self.n = int(n)
        self.primes = tuple(int(p) for p in primes)
        self.log_n = self.n.bit_length() - 1
        rows = [_core.ntt_tables(q, self.n) for q in self.primes]
        self.q = np.array(self.primes, dtype=np.uint64)
        self.psi_rev = np.stack([r[0] for r in rows])
        self.psi_rev_shoup = np.stack([r[1] for r in rows])
        self.ipsi_rev = np.stack([r[2] for r in rows])
        self.ipsi_rev_shoup = np.stack([r[3] for r in rows])
        self.n_inv = np.array([r[4] for r in rows], dtype=np.uint64)
        self.n_inv_shoup = np.array([r[5] for r in rows], dtype=np.uint64)
        #: scratch space of the backends (their key -> their derived constants); freed
        #: with the PrimeSet
        self.cache: dict = {}
        self._bases: dict[tuple[int, ...], Basis] = {}
        self._perms: dict[int, np.ndarray] = {}

    def __repr__(self):
        return f"PrimeSet(n={self.n}, primes={len(self.primes)})"

    def galois_permutation(self, galois_elt: int) -> np.ndarray:
        """:func:`galois_permutation` of ``galois_elt`` mod 2n, cached on this PrimeSet."""
        elt = int(galois_elt) % (2 * self.n)
        perm = self._perms.get(elt)
        if perm is None:
            perm = self._perms[elt] = galois_permutation(elt, self.n)
        return perm


def prime_set(n: int, primes: tuple[int, ...]) -> PrimeSet:
    """The PrimeSet of (n, primes): the same object while one is alive, else a new one."""
    key = (int(n), tuple(int(p) for p in primes))
    got = _PRIME_SETS.get(key)
    if got is None:
        with _LOCK:
            got = _PRIME_SETS.get(key)
            if got is None:
                got = _PRIME_SETS[key] = PrimeSet(*key)
    return got


class Basis:
    """The primes of a limb axis: indices into a PrimeSet. Hashable; use :func:`basis`."""

    def __init__(self, universe: PrimeSet, idx: tuple[int, ...]):
        self.universe = universe
        self.idx = tuple(int(i) for i in idx)
        self.primes = tuple(universe.primes[i] for i in self.idx)
        self.n = universe.n
        self.idx_arr = np.array(self.idx, dtype=np.int64)
        self.q = universe.q[self.idx_arr]
        #: scratch space of the backends (their key -> their derived constants); freed
        #: with the PrimeSet
        self.cache: dict = {}
        self._convs: dict[Basis, BaseConv] = {}
        self._key_index: dict[Basis, np.ndarray] = {}

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return basis(self.universe, self.idx[item])
        raise TypeError("Basis supports slicing only")

    def __add__(self, other: "Basis") -> "Basis":
        if other.universe is not self.universe:
            raise ValueError("cannot join bases of different prime sets")
        return basis(self.universe, self.idx + other.idx)

    def __repr__(self):
        return f"Basis(n={self.n}, idx={self.idx})"

    @cached_property
    def product(self) -> int:
        """The product of the primes (a Python int)."""
        out = 1
        for p in self.primes:
            out *= p
        return out


def basis(universe: PrimeSet, idx: tuple[int, ...]) -> Basis:
    """The Basis selecting ``idx`` from ``universe`` (one object per idx, cached on it)."""
    got = universe._bases.get(idx)
    if got is None:
        idx = tuple(int(i) for i in idx)
        got = universe._bases.setdefault(idx, Basis(universe, idx))
    return got


class BaseConv:
    """Constants of the fast base conversion src -> dst and of the division by src.

    ``hat_inv[i] = (S/s_i)^-1 mod s_i`` (with Shoup), ``hat_mod[t, i] = (S/s_i) mod d_t``,
    ``half_src = floor(S/2) mod s_i``, ``half_dst = floor(S/2) mod d_t``,
    ``src_inv_dst[t] = S^-1 mod d_t`` (with Shoup; only when gcd(S, d_t) = 1),
    ``src_mod_dst[t] = S mod d_t`` and ``recip_hi[i], recip_lo[i]``, the two words of
    floor(2^128 / s_i), for the exact centered conversion of reference.exact_convert.
    """

    def __init__(self, src: Basis, dst: Basis):
        self.src, self.dst = src, dst
        t = _core.base_conv_tables(list(src.primes), list(dst.primes))
        self.hat_inv, self.hat_inv_shoup, self.hat_mod = t
        half = src.product // 2
        self.half_src = np.array([half % p for p in src.primes], dtype=np.uint64)
        self.half_dst = np.array([half % p for p in dst.primes], dtype=np.uint64)
        inv = [pow(src.product % p, -1, p) if src.product % p else 0 for p in dst.primes]
        self.src_inv_dst = np.array(inv, dtype=np.uint64)
        self.src_mod_dst = np.array([src.product % p for p in dst.primes], dtype=np.uint64)
        recip = [(1 << 128) // p for p in src.primes]
        self.recip_hi = np.array([r >> 64 for r in recip], dtype=np.uint64)
        self.recip_lo = np.array([r & ((1 << 64) - 1) for r in recip], dtype=np.uint64)
        self.src_inv_dst_shoup = np.array(
            [_core.shoup(v, p) for v, p in zip(inv, dst.primes)], dtype=np.uint64)


def base_conv(src: Basis, dst: Basis) -> BaseConv:
    """The conversion constants src -> dst (cached on ``src``)."""
    got = src._convs.get(dst)
    if got is None:
        got = src._convs.setdefault(dst, BaseConv(src, dst))
    return got


def key_limb_index(basis: Basis, key_basis: Basis) -> np.ndarray:
    """Row in ``key_basis`` of every prime of ``basis`` (int64), for key_switch_inner
    (cached on ``basis``; do not modify)."""
    got = basis._key_index.get(key_basis)
    if got is None:
        pos = {p: i for i, p in enumerate(key_basis.primes)}
        missing = [p for p in basis.primes if p not in pos]
        if missing:
            raise ValueError(f"key basis {key_basis} lacks primes {missing} of {basis}")
        got = np.array([pos[p] for p in basis.primes], dtype=np.int64)
        got = basis._key_index.setdefault(key_basis, got)
    return got


def broadcast_groups(xp, arrays):
    """Leading axes of broadcasting operands (..., L, n) merged into two row axes.

    Returns (arrays, lead, groups): ``lead`` is the broadcast leading shape and
    ``groups = [(full0, o0), (full1, o1)]`` where ``o_k`` is the size of merged axis k and
    ``full_k[i]`` tells whether operand i runs along it (else it repeats). Operands whose
    pattern needs more than two merged axes are materialised at the full shape.
    """
    lead = tuple(np.broadcast_shapes(*(x.shape[:-2] for x in arrays)))
    pads = [(1,) * (len(lead) - x.ndim + 2) + x.shape[:-2] for x in arrays]
    groups: list[list] = []
    for k, size in enumerate(lead):
        if size == 1:
            continue
        full = tuple(p[k] != 1 for p in pads)
        if groups and groups[-1][0] == full:
            groups[-1][1] *= size
        else:
            groups.append([full, size])
    if len(groups) > 2:
        arrays = [xp.ascontiguousarray(xp.broadcast_to(x, lead + x.shape[-2:])) for x in arrays]
        groups = [[(True,) * len(arrays), int(np.prod(lead))]]
    groups = [[(False,) * len(arrays), 1]] * (2 - len(groups)) + groups
    return arrays, lead, [tuple(g) for g in groups]


def digit_ranges(level_limbs: int, alpha: int) -> list[tuple[int, int]]:
    """[start, stop) limb ranges of the key-switching digits (see reference.digits)."""
    return [(s, min(s + alpha, level_limbs)) for s in range(0, level_limbs, alpha)]


def galois_permutation(galois_elt: int, n: int) -> np.ndarray:
    """perm (int64, length n, read-only) with automorphism(a)[j] = a[perm[j]] (bit-reversed
    NTT order).

    Shared while some PrimeSet holds it (:meth:`PrimeSet.galois_permutation`, the cached
    path), recomputed otherwise.
    """
    key = (int(galois_elt) % (2 * int(n)), int(n))
    perm = _PERMS.get(key)
    if perm is None:
        elt, n = key
        log_n = n.bit_length() - 1
        j = np.arange(n, dtype=np.int64)
        e = (elt * (2 * _bit_reverse(j, log_n) + 1)) % (2 * n)
        perm = _bit_reverse((e - 1) // 2, log_n)
        perm.flags.writeable = False
        perm = _PERMS.setdefault(key, perm)
    return perm


def _bit_reverse(x: np.ndarray, log_n: int) -> np.ndarray:
    out = np.zeros_like(x)
    for b in range(log_n):
        out |= ((x >> b) & 1) << (log_n - 1 - b)
    return out
