"""Server-side building blocks of encrypted inference on batched ciphertexts.

``matvec``: an encrypted vector (replicated with period d across the slots) times a
plaintext d x d matrix by the baby-step giant-step diagonal method: ceil(sqrt(d)) hoisted
baby rotations, ceil(d / ceil(sqrt(d))) giant rotations, one level.

``polyval``: a real polynomial by the power basis x, x^2, x^3, ... computed in a binary
tree (depth ceil(log2 deg) + 1); every term is brought to one scale exactly.
"""
from __future__ import annotations

import math

import numpy as np

from ..ckks import Ciphertext, Encoder, Evaluator
from ..errors import ParameterError


def matvec_rotations(d: int) -> list[int]:
    """The rotation steps (Galois keys) that :func:`matvec` needs for dimension d."""
    n1 = math.ceil(math.sqrt(d))
    return sorted(set(range(1, n1)) | {j * n1 for j in range(1, math.ceil(d / n1))})


def replicate(x: np.ndarray, slots: int) -> np.ndarray:
    """Vectors (..., d) tiled across ``slots`` (d must divide slots)."""
    x = np.asarray(x)
    d = x.shape[-1]
    if slots % d:
        raise ParameterError(f"dimension {d} must divide the slot count {slots}")
    return np.tile(x, (1,) * (x.ndim - 1) + (slots // d,))


def matvec(ev: Evaluator, encoder: Encoder, ct: Ciphertext, matrix) -> Ciphertext:
    """W @ x for every vector of the batch; x replicated with period d = W's size."""
    w = np.asarray(matrix, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ParameterError(f"matrix must be square (d, d), got shape {w.shape}")
    d, slots = w.shape[0], ev.context.slots
    n1 = math.ceil(math.sqrt(d))
    q_l = ev.context.q_primes[ct.level]
    baby = ev.rotate_many(ct, list(range(n1)))
    rows = np.arange(slots) % d
    acc = None
    for j in range(math.ceil(d / n1)):
        inner = None
        for i in range(min(n1, d - j * n1)):
            k = j * n1 + i
            diag = np.roll(w[rows, (rows + k) % d], j * n1)
            term = ev.mul(baby[i], encoder.encode(diag, level=ct.level, scale=q_l),
                          rescale=False)
            inner = term if inner is None else ev.add(inner, term)
        inner = ev.rotate(inner, j * n1) if j else inner
        acc = inner if acc is None else ev.add(acc, inner)
    out = ev.rescale(acc)
    return Ciphertext(out.data, out.level, ct.scale, ev.context)


def polyval(ev: Evaluator, ct: Ciphertext, coeffs) -> Ciphertext:
    """sum_k coeffs[k] * x^k for real coefficients (coeffs[0] is the constant term)."""
    coeffs = [float(c) for c in coeffs]
    if not coeffs:
        raise ParameterError("polyval needs at least one coefficient, got none")
    powers = {1: ct}
    for k in range(2, len(coeffs)):
        half = 1 << (k.bit_length() - 1)
        if k == half:
            powers[k] = ev.mul(powers[k // 2], powers[k // 2])
        else:
            powers[k] = ev.mul(powers[half], powers[k - half])
    terms = [(k, c) for k, c in enumerate(coeffs) if k and c]
    if not terms:
        return ev.add(ev.mul(ct, 0.0), coeffs[0])
    level = min(powers[k].level for k, _ in terms) - 1
    out = None
    for k, c in terms:
        x = ev.drop_level(powers[k], level + 1)
        term = ev.mul_to_scale(x, c, ct.scale)
        out = term if out is None else ev.add(out, term)
    return ev.add(out, coeffs[0]) if coeffs[0] else out
