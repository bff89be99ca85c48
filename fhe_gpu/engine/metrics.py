"""Engine metrics through ``prometheus_client``, one registry per Engine.

Exported (all names prefixed ``fhe_engine_``): requests by model, tenant and status;
errors by model and error type; queue depth and requests in flight; the batch-size
histogram (rows per evaluated batch); latency histograms of queue wait and compute by
model; key-cache bytes, capacity, resident tenants, hits, misses, evictions; registered
tenants; bytes held by the host buffer pool. ``text()`` is the Prometheus exposition
format (what ``/metrics`` serves); ``as_dict()`` the same samples as a dict.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: rows per batch
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: seconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
PREFIX = "fhe_engine_"


class Metrics:
    """The Engine's counters, gauges and histograms in their own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None, pool_bytes=None):
        self.registry = CollectorRegistry() if registry is None else registry
        r, p = self.registry, PREFIX
        self.requests = Counter(p + "requests", "Requests finished, by model, tenant and "
                                "status (ok or error)", ["model", "tenant", "status"],
                                registry=r)
        self.errors = Counter(p + "errors", "Failed requests by model and error type",
                              ["model", "type"], registry=r)
        self.queue_depth = Gauge(p + "queue_depth", "Requests waiting in the queue",
                                 registry=r)
        self.in_flight = Gauge(p + "in_flight", "Requests being evaluated", registry=r)
        self.batch_size = Histogram(p + "batch_size", "Ciphertext rows per evaluated batch",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_tenants = Histogram(p + "batch_tenants", "Distinct tenants per batch",
                                       ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_wait = Histogram(p + "queue_wait_seconds", "Time from submit to the start "
                                    "of the request's batch", ["model"],
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram(p + "compute_seconds", "Evaluation time of a batch",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram(p + "latency_seconds", "Time from submit to the result",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.tenants = Gauge(p + "tenants", "Registered tenants", registry=r)
        self._key_cache(r, p)
        self.pool_bytes = Gauge(p + "pool_bytes", "Bytes held idle by the host buffer pool",
                                registry=r)
        if pool_bytes is not None:
            self.pool_bytes.set_function(pool_bytes)

    def _key_cache(self, r, p) -> None:
        self.key_cache_bytes = Gauge(p + "key_cache_bytes", "Device bytes of resident keys",
                                     registry=r)
        self.key_cache_capacity = Gauge(p + "key_cache_capacity_bytes",
                                        "Device bytes of the key slab", registry=r)
        self.key_cache_resident = Gauge(p + "key_cache_tenants",
                                        "Tenants whose keys are resident", registry=r)
        self.key_cache_events = {
            what: Counter(p + "key_cache_" + what, f"Key cache {what}", registry=r)
            for what in ("hits", "misses", "evictions")}

    def key_cache_event(self, what: str) -> None:
        """Count one key-cache hit, miss or eviction."""
        self.key_cache_events[what].inc()

    def key_cache_state(self, resident_bytes: int, capacity_bytes: int, tenants: int) -> None:
        """Set the key-cache gauges."""
        self.key_cache_bytes.set(resident_bytes)
        self.key_cache_capacity.set(capacity_bytes)
        self.key_cache_resident.set(tenants)

    def finished(self, model: str, tenant: str, error: BaseException | None) -> None:
        """Count a finished request (and its error type when it failed)."""
        status = "ok" if error is None else "error"
        self.requests.labels(model, tenant, status).inc()
        if error is not None:
            self.errors.labels(model, type(error).__name__).inc()

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def as_dict(self) -> dict:
        """Every sample: {sample name: value} for unlabelled samples, {sample name:
        {"label=value,...": value}} for labelled ones."""
        out: dict = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith("_created"):
                    continue
                if s.labels:
                    key = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    out.setdefault(s.name, {})[key] = s.value
                else:
                    out[s.name] = s.value
        return out
