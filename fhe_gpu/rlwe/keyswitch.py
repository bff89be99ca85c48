"""Hybrid key switching: ModUp, inner product with the key, ModDown (divide by P).

All functions take batched evaluation-form tensors and return new ones; the batch axes
are carried through every verb (one backend call per verb per batch).
"""
from __future__ import annotations


def decompose(context, d, level: int):
    """ModUp of ``d`` (..., level+1, n): digits extended to Q_level u P, (..., D, M, n)."""
    return context.backend.mod_up(d, context.q_basis(level), context.p_basis, context.alpha)


def apply_key(context, ext, key, level: int):
    """Inner product of decomposed digits with ``key`` then ModDown: (..., 2, level+1, n)."""
    be = context.backend
    qp = context.qp_basis(level)
    acc = be.key_switch_inner(ext, key.data, qp, context.full_qp)
    return be.mod_down(acc, context.q_basis(level), context.p_basis)


def key_switch(context, d, key, level: int):
    """(k0, k1) with k0 + k1*s ~ d*s' for the key switching s' to s."""
    return apply_key(context, decompose(context, d, level), key, level)


def relinearize(context, d0, d1, d2, key, level: int):
    """(d0, d1, d2) decrypting under (1, s, s^2) to a pair under (1, s), stacked (..., 2, l, n)."""
    be = context.backend
    basis = context.q_basis(level)
    k = key_switch(context, d2, key, level)
    xp = be.xp
    return be.add(k, xp.stack([d0, d1], axis=-3), basis)


def automorph(context, data, galois_elt: int, key, level: int, ext=None):
    """Apply X -> X^g to a ciphertext tensor (..., 2, l, n) and switch back to s.

    ``ext`` is the decomposition of c1 (shared by hoisted rotations); computed when None.
    """
    be = context.backend
    basis = context.q_basis(level)
    qp = context.qp_basis(level)
    if ext is None:
        ext = decompose(context, data[..., 1, :, :], level)
    ext_g = be.automorphism(ext, galois_elt, qp)
    k = apply_key(context, ext_g, key, level)
    c0 = be.automorphism(data[..., 0, :, :], galois_elt, basis)
    return be.xp.stack([be.add(k[..., 0, :, :], c0, basis), k[..., 1, :, :]], axis=-3)
