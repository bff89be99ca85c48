"""Keys and key generation: ternary secret, public key, hybrid key-switching keys.

A key-switching key from s' to s has one component pair per digit j (alpha primes each):
``b_j = -a_j*s + e_j + g_j*s'`` and ``a_j`` over Q u P, with the gadget ``g_j = P mod q_i``
on the limbs of digit j and 0 elsewhere (and on P). ``a_j`` is expanded from a seed.
"""
from __future__ import annotations

import numpy as np

from ..errors import KeyMissingError, ParameterError, SerializationError
from . import wire_hook
from .resources import check_memory
from .sampling import Sampler, to_rns, uniform_poly, uniform_poly_row


#: bytes of a key id: the public name of a key set (SecretKey, PublicKey, EvaluationKeys
#: and every ciphertext made under them carry it)
KEY_ID_BYTES = 16


def check_context(context, what: str):
    """ParameterError unless ``context`` is a Context (what the constructor ``what`` needs)."""
    from .context import Context
    if not isinstance(context, Context):
        raise ParameterError(f"{what} needs a Context as its first argument, got "
                             f"{type(context).__name__}")
    return context


def _key_id(key_id) -> bytes:
    if not isinstance(key_id, (bytes, bytearray)) or len(key_id) != KEY_ID_BYTES:
        raise ParameterError(f"key_id must be {KEY_ID_BYTES} bytes, got {key_id!r:.60}")
    return bytes(key_id)


class SecretKey(wire_hook.WireMethods):
    """The ternary secret s. Never handed to server-side objects. ``key_id`` is the public
    name of its key set."""

    def __init__(self, coeffs: np.ndarray, context, key_id: bytes):
        self.coeffs = np.asarray(coeffs, dtype=np.int8)
        self.context = context
        self.fingerprint = context.fingerprint
        self.key_id = _key_id(key_id)
        self._ntt = None
        self._neg_ntt = None

    def ntt(self):
        """s in evaluation form over the full Q u P basis (limbs, n), computed once."""
        if self._ntt is None:
            ctx = self.context
            be, qp = ctx.backend, ctx.full_qp
            self._ntt = be.ntt(be.to_device(to_rns(self.coeffs, qp.primes)), qp)
        return self._ntt

    def neg_ntt(self):
        """-s in evaluation form over the full Q u P basis, computed once."""
        if self._neg_ntt is None:
            qp = self.context.full_qp
            self._neg_ntt = self.context.backend.neg(self.ntt(), qp)
        return self._neg_ntt

    def to_bytes(self, secret: bool = False) -> bytes:
        """The wire encoding of the secret key; refuses unless ``secret=True`` is passed."""
        if secret is not True:
            raise SerializationError("refusing to serialize a SecretKey: call "
                                     "sk.to_bytes(secret=True) to confirm the secret may leave")
        return super().to_bytes()

    def __repr__(self):
        return f"SecretKey(n={self.context.n})"


class PublicKey(wire_hook.WireMethods):
    """(b, a) = (-a*s + e, a) over the full Q u P basis, shape (2, limbs, n); ``seed``
    (when set) expands a; ``key_id`` names the key set."""

    def __init__(self, data, context, seed: bytes | None = None, key_id: bytes = None):
        self.data = data
        self.context = context
        self.seed = seed
        self.fingerprint = context.fingerprint
        self.key_id = _key_id(key_id)


class SwitchingKey:
    """Key-switching key (digits, 2, limbs over Q u P, n); ``seed`` expands the a_j."""

    def __init__(self, data, context, seed: bytes):
        self.data = data
        self.context = context
        self.seed = seed
        self.fingerprint = context.fingerprint


class SeededSwitchingKey(SwitchingKey):
    """A switching key held as its b part and the seed of its uniform a: half the memory.

    ``data`` expands the whole key (digits, 2, limbs, n) on each access (for the wire and
    key slabs); :meth:`operand` expands only the digits and limbs one key switch reads,
    into a per-thread buffer (about 15 % more time per key switch on the CPU)."""

    def __init__(self, b, context, seed: bytes):
        self.b = b
        self.context = context
        self.seed = bytes(seed)
        self.fingerprint = context.fingerprint

    @property
    def data(self):
        ctx = self.context
        a = uniform_poly(self.seed, b"ksk", ctx.full_qp.primes, ctx.n, batch=self.b.shape[0])
        return np.stack([self.b, a], axis=1)

    def operand(self, basis, digits: int, out):
        """The key over ``basis`` (limbs of Q_level u P), its first ``digits`` digits, in
        ``out`` (digits, 2, len(basis), n)."""
        ctx = self.context
        idx = [ctx.full_qp.primes.index(q) for q in basis.primes]
        for j in range(digits):
            np.take(self.b[j], idx, axis=0, out=out[j, 0])
            uniform_poly_row(self.seed, b"ksk", basis.primes, ctx.n, j, out=out[j, 1])
        return out


class EvaluationKeys(wire_hook.WireMethods):
    """Relinearization key and Galois keys (by Galois element) of the key set ``key_id``.
    Holds no secret."""

    def __init__(self, context, relin: SwitchingKey | None = None, galois=None,
                 key_id: bytes = None):
        self.context = context
        self.fingerprint = context.fingerprint
        self.relin = relin
        self.galois = dict(galois or {})
        self.key_id = _key_id(key_id)

    def key_bytes(self) -> int:
        """Bytes one switching key occupies (digits x 2 x (L+1+K) limbs x N words)."""
        ctx = self.context
        digits = -(-len(ctx.q_primes) // ctx.alpha)
        return digits * 2 * len(ctx.full_qp) * ctx.n * 8

    def relin_key(self) -> SwitchingKey:
        """The relinearization key, or KeyMissingError."""
        if self.relin is None:
            raise KeyMissingError("no relinearization key: generate evaluation keys with "
                                  "relinearization=True")
        return self.relin

    def galois_key(self, galois_elt: int, what: str) -> SwitchingKey:
        """The key of a Galois element, or KeyMissingError naming the operation."""
        if galois_elt not in self.galois:
            raise KeyMissingError(f"no Galois key for {what} (Galois element {galois_elt}); "
                                  f"available elements: {sorted(self.galois)}")
        return self.galois[galois_elt]


class KeyGenerator:
    """Generates a secret key and the keys derived from it.

    ``seed`` (bytes) makes generation reproducible, for tests only: never use a seed for
    real keys. None draws OS entropy. The key set's public ``key_id`` is drawn from the
    same stream.
    """

    def __init__(self, context, seed: bytes | None = None, hamming_weight: int | None = None):
        self.context = check_context(context, "KeyGenerator")
        self._sampler = Sampler(seed, b"keygen")
        self.key_id = self._sampler.seed()[:KEY_ID_BYTES]
        #: nonzero coefficients of a sparse secret (None: dense, uniform in {-1, 0, 1})
        self.hamming_weight = None if hamming_weight is None else int(hamming_weight)
        coeffs = self._sampler.ternary((context.n,)) if hamming_weight is None else \
            self._sampler.sparse_ternary(context.n, self.hamming_weight)
        self.secret_key = SecretKey(coeffs, context, self.key_id)

    def sparse_secret(self, weight: int) -> SecretKey:
        """A fresh ephemeral secret of ``weight`` nonzero coefficients in this key set
        (the target of sparse-secret encapsulation; never serialized)."""
        coeffs = self._sampler.sparse_ternary(self.context.n, weight)
        return SecretKey(coeffs, self.context, self.key_id)

    def _noise(self, shape_lead, basis):
        """A Gaussian error in evaluation form, shape shape_lead + (limbs, n)."""
        be = self.context.backend
        e = be.to_device(to_rns(self._sampler.gaussian(tuple(shape_lead) + (self.context.n,)),
                                basis.primes))
        return be.ntt(e, basis, out=e)

    def public_key(self) -> PublicKey:
        """A fresh public key (b, a) = (-a*s + e, a) over Q u P."""
        ctx = self.context
        be, qp = ctx.backend, ctx.full_qp
        seed = self._sampler.seed()
        a = be.to_device(uniform_poly(seed, b"pk", qp.primes, ctx.n))
        b = be.mul_add(a, self.secret_key.neg_ntt(), self._noise((), qp), qp)
        return PublicKey(ctx.backend.xp.stack([b, a]), ctx, seed, self.key_id)

    def switching_key(self, s_from, to: SecretKey | None = None,
                      seeded: bool = False) -> SwitchingKey:
        """A key switching ``s_from`` (evaluation form over Q u P) to the secret key (or
        to the secret ``to``); ``seeded``: a :class:`SeededSwitchingKey` (host backends).

        b_j = -a_j*s + e_j + g_j*s_from: the gadget term P*s_from is added to e_j on the
        limbs of digit j only, then one fused multiply-add makes b.
        """
        target = self.secret_key if to is None else to
        ctx = self.context
        be, qp, xp = ctx.backend, ctx.full_qp, ctx.backend.xp
        nq = len(ctx.q_primes)
        q_basis = ctx.q_basis(ctx.max_level)
        dnum = -(-nq // ctx.alpha)
        seed = self._sampler.seed()
        a = be.to_device(uniform_poly(seed, b"ksk", qp.primes, ctx.n, batch=dnum))
        e = self._noise((dnum,), qp)
        p_mod = np.array([ctx.p_basis.product % q for q in ctx.q_primes], dtype=np.uint64)
        s_p = be.mul_scalar(s_from[:nq], p_mod, q_basis)
        for j in range(dnum):
            s0, s1 = j * ctx.alpha, min((j + 1) * ctx.alpha, nq)
            e[j, s0:s1] = be.add(e[j, s0:s1], s_p[s0:s1], q_basis[s0:s1])
        b = be.mul_add(a, target.neg_ntt(), e, qp, out=e)
        if seeded:
            return SeededSwitchingKey(be.to_host(b), ctx, seed)
        return SwitchingKey(xp.stack([b, a], axis=1), ctx, seed)

    def key_bytes(self) -> int:
        """Bytes one switching key occupies (digits x 2 x (L+1+K) limbs x N words)."""
        ctx = self.context
        digits = -(-len(ctx.q_primes) // ctx.alpha)
        return digits * 2 * len(ctx.full_qp) * ctx.n * 8

    def relin_key(self, seeded: bool = False) -> SwitchingKey:
        """The key switching s^2 to s (``seeded``: see :meth:`switching_key`)."""
        be, qp = self.context.backend, self.context.full_qp
        s = self.secret_key.ntt()
        return self.switching_key(be.mul(s, s, qp), seeded=seeded)

    def galois_key(self, galois_elt: int, seeded: bool = False) -> SwitchingKey:
        """The key switching s(X^g) to s (``seeded``: see :meth:`switching_key`)."""
        be, qp = self.context.backend, self.context.full_qp
        return self.switching_key(be.automorphism(self.secret_key.ntt(), galois_elt, qp),
                                  seeded=seeded)

    def bootstrap_keys(self, bp, progress=None, compact: bool | None = None):
        """The keys of a bootstrapping preset ``bp`` (a circuits.BootstrapParameters): its
        Galois keys, conjugation, relinearization and, with sparse-secret encapsulation,
        the two keys switching to and from an ephemeral sparse secret. Public material
        only; ``progress(done, total)`` is called after each key (``True``: a line on
        stderr with keys, GB and seconds so far). ``compact`` (default True on the cpu
        backend): each key held as b and the seed of a, a re-expanded per key switch: half
        the memory (1.9 GB less at N = 2^16) for ~12 % more time. See
        :func:`fhe_gpu.rlwe.bootkeys.generate`."""
        from .bootkeys import generate
        return generate(self, bp, progress, compact)

    def evaluation_keys(self, rotations=(), conjugation: bool = False,
                        relinearization: bool = True) -> EvaluationKeys:
        """Relinearization key plus Galois keys for ``rotations`` (slot steps, any sign)
        and, when ``conjugation``, for complex conjugation."""
        ctx = self.context
        try:
            steps = list(rotations)
        except TypeError:
            raise ParameterError(f"rotations must be a list of integer steps, got "
                                 f"{rotations!r:.60}") from None
        elements = set()
        for k in steps:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                raise ParameterError(f"rotation step {k!r} is not an integer")
            if k % (ctx.n // 2):
                elements.add(ctx.galois_element(int(k)))
        if conjugation:
            elements.add(ctx.conjugation_element)
        count = len(elements) + bool(relinearization)
        check_memory(count * self.key_bytes(), f"{count} evaluation keys")
        galois = {g: self.galois_key(g) for g in sorted(elements)}
        relin = self.relin_key() if relinearization else None
        return EvaluationKeys(ctx, relin, galois, self.key_id)
