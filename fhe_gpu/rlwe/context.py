"""The ring context: a backend, the prime set, and the bases of every level.

Holds no keys and no data; every object made under a context carries its fingerprint.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import BackendUnavailableError, ContextMismatchError, ParameterError
from ..ring import basis, get_backend, prime_set


class Context:
    """RNS ring Z[X]/(X^n + 1) over Q = q_0..q_L and special primes P = p_0..p_{K-1}.

    Parameters
    ----------
    n : ring degree (a power of two).
    q_primes, p_primes : the primes of Q and P.
    dnum : number of key-switching digits at full level; each holds ``alpha`` primes.
    fingerprint : bytes identifying the parameter set.
    backend : "auto", "cpu" or "cuda".
    """

    def __init__(self, n, q_primes, p_primes, dnum, fingerprint: bytes, backend="auto"):
        self.n = int(n)
        self.q_primes = tuple(int(q) for q in q_primes)
        self.p_primes = tuple(int(p) for p in p_primes)
        self.max_level = len(self.q_primes) - 1
        self.dnum = int(dnum)
        self.alpha = math.ceil(len(self.q_primes) / self.dnum)
        self.fingerprint = bytes(fingerprint)
        bad = [q for q in self.q_primes + self.p_primes if q < 2 or (q - 1) % (2 * self.n)]
        if bad:
            raise ParameterError(f"primes {bad[:4]} are not NTT-friendly for n={self.n}: "
                                 f"every prime must be 1 mod 2n={2 * self.n}")
        if not isinstance(backend, str) and not hasattr(backend, "ntt"):
            raise BackendUnavailableError(f"backend must be 'auto', 'cpu', 'cuda' or a "
                                          f"RingBackend, got {backend!r:.60}")
        self.backend = get_backend(backend)
        self.universe = prime_set(self.n, self.q_primes + self.p_primes)
        nq = len(self.q_primes)
        self.p_basis = basis(self.universe, tuple(range(nq, nq + len(self.p_primes))))
        self.full_qp = self.qp_basis(self.max_level)
        self._qp_rows: dict[tuple[int, int], np.ndarray] = {}

    @property
    def backend_name(self) -> str:
        """The name of the ring backend in use ("cpu" or "cuda")."""
        return self.backend.name

    def q_basis(self, level: int):
        """The basis q_0..q_level."""
        return basis(self.universe, tuple(range(level + 1)))

    def qp_basis(self, level: int):
        """The basis q_0..q_level, p_0..p_{K-1}."""
        return self.q_basis(level) + self.p_basis

    def qp_rows(self, level: int, special: int | None = None) -> np.ndarray:
        """Row indices of q_0..q_level and the first ``special`` special primes (all of
        them by default: qp_basis(level)) in arrays over the full Q u P basis."""
        key = (int(level), len(self.p_primes) if special is None else int(special))
        rows = self._qp_rows.get(key)
        if rows is None:
            nq = len(self.q_primes)
            rows = np.array(list(range(key[0] + 1)) + list(range(nq, nq + key[1])), dtype=np.int64)
            rows = self._qp_rows.setdefault(key, rows)
        return rows

    def galois_element(self, steps: int) -> int:
        """The Galois element 5^steps mod 2n of a rotation by ``steps`` slots."""
        return pow(5, steps % (self.n // 2), 2 * self.n)

    @property
    def conjugation_element(self) -> int:
        """The Galois element 2n - 1 of complex conjugation."""
        return 2 * self.n - 1

    def check(self, obj, what: str = "object"):
        """Raise ContextMismatchError unless ``obj`` was made under these parameters."""
        fp = getattr(obj, "fingerprint", None)
        if fp != self.fingerprint:
            got = fp.hex()[:16] if isinstance(fp, bytes) else repr(fp)
            raise ContextMismatchError(
                f"{what} has parameter fingerprint {got}, but this context needs "
                f"{self.fingerprint.hex()[:16]}: it was made under other parameters")
        return obj
