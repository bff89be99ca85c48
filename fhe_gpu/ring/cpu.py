"""The CPU backend: every RingBackend verb as one Numba kernel call (see _numba_kernels)
that the thread team runs (see team).

Wrappers here only validate shapes, make operands C-contiguous writable ``uint64`` (so
each kernel compiles once), reshape the batch axes flat and fetch the per-basis constants.
Constants derived from the tables (Barrett ratios, INTT constants with factors folded in, base
conversion matrices) are computed once and cached on the PrimeSet / Basis itself
(``cache[_KEY]``), so they are freed with the parameter set (see tables).
"""
from __future__ import annotations

import math

import mmap

import numpy as np

from . import _numba_kernels as K
from . import tables
from ._numba_arith import barrett_ratio, shoup, wide_consts, wide_ok
from .backend import RingBackend, key_slots
from .pool import POOL
from .team import launch

_U64 = np.uint64
_MAX_TERMS = 64  # products < 2^122 summed in 128 bits
_CONV_BLOCK = 1024  # coefficients per base-conversion work item: alpha * 8 KiB in cache

# ----------------------------------------------------------------------------- constants

_KEY = "cpu"  # this backend's entry in PrimeSet.cache / Basis.cache (constants are host
#              arrays, the same for every CpuBackend instance)


class _PrimeConsts:
    """Per-PrimeSet constants: Barrett ratios and reduce_wide constants of every prime."""

    def __init__(self, universe: tables.PrimeSet):
        rows = [barrett_ratio(q) + wide_consts(q) for q in universe.primes]
        #: (U, 4): Barrett ratio floor(2^128/q) (hi, lo), reduce_wide (mu, sh)
        self.red = np.array(rows, dtype=_U64).reshape(-1, 4)
        self.ratio_hi = self.red[:, 0].copy()
        self.ratio_lo = self.red[:, 1].copy()


def _universe_consts(universe: tables.PrimeSet) -> _PrimeConsts:
    got = universe.cache.get(_KEY)
    if got is None:
        got = universe.cache.setdefault(_KEY, _PrimeConsts(universe))
    return got


def _prime_consts(universe: tables.PrimeSet) -> tuple[np.ndarray, np.ndarray]:
    """Barrett ratios floor(2^128/q) (hi, lo) for every prime of the universe, (U,) each."""
    got = _universe_consts(universe)
    return got.ratio_hi, got.ratio_lo


def _red_consts(universe: tables.PrimeSet) -> np.ndarray:
    """(U, 4) per-prime reduction constants: Barrett ratio (hi, lo), reduce_wide (mu, sh)."""
    return _universe_consts(universe).red


def _conv_fast(src_bounds, hmod: np.ndarray, dst_primes) -> bool:
    """True when every conversion sum sum_i src_bound_i * hmod[t, i] fits reduce_wide."""
    return all(wide_ok(sum(int(b) * int(h) for b, h in zip(src_bounds, row)) + 1, q)
               for row, q in zip(hmod, dst_primes))


def _intt_consts(basis: tables.Basis, extra, addc) -> tuple[np.ndarray, ...]:
    """(c0, c0s, c1, c1s, addc) of intt_kernel: intt(x) * extra_l + addc_l per limb."""
    u = basis.universe
    c0, c1 = [], []
    for l, (q, ui) in enumerate(zip(basis.primes, basis.idx)):
        e = int(u.n_inv[ui]) * int(extra[l]) % q
        c0.append(e)
        c1.append(int(u.ipsi_rev[ui, 1]) * e % q)
    arr = [np.array(v, dtype=_U64) for v in
           (c0, [shoup(c, q) for c, q in zip(c0, basis.primes)],
            c1, [shoup(c, q) for c, q in zip(c1, basis.primes)])]
    return (*arr, np.array([int(x) for x in addc], dtype=_U64))


class _BasisConsts:
    """Per-basis constants: ratios per limb, plain INTT constants, derived plans."""

    def __init__(self, basis: tables.Basis):
        rh, rl = _prime_consts(basis.universe)
        self.ratio_hi, self.ratio_lo = rh[basis.idx_arr], rl[basis.idx_arr]
        red = _red_consts(basis.universe)[basis.idx_arr]
        self.mu, self.sh = red[:, 2].copy(), red[:, 3].copy()
        ones = [1] * len(basis)
        self.intt = _intt_consts(basis, ones, [0] * len(basis))
        self.plans: dict = {}


def _consts(basis: tables.Basis) -> _BasisConsts:
    got = basis.cache.get(_KEY)
    if got is None:
        got = basis.cache.setdefault(_KEY, _BasisConsts(basis))
    return got


def _mod_up_plan(q_basis: tables.Basis, p_basis: tables.Basis, alpha: int) -> dict:
    """Digit ranges, folded INTT constants and hat matrices of mod_up (cached)."""
    plans = _consts(q_basis).plans
    key = ("up", p_basis, alpha)
    if key in plans:
        return plans[key]
    ext = q_basis + p_basis
    digs = tables.digit_ranges(len(q_basis), alpha)
    if max(s1 - s0 for s0, s1 in digs) > _MAX_TERMS:
        raise ValueError(f"mod_up digit of {alpha} limbs exceeds {_MAX_TERMS}")
    hat_inv = np.zeros(len(q_basis), dtype=object)
    hmod = np.zeros((len(digs), len(ext), max(s1 - s0 for s0, s1 in digs)), dtype=_U64)
    fast = True
    for j, (s0, s1) in enumerate(digs):
        rest = [t for t in range(len(ext)) if not s0 <= t < s1]
        bc = tables.base_conv(q_basis[s0:s1], tables.basis(ext.universe,
                                                           tuple(ext.idx[t] for t in rest)))
        hat_inv[s0:s1] = [int(x) for x in bc.hat_inv]
        hmod[j, rest, :s1 - s0] = bc.hat_mod
        fast = fast and _conv_fast([q - 1 for q in q_basis.primes[s0:s1]], bc.hat_mod,
                                   [ext.primes[t] for t in rest])
    ntts = [(j, t) for j, (s0, s1) in enumerate(digs) for t in range(len(ext))
            if not s0 <= t < s1]
    own = [(j, t) for j, (s0, s1) in enumerate(digs) for t in range(s0, s1)]
    plan = {"ext": ext, "fast": fast, "work": np.array(ntts, dtype=np.int64).reshape(-1, 2),
            "own": np.array(own, dtype=np.int64).reshape(-1, 2),
            "starts": np.array([d[0] for d in digs], dtype=np.int64),
            "stops": np.array([d[1] for d in digs], dtype=np.int64), "hmod": hmod,
            "intt": _intt_consts(q_basis, hat_inv, [0] * len(q_basis))}
    plans[key] = plan
    return plan


def _mod_down_plan(q_basis: tables.Basis, p_basis: tables.Basis) -> dict:
    """Constants of mod_down's exact centered conversion P -> Q (cached).

    The P part's INTT folds in hat_inv; the rounded quotient v becomes one more source
    row whose "hat" value is -P mod q_t, so the conversion is a single 128-bit sum.
    """
    plans = _consts(q_basis).plans
    key = ("down", p_basis)
    if key in plans:
        return plans[key]
    nk, nq = len(p_basis), len(q_basis)
    if nk + 1 > _MAX_TERMS:
        raise ValueError(f"mod_down over {nk} P primes exceeds {_MAX_TERMS - 1}")
    bc = tables.base_conv(p_basis, q_basis)
    hmod = np.empty((1, nq, nk + 1), dtype=_U64)
    hmod[0, :, :nk] = bc.hat_mod
    hmod[0, :, nk] = [(q - int(m)) % q for q, m in zip(q_basis.primes, bc.src_mod_dst)]
    bounds = [p - 1 for p in p_basis.primes] + [nk]
    plan = {"intt": _intt_consts(p_basis, bc.hat_inv, [0] * nk), "hmod": hmod,
            "fast": _conv_fast(bounds, hmod[0], q_basis.primes),
            "starts": np.zeros(1, dtype=np.int64), "stops": np.full(1, nk + 1, dtype=np.int64),
            "recip_hi": np.ascontiguousarray(bc.recip_hi, dtype=_U64),
            "recip_lo": np.ascontiguousarray(bc.recip_lo, dtype=_U64),
            "p_inv": np.ascontiguousarray(bc.src_inv_dst, dtype=_U64),
            "p_inv_s": np.ascontiguousarray(bc.src_inv_dst_shoup, dtype=_U64)}
    plans[key] = plan
    return plan


_NO_PERM = np.zeros(0, dtype=np.int64)
_NO_PERM.flags.writeable = False  # read-only like every Galois permutation: one kernel type


# ----------------------------------------------------------------------------- arrays


def _block(n: int) -> int:
    """Coefficients per work item of the blocked base conversion (even, divides n)."""
    return min(n, _CONV_BLOCK)


def _u64(a) -> np.ndarray:
    """a as a C-contiguous uint64 ndarray (no copy when it already is one)."""
    a = np.asarray(a)
    if a.dtype != _U64:
        a = a.astype(_U64)
    return np.ascontiguousarray(a)


def _rw(a: np.ndarray) -> np.ndarray:
    """a, or a writable copy of a read-only a: a read-only array is another Numba type, a
    second compilation of every kernel and helper it reaches (kernels never write inputs)."""
    return a if a.flags.writeable else a.copy()


def _check(a, basis: tables.Basis, name="a") -> np.ndarray:
    """a as C-contiguous writable uint64 of shape (..., len(basis), basis.n) (see _rw),
    else ValueError."""
    if basis.n < 2:
        raise ValueError(f"ring degree n={basis.n} is not supported (n must be >= 2)")
    a = _u64(a)
    if a.ndim < 2 or a.shape[-2:] != (len(basis), basis.n):
        raise ValueError(f"{name} of shape {a.shape} does not match {basis} "
                         f"(expected (..., {len(basis)}, {basis.n}))")
    return _rw(a)


def _flat(a: np.ndarray, tail: int) -> np.ndarray:
    """a reshaped to (prod(lead), *a.shape[-tail:])."""
    lead = a.shape[:a.ndim - tail]
    return a.reshape((math.prod(lead),) + a.shape[a.ndim - tail:])


def _same(x: np.ndarray, out: np.ndarray) -> bool:
    """Contiguous x and out hold the same elements in the same order (aliasing is safe)."""
    return x.size == out.size and x.ctypes.data == out.ctypes.data


def _target(out, shape, inputs, alias_ok=()):
    """(array the kernel writes, array to copy it into afterwards or None)."""
    if out is None:
        return POOL.empty(shape), None
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape):
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"out of shape {got} does not match the result shape {tuple(shape)}")
    direct = out.dtype == _U64 and out.flags.c_contiguous and out.flags.writeable
    for x in inputs:
        if direct and np.may_share_memory(out, x):
            direct = any(y is x for y in alias_ok) and _same(x, out)
    return (out, None) if direct else (POOL.empty(shape), out)


def _finish(res: np.ndarray, copy_to):
    if copy_to is None:
        return res
    copy_to[...] = res
    return copy_to


def _broadcast4(arrays, basis: tables.Basis):
    """Operands as 4-D views (A0, A1, L, n) with A_k in {1, O_k}, and the result shape."""
    arrays, lead, groups = tables.broadcast_groups(np, [_check(x, basis) for x in arrays])
    views = [x.reshape(tuple(g[1] if g[0][i] else 1 for g in groups) + x.shape[-2:])
             for i, x in enumerate(arrays)]
    return views, lead + (len(basis), basis.n), (groups[0][1], groups[1][1])


# ----------------------------------------------------------------------------- backend


class CpuBackend(RingBackend):
    """RingBackend on NumPy arrays with Numba kernels (the thread team shares batch x
    limbs)."""

    name = "cpu"
    xp = np

    def to_device(self, a):
        return _u64(a)

    def to_host(self, a):
        return np.asarray(a)

    def empty(self, shape):
        """An uninitialised uint64 array (large ones from the buffer pool)."""
        return POOL.empty(shape)

    def zeros(self, shape):
        """A zero uint64 array (large ones from the buffer pool, then cleared)."""
        out = POOL.empty(shape)
        out.fill(0)
        return out

    def empty_lasting(self, shape):
        """An anonymous mapping with transparent huge pages off: a slot is committed in
        4 KiB pages when written. With huge pages (NumPy madvises large arrays) each first
        write of a 2 MiB page of a mostly untouched slab can stall on memory compaction:
        0.65 s of system time to fill one 96 MB slot, against 0.15 s without."""
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * 8
        if nbytes == 0:
            return np.empty(shape, dtype=np.uint64)
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(buf, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
            buf.madvise(mmap.MADV_NOHUGEPAGE)
        return np.frombuffer(buf, dtype=np.uint64).reshape(shape)

    # transforms -------------------------------------------------------------
    def ntt(self, a, basis, out=None):
        a = _check(a, basis)
        res, copy_to = _target(out, a.shape, [a], alias_ok=[a])
        u = basis.universe
        a3 = _flat(a, 2)
        launch(K.ntt_kernel, a3.shape[0] * a3.shape[1], a3, _flat(res, 2), basis.idx_arr,
               u.psi_rev, u.psi_rev_shoup, u.q)
        return _finish(res, copy_to)

    def intt(self, a, basis, out=None):
        a = _check(a, basis)
        res, copy_to = _target(out, a.shape, [a], alias_ok=[a])
        self._intt(_flat(a, 2), 0, _flat(res, 2), basis, _consts(basis).intt)
        return _finish(res, copy_to)

    @staticmethod
    def _intt(a3, off, out3, basis, consts):
        u = basis.universe
        launch(K.intt_kernel, out3.shape[0] * len(basis), a3, off, out3, basis.idx_arr,
               u.ipsi_rev, u.ipsi_rev_shoup, u.q, *consts)

    # pointwise --------------------------------------------------------------
    def _pointwise(self, op, operands, basis, out):
        views, shape, (o0, o1) = _broadcast4(operands, basis)
        res, copy_to = _target(out, shape, views, alias_ok=views)
        k = _consts(basis)
        a4, b4, c4 = (views * 3)[:3]
        launch(K.pointwise_kernel, o0 * o1 * len(basis), op, a4, b4, c4,
               res.reshape((o0, o1) + shape[-2:]), basis.q, k.mu, k.sh)
        return _finish(res, copy_to)

    def add(self, a, b, basis, out=None):
        return self._pointwise(K.OP_ADD, [a, b], basis, out)

    def sub(self, a, b, basis, out=None):
        return self._pointwise(K.OP_SUB, [a, b], basis, out)

    def mul(self, a, b, basis, out=None):
        return self._pointwise(K.OP_MUL, [a, b], basis, out)

    def neg(self, a, basis, out=None):
        return self._pointwise(K.OP_NEG, [a], basis, out)

    def mul_add(self, a, b, c, basis, out=None):
        return self._pointwise(K.OP_MUL_ADD, [a, b, c], basis, out)

    def mul_scalar(self, a, scalars, basis, out=None):
        a = _check(a, basis)
        s = _rw(_u64(scalars).reshape(-1))
        if s.shape != (len(basis),):
            raise ValueError(f"scalars of shape {np.shape(scalars)} do not match {basis}")
        res, copy_to = _target(out, a.shape, [a], alias_ok=[a])
        k = _consts(basis)
        a3 = _flat(a, 2)
        launch(K.mul_scalar_kernel, a3.shape[0] * a3.shape[1], a3, _flat(res, 2), s, basis.q,
               k.ratio_hi, k.ratio_lo)
        return _finish(res, copy_to)

    @staticmethod
    def _perm(galois_elt, basis: tables.Basis) -> np.ndarray:
        """The slot permutation of a Galois element ((0,) for None), cached on the PrimeSet."""
        if galois_elt is None:
            return _NO_PERM
        if int(galois_elt) % 2 == 0:
            raise ValueError(f"galois element {galois_elt} is not odd (not a unit mod 2n)")
        return basis.universe.galois_permutation(galois_elt)

    def automorphism(self, a, galois_elt, basis, out=None):
        a = _check(a, basis)
        perm = self._perm(galois_elt, basis)
        res, copy_to = _target(out, a.shape, [a])
        a2 = _flat(a, 1)
        launch(K.permute_kernel, a2.shape[0], a2, _flat(res, 1), perm)
        return _finish(res, copy_to)

    # basis change -----------------------------------------------------------
    def mod_up(self, a, q_basis, p_basis, alpha, out=None):
        a = _check(a, q_basis)
        alpha = int(alpha)
        if alpha < 1:
            raise ValueError(f"alpha must be a positive number of limbs, got {alpha}")
        plan = _mod_up_plan(q_basis, p_basis, alpha)
        ext = plan["ext"]
        a3 = _flat(a, 2)
        y = POOL.empty(a3.shape)
        self._intt(a3, 0, y, q_basis, plan["intt"])
        shape = a.shape[:-2] + (len(plan["starts"]), len(ext), a.shape[-1])
        res, copy_to = _target(out, shape, [a])
        res4 = _flat(res, 3)
        u, rows, block = ext.universe, a3.shape[0], _block(a.shape[-1])
        launch(K.base_conv_kernel, rows * res4.shape[1] * (a.shape[-1] // block), y, res4,
               plan["starts"], plan["stops"], True, plan["hmod"], ext.idx_arr, u.q,
               _red_consts(u), plan["fast"], block)
        launch(K.mod_up_ntt_kernel, rows * (len(plan["work"]) + len(plan["own"])), a3, res4,
               plan["work"], plan["own"], ext.idx_arr, u.psi_rev, u.psi_rev_shoup, u.q)
        return _finish(res, copy_to)

    #: key_switch_inner takes ``galois_elt``: the automorphism of ext fused into its reads
    fuses_automorphism = True

    def key_switch_inner(self, ext, key, basis, key_basis, out=None, galois_elt=None,
                         key_index=None):
        """The key inner product; with ``galois_elt``, of automorphism(ext, galois_elt);
        with ``key_index``, row b against slot key_index[b] of the slab ``key`` (one kernel
        call whatever the batch)."""
        ext = _check(ext, basis, "ext")
        key = _check(key, key_basis, "key")
        d, slots, per = key_slots(ext, key, _MAX_TERMS, key_index)
        slab = key if key_index is not None else key.reshape((1,) + key.shape)
        kidx = tables.key_limb_index(basis, key_basis)
        shape = ext.shape[:-3] + (2,) + ext.shape[-2:]
        res, copy_to = _target(out, shape, [ext, key])
        u = basis.universe
        fast = all(wide_ok(d * (q - 1) ** 2 + 1, q) for q in basis.primes)
        ext3 = _flat(ext, 3)
        launch(K.key_switch_kernel, ext3.shape[0] * ext3.shape[2], ext3, slab, _flat(res, 3),
               slots, per, kidx, basis.idx_arr, u.q, _red_consts(u), fast,
               self._perm(galois_elt, basis))
        return _finish(res, copy_to)

    def mod_down(self, a, q_basis, p_basis, out=None):
        a = _check(a, q_basis + p_basis)
        plan = _mod_down_plan(q_basis, p_basis)
        a3 = _flat(a, 2)
        nk, block = len(p_basis), _block(a.shape[-1])
        x = POOL.empty((a3.shape[0], nk + 1 if nk > 1 else 1, a3.shape[-1]))
        self._intt(a3, len(q_basis), x, p_basis, plan["intt"])
        if nk == 1:
            return self._mod_down_one(a, a3, x, q_basis, plan, out)
        launch(K.rounded_quotient_kernel, x.shape[0] * (x.shape[2] // block), x, nk,
               plan["recip_hi"], plan["recip_lo"], block)
        res, copy_to = _target(out, a.shape[:-2] + (len(q_basis), a.shape[-1]), [a])
        res3 = _flat(res, 2)
        u, rows = q_basis.universe, res3.shape[0]
        launch(K.base_conv_kernel, rows * (a.shape[-1] // block), x,
               res3.reshape((rows, 1) + res3.shape[1:]), plan["starts"], plan["stops"], False,
               plan["hmod"], q_basis.idx_arr, u.q, _red_consts(u), plan["fast"], block)
        launch(K.mod_down_kernel, rows * len(q_basis), a3, res3, q_basis.idx_arr, plan["p_inv"],
               plan["p_inv_s"], u.psi_rev, u.psi_rev_shoup, u.q)
        return _finish(res, copy_to)

    @staticmethod
    def _mod_down_one(a, a3, x, q_basis, plan, out):
        """mod_down by a single prime: lift, NTT and combine in one fused kernel."""
        res, copy_to = _target(out, a.shape[:-2] + (len(q_basis), a.shape[-1]), [a])
        u = q_basis.universe
        if "lift" not in plan:
            lift = np.empty((len(q_basis), 4), dtype=_U64)
            lift[:, 0], lift[:, 1] = plan["recip_hi"][0], plan["recip_lo"][0]
            lift[:, 2] = plan["hmod"][0, :, 1]
            lift[:, 3] = _prime_consts(u)[0][q_basis.idx_arr]
            plan["lift"] = lift
        launch(K.rescale_kernel, a3.shape[0] * len(q_basis), a3, x, _flat(res, 2),
               q_basis.idx_arr, plan["lift"], plan["p_inv"], plan["p_inv_s"], u.psi_rev,
               u.psi_rev_shoup, u.q)
        return _finish(res, copy_to)

    def rescale(self, a, basis, out=None):
        if len(basis) < 2:
            raise ValueError(f"rescale needs at least two limbs, got {basis}")
        return self.mod_down(a, basis[:-1], basis[-1:], out=out)
