"""The proxy-facing Engine: tenants' keys, cross-tenant batching, backpressure, metrics.

    eng = Engine(params, models={"clf": model}, max_batch=32, max_wait_ms=5.0,
                 max_queue=1024, key_cache_bytes=8 << 30)
    eng.register_tenant("alice", evk_bytes)
    fut = eng.submit("alice", "clf", ct_bytes)      # concurrent.futures.Future[bytes]
    out = await eng.infer("alice", "clf", ct_bytes)
    eng.metrics(); eng.metrics_text(); eng.close()

A request is decoded and checked when submitted (bad bytes, other parameters, another
tenant's key set, an unknown model or tenant: its future fails at once with the typed
error; a full queue raises EngineOverloadedError). Worker threads form batches of requests
for the same model and level from any tenants (:mod:`.batcher`), stack their ciphertexts
as rows of one batched ciphertext, evaluate the model once with a per-row key view of the
key slab (:mod:`.keycache`) and split the rows back into per-tenant results. A batch that
fails is split in halves and retried, so one bad request fails alone and an out-of-memory
batch completes in smaller pieces. The Engine holds no secret.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

import numpy as np

from ..ckks import Context, Evaluator
from ..errors import (DeadlineExceededError, FHEError, KeyMismatchError, KeyMissingError,
                      LevelError, ParameterError)
from ..rlwe import Ciphertext, EvaluationKeys, split_rows, stack_rows
from ..ring.pool import POOL
from .admission import LatencyAdmission
from .batcher import Batcher, Request
from .keycache import KeyCache, MemoryKeyStore
from .metrics import Metrics
from .model import Model

#: default bound on the bytes of one request's ciphertext and of one tenant's key set
MAX_CIPHERTEXT_BYTES = 1 << 30
MAX_KEY_BYTES = 8 << 30


class Engine:
    """Evaluates registered Models on tenants' ciphertexts, batching across tenants.

    ``models``: {name: Model}. ``max_batch``: most ciphertext rows per batch;
    ``max_wait_ms``: how long the oldest request waits for others; ``max_queue``: queued
    requests before EngineOverloadedError; ``key_cache_bytes``: device bytes for tenants'
    keys (None: room for 64 tenants, or fewer if a quarter of the available memory holds
    fewer); ``key_store``: where keys live when not resident
    (default in memory; :class:`~.keycache.DirectoryKeyStore` survives restarts);
    ``workers``: evaluation threads; ``request_timeout_s``: default deadline;
    ``max_latency_ms``: refuse (EngineOverloadedError) a request whose predicted latency
    exceeds it (:mod:`~.admission`), so accepted requests stay near it under overload.
    """

    def __init__(self, params, models: dict, backend="auto", *, max_batch: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 1024, key_cache_bytes=None,
                 key_store=None, workers: int = 1, request_timeout_s: float | None = None,
                 registry=None, max_latency_ms: float | None = None):
        _positive("max_batch", max_batch)
        _positive("max_queue", max_queue)
        _positive("workers", workers)
        self.ctx = Context(params, backend=backend)
        self.params = params
        self.models, self._plans = self._compile(models)
        self.request_timeout_s = request_timeout_s
        self._metrics = Metrics(registry, pool_bytes=lambda: POOL.idle_bytes)
        self._steps = sorted({s for p in self._plans.values() for s in p.rotations})
        self._conj = any(getattr(p, "conjugation", False) for p in self._plans.values())
        elements = {self.ctx.galois_element(s) for s in self._steps}
        if self._conj:
            elements.add(self.ctx.conjugation_element)
        self._elements = elements
        self.key_store = MemoryKeyStore() if key_store is None else key_store
        relin = any(p.relinearization for p in self._plans.values())
        self._keys = KeyCache(self.ctx, elements, key_cache_bytes, self.key_store,
                              self._metrics, relinearization=relin,
                              max_key_bytes=MAX_KEY_BYTES)
        self._tenants: dict[str, bytes] = {}          # tenant -> key id
        self._lock = threading.Lock()
        self._batcher = Batcher(max_batch, max_wait_ms / 1e3, max_queue, self._keys.capacity,
                                on_depth=self._metrics.queue_depth.set)
        if max_latency_ms is not None and (isinstance(max_latency_ms, bool) or not (
                isinstance(max_latency_ms, (int, float)) and max_latency_ms > 0)):
            raise ParameterError(f"max_latency_ms must be a positive number or None, got "
                                 f"{max_latency_ms!r}")
        self._admission = None if max_latency_ms is None else LatencyAdmission(
            max_latency_ms / 1e3, max_batch, max_wait_ms / 1e3, workers)
        self._workers = [threading.Thread(target=self._work, name=f"fhe-engine-{i}",
                                          daemon=True) for i in range(int(workers))]
        for t in self._workers:
            t.start()

    # ---------------------------------------------------------------- tenants
    def _compile(self, models):
        if not isinstance(models, dict) or not models:
            raise ParameterError(f"models must be a non-empty dict {{name: Model}}, got "
                                 f"{models!r:.60}")
        for name, model in models.items():
            if not isinstance(name, str) or not isinstance(model, Model):
                raise ParameterError(f"models must map names (str) to engine.Model, got "
                                     f"{name!r}: {type(model).__name__}")
        return dict(models), {name: m.compile(self.ctx) for name, m in models.items()}

    @property
    def rotations(self) -> list[int]:
        """Rotation steps a tenant's evaluation keys must hold (all models)."""
        return list(self._steps)

    @property
    def tenants(self) -> list[str]:
        """Registered tenant ids."""
        with self._lock:
            return sorted(self._tenants)

    def register_tenant(self, tenant: str, evk_bytes) -> bytes:
        """Validate and store ``tenant``'s evaluation keys (wire bytes); returns its key id.

        Raises SerializationError / ContextMismatchError for bad bytes or other
        parameters, KeyMissingError listing the rotation steps (or relinearization) the
        models need and the keys lack. Registering again replaces the keys."""
        _tenant_id(tenant)
        evk = EvaluationKeys.from_bytes(evk_bytes, self.ctx, max_bytes=MAX_KEY_BYTES)
        self._check_keys(tenant, evk)
        self.key_store.put(tenant, bytes(evk_bytes))
        self._keys.insert(tenant, evk)
        with self._lock:
            self._tenants[tenant] = evk.key_id
            self._metrics.tenants.set(len(self._tenants))
        return evk.key_id

    def _check_keys(self, tenant: str, evk) -> None:
        for name, plan in self._plans.items():
            try:
                plan.check_keys(evk)
            except KeyMissingError as exc:
                raise KeyMissingError(f"tenant {tenant!r}: {exc}") from None

    def unregister_tenant(self, tenant: str) -> None:
        """Forget ``tenant``: its keys leave the cache and the key store."""
        with self._lock:
            if self._tenants.pop(tenant, None) is None:
                raise KeyMissingError(f"tenant {tenant!r} is not registered")
            self._metrics.tenants.set(len(self._tenants))
        self._keys.drop(tenant)
        self.key_store.delete(tenant)

    # ---------------------------------------------------------------- requests
    def submit(self, tenant: str, model: str, ct_bytes, timeout: float | None = None) \
            -> Future:
        """Queue one request; its Future gives the result ciphertext's wire bytes.

        Raises EngineOverloadedError at once when the queue is full or (with
        ``max_latency_ms``) the predicted latency is over the target, EngineClosedError
        after :meth:`close`. Every other failure (unknown tenant or model, bad bytes,
        another tenant's key set, a deadline passed) is set on the Future, typed."""
        fut: Future = Future()
        now = time.monotonic()
        timeout = self.request_timeout_s if timeout is None else timeout
        deadline = None if timeout is None else now + float(timeout)
        self._batcher.check_room()
        if self._admission is not None:
            self._admission.check(len(self._batcher))
        try:
            ct = self._decode(tenant, model, ct_bytes)
        except FHEError as exc:
            self._fail(Request(str(tenant), str(model), None, fut, now), exc)
            return fut
        self._batcher.put(Request(tenant, model, ct, fut, now, deadline))
        return fut

    async def infer(self, tenant: str, model: str, ct_bytes, timeout: float | None = None):
        """``submit`` awaited: the result ciphertext's wire bytes."""
        return await asyncio.wrap_future(self.submit(tenant, model, ct_bytes, timeout))

    def _decode(self, tenant, model, ct_bytes) -> Ciphertext:
        if model not in self._plans:
            raise ParameterError(f"unknown model {model!r}: this Engine serves "
                                 f"{sorted(self._plans)}")
        with self._lock:
            key_id = self._tenants.get(tenant)
        if key_id is None:
            raise KeyMissingError(f"tenant {tenant!r} is not registered")
        ct = Ciphertext.from_bytes(ct_bytes, self.ctx, max_bytes=MAX_CIPHERTEXT_BYTES)
        if ct.key_id != key_id:
            raise KeyMismatchError(
                f"tenant {tenant!r}: the ciphertext is under key set {ct.key_id.hex()}, but "
                f"the tenant's keys are {key_id.hex()}")
        need = self._plans[model].depth
        if ct.level < need:
            raise LevelError(f"model {model!r} needs {need} levels, the ciphertext has "
                             f"{ct.level}")
        return ct

    # ---------------------------------------------------------------- workers
    def _work(self) -> None:
        while True:
            batch = self._batcher.next_batch()
            if batch is None:
                return
            now = time.monotonic()
            live = []
            for req in batch:
                req.started = now
                self._metrics.queue_wait.labels(req.model).observe(now - req.submitted)
                if req.deadline is not None and now > req.deadline:
                    self._fail(req, DeadlineExceededError(
                        f"tenant {req.tenant!r}, model {req.model!r}: deadline passed after "
                        f"{now - req.submitted:.3f} s in the queue"))
                elif req.future.set_running_or_notify_cancel():
                    live.append(req)
            self._metrics.in_flight.inc(len(live))
            if self._admission is not None and live:
                self._admission.started()
            try:
                self._evaluate(live)
            finally:
                self._metrics.in_flight.dec(len(live))
                if self._admission is not None and live:
                    self._admission.finished()

    def _evaluate(self, reqs: list) -> None:
        """Evaluate ``reqs`` as one batch; on failure split it and retry the halves, so a
        failing request fails alone with its own error (out of memory: idle pooled buffers
        are released first)."""
        if not reqs:
            return
        try:
            outs = self._compute(reqs)
        except Exception as exc:            # noqa: BLE001 (isolated below, never lost)
            if isinstance(exc, MemoryError):
                POOL.clear()
            if len(reqs) == 1:
                self._fail(reqs[0], exc)
                return
            half = len(reqs) // 2
            self._evaluate(reqs[:half])
            self._evaluate(reqs[half:])
            return
        for req, out in zip(reqs, outs):
            self._succeed(req, out)

    def _compute(self, reqs: list) -> list[bytes]:
        tenants = list(dict.fromkeys(r.tenant for r in reqs))
        slots = self._keys.acquire(tenants)
        pinned = [v for v in slots.values() if not isinstance(v, BaseException)]
        try:
            bad = {t: e for t, e in slots.items() if isinstance(e, BaseException)}
            if bad:
                if len(reqs) == 1:
                    raise bad[reqs[0].tenant]
                raise KeyMissingError(f"keys unavailable for tenants {sorted(bad)}")
            t0 = time.perf_counter()
            index = np.repeat([slots[r.tenant] for r in reqs], [r.rows for r in reqs])
            view = self._keys.view(index)
            x = stack_rows([r.ct for r in reqs], view.key_id)
            y = self._plans[reqs[0].model].apply(Evaluator(self.ctx, view), x)
            parts = split_rows(y, [r.rows for r in reqs], [r.ct.key_id for r in reqs])
            outs = [p.to_bytes() for p in parts]
            model = reqs[0].model
            self._metrics.compute.labels(model).observe(time.perf_counter() - t0)
            self._metrics.batch_size.labels(model).observe(len(index))
            self._metrics.batch_tenants.labels(model).observe(len(tenants))
            return outs
        finally:
            self._keys.release(pinned)

    def _succeed(self, req: Request, out: bytes) -> None:
        self._metrics.finished(req.model, req.tenant, None)
        self._metrics.latency.labels(req.model).observe(time.monotonic() - req.submitted)
        req.future.set_result(out)

    def _fail(self, req: Request, exc: BaseException) -> None:
        if isinstance(exc, FHEError) and req.tenant not in str(exc):
            exc = type(exc)(f"tenant {req.tenant!r}, model {req.model!r}: {exc}")
        self._metrics.finished(req.model, req.tenant, exc)
        if not req.future.done():
            if req.future.running() or req.future.set_running_or_notify_cancel():
                req.future.set_exception(exc)

    # ---------------------------------------------------------------- lifecycle
    def metrics(self) -> dict:
        """Every metric sample as a dict (see :mod:`.metrics`)."""
        return self._metrics.as_dict()

    def metrics_text(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        return self._metrics.text()

    @property
    def queue_depth(self) -> int:
        """Requests waiting now."""
        return len(self._batcher)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting requests, finish every queued and in-flight one, stop workers."""
        self._batcher.close()
        for t in self._workers:
            t.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"{name} must be a positive integer, got {value!r}")


def _tenant_id(tenant) -> None:
    if not isinstance(tenant, str) or not tenant or len(tenant) > 256:
        raise ParameterError(f"tenant must be a non-empty string of at most 256 characters, "
                             f"got {tenant!r:.60}")
