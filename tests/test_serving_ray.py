"""fhe_gpu.serving.ray on a local Ray cluster started by the test (2 CPUs, loopback only):
2 Engine replicas, 8 tenants, 200 concurrent requests with 0 misrouted and each tenant's
keys on one replica only (from the replicas' own Engine metrics), the same HTTP app over
the deployment, and a replica killed mid-run without losing a request.

Parameters are N = 2^10 (insecure on purpose, as tests/test_engine.py), backend cpu.
"""
from __future__ import annotations

import asyncio
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import fhe_gpu as fg

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")
serving_ray = pytest.importorskip("fhe_gpu.serving.ray")

from test_engine import BITS, world  # noqa: E402


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    # Ray workers start in the driver's working directory and put it first on sys.path:
    # start them in an empty one, so that they import the installed package, not the
    # source tree (which has no compiled extensions in a non-editable install)
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray"))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    w = world("cpu")
    try:
        yield serving_ray.deploy(w.params, {"clf": w.model}, replicas=2,
                                 engine_options={"backend": "cpu", "max_batch": 8,
                                                 "max_wait_ms": 2.0},
                                 cpus_per_replica=0.5)
    finally:
        from ray import serve
        serve.shutdown()
        ray.shutdown()
        os.chdir(here)


def _check(w, tenant, x, out) -> float:
    client = w.clients[tenant]
    assert fg.Ciphertext.from_bytes(out, client.context).key_id == client.key_id
    bits = fg.precision_bits(w.model.forward_plain(x), client.decrypt(out, count=len(x)))
    assert bits >= BITS, (tenant, bits)
    return bits


async def _reports(backend, after: float) -> dict:
    """The replicas' reports sent after ``after`` (time.time()), one per live replica."""
    for _ in range(100):
        reports = await backend.replica_stats()
        fresh = {r: s for r, s in reports.items() if s["time"] > after}
        if len(fresh) >= 2:
            return fresh
        await asyncio.sleep(0.1)
    raise TimeoutError(f"replica reports: {sorted(reports)}")


def test_two_replicas_8_tenants_200_requests_tenant_affine(backend):
    w = world("cpu")

    async def run():
        for tenant, client in w.clients.items():
            assert await backend.register(tenant, client.evaluation_key_bytes()) == \
                client.key_id
        work = [(t, *w.request(t)) for _ in range(25) for t in w.clients]
        t0 = time.perf_counter()
        outs = await asyncio.gather(*[backend.infer(t, "clf", data) for t, _, data in work])
        wall = time.perf_counter() - t0
        bits = [_check(w, t, x, out) for (t, x, _), out in zip(work, outs)]
        return wall, min(bits), await _reports(backend, time.time())

    wall, worst, reports = asyncio.run(run())
    print(f"\nRay, 2 replicas: 200 requests of 8 tenants in {wall:.2f} s, worst {worst:.1f} "
          f"bits, 0 misrouted; tenants per replica "
          f"{ {r: s['tenants'] for r, s in reports.items()} }")
    served = {}
    for replica, stats in reports.items():
        for key, count in stats["metrics"]["fhe_engine_requests_total"].items():
            labels = dict(kv.split("=", 1) for kv in key.split(","))
            served.setdefault(labels["tenant"], {})[replica] = count
        assert sorted(stats["loads"]) == sorted(stats["tenants"])
        assert all(n == 1 for n in stats["loads"].values())
    assert sorted(served) == sorted(w.clients)
    assert all(len(where) == 1 and sum(where.values()) == 25 for where in served.values()), \
        served
    holders = [r for s in reports.values() for r in s["tenants"]]
    assert sorted(holders) == sorted(w.clients)             # each tenant on one replica


def test_http_app_over_the_deployment(backend):
    import httpx

    from fhe_gpu.serving.http import create_app
    w = world("cpu")
    app = create_app(backend, close_on_shutdown=False)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ray") as c:
            client = w.clients["t0"]
            r = await c.put("/v1/tenants/http-t0/keys", content=client.evaluation_key_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 201, r.text
            headers = {"Content-Type": "application/octet-stream",
                       "Authorization": f"Bearer {r.json()['token']}"}
            x = w.rng.uniform(-1, 1, (1, 16))
            r = await c.post("/v1/tenants/http-t0/infer/clf", content=client.encrypt(x),
                             headers=headers)
            assert r.status_code == 200
            _check(w, "t0", x, r.content)
            bad = await c.post("/v1/tenants/http-t0/infer/clf", content=b"\0" * 99,
                               headers=headers)
            assert (bad.status_code, bad.json()["error"]) == (400, "SerializationError")
            await _reports(backend, time.time())
            return (await c.get("/metrics")).text, (await c.get("/readyz")).status_code

    text, ready = asyncio.run(run())
    assert ready == 200
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    ok = [s for s in samples if s.name == "fhe_engine_requests_total"
          and s.labels["tenant"] == "http-t0" and s.labels["status"] == "ok"]
    assert len(ok) == 1 and ok[0].value == 1 and ok[0].labels["replica"]


def test_killing_a_replica_loses_no_request(backend):
    w = world("cpu")
    work = [(t, *w.request(t)) for _ in range(25) for t in w.clients]

    async def run():
        reports = await _reports(backend, time.time())
        victim = max(reports.values(), key=lambda s: len(s["tenants"]))
        tasks = [asyncio.ensure_future(backend.infer(t, "clf", data)) for t, _, data in work]
        while sum(t.done() for t in tasks) < 40:
            await asyncio.sleep(0.01)
        ray.kill(ray.get_actor(victim["actor"], namespace="serve"), no_restart=True)
        killed_at = sum(t.done() for t in tasks)
        return victim, killed_at, await asyncio.gather(*tasks)

    retried = backend.retried
    t0 = time.perf_counter()
    victim, killed_at, outs = asyncio.run(run())
    for (t, x, _), out in zip(work, outs):
        _check(w, t, x, out)
    assert backend.retried > retried        # requests in flight on the victim were retried
    print(f"\nkilled replica {victim['replica']} (tenants {victim['tenants']}) after "
          f"{killed_at} of 200 results: all 200 correct in {time.perf_counter() - t0:.2f} s, "
          f"{backend.retried - retried} retries")
