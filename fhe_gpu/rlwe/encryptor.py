"""Encryption and decryption of batched plaintexts.

Public-key encryption works over Q u P and divides by P (ModDown), so the fresh noise is
(u*e + e0 + e1*s)/P plus a rounding term, as in SEAL. Symmetric encryption is
(-a*s + e + m, a) over Q_level with ``a`` expanded from a 32-byte seed.

The errors e0, e1 of the public-key encryption vanish in the division by P: with
|e| <= TAIL, round((c + e)/P) differs from round(c/P) only where [c]_P lies within TAIL of
the rounding boundary +-P/2, probability (2*TAIL + 1)/P per coefficient for c = u*pk (which
is pseudorandom under RLWE). Where that bound, over the 2N coefficients of a ciphertext,
is at most 2^-STATISTICAL_BITS, they are not sampled (the ciphertexts are those with the
errors added, up to that statistical distance), and only the first special primes that
reach the bound are used: pk restricted to Q u P' is an RLWE public key over Q*P', and
u*e/P' is still below 2^-90, so the fresh noise is the same rounding term r0 + r1*s at a
fraction of the cost (2 of the 8 special primes of N16).
"""
from __future__ import annotations

import math

from ..errors import ParameterError
from .keys import PublicKey, SecretKey, check_context
from .objects import Ciphertext, Plaintext
from .sampling import SIGMA, TAIL, Sampler, to_rns, uniform_poly

#: statistical distance, in bits, below which the errors of public-key encryption are skipped
STATISTICAL_BITS = 80


def errors_vanish_bits(n: int, p_primes) -> float:
    """log2 of the bound on Pr[round((u*pk + e)/P) != round(u*pk/P)] for one ciphertext of
    ring degree ``n``: 2n coefficients, each within TAIL of the boundary with probability
    (2*TAIL + 1)/P."""
    return math.log2(2 * n * (2 * TAIL + 1)) - sum(math.log2(int(p)) for p in p_primes)


def encryption_special_primes(n: int, p_primes) -> int:
    """How many leading special primes public-key encryption uses: the fewest whose product
    makes the errors vanish (:func:`errors_vanish_bits` <= -STATISTICAL_BITS), else all of
    them (and the errors are added)."""
    for k in range(1, len(p_primes) + 1):
        if errors_vanish_bits(n, p_primes[:k]) <= -STATISTICAL_BITS:
            return k
    return len(p_primes)


def rounding_variance(n: int) -> float:
    """Variance of the rounding term r0 + r1*s of a division by a prime product (ModDown,
    rescale): r0, r1 uniform in [-1/2, 1/2), s ternary with 2n/3 nonzero coefficients."""
    return (1.0 + 2.0 * n / 3.0) / 12.0


#: float64 relative error allowed for the encoder's and decoder's FFTs: the 2-norm of an FFT's
#: rounding error is at most a small multiple of eps * log2(N) times the 2-norm of its output
FFT_RELATIVE_ERROR = 2.0 ** -54


def encoding_variance(n: int, scale: float, bound) -> float:
    """Variance of the encoding error of values bounded by ``bound`` at ``scale``: the
    rounding to integers (1/12) and the float64 error of the FFT, whose 2-norm is at most
    FFT_RELATIVE_ERROR * log2(n) * scale * bound (the 2-norm of the coefficients), spread
    over n coefficients."""
    b = 1.0 if bound is None else max(float(bound), 1.0)
    fft = FFT_RELATIVE_ERROR * math.log2(max(n, 2)) * scale * b
    return 1.0 / 12.0 + fft * fft / n


def fresh_variance(n: int, public: bool, scale: float = 1.0, bound=None) -> float:
    """Predicted variance of a fresh ciphertext's error coefficients: the encoding error
    plus the Gaussian error (symmetric) or the ModDown rounding (public key)."""
    return encoding_variance(n, scale, bound) + (rounding_variance(n) if public else SIGMA ** 2)


def _check_plaintext(context, pt):
    if not isinstance(pt, Plaintext):
        raise ParameterError(f"encrypt needs a Plaintext, got {type(pt).__name__}")
    context.check(pt, "plaintext")


class Encryptor:
    """Encrypts Plaintexts under a PublicKey, or under a SecretKey (seeded symmetric).

    ``seed`` makes the encryption randomness reproducible, for tests only: a seeded
    Encryptor repeats its ciphertexts' randomness, which reveals differences of messages.
    Ciphertexts carry the key's ``key_id`` and the predicted variance of their fresh noise.
    """

    def __init__(self, context, key, seed: bytes | None = None):
        check_context(context, "Encryptor")
        if not isinstance(key, (PublicKey, SecretKey)):
            raise ParameterError(f"Encryptor needs a PublicKey or SecretKey, got "
                                 f"{type(key).__name__}")
        self.context = context
        self.key = context.check(key, "key")
        self._sampler = Sampler(seed, b"encrypt")
        self._p_count = encryption_special_primes(context.n, context.p_primes)
        self._add_errors = errors_vanish_bits(context.n, context.p_primes[:self._p_count]) \
            > -STATISTICAL_BITS
        self._pk_rows = (None, None)

    def encrypt(self, pt: Plaintext) -> Ciphertext:
        """A ciphertext of ``pt`` at the plaintext's level and scale, same batch."""
        _check_plaintext(self.context, pt)
        if isinstance(self.key, PublicKey):
            return self._encrypt_public(pt)
        return self._encrypt_symmetric(pt)

    def _encrypt_public(self, pt):
        ctx, be = self.context, self.context.backend
        level, batch = pt.level, pt.batch_size
        q, p = ctx.q_basis(level), ctx.p_basis[:self._p_count]
        qp = q + p
        pk = self._public_key_rows(level)
        u = be.ntt(be.to_device(to_rns(self._sampler.ternary((batch, ctx.n)), qp.primes)), qp)
        if self._add_errors:
            e = be.ntt(be.to_device(to_rns(self._sampler.gaussian((batch, 2, ctx.n)),
                                           qp.primes)), qp)
            c = be.mul_add(u[:, None], pk[None], e, qp)
        else:
            c = be.mul(u[:, None], pk[None], qp)
        c = be.mod_down(c, q, p)
        c0 = c[:, 0]
        be.add(c0, pt.data, q, out=c0)
        return Ciphertext(c, level, pt.scale, ctx, key_id=self.key.key_id,
                          noise_var=fresh_variance(ctx.n, True, pt.scale, pt.value_bound),
                          value_bound=pt.value_bound, real=pt.real)

    def _public_key_rows(self, level):
        """The public key over q_0..q_level and the special primes in use, contiguous
        (kept for the last level asked: the copy costs as much as a pointwise product)."""
        if self._pk_rows[0] != level:
            rows = self.context.qp_rows(level, self._p_count)
            self._pk_rows = (level, self.context.backend.xp.ascontiguousarray(
                self.key.data[:, rows]))
        return self._pk_rows[1]

    def _encrypt_symmetric(self, pt):
        ctx, be = self.context, self.context.backend
        level, batch = pt.level, pt.batch_size
        q = ctx.q_basis(level)
        seed = self._sampler.seed()
        a = be.to_device(uniform_poly(seed, b"ct", q.primes, ctx.n, batch=batch))
        e = be.ntt(be.to_device(to_rns(self._sampler.gaussian((batch, ctx.n)), q.primes)), q)
        s = self.key.ntt()[: level + 1]
        c0 = be.sub(be.add(e, pt.data, q), be.mul(a, s, q), q)
        return Ciphertext(be.xp.stack([c0, a], axis=1), level, pt.scale, ctx, seed=seed,
                          key_id=self.key.key_id,
                          noise_var=fresh_variance(ctx.n, False, pt.scale, pt.value_bound),
                          value_bound=pt.value_bound, real=pt.real)
