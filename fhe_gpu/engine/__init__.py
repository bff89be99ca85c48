"""fhe_gpu.engine: the proxy-facing layer (tenants, key cache, cross-tenant batching,
backpressure, metrics; DESIGN §9). The homomorphic algorithms it serves live in
:mod:`fhe_gpu.circuits` (LinearTransform, Chebyshev polynomials, sums)."""

__all__: list[str] = []
