"""The RingBackend contract: one verb list, several implementations.

Every verb is batched over leading axes, takes an optional ``out=`` and produces the
same bits as :mod:`fhe_gpu.ring.reference` (the spec) for the same inputs. Arrays are
``uint64`` of shape ``(..., limbs, n)``; ``basis`` arguments are :class:`~fhe_gpu.ring.
tables.Basis` objects naming the primes of the limb axis. Leading axes of binary verbs
broadcast like NumPy.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import BackendUnavailableError
from .reference import check_key_index


class RingBackend:
    """Abstract verb list. Subclasses implement every method below."""

    name = "abstract"
    #: the array module of this backend (numpy, or cupy)
    xp = None

    # memory -----------------------------------------------------------------
    def to_device(self, a):
        """A host (NumPy) array as a backend array (no copy when already there)."""
        raise NotImplementedError

    def to_host(self, a):
        """A backend array as a NumPy array."""
        raise NotImplementedError

    def zeros(self, shape):
        """A zero ``uint64`` array."""
        return self.xp.zeros(shape, dtype=self.xp.uint64)

    def empty(self, shape):
        """An uninitialised ``uint64`` array."""
        return self.xp.empty(shape, dtype=self.xp.uint64)

    def empty_lasting(self, shape):
        """An uninitialised ``uint64`` array that lives long and is filled piecewise (a key
        slab): outside any pool, its pages committed only when first written."""
        return self.xp.empty(shape, dtype=self.xp.uint64)

    def synchronize(self):
        """Wait for queued device work (no-op on the CPU)."""

    # transforms -------------------------------------------------------------
    def ntt(self, a, basis, out=None):
        raise NotImplementedError

    def intt(self, a, basis, out=None):
        raise NotImplementedError

    # pointwise --------------------------------------------------------------
    def add(self, a, b, basis, out=None):
        raise NotImplementedError

    def sub(self, a, b, basis, out=None):
        raise NotImplementedError

    def neg(self, a, basis, out=None):
        raise NotImplementedError

    def mul(self, a, b, basis, out=None):
        raise NotImplementedError

    def mul_add(self, a, b, c, basis, out=None):
        raise NotImplementedError

    def mul_scalar(self, a, scalars, basis, out=None):
        """``scalars``: host uint64 array of shape (limbs,), s_i < q_i."""
        raise NotImplementedError

    def automorphism(self, a, galois_elt, basis, out=None):
        raise NotImplementedError

    # basis change -----------------------------------------------------------
    def mod_up(self, a, q_basis, p_basis, alpha, out=None):
        raise NotImplementedError

    def mod_raise(self, a, q0_basis, basis, out=None):
        """a (..., 1, n) over the one prime of ``q0_basis`` to ``basis`` through its
        centered coefficients (see :func:`fhe_gpu.ring.reference.mod_raise`).

        Once per bootstrap: one INTT of one limb, elementwise array operations over
        (..., limbs, n) of this backend's array module, one NTT."""
        xp, q0 = self.xp, int(q0_basis.primes[0])
        if len(q0_basis) != 1 or a.shape[-2:] != (1, basis.n):
            raise ValueError(f"mod_raise needs a (..., 1, {basis.n}) array over one prime, "
                             f"got shape {tuple(a.shape)} over {len(q0_basis)} primes")
        x = self.intt(a, q0_basis)                       # x in [0, q0)
        q = xp.asarray(np.array(basis.primes, dtype=np.uint64)).reshape(-1, 1)
        q0_mod = xp.asarray(np.array([q0 % p for p in basis.primes],
                                     dtype=np.uint64)).reshape(-1, 1)
        high = x > xp.uint64(q0 // 2)                    # coefficient x - q0 < 0
        r = x % q                                        # x mod q_i, (..., limbs, n)
        neg = (r + (q - q0_mod)) % q                     # (x - q0) mod q_i; r + q < 2^62
        lifted = xp.where(high, neg, r)
        if out is None:
            out = self.empty(lifted.shape)
        return self.ntt(xp.ascontiguousarray(lifted), basis, out=out)

    def key_switch_inner(self, ext, key, basis, key_basis, out=None, galois_elt=None,
                         key_index=None):
        """Digits (..., d, m, n) times a key (d_key, 2, m_key, n): (..., 2, m, n).

        ``galois_elt``: the digits are read through that automorphism (backends whose
        ``fuses_automorphism`` is True). ``key_index`` (host integers, shape (B,)): ``key``
        is a slab (T, d_key, 2, m_key, n) and row b of ext (B, ..., d, m, n) uses
        key[key_index[b]]; ValueError for an index outside [0, T) or of another length.
        """
        raise NotImplementedError

    def mod_down(self, a, q_basis, p_basis, out=None):
        raise NotImplementedError

    def rescale(self, a, basis, out=None):
        raise NotImplementedError


def key_digits(ext, key, max_terms: int) -> int:
    """Digits of a key_switch_inner call: ext (..., d, m, n) against key (d_key >= d, 2, ., n).

    Raises ValueError for shapes that do not fit or more digits than one 128-bit sum holds.
    """
    d = ext.shape[-3] if ext.ndim >= 3 else 0
    if key.ndim != 4 or key.shape[1] != 2 or key.shape[0] < d or d == 0:
        raise ValueError(f"key of shape {key.shape} does not fit ext of shape {ext.shape}")
    if d > max_terms:
        raise ValueError(f"{d} digits exceed the {max_terms} of one 128-bit sum")
    return d


def key_slots(ext, key, max_terms: int, key_index=None) -> tuple[int, np.ndarray, int]:
    """(digits, slots, rows per slot) of a key_switch_inner call, validated.

    Flattened row r of ext uses key slot ``slots[r // rows_per_slot]`` of the slab ``key``
    (T, d_key, 2, m_key, n) when ``key_index`` is given; without it ``key`` is one key
    (d_key, 2, m_key, n), the only slot: slots = [0].
    """
    if key_index is None:
        slot0 = np.zeros(1, dtype=np.int64)  # writable, like an index: one kernel type
        return key_digits(ext, key, max_terms), slot0, max(1, math.prod(ext.shape[:-3]))
    if ext.ndim < 4 or key.ndim != 5 or key.shape[0] == 0:
        raise ValueError(f"key_index needs ext (B, ..., d, m, n) and a key slab (T >= 1, d, 2, "
                         f"m, n), got shapes {ext.shape} and {key.shape}")
    d = key_digits(ext, key[0], max_terms)
    slots = check_key_index(key_index, ext.shape[0], key.shape[0])
    return d, slots, max(1, math.prod(ext.shape[1:-3]))


_INSTANCES: dict[str, RingBackend] = {}


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    names = ["cpu"]
    try:
        get_backend("cuda")
        names.append("cuda")
    except BackendUnavailableError:
        pass
    return names


def get_backend(name="auto") -> RingBackend:
    """The backend called ``name`` ("auto", "cpu" or "cuda"), created once per process.

    "auto" picks "cuda" when a GPU (or ``FHE_GPU_CUDA_EMULATE=1``) is present, else "cpu".
    A RingBackend instance is returned as it is (e.g. ``CudaBackend(emulate=True)``).
    """
    if isinstance(name, RingBackend):
        return name
    if name == "auto":
        try:
            return get_backend("cuda")
        except BackendUnavailableError:
            return get_backend("cpu")
    if name in _INSTANCES:
        return _INSTANCES[name]
    if name == "cpu":
        from .cpu import CpuBackend
        backend = CpuBackend()
    elif name == "cuda":
        backend = _make_cuda()
    elif name == "reference":
        from .reference_backend import ReferenceBackend
        backend = ReferenceBackend()
    else:
        raise BackendUnavailableError(
            f"unknown backend {name!r}: expected one of 'auto', 'cpu', 'cuda', 'reference'")
    _INSTANCES[name] = backend
    return backend


def _make_cuda() -> RingBackend:
    emulate = os.environ.get("FHE_GPU_CUDA_EMULATE", "") not in ("", "0")
    try:
        from .cuda import CudaBackend
    except ImportError as exc:
        raise BackendUnavailableError(f"backend 'cuda' is not built into this install: {exc}") \
            from None
    return CudaBackend(emulate=emulate)
