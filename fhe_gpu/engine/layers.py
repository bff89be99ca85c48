"""Server-side building blocks of encrypted inference on batched ciphertexts.

``matvec``: an encrypted vector (replicated with period d across the slots; d must divide
the slot count) times a plaintext d x d matrix by the baby-step giant-step diagonal method:
ceil(sqrt(d)) hoisted baby rotations, ceil(d / ceil(sqrt(d))) giant rotations, one level.

``polyval``: a real polynomial of degree deg by the power basis x, x^2, x^3, ... computed
in a binary tree (x^k lives ceil(log2 k) levels below x); every term is brought to one
scale exactly, which takes one more level: ceil(log2 deg) + 1 levels in all.

Both check their inputs, the levels they consume and what the modulus holds before any
homomorphic work, and refuse with a typed error rather than return wrong values.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..ckks import Ciphertext, Encoder, Evaluator
from ..errors import KeyMissingError, LevelError, ParameterError
from ..rlwe.objects import check_fits

#: polyval refuses coefficients whose quantization error exceeds this fraction of the
#: result bound sum_k |c_k| bound^k
POLY_REL_ERROR = 2.0 ** -20


def matvec_rotations(d: int) -> list[int]:
    """The rotation steps (Galois keys) that :func:`matvec` needs for dimension d."""
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ParameterError(f"matvec dimension must be an integer >= 1, got {d!r}")
    n1 = math.ceil(math.sqrt(d))
    return sorted(set(range(1, n1)) | {j * n1 for j in range(1, math.ceil(d / n1))})


def _divisor_hint(d: int, slots: int) -> str:
    pad = 1 << (d - 1).bit_length()
    if slots & (slots - 1) == 0 and pad <= slots:
        return f"; pad to d = {pad} (zeros) to fit"
    return ""


def replicate(x: np.ndarray, slots: int) -> np.ndarray:
    """Vectors (..., d) tiled across ``slots`` (d must divide slots)."""
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ParameterError(f"replicate needs vectors of shape (..., d) with d >= 1, got "
                             f"shape {x.shape}")
    d = x.shape[-1]
    if slots % d:
        raise ParameterError(f"dimension {d} must divide the slot count {slots}"
                             f"{_divisor_hint(d, slots)}")
    return np.tile(x, (1,) * (x.ndim - 1) + (slots // d,))


def _check_matrix(matrix, slots: int) -> np.ndarray:
    """The matrix as a finite real (d, d) array with d dividing ``slots``, or ParameterError."""
    try:
        w = np.asarray(matrix)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"matrix must be a real (d, d) array, got {type(matrix).__name__}"
                             f" ({exc})") from None
    if w.dtype.kind not in "iuf":
        raise ParameterError(f"matrix must hold real numbers, got dtype {w.dtype}")
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ParameterError(f"matrix must be square (d, d) with d >= 1, got shape {w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ParameterError(f"matrix must be finite, got {w[bad]} at {bad}")
    d = w.shape[0]
    if slots % d:
        raise ParameterError(
            f"matvec needs d dividing the slot count (the input is replicated with period d "
            f"across the slots, see replicate): got d = {d} and {slots} slots"
            f"{_divisor_hint(d, slots)}")
    return w


def _check_matvec_input(ev: Evaluator, ct, d: int) -> None:
    """Type, context, level and Galois keys of matvec's ciphertext, before any work."""
    if not isinstance(ct, Ciphertext):
        raise ParameterError(f"matvec needs a Ciphertext, got {type(ct).__name__}")
    ev.context.check(ct, "matvec's ciphertext")
    if ct.level < 1:
        raise LevelError(f"matvec needs one level (it rescales once), but the ciphertext "
                         f"is at level {ct.level}")
    steps = matvec_rotations(d)
    if steps and ev.evk is None:
        raise KeyMissingError(f"matvec with d = {d} needs Galois keys for rotations {steps}, "
                              f"but the Evaluator was made with evk=None")
    for k in steps:
        ev.evk.galois_key(ev.context.galois_element(k), f"rotation {k} (matvec, d = {d})")


def _retag(ct: Ciphertext, scale: float, bound) -> Ciphertext:
    """``ct`` with its scale set to ``scale`` and its value bound tightened to ``bound``."""
    known = [b for b in (ct.value_bound, bound) if b is not None]
    return Ciphertext(ct.data, ct.level, scale, ct.context, key_id=ct.key_id,
                      noise_var=ct.noise_var, value_bound=min(known) if known else None)


def matvec(ev: Evaluator, encoder: Encoder, ct: Ciphertext, matrix) -> Ciphertext:
    """W @ x for every vector of the batch; x replicated with period d = W's size.

    ``matrix``: a finite real (d, d) array with d dividing the slot count (pad W and x with
    zeros otherwise). Needs the Galois keys of :func:`matvec_rotations` (d) and one level;
    the result keeps ct's scale. Checks all of that before any homomorphic work
    (ParameterError, LevelError, KeyMissingError, ModulusOverflowError).
    """
    w = _check_matrix(matrix, ev.context.slots)
    d, slots = w.shape[0], ev.context.slots
    _check_matvec_input(ev, ct, d)
    row_sum = float(np.abs(w).sum(axis=1).max())
    bound = None if ct.value_bound is None else row_sum * ct.value_bound
    check_fits(ev.context, ct.level - 1, ct.scale, bound=bound, what="matvec's result")
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
    return _retag(ev.rescale(acc), ct.scale, bound)


# ---------------------------------------------------------------------------- polyval
def _check_coeffs(coeffs) -> list[float]:
    """Finite real coefficients, trailing zeros dropped (at least the constant term)."""
    try:
        c = np.asarray(coeffs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"coeffs must be a 1-D sequence of real numbers, got "
                             f"{type(coeffs).__name__} ({exc})") from None
    if c.ndim != 1 or c.size == 0:
        raise ParameterError(f"coeffs must be a non-empty 1-D sequence, got shape {c.shape}")
    if c.dtype.kind not in "iuf":
        raise ParameterError(f"coeffs must be real numbers, got dtype {c.dtype}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all():
        k = int(np.argmin(np.isfinite(c)))
        raise ParameterError(f"coeffs must be finite, got coeffs[{k}] = {c[k]}")
    nonzero = np.flatnonzero(c)
    deg = int(nonzero[-1]) if nonzero.size else 0
    return [float(v) for v in c[: deg + 1]]


def _check_bound(ct: Ciphertext, bound) -> float:
    if isinstance(bound, bool) or not isinstance(bound, numbers.Real) \
            or not math.isfinite(bound) or bound <= 0:
        raise ParameterError(f"bound must be a finite real number > 0, got {bound!r}")
    bound = float(bound)
    if ct.value_bound is not None and ct.value_bound > bound:
        raise ParameterError(
            f"polyval was told |x| <= bound = {bound:.6g}, but the ciphertext's values reach "
            f"{ct.value_bound:.6g} (its value_bound): pass bound >= {ct.value_bound:.6g}")
    return bound


def _pow(b: float, k: int) -> float:
    try:
        return b ** k
    except OverflowError:
        return math.inf


def _power_pairs(deg: int) -> dict[int, tuple[int, int]]:
    """For k = 2..deg, the two powers whose product is x^k in the binary tree."""
    pairs = {}
    for k in range(2, deg + 1):
        half = 1 << (k.bit_length() - 1)
        pairs[k] = (k // 2, k // 2) if k == half else (half, k - half)
    return pairs


def polyval_depth(deg: int) -> int:
    """Levels :func:`polyval` consumes for a polynomial of degree ``deg``:
    ceil(log2 deg) + 1 (1 for degrees 0 and 1)."""
    return (max(int(deg), 1) - 1).bit_length() + 1


def _power_plan(context, ct: Ciphertext, deg: int, bound: float) -> dict:
    """(level, scale) of every power x^k the tree computes, each checked to fit its level
    (and its product before the rescale) at |x^k| <= bound^k."""
    check_fits(context, ct.level, ct.scale, bound=bound, what="polyval's input x")
    plan = {1: (ct.level, ct.scale)}
    for k, (a, b) in _power_pairs(deg).items():
        level = min(plan[a][0], plan[b][0])
        product = plan[a][1] * plan[b][1]
        check_fits(context, level, product, bound=_pow(bound, k),
                   what=f"x^{k} before its rescale (|x| <= bound = {bound:.6g})")
        plan[k] = (level - 1, product / context.q_primes[level])
        check_fits(context, *plan[k], bound=_pow(bound, k),
                   what=f"x^{k} (|x| <= bound = {bound:.6g})")
    return plan


def _check_result(context, ct, plan, coeffs, bound) -> float:
    """The result bound sum_k |c_k| bound^k, checked to fit the output level and against
    the coefficients' quantization error (mul_to_scale encodes c_k to a step of
    x^k.scale / (scale * q))."""
    terms = [k for k, c in enumerate(coeffs) if k and c]
    out_level = min([plan[k][0] for k in terms] or [ct.level]) - 1
    result = sum(abs(c) * _pow(bound, k) for k, c in enumerate(coeffs))
    check_fits(context, out_level, ct.scale, bound=result,
               what=f"polyval's result (|x| <= bound = {bound:.6g})")
    q = context.q_primes[out_level + 1]
    err = sum(_pow(bound, k) * plan[k][1] / (ct.scale * q) / 2 for k in terms)
    if err > POLY_REL_ERROR * result:
        raise ParameterError(
            f"polyval's coefficients lose precision at bound {bound:.6g}: quantizing them "
            f"(step ~2^{math.log2(plan[terms[-1]][1] / (ct.scale * q)):.1f}) gives an error "
            f"up to {err:.3g}, above 2^-20 of the result bound {result:.6g}: use a smaller "
            f"bound (rescale x first), larger coefficients (scale the polynomial) or drop "
            f"negligible high-order coefficients")
    return result


def _powers(ev: Evaluator, ct: Ciphertext, deg: int) -> dict:
    powers = {1: ct}
    for k, (a, b) in _power_pairs(deg).items():
        powers[k] = ev.mul(powers[a], powers[b])
    return powers


def polyval(ev: Evaluator, ct: Ciphertext, coeffs, *, bound: float = 1.0) -> Ciphertext:
    """sum_k coeffs[k] * x^k for real coefficients (coeffs[0] is the constant term).

    ``bound`` is the caller's promise that |x| <= bound in every slot (default 1); it is
    not verified on encrypted values, only against ``ct.value_bound`` when that is known.
    Depth: a polynomial of degree deg (trailing zero coefficients dropped) consumes
    ``polyval_depth(deg)`` = ceil(log2 deg) + 1 levels (1 for deg <= 1).

    Before any homomorphic work it refuses: non-finite or non-real coefficients, a bound
    below ``ct.value_bound`` (ParameterError); too few levels (LevelError); a power
    x^k at bound^k or the result bound sum_k |c_k| bound^k that its level's modulus cannot
    hold (ModulusOverflowError); coefficients whose quantization to the modulus (a step of
    about 1/q_l) errs by more than 2^-20 of the result bound (ParameterError). The result
    has ct's scale and value_bound at most sum_k |c_k| bound^k.
    """
    coeffs = _check_coeffs(coeffs)
    if not isinstance(ct, Ciphertext):
        raise ParameterError(f"polyval needs a Ciphertext, got {type(ct).__name__}")
    ev.context.check(ct, "polyval's ciphertext")
    bound = _check_bound(ct, bound)
    deg = len(coeffs) - 1
    need = polyval_depth(deg)
    if ct.level < need:
        raise LevelError(f"polyval of degree {deg} needs {need} levels (ceil(log2 deg) + 1, "
                         f"at least 1), but the ciphertext is at level {ct.level}: encrypt "
                         f"at a higher level or use a lower degree")
    plan = _power_plan(ev.context, ct, deg, bound)
    result = _check_result(ev.context, ct, plan, coeffs, bound)
    terms = [(k, c) for k, c in enumerate(coeffs) if k and c]
    if not terms:
        return _retag(ev.add(ev.mul(ct, 0.0), coeffs[0]), ct.scale, result)
    powers = _powers(ev, ct, deg)
    level = min(powers[k].level for k, _ in terms) - 1
    out = None
    for k, c in terms:
        x = ev.drop_level(powers[k], level + 1)
        term = ev.mul_to_scale(x, c, ct.scale)
        out = term if out is None else ev.add(out, term)
    out = ev.add(out, coeffs[0]) if coeffs[0] else out
    return _retag(out, ct.scale, result)
