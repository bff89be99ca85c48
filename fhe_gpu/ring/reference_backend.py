"""The spec as a RingBackend: reference.py behind the Basis-based verb signatures.

Slow (Python ints); used by tests to compare the fast backends verb by verb.
"""
from __future__ import annotations

import numpy as np

from . import reference as ref
from .backend import RingBackend


class ReferenceBackend(RingBackend):
    """Every verb computed by :mod:`fhe_gpu.ring.reference`."""

    name = "reference"
    xp = np

    def to_device(self, a):
        return np.ascontiguousarray(a, dtype=np.uint64)

    def to_host(self, a):
        return np.asarray(a)

    def ntt(self, a, basis, out=None):
        return ref.ntt(a, basis.primes, out=out)

    def intt(self, a, basis, out=None):
        return ref.intt(a, basis.primes, out=out)

    def add(self, a, b, basis, out=None):
        return ref.add(a, b, basis.primes, out=out)

    def sub(self, a, b, basis, out=None):
        return ref.sub(a, b, basis.primes, out=out)

    def neg(self, a, basis, out=None):
        return ref.neg(a, basis.primes, out=out)

    def mul(self, a, b, basis, out=None):
        return ref.mul(a, b, basis.primes, out=out)

    def mul_add(self, a, b, c, basis, out=None):
        return ref.mul_add(a, b, c, basis.primes, out=out)

    def mul_scalar(self, a, scalars, basis, out=None):
        return ref.mul_scalar(a, scalars, basis.primes, out=out)

    def automorphism(self, a, galois_elt, basis, out=None):
        return ref.automorphism(a, galois_elt, basis.primes, out=out)

    def mod_up(self, a, q_basis, p_basis, alpha, out=None):
        return ref.mod_up(a, q_basis.primes, p_basis.primes, alpha, out=out)

    def mod_raise(self, a, q0_basis, basis, out=None):
        return ref.mod_raise(a, q0_basis.primes[0], basis.primes, out=out)

    #: key_switch_inner takes ``galois_elt`` (the spec applies the automorphism first)
    fuses_automorphism = True

    def key_switch_inner(self, ext, key, basis, key_basis, out=None, galois_elt=None,
                         key_index=None):
        return ref.key_switch_inner(ext, key, basis.primes, key_basis.primes, out=out,
                                    galois_elt=galois_elt, key_index=key_index)

    def mod_down(self, a, q_basis, p_basis, out=None):
        return ref.mod_down(a, q_basis.primes, p_basis.primes, out=out)

    def rescale(self, a, basis, out=None):
        return ref.rescale(a, basis.primes, out=out)
