"""RNS polynomial arithmetic: the RingBackend verbs and their implementations.

The only layer that imports numba, cupy or the compiled csrc/ extensions. ``threads`` is
imported first: it pins Numba's threading layer before any parallel kernel exists.
"""
from .threads import get_num_threads, set_num_threads, threading_layer  # noqa: I001 (first)
from .backend import RingBackend, available_backends, get_backend
from .tables import Basis, PrimeSet, base_conv, basis, digit_ranges, prime_set
from .warmup import warm_up

__all__ = ["RingBackend", "available_backends", "get_backend", "Basis", "PrimeSet",
           "base_conv", "basis", "digit_ranges", "prime_set", "get_num_threads", "set_num_threads",
           "threading_layer", "warm_up"]
