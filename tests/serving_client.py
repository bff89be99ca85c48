"""A tenant-side load process for tests/test_serving_http.py (run as a script, cwd tests/).

    python serving_client.py URL MODEL_FILE TENANTS REQUESTS THREADS

Registers TENANTS tenants (seeded Clients) over HTTP, sends REQUESTS requests from THREADS
threads at once (tenants interleaved), decrypts every result with its own tenant's key and
prints one JSON line: counts of ok and misrouted results (a result under another key set,
or below the precision bound against ``model.forward_plain``), the worst precision, errors.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fhe_gpu as fg
from fhe_gpu import engine
from fhe_gpu.serving import HttpClient

#: bits every result must reach against the cleartext twin (as tests/test_engine.py)
BITS = 18


def main(url: str, model_file: str, tenants: int, requests: int, threads: int) -> dict:
    http = HttpClient(url)
    params, model = http.params(), engine.Model.load(model_file)
    clients = {f"tenant-{i}": engine.Client(params, model, seed=bytes([40 + i]) * 32,
                                            backend="cpu") for i in range(tenants)}
    for name, client in clients.items():
        assert http.register(name, client.evaluation_key_bytes()) == client.key_id
    rng = np.random.default_rng(7)
    names = list(clients)
    work = []
    for i in range(requests):
        name = names[i % tenants]
        x = rng.uniform(-1, 1, (1, model.input_dim))
        work.append((name, x, clients[name].encrypt(x)))

    def one(item):
        name, x, data = item
        try:
            out = http.infer(name, "clf", data)
        except fg.FHEError as exc:
            return name, None, f"{type(exc).__name__}: {exc}"
        ct = fg.Ciphertext.from_bytes(out, clients[name].context)
        if ct.key_id != clients[name].key_id:
            return name, -1.0, None
        got = clients[name].decrypt(out, count=1)
        return name, fg.precision_bits(model.forward_plain(x), got), None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, work))
    wall = time.perf_counter() - t0
    bits = [b for _, b, e in results if e is None]
    return {"ok": sum(b >= BITS for b in bits), "misrouted": sum(b < BITS for b in bits),
            "errors": [e for _, _, e in results if e is not None][:5],
            "failed": sum(e is not None for _, _, e in results),
            "worst_bits": min(bits) if bits else None, "seconds": wall,
            "tenants": names, "retried": http.retried}


if __name__ == "__main__":
    url, model_file, tenants, requests, threads = sys.argv[1:6]
    print(json.dumps(main(url, model_file, int(tenants), int(requests), int(threads))))
