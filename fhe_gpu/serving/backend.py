"""What the HTTP app serves: an Engine in this process, behind an async interface.

The HTTP app (:mod:`fhe_gpu.serving.http`) talks to a backend with this interface, so
the same endpoints serve one in-process Engine (:class:`EngineBackend`) or Engine replicas
on a Ray cluster (:class:`fhe_gpu.serving.ray.RayBackend`):

    backend.params, backend.models, backend.rotations
    key_id = await backend.register(tenant, evk_bytes)
    await backend.unregister(tenant)
    out = await backend.infer(tenant, model, ct_bytes, timeout)
    await backend.metrics_text(); await backend.ready(); await backend.close()

Blocking Engine calls (key validation, ciphertext decoding in ``submit``, ``close``) run
in worker threads; results are awaited through ``asyncio.wrap_future``, never blocking the
event loop.
"""
from __future__ import annotations

import asyncio

#: bytes of a wire header, an upper bound
_HEADER_SLACK = 64 << 10


def ciphertext_bytes_bound(params, rows: int = 1) -> int:
    """Upper bound on the wire size of a ciphertext of ``rows`` rows at the top level
    (two components of max_level + 1 limbs of N 64-bit words; the wire packs tighter)."""
    return int(rows) * 2 * (params.max_level + 1) * params.n * 8 + _HEADER_SLACK


def key_bytes_bound(params, rotations) -> int:
    """Upper bound on the wire size of evaluation keys holding a relinearization key,
    a conjugation key and one Galois key per step in ``rotations``: each key is dnum
    digits of two polynomials over Q and P."""
    limbs = params.max_level + 1 + len(params.p_primes)
    per_key = params.dnum * 2 * limbs * params.n * 8
    return (len(rotations) + 2) * per_key + _HEADER_SLACK


class EngineBackend:
    """One :class:`~fhe_gpu.engine.Engine` in this process."""

    def __init__(self, engine):
        self.engine = engine
        self.params = engine.params
        self.models = dict(engine.models)
        self.rotations = list(engine.rotations)

    async def register(self, tenant: str, evk_bytes: bytes) -> bytes:
        """Validate and store ``tenant``'s keys; its key id."""
        return await asyncio.to_thread(self.engine.register_tenant, tenant, evk_bytes)

    async def unregister(self, tenant: str) -> None:
        """Drop ``tenant``'s keys."""
        await asyncio.to_thread(self.engine.unregister_tenant, tenant)

    async def infer(self, tenant: str, model: str, ct_bytes: bytes,
                    timeout: float | None = None) -> bytes:
        """The result bytes of one request (raises the Engine's typed errors)."""
        fut = await asyncio.to_thread(self.engine.submit, tenant, model, ct_bytes, timeout)
        return await asyncio.wrap_future(fut)

    async def metrics_text(self) -> bytes:
        """The Engine's metrics, Prometheus text format."""
        return self.engine.metrics_text()

    async def ready(self) -> bool:
        """True: an Engine in this process is ready once built."""
        return True

    async def close(self) -> None:
        """Drain: finish queued and in-flight requests, stop the workers."""
        await asyncio.to_thread(self.engine.close)
