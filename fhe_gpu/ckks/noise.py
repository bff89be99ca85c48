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
"""
from __future__ import annotations

import math

from ..rlwe.decryptor import bound_tail_factor
from ..rlwe.encryptor import FFT_RELATIVE_ERROR, encoding_variance, rounding_variance
from ..rlwe.sampling import SIGMA

def key_switch_variance(context, level: int) -> float:
    """Variance added by one hybrid key switch at ``level``: digits times the key errors
    divided by P, plus the ModDown rounding.

    A digit extended by the fast base conversion is D = sum_i y_i * (Q_j/q_i), y_i uniform
    in [0, q_i): mean alpha*Q_j/2, variance alpha*Q_j^2/12. The centred part spreads over
    the slots like any error (N * var(D) * sigma^2 per coefficient); the mean is a constant
    polynomial whose value at the slot nearest X = 1 is 2N/pi times larger, so it is
    counted as a coefficient variance (mean * 2N/pi * sigma)^2 that reproduces that worst
    slot (a bound: the other slots see less of it).
    """
    q = context.q_primes[: level + 1]
    alpha, n = context.alpha, context.n
    log_p = sum(math.log2(p) for p in context.p_primes)
    total = 0.0
    for s in range(0, len(q), alpha):
        k = len(q[s:s + alpha])
        ratio = 2.0 ** (sum(math.log2(x) for x in q[s:s + alpha]) - log_p)
        centred = n * k / 12.0 * ratio ** 2
        mean = (k * ratio / 2.0 * 2.0 * n / math.pi) ** 2
        total += (centred + mean) * SIGMA * SIGMA
    return total + rounding_variance(n)


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
