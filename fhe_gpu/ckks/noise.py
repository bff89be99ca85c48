"""The noise model: predicted error variance and value bounds of CKKS ciphertexts.

Every ciphertext carries ``noise_var``, the predicted variance of each coefficient of its
error polynomial e (integer units: m_decrypted = scale * m + e), and ``value_bound``, a bound
on |slot value| propagated by interval arithmetic. The Evaluator updates both through every
operation with the textbook rounding terms (the same terms SEAL's and OpenFHE's errors
consist of):

* encoding rounds each coefficient: variance 1/12, plus float64 error of the FFT
  (2^-52 relative to scale * bound);
* a division by a prime product (rescale, ModDown) adds r0 + r1*s with r uniform in
  [-1/2, 1/2): variance (1 + 2N/3)/12;
* a product of polynomials a*b has coefficient variance sum_i a_i^2 var(b); for a message
  of slot bound B at scale D that is at most (D*B)^2 var(b);
* hybrid key switching adds sum_j N * (Q_j^2/12) * sigma^2 / P^2 (digit j of size Q_j
  times the key's Gaussian error, divided by P) plus the ModDown rounding: this is the
  term that makes a digit as large as P (one small special prime) cost rotations bits.

The slot error of a ciphertext is e evaluated at a root of unity, divided by the scale:
its variance is N * noise_var / scale^2. :func:`error_bound` turns it into a bound that
holds for every slot except with probability 2^-tail_bits (Gaussian tail), and
:func:`predicted_bits` into bits of precision.

The same terms per slot, for the Simulator (:mod:`fhe_gpu.ckks.simulator`), which knows
every slot's value and so predicts the typical largest error rather than a bound: a
rounding r0 + r1*s has at slot j the variance (1 + |s(zeta_j)|^2) N/12 (the secret's
spectrum, nearly exponential over the slots: :func:`key_power`,
:func:`rounding_slot_variance`); the key-switching digit mean is concentrated near slot 0
(:func:`key_switch_terms`, :func:`mean_profile`); and :func:`max_error` is 2^E[log2 max]
of the largest slot error given every slot's variance, the tail of as many slots as the
ciphertext has.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..rlwe.decryptor import bound_tail_factor
from ..rlwe.encryptor import FFT_RELATIVE_ERROR, encoding_variance, rounding_variance
from ..rlwe.sampling import SIGMA

def key_switch_terms(context, level: int) -> tuple[float, float]:
    """The coefficient variance the digits of one hybrid key switch at ``level`` add, in
    two parts: ``(centred, peak)`` (the ModDown rounding comes on top).

    A digit extended by the fast base conversion is D = sum_i y_i * (Q_j/q_i), y_i uniform
    in [0, q_i): mean alpha*Q_j/2, variance alpha*Q_j^2/12. The centred part spreads over
    the slots like any error (N * var(D) * sigma^2 per coefficient, divided by P^2):
    ``centred``. The mean is a constant polynomial, whose value at the root zeta_j of slot
    j is 2/(1 - zeta_j): 2N/pi at the slot nearest X = 1, less elsewhere
    (:func:`mean_profile`). ``peak`` is the coefficient variance that reproduces that
    worst slot, (mean * 2N/pi * sigma)^2 per digit.
    """
    q = context.q_primes[: level + 1]
    alpha, n = context.alpha, context.n
    log_p = sum(math.log2(p) for p in context.p_primes)
    centred = peak = 0.0
    for s in range(0, len(q), alpha):
        k = len(q[s:s + alpha])
        ratio = 2.0 ** (sum(math.log2(x) for x in q[s:s + alpha]) - log_p)
        centred += n * k / 12.0 * ratio ** 2 * SIGMA * SIGMA
        peak += (k * ratio / 2.0 * 2.0 * n / math.pi * SIGMA) ** 2
    return centred, peak


def key_switch_variance(context, level: int) -> float:
    """Variance added by one hybrid key switch at ``level``: digits times the key errors
    divided by P, plus the ModDown rounding; the digit-mean term counted at its worst slot
    (a bound: the other slots see less of it). See :func:`key_switch_terms`."""
    centred, peak = key_switch_terms(context, level)
    return centred + peak + rounding_variance(context.n)


@functools.lru_cache(maxsize=16)
def slot_exponents(n: int) -> np.ndarray:
    """5^j mod 2N: slot j holds the value at zeta^(5^j) (the Encoder's order)."""
    g = np.array([pow(5, j, 2 * n) for j in range(n // 2)], dtype=np.int64)
    g.setflags(write=False)
    return g


@functools.lru_cache(maxsize=16)
def mean_profile(n: int) -> np.ndarray:
    """Per slot, |1(zeta_j)|^2 of the all-ones polynomial relative to its largest value
    (slot 0, nearest X = 1): sin^2(pi/2N) / sin^2(pi 5^j / 2N). Read-only, shape (n/2,)."""
    g = slot_exponents(n).astype(np.float64)
    out = (math.sin(math.pi / (2 * n)) / np.sin(np.pi * g / (2 * n))) ** 2
    out.setflags(write=False)
    return out


def key_power(n: int, rng=None) -> np.ndarray:
    """|s(zeta_j)|^2 per slot for a uniform ternary secret s (mean 2N/3 over the slots).

    A rounding r0 + r1*s (rescale, ModDown) has at slot j the variance
    (1 + |s(zeta_j)|^2) * N/12 in integer units: its spread over the slots, nearly
    exponential, gives the largest slot error a heavier tail than a uniform variance
    would. With ``rng`` the value of a drawn secret; without, the typical profile: the
    quantiles of the exponential distribution in a fixed random slot order."""
    if rng is not None:
        s = rng.integers(-1, 2, n).astype(np.float64)
        values = np.fft.ifft(s * np.exp(1j * np.pi * np.arange(n) / n)) * n
        return np.abs(values[(slot_exponents(n) - 1) // 2]) ** 2
    return _typical_key_power(n)


@functools.lru_cache(maxsize=8)
def _typical_key_power(n: int) -> np.ndarray:
    """The quantiles of |s(zeta)|^2 in a fixed random slot order (read-only)."""
    m = n // 2
    quantiles = -np.log1p(-(np.arange(m) + 0.5) / m) * (2.0 * n / 3.0)
    out = np.random.default_rng(0).permutation(quantiles)
    out.setflags(write=False)
    return out


def rounding_slot_variance(n: int, power, scale: float):
    """Per-slot variance (value units, at ``scale``) of a rounding r0 + r1*s, for the
    secret's per-slot power |s(zeta_j)|^2 (:func:`key_power`); its mean over the slots is
    :func:`slot_variance` of ``rounding_variance(n)``."""
    return slot_variance(n, (1.0 + power) / 12.0, scale)


def mul_variance(n: int, a, b, pt_b: bool = False) -> float:
    """Error variance of a*b before relinearization and rescale: each message times the
    other's error, plus the product of the errors. ``a`` and ``b`` are (noise_var, scale,
    value_bound); a plaintext ``b`` has the encoding variance as its error."""
    va, sa, ba = a
    vb, sb, bb = b
    if pt_b:
        vb = encoding_variance(n, sb, bb)
    return (sb * bb) ** 2 * va + (sa * ba) ** 2 * vb + n * va * vb


def scalar_variance(var: float, k: int, scale: float, bound: float) -> float:
    """Error variance after multiplying by the integer constant k = round(c * m) whose
    rounding (at most 1/2) multiplies the message (scale * bound)."""
    return float(k) ** 2 * var + (scale * bound) ** 2 / 12.0


def rescale_variance(n: int, var: float, prime: int) -> float:
    """Error variance after dividing by ``prime`` and rounding."""
    return var / float(prime) ** 2 + rounding_variance(n)


def tail_factor(n: int, tail_bits: float) -> float:
    """t such that a Gaussian exceeds t standard deviations in any of 2n real parts with
    probability at most 2^-tail_bits (the Decryptor's bound factor, one bit tighter)."""
    return bound_tail_factor(n, tail_bits + 1)


def error_bound(ct, tail_bits: float = 40.0):
    """A bound on the slot error |decode(decrypt(ct)) - value| that holds with probability
    1 - 2^-tail_bits (None when the ciphertext's noise or bound is unknown)."""
    if ct.noise_var is None or ct.value_bound is None:
        return None
    n = ct.context.n
    slot_sigma = math.sqrt(n * ct.noise_var) / ct.scale
    decode_float = FFT_RELATIVE_ERROR * math.log2(n) * max(ct.value_bound, 1.0)
    return tail_factor(n, tail_bits) * slot_sigma + decode_float


def predicted_bits(ct, tail_bits: float = 40.0):
    """-log2 of :func:`error_bound`: the precision (bits) every slot keeps."""
    bound = error_bound(ct, tail_bits)
    return None if bound is None else -math.log2(bound)


def slot_variance(n: int, coef_var, scale: float):
    """The variance of a slot's error (value units) for error coefficients of variance
    ``coef_var`` (integer units at ``scale``): N * coef_var / scale^2."""
    return n * coef_var / (float(scale) * float(scale))


#: variance bins per bit in :func:`max_error` (slots of nearly equal variance share a bin)
_BINS_PER_BIT = 16
#: slots whose variance is 2^-_SPAN_BITS of the largest or less never hold the maximum
_SPAN_BITS = 10


def _binned(slot_var):
    """(log2 of the largest variance, bin variances, counts) of the positive variances
    within _SPAN_BITS of the largest, in bins of 1/_BINS_PER_BIT bit; None if none."""
    v = np.asarray(slot_var, dtype=np.float64).ravel()
    v = v[v > 0]
    if v.size == 0:
        return None
    logs = np.log2(v)
    top = float(logs.max())
    depth = np.floor((top - logs[logs > top - _SPAN_BITS]) * _BINS_PER_BIT).astype(np.int64)
    counts = np.bincount(depth)
    keep = counts > 0
    return top, 2.0 ** (top - (np.flatnonzero(keep) + 0.5) / _BINS_PER_BIT), counts[keep]


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc for x >= 0, vectorized (Numerical Recipes' erfcc: relative error < 1.2e-7)."""
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return t * np.exp(poly)


def _log_cdf(r, var: np.ndarray, counts: np.ndarray, part: str):
    """ln P(max_j |error_j| <= r) for each r of a 1-D array."""
    r = np.asarray(r, dtype=np.float64)[:, None]
    if part == "complex":
        tail = np.exp(-r * r / var)
    else:
        tail = _erfc(r / np.sqrt(var))
    return np.sum(counts * np.log1p(-np.minimum(tail, 1.0 - 1e-16)), axis=1)


def max_error(slot_var, part: str = "complex") -> float:
    """2^E[log2 max_j |error_j|] over independent slot errors of variances ``slot_var``
    (any shape; every element is a slot): the largest slot error of one run, averaged in
    bits as precision is (-log2 of it is the mean of -log2 max over many runs). ``part``
    is "complex" (|error|) or "real" (|Re error|, half the variance). Variances are
    grouped in bins of 1/16 bit; the expectation is taken over 1/16-bit steps of r."""
    if part not in ("complex", "real"):
        raise ValueError(f"part must be 'complex' or 'real', got {part!r}")
    binned = _binned(slot_var)
    if binned is None:
        return 0.0
    top, var, counts = binned
    span = 8.0 + 0.5 * math.log2(float(np.sum(counts)))
    coarse = top / 2.0 + np.arange(-14.0, span, 0.25)
    cdf = np.exp(_log_cdf(2.0 ** coarse, var, counts, part))
    start = coarse[max(0, int(np.searchsorted(cdf, 1e-12)) - 1)]
    end = coarse[min(len(coarse) - 1, int(np.searchsorted(cdf, 1.0 - 1e-12)) + 1)]
    steps = np.arange(start, end + 1e-9, 1.0 / 16.0)
    cdf = np.exp(_log_cdf(2.0 ** steps, var, counts, part))
    mass = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    at = np.concatenate([[steps[0]], (steps[1:] + steps[:-1]) / 2.0, [steps[-1]]])
    return float(2.0 ** np.sum(mass * at))


def max_error_bits(slot_var, part: str = "complex") -> float:
    """-log2 of :func:`max_error`: the max-error precision (bits) to expect."""
    err = max_error(slot_var, part)
    return float("inf") if err == 0 else -math.log2(err)
