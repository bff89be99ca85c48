"""Hybrid key switching: ModUp, inner product with the key, ModDown (divide by P).

All functions take batched evaluation-form tensors and return new ones; the batch axes
are carried through every verb (one backend call per verb per batch).
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import BatchIndexError

_LOCAL = threading.local()


def _scratch(be, role: str, shape):
    """A reusable host buffer for an intermediate that dies inside this module (one per
    thread and role), or None on device backends: fresh host arrays this large (tens of
    MB) are page-faulted and zeroed by the OS on every call."""
    if be.xp is not np:
        return None
    bufs = _LOCAL.__dict__.setdefault("bufs", {})
    buf = bufs.get(role)
    if buf is None or buf.shape != tuple(shape):
        buf = bufs[role] = np.empty(shape, dtype=np.uint64)
    return buf


def decompose(context, d, level: int, out=None):
    """ModUp of ``d`` (..., level+1, n): digits extended to Q_level u P, (..., D, M, n)."""
    return context.backend.mod_up(d, context.q_basis(level), context.p_basis, context.alpha,
                                  out=out)


def _key_index(key, ext):
    """The per-row slot index of a slab key (None for a single key), checked against the
    batch of ``ext`` (B, D, M, n)."""
    index = getattr(key, "key_index", None)
    if index is not None and (ext.ndim != 4 or len(index) != ext.shape[0]):
        raise BatchIndexError(f"a key slab view of {len(index)} rows cannot switch a batch of "
                              f"{ext.shape[0] if ext.ndim == 4 else tuple(ext.shape[:-3])} "
                              f"rows: needs one slot index per ciphertext row")
    return index


def key_operand(context, key, ext, level: int):
    """(array, key basis) of ``key`` for switching ``ext`` at ``level``: a key's full data
    over Q u P, or a seeded key expanded over just Q_level u P and the digits ext has (into
    a per-thread buffer)."""
    if not hasattr(key, "operand"):
        return key.data, context.full_qp
    qp = context.qp_basis(level)
    digits = ext.shape[-3]
    buf = _scratch(context.backend, "key", (digits, 2, len(qp), context.n))
    if buf is None:                   # a device backend: the whole key, copied over
        return context.backend.to_device(key.data), context.full_qp
    return key.operand(qp, digits, buf), qp


def apply_key(context, ext, key, level: int, galois_elt=None):
    """Inner product of decomposed digits with ``key`` then ModDown: (..., 2, level+1, n).

    With ``galois_elt``, the digits are first mapped by that automorphism (fused into the
    inner product on backends that offer it). A slab key (``key.key_index`` set, see
    :mod:`fhe_gpu.rlwe.slab`) switches row b of the batch with slot key_index[b], in the
    same single verb call.
    """
    be = context.backend
    acc = _scratch(be, "acc", ext.shape[:-3] + (2,) + ext.shape[-2:])
    acc = _inner(context, ext, key, level, galois_elt, out=acc)
    return be.mod_down(acc, context.q_basis(level), context.p_basis)


def _inner(context, ext, key, level: int, galois_elt=None, out=None):
    """The key inner product over Q_level u P (no ModDown), the digits read through the
    automorphism ``galois_elt`` when given (fused on backends that offer it)."""
    be = context.backend
    qp = context.qp_basis(level)
    index = _key_index(key, ext)
    kw = {} if index is None else {"key_index": index}
    if galois_elt is not None and getattr(be, "fuses_automorphism", False):
        kw["galois_elt"] = galois_elt
    elif galois_elt is not None:
        ext = be.automorphism(ext, galois_elt, qp)
    kdata, kbasis = key_operand(context, key, ext, level)
    return be.key_switch_inner(ext, kdata, qp, kbasis, out=out, **kw)


def automorph_sum(context, items, level: int):
    """sum_i automorph(data_i, g_i) with one ModDown: ``items`` are (data, g, key) with
    data (..., 2, level+1, n); the key inner products accumulate over Q_level u P (double
    hoisting of the giant steps of a baby-step giant-step transform). ``items`` may be a
    generator (consumed one at a time); None when it yields nothing."""
    be = context.backend
    basis, qp = context.q_basis(level), context.qp_basis(level)
    acc = c0 = None
    for data, g, key in items:
        part = _inner(context, decompose(context, data[..., 1, :, :], level), key, level, g)
        acc = part if acc is None else be.add(acc, part, qp, out=acc)
        a0 = be.automorphism(data[..., 0, :, :], g, basis)
        c0 = a0 if c0 is None else be.add(c0, a0, basis, out=c0)
    if acc is None:
        return None
    k = be.mod_down(acc, basis, context.p_basis)
    be.add(k[..., 0, :, :], c0, basis, out=k[..., 0, :, :])
    return k


def key_switch(context, d, key, level: int):
    """(k0, k1) with k0 + k1*s ~ d*s' for the key switching s' to s."""
    digits = -(-(level + 1) // context.alpha)
    shape = d.shape[:-2] + (digits, level + 1 + len(context.p_primes), d.shape[-1])
    ext = decompose(context, d, level, out=_scratch(context.backend, "ext", shape))
    return apply_key(context, ext, key, level)


def relinearize(context, d0, d1, d2, key, level: int):
    """(d0, d1, d2) decrypting under (1, s, s^2) to a pair under (1, s), stacked (..., 2, l, n)."""
    be = context.backend
    basis = context.q_basis(level)
    k = key_switch(context, d2, key, level)
    for c, d in enumerate((d0, d1)):
        be.add(k[..., c, :, :], d, basis, out=k[..., c, :, :])
    return k


def automorph(context, data, galois_elt: int, key, level: int, ext=None):
    """Apply X -> X^g to a ciphertext tensor (..., 2, l, n) and switch back to s.

    ``ext`` is the decomposition of c1 (shared by hoisted rotations); computed when None.
    """
    be = context.backend
    basis = context.q_basis(level)
    if ext is None:
        ext = decompose(context, data[..., 1, :, :], level)
    k = apply_key(context, ext, key, level, galois_elt=galois_elt)
    c0 = be.automorphism(data[..., 0, :, :], galois_elt, basis)
    be.add(k[..., 0, :, :], c0, basis, out=k[..., 0, :, :])
    return k
