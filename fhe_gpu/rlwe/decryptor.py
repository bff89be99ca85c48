"""Decryption: m = c0 + c1*s, with the secret key, optionally flooded with fresh noise.

**The decryption-oracle caveat (Li–Micciancio, EUROCRYPT 2021).** A CKKS decryption
result is m + e, where e is the ciphertext's error. Whoever sees a decoded result and the
ciphertext re-encodes the slots to get c0 + c1*s exactly, and s = (m + e - c0) / c1 in the
evaluation domain: one decryption result reveals the whole secret key. Plain CKKS (and this
Decryptor without flooding, the default, as in SEAL and Lattigo) is IND-CPA secure,
not IND-CPA^D secure: only the secret key's owner may see decryption results. See
SECURITY.md for the threat model and what to do when results are shared.

**Noise flooding.** With ``flooding=True`` the Decryptor adds a fresh rounded Gaussian z of
standard deviation

    sigma_f = sqrt(24 * n * queries) * 2^(statistical_bits / 2) * B

to the coefficients of m (Li, Micciancio, Schultz, Sorrell, CRYPTO 2022, Corollary 2), where
B bounds the infinity norm of the error polynomial e (integer units, at the ciphertext's
scale). B is a *bound*, not an average (average-case flooding, such as OpenFHE's decode-time
estimate, is broken: Guo et al., USENIX Security 2024): the caller's ``noise_bound`` when
stated, else ``t * sqrt(ct.noise_var)`` with t such that 2n * exp(-t^2/2) = 2^-statistical_bits
(all n coefficients of a sub-Gaussian error of variance noise_var stay below B except with
probability 2^-statistical_bits). Guarantee: for two ciphertexts whose errors both stay
within B, the decryption distributions have KL divergence at most n(2B)^2 / (2 sigma_f^2) =
2^-statistical_bits / (12 * queries) per query; over ``queries`` decryptions an unbounded
adversary distinguishes them with advantage about 2^-statistical_bits (LMSS22), plus the
probability 2^-statistical_bits per query that the bound B fails.

The sampler (:func:`flooding_noise`) draws z = J * 2^k + U exactly in integers: J is a
Box–Muller Gaussian of deviation sigma_f / 2^k <= 2^25 rounded to an integer (ChaCha20 words
from :class:`~fhe_gpu.rlwe.sampling.Sampler`, radius uniform of 106 bits: tail cut at 12.1
sigma, mass 2^-105), U is uniform in [-2^(k-1), 2^(k-1)). Every integer thus gets the
probability it has under the ideal round(N(0, sigma_f^2)) within a relative 2^-19 (the
float64 evaluation error and the width 2^k of the uniform fill each contribute < 2^-20),
so the low bits of m + e are hidden as well as the high ones (a float64 sample scaled to
2^60 would leave them exposed). Rounding e + N(0, sigma_f^2) with e integral is a
post-processing of the continuous Gaussian, so the divergence bound above carries over.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModulusOverflowError, ParameterError
from .keys import SecretKey, check_context
from .objects import FIT_MARGIN_BITS, Ciphertext, Plaintext, check_same_keys, log2_modulus
from .sampling import Sampler, to_rns

#: statistical security, in bits, that a flooding Decryptor targets unless told otherwise
DEFAULT_STATISTICAL_BITS = 30
#: the range of statistical_bits accepted (the sampler's tail cut holds 2^-105)
MIN_STATISTICAL_BITS, MAX_STATISTICAL_BITS = 8, 80
#: the largest |g| Box–Muller can return with a 106-bit radius uniform: sqrt(2 * 106 * ln 2)
SAMPLER_TAIL = math.sqrt(2.0 * 106.0 * math.log(2.0))
#: bits of the Gaussian part J of a flooding sample (the rest is a uniform fill)
_GAUSS_BITS = 25
_TWO_PI = 2.0 * math.pi


def bound_tail_factor(n: int, statistical_bits: float) -> float:
    """t with 2n * exp(-t^2 / 2) = 2^-statistical_bits: all n coefficients of a (sub-)Gaussian
    error of deviation sigma stay within t * sigma except with that probability."""
    return math.sqrt(2.0 * math.log(2.0) * (statistical_bits + math.log2(2 * n)))


def flooding_sigma(n: int, bound: float, statistical_bits: float, queries: int = 1) -> float:
    """sigma_f = sqrt(24 * n * queries) * 2^(statistical_bits / 2) * bound (LMSS22,
    Corollary 2), for an error whose coefficients are bounded by ``bound``."""
    return math.sqrt(24.0 * n * queries) * 2.0 ** (statistical_bits / 2.0) * float(bound)


def flooding_split(sigma: float) -> int:
    """k of a flooding sample J * 2^k + U: the J part keeps a deviation <= 2^25."""
    return max(0, math.ceil(math.log2(sigma)) - _GAUSS_BITS) if sigma > 0 else 0


def flooding_max(sigma: float) -> float:
    """The largest |z| :func:`flooding_noise` can return for ``sigma`` (a hard bound)."""
    k = flooding_split(sigma)
    return (math.floor(SAMPLER_TAIL * sigma / 2 ** k) + 1) * 2.0 ** k


def _box_muller(sampler: Sampler, size: int) -> np.ndarray:
    """``size`` float64 standard normal values from ChaCha20 words: 3 words per pair, the
    radius uniform u in (0, 1] of 106 bits (two words), the angle of 53 bits."""
    pairs = (size + 1) // 2
    w = np.frombuffer(sampler._bytes(24 * pairs), dtype="<u8").reshape(3, pairs) \
        >> np.uint64(11)
    ulp = 1.0 / (1 << 53)
    u = (w[0].astype(np.float64) + (w[1].astype(np.float64) + 1.0) * ulp) * ulp
    r = np.sqrt(-2.0 * np.log(u))
    theta = w[2].astype(np.float64) * (_TWO_PI * ulp)
    return np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:size]


def flooding_noise(sampler: Sampler, shape, sigma: float):
    """Integer flooding samples z = J * 2^k + U of deviation ``sigma``, as (J, k, U):
    J int64 (|J| <= 12.2 * 2^25), U int64 uniform in [-2^(k-1), 2^(k-1)) (0 when k = 0)."""
    shape = tuple(shape)
    size = int(np.prod(shape))
    k = flooding_split(sigma)
    if k > 62:
        raise ParameterError(f"flooding sigma 2^{math.log2(sigma):.1f} exceeds the sampler's "
                             f"range: needs sigma <= 2^{62 + _GAUSS_BITS}")
    j = np.rint(_box_muller(sampler, size) * (sigma / 2.0 ** k)).astype(np.int64)
    if k == 0:
        return j.reshape(shape), 0, np.zeros(shape, dtype=np.int64)
    words = np.frombuffer(sampler._bytes(8 * size), dtype="<u8") >> np.uint64(64 - k)
    u = words.astype(np.int64) - np.int64(1 << (k - 1))
    return j.reshape(shape), k, u.reshape(shape)


def _check_bound(value, what: str):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{what} must be a positive number or None, got {value!r}")
    try:
        b = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a positive number or None, got {value!r}") from None
    if not math.isfinite(b) or b <= 0:
        raise ParameterError(f"{what} must be a positive finite number, got {value!r}")
    return b


def _check_settings(statistical_bits, queries):
    ok = isinstance(statistical_bits, (int, float, np.integer, np.floating)) \
        and not isinstance(statistical_bits, bool)
    if not ok or not MIN_STATISTICAL_BITS <= float(statistical_bits) <= MAX_STATISTICAL_BITS:
        raise ParameterError(f"statistical_bits must be a number in [{MIN_STATISTICAL_BITS}, "
                             f"{MAX_STATISTICAL_BITS}], got {statistical_bits!r}")
    if not isinstance(queries, (int, np.integer)) or isinstance(queries, bool) or queries < 1:
        raise ParameterError(f"queries must be a positive integer (decryption results an "
                             f"adversary may see under this key), got {queries!r}")
    return float(statistical_bits), int(queries)


class Decryptor:
    """Decrypts ciphertexts with the secret key: m = c0 + c1*s.

    .. warning:: **Decryption results reveal the secret key** (Li–Micciancio 2021). Without
       flooding (the default, as in SEAL and Lattigo) a decrypted plaintext, or its decoded
       slots, together with the ciphertext gives s exactly. Show decryption results
       to no one who must not hold the secret key (e.g. never return them to the server
       that evaluated the ciphertext, or to a third party), or decrypt with
       ``flooding=True``. See SECURITY.md.

    Parameters
    ----------
    context, secret_key : the Context and the SecretKey of the ciphertexts' key set.
    flooding : True adds noise flooding of deviation sigma_f (module docstring) on every
        decryption; False or None (the default) does not. Flooding costs about
        log2(sigma_f / sqrt(noise_var)) bits of precision (26 to 34 bits at N=2^14 with
        statistical_bits=30): see :meth:`flooding_bits`, :meth:`predicted_precision`.
    statistical_bits : s of the flooding guarantee (adversary advantage about 2^-s), in
        [8, 80]; 30 by default, as OpenFHE.
    noise_bound : a bound B on |coefficient| of the ciphertexts' error polynomials (integer
        units at their scale) from the caller's own worst-case analysis; overrides the
        bound derived from ``ct.noise_var``. Also accepted per call by :meth:`decrypt`.
    queries : how many decryption results (batch rows count one each) of ciphertexts under
        this key an adversary may see; sigma_f grows with its square root.
    seed : bytes making the flooding noise reproducible, for tests only.

    Flooding raises ParameterError when neither ``noise_bound`` nor ``ct.noise_var`` is
    known, and ModulusOverflowError when the flooded result would wrap around Q_level or
    keep no bit of the value.
    """

    def __init__(self, context, secret_key: SecretKey, flooding: bool | None = None,
                 statistical_bits: float = DEFAULT_STATISTICAL_BITS, noise_bound=None,
                 queries: int = 1, seed: bytes | None = None):
        check_context(context, "Decryptor")
        if not isinstance(secret_key, SecretKey):
            raise ParameterError(f"Decryptor needs a SecretKey, got {type(secret_key).__name__}")
        if flooding is None:
            flooding = False
        if not isinstance(flooding, (bool, np.bool_)):
            raise ParameterError(f"flooding must be True, False or None (the default: off), "
                                 f"got {flooding!r}")
        self.context = context
        self.secret_key = context.check(secret_key, "secret key")
        self.flooding = bool(flooding)
        self.statistical_bits, self.queries = _check_settings(statistical_bits, queries)
        self.noise_bound = _check_bound(noise_bound, "noise_bound")
        self._sampler = Sampler(seed, b"flood") if self.flooding else None

    # ---------------------------------------------------------------- decryption
    def decrypt(self, ct: Ciphertext, noise_bound=None) -> Plaintext:
        """The plaintext of ``ct`` (same level, scale and batch), flooded when this
        Decryptor floods (``noise_bound`` overrides the Decryptor's for this call)."""
        if not isinstance(ct, Ciphertext):
            raise ParameterError(f"decrypt needs a Ciphertext, got {type(ct).__name__}")
        ctx, be = self.context, self.context.backend
        ctx.check(ct, "ciphertext")
        check_same_keys(ct.key_id, self.secret_key.key_id, "the ciphertext", "the secret key")
        sigma = self._checked_sigma(ct, noise_bound) if self.flooding else None
        q = ctx.q_basis(ct.level)
        s = self.secret_key.ntt()[: ct.level + 1]
        m = be.mul_add(ct.data[:, 1], s, ct.data[:, 0], q)
        if sigma is not None:
            m = be.add(m, self._flood_ntt(ct.batch_size, sigma, q), q, out=m)
        return Plaintext(m, ct.level, ct.scale, ctx, value_bound=ct.value_bound,
                         real=ct.real)

    def _flood_ntt(self, batch: int, sigma: float, basis):
        """Flooding noise (batch, limbs, n) in evaluation form: z = J * 2^k + U per limb (the
        product by 2^k mod q_i with the backend's mul_scalar), then one NTT. Adding NTT(z)
        to m equals adding z to m's coefficients (the NTT is linear), with one transform
        instead of an INTT and an NTT."""
        be, n = self.context.backend, self.context.n
        j, k, u = flooding_noise(self._sampler, (batch, n), sigma)
        z = be.to_device(to_rns(j, basis.primes))
        if k:
            scale = np.array([pow(2, k, q) for q in basis.primes], dtype=np.uint64)
            z = be.mul_scalar(z, scale, basis, out=z)
            z = be.add(z, be.to_device(to_rns(u, basis.primes)), basis, out=z)
        return be.ntt(z, basis, out=z)

    # ---------------------------------------------------------------- predictions
    def error_bound(self, ct: Ciphertext, noise_bound=None) -> float:
        """B: the bound on |error coefficient| that sizes the flooding of ``ct``: the stated
        ``noise_bound`` (this call's, else the Decryptor's), else t * sqrt(ct.noise_var)
        (:func:`bound_tail_factor`), at least 1; ParameterError when neither is known."""
        stated = _check_bound(noise_bound, "noise_bound")
        stated = self.noise_bound if stated is None else stated
        if stated is not None:
            return stated
        var = getattr(ct, "noise_var", None)
        if var is None or not math.isfinite(var) or var < 0:
            raise ParameterError(
                f"cannot size decryption flooding: the ciphertext's noise estimate is "
                f"noise_var={var!r}; needs a known finite variance (set by the Encryptor and "
                f"the Evaluator) or a stated bound: Decryptor(..., noise_bound=B) or "
                f"decrypt(ct, noise_bound=B) with B from a worst-case noise analysis")
        return max(1.0, bound_tail_factor(self.context.n, self.statistical_bits) * math.sqrt(var))

    def flooding_sigma(self, ct: Ciphertext, noise_bound=None) -> float:
        """sigma_f, the deviation of the flooding noise this Decryptor adds to ``ct``
        (whether or not it floods: a prediction of the cost)."""
        return flooding_sigma(self.context.n, self.error_bound(ct, noise_bound),
                              self.statistical_bits, self.queries)

    def flooding_bits(self, ct: Ciphertext, noise_bound=None) -> float:
        """log2(sigma_f): bits of flooding noise added to each coefficient of ``ct``'s
        plaintext (it costs log2(sigma_f^2 + noise_var) / 2 - log2(noise_var) / 2 bits of
        precision)."""
        return math.log2(self.flooding_sigma(ct, noise_bound))

    def predicted_precision(self, ct: Ciphertext, flooded=None, noise_bound=None) -> float:
        """Predicted precision in bits (-log2 of the largest slot error, as
        :func:`fhe_gpu.precision_bits`) of ``decode(decrypt(ct))``, flooded when
        ``flooded`` (default: when this Decryptor floods). Needs ``ct.noise_var`` or a
        stated noise bound B (then the error's variance is taken as B^2)."""
        var = getattr(ct, "noise_var", None)
        if var is None:
            var = self.error_bound(ct, noise_bound) ** 2
        flooded = self.flooding if flooded is None else bool(flooded)
        sigma = self.flooding_sigma(ct, noise_bound) if flooded else 0.0
        return -math.log2(self._slot_error(math.sqrt(sigma * sigma + var), ct.scale))

    def _slot_error(self, coeff_sigma: float, scale: float) -> float:
        """The typical largest |slot error| of a coefficient error of deviation
        ``coeff_sigma``: each slot's real and imaginary parts have deviation
        coeff_sigma * sqrt(n/2) / scale; the largest of the n/2 Rayleigh moduli is about
        sqrt(2 ln(n/2)) times that."""
        n = self.context.n
        per_part = coeff_sigma * math.sqrt(n / 2.0) / scale
        return math.sqrt(2.0 * math.log(max(n // 2, 2))) * per_part

    def _checked_sigma(self, ct: Ciphertext, noise_bound) -> float:
        """sigma_f for ``ct``, or ModulusOverflowError when the flooded result would wrap
        around Q_level or keep no bit of the value."""
        bound = self.error_bound(ct, noise_bound)
        sigma = flooding_sigma(self.context.n, bound, self.statistical_bits, self.queries)
        value = max(1.0, ct.value_bound or 0.0)
        log_q = log2_modulus(self.context, ct.level)
        limit = log_q - 1 - FIT_MARGIN_BITS
        need = math.log2(value * ct.scale + bound + flooding_max(sigma))
        err = self._slot_error(sigma, ct.scale)
        where = (f"flooding sigma_f = 2^{math.log2(sigma):.2f} (statistical_bits="
                 f"{self.statistical_bits:g}, queries={self.queries}, noise bound B = "
                 f"2^{math.log2(bound):.2f}) at scale 2^{math.log2(ct.scale):.2f}, level "
                 f"{ct.level} (log2 Q_{ct.level} = {log_q:.2f})")
        if need > limit:
            raise ModulusOverflowError(
                f"{where}: |value| * scale + |error| + |flooding| reaches 2^{need:.2f}, but "
                f"the level holds at most 2^{limit:.2f}: decrypt the ciphertext at a higher "
                f"level (before its last rescales) or use larger primes")
        if err >= value:
            raise ModulusOverflowError(
                f"{where}: the flooded slots would err by about {err:.3g} >= |value| bound "
                f"{value:.3g}, keeping no bit of the value: needs a scale above "
                f"2^{math.log2(ct.scale * err / value):.2f} (and the modulus to hold it)")
        return sigma
