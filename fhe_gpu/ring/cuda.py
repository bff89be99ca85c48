"""The CUDA backend: every RingBackend verb as launches of the kernels in ``kernels/*.cu``.

On a GPU the kernels are compiled by CuPy's ``RawModule`` (NVRTC) and arrays are CuPy
arrays from the stream-ordered memory pool. With ``emulate=True`` (``FHE_GPU_CUDA_EMULATE=1``)
the very same kernels run on the CPU through ``fhe_gpu.ring._cuda_emu`` (csrc/cuda_emu.h) and
arrays are NumPy arrays; the launching code below is shared, only the runtime differs
(see ``_cuda_loader``).

Each verb is one launch per kernel over the whole batch: grid.x covers the blocks of a limb
times the flattened leading axes, grid.y the limbs. The NTT and INTT take two launches (column
stages, chunk stages: kernels/ntt.cu); ModUp is an INTT, then base conversion fused into the
NTT; ModDown is an INTT of the P part, then the exact centered base conversion
(reference.exact_convert) fused into the NTT of the Q part, with the subtraction and the
multiplication by P^-1 fused into its last kernel. The key inner product reads each row's
key through a per-row slot index into a key slab (cross-tenant batches) and reads the digits
through a rotation's automorphism when given one, still in one launch.

Tables (twiddles, Barrett ratios, basis index vectors, base-conversion constants, Galois
permutations) are uploaded once per PrimeSet / Basis / plan and cached on the PrimeSet /
Basis itself under this backend instance (``cache[self]``), so device memory is freed with
the parameter set and the process-wide backend holds no table (see tables).
"""
from __future__ import annotations

import math
import os

import numpy as np

from . import tables
from ._cuda_loader import CupyRuntime, EmulatorRuntime
from .backend import RingBackend, key_slots

_U64 = np.uint64
_MAX_TERMS = 64  # products < 2^122 summed exactly in 128 bits
_EW_PER_THREAD = 4  # coefficients per thread of the element-wise kernels


def _shoup(w: int, q: int) -> int:
    return (int(w) << 64) // int(q)


def _block_threads(value, emulate: bool) -> int:
    """Target threads per block: the argument, FHE_GPU_CUDA_BLOCK, or 4 / 256 by default."""
    if value is None:
        value = os.environ.get("FHE_GPU_CUDA_BLOCK") or (4 if emulate else 256)
    value = int(value)
    if value < 1 or value > 1024 or value & (value - 1):
        raise ValueError(f"block_threads must be a power of two in [1, 1024], got {value}")
    return value


class _PrimeTables:
    """Device copies of a PrimeSet's stacked tables plus Barrett ratios floor(2^128/q)."""

    def __init__(self, rt, u: tables.PrimeSet):
        ratios = [(1 << 128) // q for q in u.primes]
        self.q = rt.asarray(u.q)
        self.psi, self.psi_s = rt.asarray(u.psi_rev), rt.asarray(u.psi_rev_shoup)
        self.ipsi, self.ipsi_s = rt.asarray(u.ipsi_rev), rt.asarray(u.ipsi_rev_shoup)
        self.ratio_hi = rt.asarray(np.array([r >> 64 for r in ratios], dtype=_U64))
        self.ratio_lo = rt.asarray(np.array([r & (2**64 - 1) for r in ratios], dtype=_U64))
        self.perms: dict = {}  # Galois element -> device permutation
        self.slot0 = rt.asarray(np.zeros(1, dtype=np.int64))  # the one slot of a single key


def _intt_post(basis: tables.Basis, extra) -> np.ndarray:
    """(2, L) constants of intt_col: [e, e_shoup] with e_l = n^-1 · extra_l mod q_l."""
    u = basis.universe
    e = [int(u.n_inv[i]) * int(x) % q for i, x, q in zip(basis.idx, extra, basis.primes)]
    return np.array([e, [_shoup(w, q) for w, q in zip(e, basis.primes)]],
                    dtype=_U64).reshape(2, len(basis))


class CudaBackend(RingBackend):
    """RingBackend over kernels/*.cu, on a GPU (CuPy) or on the CPU emulator."""

    name = "cuda"

    def __init__(self, emulate: bool = False, block_threads: int | None = None):
        self.emulate = bool(emulate)
        self._rt = EmulatorRuntime() if self.emulate else CupyRuntime()
        self.xp = self._rt.xp
        self.device_name = self._rt.device_name
        self.block_threads = _block_threads(block_threads, self.emulate)

    def __repr__(self):
        return f"CudaBackend({self.device_name}, block_threads={self.block_threads})"

    # runtime ----------------------------------------------------------------
    def _launch(self, name, grid, block, *args, shared=0):
        if 0 in grid:
            return
        args = tuple(np.int64(a) if isinstance(a, (int, np.integer)) else a for a in args)
        self._rt.launch(name, grid, (block,), args, shared)

    def synchronize(self):
        self._rt.synchronize()

    def _tables(self, universe) -> _PrimeTables:
        """Device tables of a PrimeSet, cached on it (freed with it)."""
        got = universe.cache.get(self)
        if got is None:
            got = universe.cache.setdefault(self, _PrimeTables(self._rt, universe))
        return got

    def _cache(self, basis: tables.Basis) -> dict:
        """Per-basis cache of device constants and plans, kept on the basis (freed with it)."""
        got = basis.cache.get(self)
        if got is None:
            got = basis.cache.setdefault(self, {})
        return got

    def _idx(self, basis: tables.Basis):
        cache = self._cache(basis)
        if "idx" not in cache:
            cache["idx"] = self._rt.asarray(basis.idx_arr)
        return cache["idx"]

    def _plain_post(self, basis: tables.Basis):
        cache = self._cache(basis)
        if "post" not in cache:
            cache["post"] = self._rt.asarray(_intt_post(basis, [1] * len(basis)))
        return cache["post"]

    # arrays -----------------------------------------------------------------
    def to_device(self, a):
        return self._u64(a)

    def to_host(self, a):
        return np.asarray(a) if self.xp is np else self.xp.asnumpy(a)

    def _u64(self, a):
        xp = self.xp
        if xp is not np and isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a, dtype=_U64)
        a = xp.asarray(a)
        if a.dtype != _U64:
            a = a.astype(_U64)
        return xp.ascontiguousarray(a)

    def _check(self, a, basis: tables.Basis, name="a"):
        a = self._u64(a)
        if a.ndim < 2 or a.shape[-2:] != (len(basis), basis.n):
            raise ValueError(f"{name} of shape {a.shape} does not match {basis} "
                             f"(expected (..., {len(basis)}, {basis.n}))")
        return a

    def _overlap(self, x, y) -> bool:
        px, py = self._rt.data_ptr(x), self._rt.data_ptr(y)
        return x.nbytes > 0 and y.nbytes > 0 and px < py + y.nbytes and py < px + x.nbytes

    def _target(self, out, shape, inputs, alias_ok=()):
        """(array the kernels write, array to copy it into afterwards or None)."""
        shape = tuple(shape)
        if out is None:
            return self.empty(shape), None
        if not isinstance(out, self.xp.ndarray) or out.shape != shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"out of shape {got} does not match the result shape {shape}")
        direct = out.dtype == _U64 and out.flags.c_contiguous and \
            getattr(out.flags, "writeable", True)
        for x in inputs:
            if direct and self._overlap(out, x):
                same = self._rt.data_ptr(x) == self._rt.data_ptr(out) and x.size == out.size
                direct = same and any(y is x for y in alias_ok)
        return (out, None) if direct else (self.empty(shape), out)

    @staticmethod
    def _finish(res, copy_to):
        if copy_to is None:
            return res
        copy_to[...] = res
        return copy_to

    def _broadcast(self, arrays, basis: tables.Basis):
        """Operands on an (o0, o1) grid of rows: (arrays, shape, o0, o1, row strides)."""
        arrays, lead, groups = tables.broadcast_groups(
            self.xp, [self._check(x, basis) for x in arrays])
        (f0, o0), (f1, o1) = groups
        strides = []
        for i in range(len(arrays)):
            strides += [(o1 if f1[i] else 1) if f0[i] else 0, 1 if f1[i] else 0]
        return arrays, lead + (len(basis), basis.n), o0, o1, strides

    # geometry ---------------------------------------------------------------
    def _ntt_geometry(self, n: int):
        """log n and (blocks per limb, threads, log2 subs, shared bytes) of col/chunk kernels."""
        log_n = n.bit_length() - 1
        n1 = 1 << ((log_n + 1) // 2)
        n2 = n // n1

        def part(length, count):  # at most 4096 words (32 KiB) of shared memory per block
            subs = max(1, min(count, 8 * self.block_threads // length, 4096 // length))
            threads = max(1, subs * length // 8)
            return count // subs, threads, subs.bit_length() - 1, subs * length * 8

        return log_n, part(n1, n2), part(n2, n1)

    def _ew_geometry(self, n: int):
        """(blocks per row, threads) of the element-wise kernels."""
        threads = min(self.block_threads, n)
        return -(-n // (threads * _EW_PER_THREAD)), threads

    def _ntt_pass(self, name, part, log_n, rows, limbs, *args):
        blocks, threads, log_subs, shared = part
        self._launch(name, (blocks * rows, limbs), threads, *args, log_n, log_subs, shared=shared)

    # transforms -------------------------------------------------------------
    def _ntt_into(self, src, src_limbs, src_off, dst, basis, rows):
        t = self._tables(basis.universe)
        idx = self._idx(basis)
        log_n, col, chunk = self._ntt_geometry(basis.n)
        self._ntt_pass("ntt_fwd_col", col, log_n, rows, len(basis), src, dst, src_limbs, src_off,
                       idx, t.q, t.psi, t.psi_s)
        self._ntt_pass("ntt_fwd_chunk", chunk, log_n, rows, len(basis), dst, idx, t.q, t.psi,
                       t.psi_s)

    def _intt_into(self, src, src_limbs, src_off, dst, basis, rows, post):
        t = self._tables(basis.universe)
        idx = self._idx(basis)
        log_n, col, chunk = self._ntt_geometry(basis.n)
        self._ntt_pass("intt_chunk", chunk, log_n, rows, len(basis), src, dst, src_limbs,
                       src_off, idx, t.q, t.ipsi, t.ipsi_s)
        self._ntt_pass("intt_col", col, log_n, rows, len(basis), dst, idx, t.q, t.ipsi,
                       t.ipsi_s, post)

    def ntt(self, a, basis, out=None):
        a = self._check(a, basis)
        res, copy_to = self._target(out, a.shape, [a], alias_ok=[a])
        self._ntt_into(a, len(basis), 0, res, basis, math.prod(a.shape[:-2]))
        return self._finish(res, copy_to)

    def intt(self, a, basis, out=None):
        a = self._check(a, basis)
        res, copy_to = self._target(out, a.shape, [a], alias_ok=[a])
        self._intt_into(a, len(basis), 0, res, basis, math.prod(a.shape[:-2]),
                        self._plain_post(basis))
        return self._finish(res, copy_to)

    # pointwise --------------------------------------------------------------
    def _pointwise(self, name, operands, basis, out, *extra):
        ops, shape, o0, o1, strides = self._broadcast(operands, basis)
        res, copy_to = self._target(out, shape, ops, alias_ok=ops)
        nb, threads = self._ew_geometry(basis.n)
        t = self._tables(basis.universe)
        self._launch(name, (nb * o0 * o1, len(basis)), threads, *ops, res, *strides, o1, nb,
                     basis.n.bit_length() - 1, self._idx(basis), t.q, *extra)
        return self._finish(res, copy_to)

    def add(self, a, b, basis, out=None):
        return self._pointwise("ew_add", [a, b], basis, out)

    def sub(self, a, b, basis, out=None):
        return self._pointwise("ew_sub", [a, b], basis, out)

    def mul(self, a, b, basis, out=None):
        t = self._tables(basis.universe)
        return self._pointwise("ew_mul", [a, b], basis, out, t.ratio_hi, t.ratio_lo)

    def mul_add(self, a, b, c, basis, out=None):
        t = self._tables(basis.universe)
        return self._pointwise("ew_mul_add", [a, b, c], basis, out, t.ratio_hi, t.ratio_lo)

    def _rowwise(self, name, a, basis, out, extra=(), tail=(), alias=True):
        """One-operand kernels over (rows, limbs): args (a, out, *extra, nb, log n, *tail)."""
        a = self._check(a, basis)
        res, copy_to = self._target(out, a.shape, [a], alias_ok=[a] if alias else ())
        nb, threads = self._ew_geometry(basis.n)
        rows = math.prod(a.shape[:-2])
        self._launch(name, (nb * rows, len(basis)), threads, a, res, *extra, nb,
                     basis.n.bit_length() - 1, *tail)
        return self._finish(res, copy_to)

    def neg(self, a, basis, out=None):
        tail = (self._idx(basis), self._tables(basis.universe).q)
        return self._rowwise("ew_neg", a, basis, out, tail=tail)

    def mul_scalar(self, a, scalars, basis, out=None):
        host = self.to_host(scalars) if isinstance(scalars, self.xp.ndarray) else scalars
        s = np.asarray(host).reshape(-1)
        if s.shape != (len(basis),):
            raise ValueError(f"scalars of shape {np.shape(scalars)} do not match {basis}")
        w = [int(x) % q for x, q in zip(s, basis.primes)]
        consts = np.array([w, [_shoup(x, q) for x, q in zip(w, basis.primes)]], dtype=_U64)
        tail = (self._idx(basis), self._tables(basis.universe).q)
        return self._rowwise("ew_mul_scalar", a, basis, out, (self._rt.asarray(consts),), tail)

    def _perm(self, galois_elt, basis: tables.Basis):
        """The device slot permutation of a Galois element, cached on the PrimeSet."""
        if int(galois_elt) % 2 == 0:
            raise ValueError(f"galois element {galois_elt} is not odd (not a unit mod 2n)")
        perms = self._tables(basis.universe).perms
        elt = int(galois_elt) % (2 * basis.n)
        perm = perms.get(elt)
        if perm is None:
            perm = perms[elt] = self._rt.asarray(basis.universe.galois_permutation(elt))
        return perm

    def automorphism(self, a, galois_elt, basis, out=None):
        perm = self._perm(galois_elt, basis)
        return self._rowwise("ew_automorphism", a, basis, out, (perm,), alias=False)

    # basis change -----------------------------------------------------------
    def _mod_up_plan(self, q_basis, p_basis, alpha):
        cache = self._cache(q_basis)
        key = ("up", p_basis, alpha)
        if key in cache:
            return cache[key]
        ext = q_basis + p_basis
        digs = tables.digit_ranges(len(q_basis), alpha)
        hat_inv = [0] * len(q_basis)
        hmod = np.zeros((len(digs), len(ext), alpha), dtype=_U64)
        for j, (s0, s1) in enumerate(digs):
            rest = [t for t in range(len(ext)) if not s0 <= t < s1]
            dst = tables.basis(ext.universe, tuple(ext.idx[t] for t in rest))
            bc = tables.base_conv(q_basis[s0:s1], dst)
            hat_inv[s0:s1] = [int(x) for x in bc.hat_inv]
            hmod[j, rest, :s1 - s0] = bc.hat_mod
        plan = {"ext": ext, "digits": len(digs), "hmod": self._rt.asarray(hmod),
                "post": self._rt.asarray(_intt_post(q_basis, hat_inv))}
        cache[key] = plan
        return plan

    def mod_up(self, a, q_basis, p_basis, alpha, out=None):
        a = self._check(a, q_basis)
        alpha = int(alpha)
        if not 1 <= alpha <= _MAX_TERMS:
            raise ValueError(f"alpha must be a number of limbs in [1, {_MAX_TERMS}], got {alpha}")
        plan = self._mod_up_plan(q_basis, p_basis, alpha)
        ext, lq, n = plan["ext"], len(q_basis), q_basis.n
        rows = math.prod(a.shape[:-2])
        y = self.empty((rows, lq, n))
        self._intt_into(a, lq, 0, y, q_basis, rows, plan["post"])
        res, copy_to = self._target(out, a.shape[:-2] + (plan["digits"], len(ext), n), [a])
        t = self._tables(ext.universe)
        log_n, col, chunk = self._ntt_geometry(n)
        grid_rows, idx = rows * plan["digits"], self._idx(ext)
        self._ntt_pass("mod_up_col", col, log_n, grid_rows, len(ext), a, y, res, alpha, lq, idx,
                       t.q, t.psi, t.psi_s, plan["hmod"], t.ratio_hi, t.ratio_lo)
        self._ntt_pass("mod_up_chunk", chunk, log_n, grid_rows, len(ext), res, alpha, lq, idx,
                       t.q, t.psi, t.psi_s)
        return self._finish(res, copy_to)

    def _key_pos(self, basis, key_basis):
        cache = self._cache(basis)
        key = ("key", key_basis)
        if key not in cache:
            cache[key] = self._rt.asarray(tables.key_limb_index(basis, key_basis))
        return cache[key]

    #: key_switch_inner takes ``galois_elt``: the automorphism of ext fused into its reads
    fuses_automorphism = True

    def key_switch_inner(self, ext, key, basis, key_basis, out=None, galois_elt=None,
                         key_index=None):
        """The key inner product; with ``galois_elt``, of automorphism(ext, galois_elt);
        with ``key_index``, row b against slot key_index[b] of the slab ``key``. One launch
        whatever the batch: the kernel reads each row's slot through the uploaded index."""
        ext = self._check(ext, basis, "ext")
        key = self._check(key, key_basis, "key")
        d, slots, per = key_slots(ext, key, _MAX_TERMS, key_index)
        t = self._tables(basis.universe)
        dev_slots = t.slot0 if key_index is None else self._rt.asarray(slots)
        slot_words = math.prod(key.shape[1:]) if key_index is not None else 0
        permuted = galois_elt is not None
        perm = self._perm(galois_elt, basis) if permuted else t.slot0
        res, copy_to = self._target(out, ext.shape[:-3] + (2,) + ext.shape[-2:], [ext, key])
        nb, threads = self._ew_geometry(basis.n)
        rows = math.prod(ext.shape[:-3])
        self._launch("key_switch_inner", (nb * rows * 2, len(basis)), threads, ext, key, res, d,
                     len(key_basis), self._key_pos(basis, key_basis), dev_slots, per, slot_words,
                     perm, int(permuted), self._idx(basis), t.q, t.ratio_hi, t.ratio_lo, nb,
                     basis.n.bit_length() - 1)
        return self._finish(res, copy_to)

    def _mod_down_plan(self, q_basis, p_basis):
        cache = self._cache(q_basis)
        key = ("down", p_basis)
        if key in cache:
            return cache[key]
        if len(p_basis) >= _MAX_TERMS:
            raise ValueError(f"mod_down over {len(p_basis)} P primes exceeds {_MAX_TERMS - 1}")
        bc = tables.base_conv(p_basis, q_basis)
        neg_p = [(q - int(m)) % q for m, q in zip(bc.src_mod_dst, q_basis.primes)]
        p_inv = np.stack([bc.src_inv_dst, bc.src_inv_dst_shoup]).astype(_U64)
        plan = {"post": self._rt.asarray(_intt_post(p_basis, bc.hat_inv)),
                "hmod": self._rt.asarray(np.ascontiguousarray(bc.hat_mod, dtype=_U64)),
                "neg_p": self._rt.asarray(np.array(neg_p, dtype=_U64)),
                "recip": self._rt.asarray(np.stack([bc.recip_hi, bc.recip_lo]).astype(_U64)),
                "p_inv": self._rt.asarray(p_inv)}
        cache[key] = plan
        return plan

    def mod_down(self, a, q_basis, p_basis, out=None):
        a = self._check(a, q_basis + p_basis)
        plan = self._mod_down_plan(q_basis, p_basis)
        lq, kp, n = len(q_basis), len(p_basis), q_basis.n
        rows = math.prod(a.shape[:-2])
        z = self.empty((rows, kp, n))
        self._intt_into(a, lq + kp, lq, z, p_basis, rows, plan["post"])
        res, copy_to = self._target(out, a.shape[:-2] + (lq, n), [a])
        t = self._tables(q_basis.universe)
        log_n, col, chunk = self._ntt_geometry(n)
        idx = self._idx(q_basis)
        self._ntt_pass("mod_down_col", col, log_n, rows, lq, z, res, kp, idx, t.q, t.psi,
                       t.psi_s, plan["hmod"], plan["neg_p"], plan["recip"], t.ratio_hi, t.ratio_lo)
        self._ntt_pass("mod_down_chunk", chunk, log_n, rows, lq, a, res, lq + kp, idx, t.q,
                       t.psi, t.psi_s, plan["p_inv"])
        return self._finish(res, copy_to)

    def rescale(self, a, basis, out=None):
        if len(basis) < 2:
            raise ValueError(f"rescale needs at least two limbs, got {basis}")
        return self.mod_down(a, basis[:-1], basis[-1:], out=out)
