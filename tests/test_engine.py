"""The Engine: tenant isolation under concurrent load, cross-tenant batching (bit-identical
to one-at-a-time, plaintext work once per batch), backpressure, faults that fail alone,
the LRU key cache against an independent model of it, deadlines, draining, metrics.

CI runs N = 2^10 (insecure on purpose) on the cpu backend and, where the CUDA emulator is
built, on it too; ``-m slow`` runs the 1,000-request isolation test.
"""
from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fhe_gpu as fg
from fhe_gpu import engine
from conftest import BACKENDS, backend_for

#: bits of precision every response must reach against the cleartext twin (40-bit scale,
#: a degree-7 activation on [-8, 8]: the HE error is ~2^-25 of the values)
BITS = 18
ENGINE_BACKENDS = [b for b in BACKENDS if b != "reference"]


def params(log_n=10):
    return fg.Parameters(log_n=log_n, q_bits=[60] + [40] * 5, p_bits=[60], scale_bits=40,
                         security=None)


def make_model(rng, d_in=16, hidden=24, d_out=8):
    w1 = rng.uniform(-1, 1, (hidden, d_in)) / np.sqrt(d_in)
    w2 = rng.uniform(-1, 1, (d_out, hidden)) / np.sqrt(hidden)
    return engine.Model([engine.Linear(w1, rng.uniform(-0.5, 0.5, hidden)),
                         engine.Activation("gelu", interval=(-8, 8), degree=7),
                         engine.Linear(w2, rng.uniform(-0.5, 0.5, d_out))], name="clf")


class World:
    """Parameters, a model and 8 tenants' clients, shared by the tests of a backend."""

    def __init__(self, backend="cpu", tenants=8):
        self.backend = backend_for(backend)
        self.params = params()
        self.model = make_model(np.random.default_rng(5))
        self.clients = {f"t{i}": engine.Client(self.params, self.model, seed=bytes([i + 1]) * 32,
                                               backend=self.backend)
                        for i in range(tenants)}
        self.rng = np.random.default_rng(11)

    def engine(self, **kw):
        kw.setdefault("max_wait_ms", 2.0)
        eng = engine.Engine(self.params, {"clf": self.model}, backend=self.backend, **kw)
        for tenant, client in self.clients.items():
            eng.register_tenant(tenant, client.evaluation_key_bytes())
        return eng

    def request(self, tenant):
        x = self.rng.uniform(-1, 1, (1, self.model.input_dim))
        return x, self.clients[tenant].encrypt(x)

    def check(self, tenant, x, out):
        got = self.clients[tenant].decrypt(out, count=len(x))
        bits = fg.precision_bits(self.model.forward_plain(x), got)
        assert bits >= BITS, (tenant, bits)
        return bits


_WORLDS: dict = {}


def world(backend="cpu") -> World:
    if backend not in _WORLDS:
        _WORLDS[backend] = World(backend)
    return _WORLDS[backend]


@pytest.fixture
def w():
    return world("cpu")


def _load(w, eng, per_tenant, threads=8):
    """Every tenant submits ``per_tenant`` requests from its own thread; all are checked
    against the twin under the tenant's own key."""
    def run(tenant):
        sent = [w.request(tenant) for _ in range(per_tenant)]
        futs = [(x, eng.submit(tenant, "clf", data)) for x, data in sent]
        return [w.check(tenant, x, f.result(timeout=300)) for x, f in futs]

    with ThreadPoolExecutor(threads) as pool:
        bits = list(pool.map(run, list(w.clients)[:threads]))
    return min(min(b) for b in bits), sum(len(b) for b in bits)


@pytest.mark.parametrize("backend", ENGINE_BACKENDS)
def test_isolation_under_concurrent_load(backend):
    w = world(backend)
    with w.engine(max_batch=8, workers=2) as eng:
        worst, count = _load(w, eng, per_tenant=6 if backend == "cpu" else 2)
        m = eng.metrics()
    assert count == sum(m["fhe_engine_requests_total"].values())
    assert all("status=ok" in k for k in m["fhe_engine_requests_total"])
    assert m["fhe_engine_batch_size_sum"]["model=clf"] == count   # every row evaluated once


@pytest.mark.slow
def test_isolation_1000_requests_from_8_threads(w):
    with w.engine(max_batch=16, workers=2, max_queue=2048) as eng:
        worst, count = _load(w, eng, per_tenant=128)
        m = eng.metrics()
    assert count == 1024 and sum(m["fhe_engine_requests_total"].values()) == 1024
    print(f"1024 requests, 8 tenants: worst precision {worst:.1f} bits, "
          f"{m['fhe_engine_batch_size_count']['model=clf']:.0f} batches")


def _burst(w, eng, tenants, count=None):
    """One request per tenant, encrypted first, then submitted at once (the Engine's
    max_wait_ms must cover the submissions, so they form one batch); ``count`` (a context
    manager) wraps the server-side work only. {tenant: (x, request bytes, result bytes)}."""
    sent = {t: w.request(t) for t in tenants}
    with count or contextlib.nullcontext():
        futs = {t: eng.submit(t, "clf", sent[t][1]) for t in tenants}
        out = {t: futs[t].result(timeout=60) for t in tenants}
    return {t: (sent[t][0], sent[t][1], out[t]) for t in tenants}


def test_cross_tenant_batch_is_bit_identical_to_one_at_a_time(w):
    tenants = list(w.clients)
    with w.engine(max_batch=8, max_wait_ms=200) as eng:
        batched = _burst(w, eng, tenants)
        m = eng.metrics()
    assert m["fhe_engine_batch_tenants_count"]["model=clf"] == 1       # one 8-tenant batch
    assert m["fhe_engine_batch_size_sum"]["model=clf"] == 8
    plan = w.model.compile(fg.Context(w.params, backend=w.backend))
    for t, (x, data, out) in batched.items():
        client = w.clients[t]
        ev = fg.Evaluator(plan.context, fg.EvaluationKeys.from_bytes(
            client.evaluation_key_bytes(), plan.context))
        alone = plan.apply(ev, fg.Ciphertext.from_bytes(data, plan.context))
        got = fg.Ciphertext.from_bytes(out, plan.context)
        assert np.array_equal(np.asarray(got.data), np.asarray(alone.data)), t
        w.check(t, x, out)


class _Counter:
    """Counts calls of ``owner.name`` while entered."""

    def __init__(self, owner, name):
        self.owner, self.name, self.calls = owner, name, 0

    def __enter__(self):
        real = getattr(self.owner, self.name)

        def counted(*a, **k):
            self.calls += 1
            return real(*a, **k)
        self._patch = mock.patch.object(self.owner, self.name, counted)
        self._patch.__enter__()
        return self

    def __exit__(self, *exc):
        return self._patch.__exit__(*exc)


def test_plaintext_weights_are_encoded_once_per_batch_not_per_tenant(w):
    counts = []
    for n in (1, 8):
        model = make_model(np.random.default_rng(5))        # a cold diagonal cache
        tenants = list(w.clients)[:n]
        with engine.Engine(w.params, {"clf": model}, backend=w.backend, max_batch=8,
                           max_wait_ms=200) as eng:
            for t in tenants:
                eng.register_tenant(t, w.clients[t].evaluation_key_bytes())
            encodes = _Counter(fg.Encoder, "encode")
            _burst(w, eng, tenants, encodes)
            assert eng.metrics()["fhe_engine_batch_tenants_count"]["model=clf"] == 1
        counts.append(encodes.calls)
    assert counts[0] == counts[1] > 0, counts


@pytest.mark.skipif("cuda" not in BACKENDS, reason="no CUDA backend or emulator")
def test_cuda_launches_per_batch_do_not_grow_with_tenants():
    w = world("cuda")
    launches = []
    for n in (1, 4):
        with w.engine(max_batch=8, max_wait_ms=200) as eng:
            tenants = list(w.clients)[:n]
            _burst(w, eng, tenants)                          # warm the diagonal caches
            counter = _Counter(eng.ctx.backend, "_launch")
            _burst(w, eng, tenants, counter)
        launches.append(counter.calls)
    assert launches[0] == launches[1] > 0, launches


def test_backpressure_refuses_the_excess_at_once(w):
    gate = threading.Event()
    with w.engine(max_queue=4, max_batch=1) as eng:
        plan = eng._plans["clf"]
        real = plan.apply
        with mock.patch.object(plan, "apply", lambda ev, ct: gate.wait() and real(ev, ct)):
            data = w.clients["t0"].encrypt(np.zeros((1, w.model.input_dim)))
            accepted, refused = [eng.submit("t0", "clf", data)], []
            time.sleep(0.05)                                # the worker holds the first
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            for _ in range(40):
                t0 = time.perf_counter()
                try:
                    accepted.append(eng.submit("t0", "clf", data))
                except fg.EngineOverloadedError as exc:
                    refused.append(time.perf_counter() - t0)
                    assert "max_queue=4" in str(exc)
            assert eng.metrics()["fhe_engine_queue_depth"] == 4
            gate.set()
            for f in accepted:
                f.result(timeout=60)
    assert len(accepted) == 5 and len(refused) == 36
    assert max(refused) < 0.010, max(refused)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0      # KiB
    assert grown < 64 << 10, f"peak RSS grew {grown} KiB during the flood"


def test_bad_requests_fail_alone_with_typed_errors(w):
    other = engine.Client(params(log_n=11), make_model(np.random.default_rng(5)),
                          seed=b"\x55" * 32)
    with w.engine(max_batch=8, max_wait_ms=100) as eng:
        good = {t: w.request(t) for t in ("t0", "t1", "t2")}
        futs = {t: eng.submit(t, "clf", data) for t, (x, data) in good.items()}
        bad = {
            "corrupt": eng.submit("t3", "clf", w.request("t3")[1][:-100]),
            "params": eng.submit("t4", "clf", other.encrypt(np.zeros(w.model.input_dim))),
            "tenant": eng.submit("nobody", "clf", w.request("t5")[1]),
            "keys": eng.submit("t6", "clf", w.request("t7")[1]),
            "model": eng.submit("t0", "gpt", w.request("t0")[1]),
        }
        for t, f in futs.items():
            w.check(t, good[t][0], f.result(timeout=60))
    expect = {"corrupt": (fg.SerializationError, "t3"),
              "params": (fg.ContextMismatchError, "t4"),
              "tenant": (fg.KeyMissingError, "nobody"),
              "keys": (fg.KeyMismatchError, "t6"),
              "model": (fg.ParameterError, "gpt")}
    for what, (error, name) in expect.items():
        with pytest.raises(error, match=name):
            bad[what].result(timeout=5)


def test_key_cache_round_robin_matches_an_lru_model(w):
    tenants = list(w.clients)[:6]
    store = engine.MemoryKeyStore()
    loads = []
    real_get = store.get
    store.get = lambda t: loads.append(t) or real_get(t)
    probe = engine.Engine(w.params, {"clf": w.model}, backend=w.backend)
    slot = probe._keys.slot_bytes
    probe.close()
    eng = engine.Engine(w.params, {"clf": w.model}, backend=w.backend, key_store=store,
                        key_cache_bytes=3 * slot)
    lru, hits, misses, evictions = OrderedDict(), 0, 0, 0
    for t in tenants:                                      # registration inserts
        eng.register_tenant(t, w.clients[t].evaluation_key_bytes())
        if len(lru) == 3:
            lru.popitem(last=False)
            evictions += 1
        lru[t] = True
    for t in tenants * 2 + tenants[-2:]:
        x, data = w.request(t)
        w.check(t, x, eng.submit(t, "clf", data).result(timeout=60))
        if t in lru:
            hits += 1
            lru.move_to_end(t)
        else:
            misses += 1
            if len(lru) == 3:
                lru.popitem(last=False)
                evictions += 1
            lru[t] = True
    m = eng.metrics()
    eng.close()
    assert (m["fhe_engine_key_cache_hits_total"], m["fhe_engine_key_cache_misses_total"],
            m["fhe_engine_key_cache_evictions_total"]) == (hits, misses, evictions)
    assert len(loads) == misses and hits == 2 and misses == 12
    assert m["fhe_engine_key_cache_bytes"] == 3 * slot


def test_directory_key_store_survives_a_restart(w, tmp_path):
    store = engine.DirectoryKeyStore(tmp_path)
    eng = w.engine(key_store=store)
    eng.close()
    again = engine.Engine(w.params, {"clf": w.model}, backend=w.backend,
                          key_store=engine.DirectoryKeyStore(tmp_path))
    assert again.tenants == []                              # registration is per Engine
    again._tenants["t1"] = w.clients["t1"].key_id           # a proxy restoring its tenants
    x, data = w.request("t1")
    w.check("t1", x, again.submit("t1", "clf", data).result(timeout=60))
    assert again.metrics()["fhe_engine_key_cache_misses_total"] == 1
    again.close()


def test_registration_is_validated(w):
    with w.engine() as eng:
        client = w.clients["t0"]
        kg = fg.KeyGenerator(client.context, seed=b"\x66" * 32)
        few = kg.evaluation_keys(rotations=client.plan.rotations[:1]).to_bytes()
        with pytest.raises(fg.KeyMissingError, match="missing"):
            eng.register_tenant("x", few)
        with pytest.raises(fg.SerializationError):
            eng.register_tenant("x", b"\x00" * 64)
        with pytest.raises(fg.ParameterError):
            eng.register_tenant("", client.evaluation_key_bytes())
        assert "x" not in eng.tenants
        eng.unregister_tenant("t0")
        fut = eng.submit("t0", "clf", w.request("t0")[1])
        with pytest.raises(fg.KeyMissingError, match="t0"):
            fut.result(timeout=5)


def test_deadline_close_and_async(w):
    gate = threading.Event()
    eng = w.engine(max_batch=1)
    plan = eng._plans["clf"]
    real = plan.apply
    with mock.patch.object(plan, "apply", lambda ev, ct: gate.wait() and real(ev, ct)):
        first = eng.submit("t0", "clf", w.request("t0")[1])
        time.sleep(0.05)
        late = eng.submit("t1", "clf", w.request("t1")[1], timeout=0.0)
        queued = [w.request("t2") for _ in range(3)]
        futs = [eng.submit("t2", "clf", data) for x, data in queued]
        gate.set()
        eng.close()                                          # drains what was accepted
    first.result(timeout=1)
    with pytest.raises(fg.DeadlineExceededError, match="t1"):
        late.result(timeout=1)
    for (x, _), f in zip(queued, futs):
        w.check("t2", x, f.result(timeout=1))
    with pytest.raises(fg.EngineClosedError):
        eng.submit("t0", "clf", w.request("t0")[1])
    with w.engine() as eng:
        x, data = w.request("t3")
        w.check("t3", x, asyncio.run(eng.infer("t3", "clf", data)))


def test_metrics_text_parses_and_names_everything(w):
    with w.engine(max_batch=4) as eng:
        _load(w, eng, per_tenant=1, threads=4)
        eng.submit("nobody", "clf", b"").exception(timeout=5)
        text = eng.metrics_text().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("requests", "errors", "queue_depth", "in_flight", "batch_size",
                 "batch_tenants", "queue_wait_seconds", "compute_seconds", "latency_seconds",
                 "tenants", "key_cache_bytes", "key_cache_capacity_bytes",
                 "key_cache_tenants", "key_cache_hits", "key_cache_misses",
                 "key_cache_evictions", "pool_bytes"):
        assert "fhe_engine_" + name in families, name
    ok = [s for s in families["fhe_engine_requests"].samples
          if s.name.endswith("_total") and s.labels["status"] == "ok"]
    assert sum(s.value for s in ok) == 4
    errors = families["fhe_engine_errors"].samples
    assert any(s.labels.get("type") == "KeyMissingError" and s.value == 1 for s in errors)


def test_client_key_bytes_are_the_keys_it_returns(w):
    """evaluation_key_bytes ships the keys evaluation_keys returned when that came first;
    called first, it generates keys for the wire and keeps only their bytes."""
    client = engine.Client(w.params, w.model, seed=bytes([9]) * 32)
    evk = client.evaluation_keys()
    back = fg.EvaluationKeys.from_bytes(client.evaluation_key_bytes(), client.context)
    assert back.key_id == evk.key_id and sorted(back.galois) == sorted(evk.galois)
    host = client.context.backend.to_host  # key data lives on the device on a GPU
    for g, key in evk.galois.items():
        np.testing.assert_array_equal(host(back.galois[g].data), host(key.data))
    fresh = engine.Client(w.params, w.model, seed=bytes([9]) * 32)
    data = fresh.evaluation_key_bytes()
    assert fresh.evaluation_key_bytes() is data
    assert fg.EvaluationKeys.from_bytes(data, fresh.context).key_id == evk.key_id
