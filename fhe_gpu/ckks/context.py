"""The CKKS context: parameters bound to a ring backend."""
from __future__ import annotations

from ..errors import ParameterError
from ..rlwe.context import Context as RingContext
from .parameters import Parameters


class Context(RingContext):
    """Parameters plus a backend ("auto", "cpu", "cuda" or a RingBackend instance) and
    their precomputed tables.

    ``ctx.backend_name`` tells which backend was picked. A context holds no keys.
    """

    def __init__(self, params: Parameters, backend="auto"):
        if not isinstance(params, Parameters):
            raise ParameterError(f"Context needs a Parameters object, got {type(params).__name__}")
        self.params = params
        super().__init__(params.n, params.q_primes, params.p_primes, params.dnum,
                         params.fingerprint, backend)

    @property
    def slots(self) -> int:
        """N/2 complex slots."""
        return self.params.slots

    @property
    def default_scale(self) -> float:
        """2^scale_bits of the parameters."""
        return self.params.default_scale

    def __repr__(self):
        return f"Context({self.params!r}, backend={self.backend_name!r})"
