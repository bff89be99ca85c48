"""fhe_gpu.serving over real HTTP: ``fhe-gpu serve`` in a subprocess (uvicorn on a free
loopback port) with a client process of 8 tenants and 200 concurrent requests, bad input
of every kind (each with its status and JSON error, the server serving on with bounded
RSS), tokens in both registration modes, 429 with Retry-After and HttpClient's retries,
503 while draining, graceful shutdown on SIGTERM, lazy framework imports.

Parameters are N = 2^10 (insecure on purpose, as tests/test_engine.py), backend cpu.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import fhe_gpu as fg
from fhe_gpu import engine, serving
from fhe_gpu.serving.errors import from_response, status_of
from fhe_gpu.serving.http import create_app
from test_engine import BITS, params, world

TESTS = pathlib.Path(__file__).resolve().parent
OCTET = {"Content-Type": "application/octet-stream"}


# ----------------------------------------------------------------------------- servers
class ServerProcess:
    """``fhe-gpu serve`` in a subprocess (cwd: a temp dir), on a free loopback port."""

    def __init__(self, workdir: pathlib.Path, *extra: str):
        exe = pathlib.Path(sys.executable).with_name("fhe-gpu")
        cmd = [str(exe), "serve"] if exe.exists() else \
            [sys.executable, "-m", "fhe_gpu.serving.command"]
        self.log = open(workdir / f"server-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            cmd + ["--params", "params.bin", "--model", "clf=clf.npz", "--backend", "cpu",
                   "--port", "0", *extra], cwd=workdir, stdout=subprocess.PIPE,
            stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r} {self._log()}")
        self.url = match.group(1)
        deadline = time.monotonic() + 60
        while not self.ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"server not ready: {self._log()}")
            time.sleep(0.1)

    def _log(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.stdout.close()
            self.log.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve")
    w = world("cpu")
    (path / "params.bin").write_bytes(w.params.to_bytes())
    w.model.save(str(path / "clf.npz"))
    return path


@pytest.fixture(scope="module")
def server(workdir):
    srv = ServerProcess(workdir, "--max-batch", "8", "--max-wait-ms", "2",
                        "--body-timeout", "1")
    yield srv
    assert srv.stop() == 0


@contextlib.contextmanager
def thread_server(app):
    """The app under uvicorn in a thread, on a free loopback port."""
    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.serving
    finally:
        server.should_exit = True
        thread.join(60)


def small_engine(**kw):
    w = world("cpu")
    kw.setdefault("max_wait_ms", 2.0)
    return engine.Engine(w.params, {"clf": w.model}, backend="cpu", **kw)


def metric_samples(text: str) -> list:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


# ----------------------------------------------------------------------------- acceptance 1
def test_client_process_8_tenants_200_concurrent_requests(server, workdir):
    proc = subprocess.run([sys.executable, "serving_client.py", server.url,
                           str(workdir / "clf.npz"), "8", "200", "16"], cwd=TESTS,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0, summary["errors"]
    assert summary["ok"] == 200 and summary["misrouted"] == 0, summary
    print(f"\n200 requests, 8 tenants over HTTP: {summary['seconds']:.2f} s, worst "
          f"{summary['worst_bits']:.1f} bits, 0 misrouted")
    samples = metric_samples(httpx.get(server.url + "/metrics").text)
    per_tenant = {t: sum(s.value for s in samples if s.name == "fhe_engine_requests_total"
                         and s.labels.get("tenant") == t and s.labels["status"] == "ok")
                  for t in summary["tenants"]}
    assert per_tenant == {t: 25 for t in summary["tenants"]}
    http_ok = sum(s.value for s in samples if s.name == "fhe_http_requests_total"
                  and s.labels["route"] == "/v1/tenants/{tenant}/infer/{model}"
                  and s.labels["status"] == "200")
    assert http_ok >= 200
    keys = [s for s in samples if s.name == "fhe_http_requests_total"
            and s.labels["route"] == "/v1/tenants/{tenant}/keys" and s.labels["status"] == "201"]
    assert sum(s.value for s in keys) >= 8


# ----------------------------------------------------------------------------- acceptance 2
@pytest.fixture(scope="module")
def tenants(server):
    """alice and bob registered over HTTP: their Clients and tokens."""
    w = world("cpu")
    http = serving.HttpClient(server.url)
    out = {}
    for name, client in (("alice", w.clients["t0"]), ("bob", w.clients["t1"])):
        assert http.register(name, client.evaluation_key_bytes()) == client.key_id
        out[name] = (client, http.tokens[name])
    http.close()
    return out


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _raw(url: str, head: str, body: bytes = b"", half_close=False, wait=10.0) -> bytes:
    """Send raw bytes on one connection; everything the server answers until it closes."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(socket.timeout, ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
    return out


def _raw_status(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body), head.decode().lower()


def _stream(total: int, chunk: int = 1 << 16):
    for _ in range(total // chunk):
        yield b"\0" * chunk


def _bad_cases(url, tenants):
    """(case, callable returning (status, json body, headers text))."""
    (alice, at), (bob, bt) = tenants["alice"], tenants["bob"]
    w = world("cpu")
    good = alice.encrypt(np.zeros((1, w.model.input_dim)))
    infer = f"{url}/v1/tenants/alice/infer/clf"

    def post(path=infer, body=good, headers=None, method="POST"):
        r = httpx.request(method, path, content=body, headers=headers, timeout=30)
        text = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        return r.status_code, r.json(), text.lower()

    other = engine.Client(params(log_n=11), w.model, seed=b"\x09" * 32, backend="cpu")
    ctx = fg.Context(w.params, backend="cpu")
    no_rotations = fg.KeyGenerator(ctx).evaluation_keys(rotations=[]).to_bytes()
    head = "POST /v1/tenants/alice/infer/clf HTTP/1.1\nHost: x\nAuthorization: Bearer " \
           f"{at}\nContent-Type: application/octet-stream\n"
    return _body_cases(url, post, good, at, bob, other, no_rotations, head) + \
        _auth_cases(url, post, at, bob, bt)


def _body_cases(url, post, good, at, bob, other, no_rotations, head):
    return [
        ("truncated ciphertext", lambda: post(body=good[:len(good) // 2],
                                              headers={**OCTET, **_auth(at)}),
         400, "SerializationError"),
        ("garbage ciphertext bytes", lambda: post(body=os.urandom(len(good)),
                                                  headers={**OCTET, **_auth(at)}),
         400, "SerializationError"),
        ("another tenant's ciphertext", lambda: post(body=bob.encrypt(np.zeros((1, 16))),
                                                     headers={**OCTET, **_auth(at)}),
         400, "KeyMismatchError"),
        ("ciphertext of other parameters", lambda: post(body=other.encrypt(np.zeros((1, 16))),
                                                        headers={**OCTET, **_auth(at)}),
         400, "ContextMismatchError"),
        ("keys lacking the model's rotations", lambda: post(
            f"{url}/v1/tenants/eve/keys", no_rotations, OCTET, "PUT"), 400, "KeyMissingError"),
        ("wrong content type", lambda: post(headers={"Content-Type": "text/plain",
                                                     **_auth(at)}),
         415, "UnsupportedMediaTypeError"),
        ("no content type", lambda: post(headers=_auth(at)), 415, "UnsupportedMediaTypeError"),
        ("1 GB declared body", lambda: _raw_status(_raw(
            url, head + "Content-Length: 1000000000\n", b"\0" * 1000)),
         413, "PayloadTooLargeError"),
        ("streamed ciphertext over the limit", lambda: post(body=_stream(4 << 20),
                                                            headers={**OCTET, **_auth(at)}),
         413, "PayloadTooLargeError"),
        ("streamed keys over the limit", lambda: post(f"{url}/v1/tenants/alice/keys",
                                                      _stream(64 << 20),
                                                      {**OCTET, **_auth(at)}, "PUT"),
         413, "PayloadTooLargeError"),
        ("body shorter than its Content-Length", lambda: _raw_status(_raw(
            url, head + "Content-Length: 5000\n", b"\0" * 100)), 408, "RequestTimeoutError"),
    ]


def _auth_cases(url, post, at, bob, bt):
    return [
        ("another tenant's token (infer)", lambda: post(headers={**OCTET, **_auth(bt)}),
         403, "PermissionDeniedError"),
        ("another tenant's token (replace keys)", lambda: post(
            f"{url}/v1/tenants/alice/keys", bob.evaluation_key_bytes(),
            {**OCTET, **_auth(bt)}, "PUT"), 403, "PermissionDeniedError"),
        ("no token", lambda: post(headers=OCTET), 401, "AuthenticationError"),
        ("unknown token", lambda: post(headers={**OCTET, **_auth("x" * 43)}),
         401, "AuthenticationError"),
        ("malformed Authorization", lambda: post(headers={**OCTET, "Authorization": at}),
         401, "AuthenticationError"),
        ("unknown model", lambda: post(f"{url}/v1/tenants/alice/infer/nope",
                                       headers={**OCTET, **_auth(at)}),
         404, "ModelNotFoundError"),
        ("unknown path", lambda: post(f"{url}/v2/nothing", headers=OCTET), 404,
         "NotFoundError"),
        ("deadline passed", lambda: post(headers={**OCTET, **_auth(at),
                                                  "X-Timeout-Seconds": "0.000001"}),
         504, "DeadlineExceededError"),
        ("bad X-Timeout-Seconds", lambda: post(headers={**OCTET, **_auth(at),
                                                        "X-Timeout-Seconds": "soon"}),
         400, "BadRequestError"),
    ]


def test_bad_input_gets_its_status_and_json_error_server_serves_on(server, tenants):
    cases = _bad_cases(server.url, tenants)
    for name, call, status, error in cases:             # warm-up: first allocations
        call()
    rss0 = server.rss_mb()
    for _ in range(5):
        for name, call, status, error in cases:
            got, body, headers = call()
            assert (got, body["error"]) == (status, error), (name, body)
            assert body["message"], name
            if status == 401:
                assert "www-authenticate: bearer" in headers
            if status == 413:
                assert "connection: close" in headers     # the rest is never read
    # a client that closes mid-body gets no answer; nothing is left behind
    head = "POST /v1/tenants/alice/infer/clf HTTP/1.1\nHost: x\nContent-Type: " \
           "application/octet-stream\nContent-Length: 5000\n"
    assert b"200 OK" not in _raw(server.url, head, b"\0" * 10, half_close=True)
    rss1 = server.rss_mb()
    alice, token = tenants["alice"]
    x = np.random.default_rng(3).uniform(-1, 1, (1, 16))
    r = httpx.post(f"{server.url}/v1/tenants/alice/infer/clf", content=alice.encrypt(x),
                   headers={**OCTET, **_auth(token)})
    assert r.status_code == 200
    w = world("cpu")
    assert fg.precision_bits(w.model.forward_plain(x), alice.decrypt(r.content, 1)) >= BITS
    print(f"\n{5 * len(cases)} bad requests: server RSS {rss0:.0f} -> {rss1:.0f} MB")
    assert rss1 - rss0 < 64


def test_http_client_raises_the_typed_errors(server, tenants):
    alice, token = tenants["alice"]
    http = serving.HttpClient(server.url)
    with pytest.raises(serving.AuthenticationError):
        http.infer("alice", "clf", alice.encrypt(np.zeros((1, 16))))
    http.tokens["alice"] = token
    with pytest.raises(fg.SerializationError, match="magic"):
        http.infer("alice", "clf", b"\0" * 64)
    with pytest.raises(fg.ParameterError, match="unknown model"):
        http.infer("alice", "nope", alice.encrypt(np.zeros((1, 16))))
    with pytest.raises(fg.DeadlineExceededError):
        http.infer("alice", "clf", alice.encrypt(np.zeros((1, 16))), timeout=1e-6)
    assert http.info()["models"]["clf"]["input_dim"] == 16
    assert http.params().fingerprint == world("cpu").params.fingerprint
    http.close()


def test_error_mapping_round_trip():
    for name in fg.errors.__all__ + serving.__all__[1:]:
        cls = getattr(fg, name, None) or getattr(serving, name)
        exc = from_response(status_of(cls("m")), name, "m")
        assert type(exc) is cls and str(exc) == "m"
    assert isinstance(from_response(500, "Weird", "x"), serving.ServerError)
    assert status_of(fg.EngineOverloadedError("x")) == 429
    assert status_of(ValueError("x")) == 500


# ----------------------------------------------------------------------------- tokens
def test_admin_token_provisions_tenants():
    w = world("cpu")
    admin = "a" * 32
    with thread_server(create_app(small_engine(), admin_token=admin)) as (url, state):
        keys = w.clients["t2"].evaluation_key_bytes()
        put = f"{url}/v1/tenants/carol/keys"
        assert httpx.put(put, content=keys, headers=OCTET).status_code == 401
        r = httpx.put(put, content=keys, headers={**OCTET, **_auth(admin)})
        assert r.status_code == 201 and r.json()["key_id"] == w.clients["t2"].key_id.hex()
        carol = r.json()["token"]
        r = httpx.put(f"{url}/v1/tenants/dan/keys", content=keys,
                      headers={**OCTET, **_auth(carol)})
        assert (r.status_code, r.json()["error"]) == (403, "PermissionDeniedError")
        data = w.clients["t2"].encrypt(np.zeros((1, 16)))
        infer = f"{url}/v1/tenants/carol/infer/clf"
        assert httpx.post(infer, content=data, headers={**OCTET, **_auth(carol)}).is_success
        assert httpx.post(infer, content=data,
                          headers={**OCTET, **_auth(admin)}).status_code == 403
        r = httpx.put(put, content=keys, headers={**OCTET, **_auth(admin)})
        assert r.status_code == 200 and "token" not in r.json()
        assert httpx.get(f"{url}/v1/tenants/carol", headers=_auth(carol)).json()["tenant"] \
            == "carol"
        assert httpx.get(f"{url}/v1/tenants/nobody",
                         headers=_auth(admin)).status_code == 404
        assert httpx.delete(f"{url}/v1/tenants/carol", headers=_auth(carol)).status_code == 204
        assert httpx.post(infer, content=data,
                          headers={**OCTET, **_auth(carol)}).status_code == 401
        assert httpx.get(f"{url}/v1/info").json()["registration"] == "admin"


def test_open_registration_failed_upload_creates_no_tenant():
    w = world("cpu")
    with thread_server(create_app(small_engine())) as (url, state):
        put = f"{url}/v1/tenants/frank/keys"
        assert httpx.put(put, content=b"bad", headers=OCTET).status_code == 400
        assert state.tokens.tenants() == []
        http = serving.HttpClient(url)
        http.register("frank", w.clients["t3"].evaluation_key_bytes())
        assert "frank" in http.tokens and state.tokens.tenants() == ["frank"]
        http.register("frank", w.clients["t3"].evaluation_key_bytes())   # replace: own token
        http.unregister("frank")
        assert state.tokens.tenants() == [] and "frank" not in http.tokens


# ----------------------------------------------------------------------------- backpressure
def test_overload_gets_429_with_retry_after_and_http_client_retries():
    w = world("cpu")
    eng = small_engine(max_batch=1, max_queue=1, max_wait_ms=0.0)
    with thread_server(create_app(eng, max_inflight=3)) as (url, state):
        http = serving.HttpClient(url, retries=20)
        client = w.clients["t4"]
        http.register("gina", client.evaluation_key_bytes())
        xs = np.random.default_rng(9).uniform(-1, 1, (24, 1, 16))
        data = [client.encrypt(x) for x in xs]
        headers = {**OCTET, **_auth(http.tokens["gina"])}

        async def flood():
            async with httpx.AsyncClient(timeout=60) as c:
                return await asyncio.gather(*[
                    c.post(f"{url}/v1/tenants/gina/infer/clf", content=d, headers=headers)
                    for d in data])
        responses = asyncio.run(flood())
        codes = [r.status_code for r in responses]
        refused = [r for r in responses if r.status_code == 429]
        assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
        assert all(r.headers["retry-after"] == "1" and
                   r.json()["error"] == "EngineOverloadedError" for r in refused)
        with ThreadPoolExecutor(12) as pool:
            outs = list(pool.map(lambda d: http.infer("gina", "clf", d), data))
        assert http.retried > 0
        for x, out in zip(xs, outs):
            got = client.decrypt(out, count=1)
            assert fg.precision_bits(w.model.forward_plain(x), got) >= BITS


def test_concurrent_key_uploads_are_bounded():
    keys = world("cpu").clients["t7"].evaluation_key_bytes()
    with thread_server(create_app(small_engine(), max_uploads=1)) as (url, state):
        async def slow():
            for i in range(0, len(keys), 1 << 20):
                yield keys[i:i + (1 << 20)]
                await asyncio.sleep(0.2)

        async def run():
            async with httpx.AsyncClient(timeout=60) as c:
                first = asyncio.create_task(c.put(f"{url}/v1/tenants/jo/keys", content=slow(),
                                                  headers=OCTET))
                while state.uploads == 0:
                    await asyncio.sleep(0.01)
                second = await c.put(f"{url}/v1/tenants/kim/keys", content=keys,
                                     headers=OCTET)
                return await first, second

        first, second = asyncio.run(run())
        assert first.status_code == 201
        assert (second.status_code, second.json()["error"]) == (429, "EngineOverloadedError")
        assert second.headers["retry-after"] == "1"
        assert state.tokens.tenants() == ["jo"]


def test_draining_refuses_with_503():
    w = world("cpu")
    with thread_server(create_app(small_engine())) as (url, state):
        http = serving.HttpClient(url, retries=0)
        http.register("hana", w.clients["t5"].evaluation_key_bytes())
        state.drain()
        r = httpx.get(f"{url}/readyz")
        assert (r.status_code, r.json()["error"]) == (503, "EngineClosedError")
        with pytest.raises(fg.EngineClosedError, match="draining"):
            http.infer("hana", "clf", w.clients["t5"].encrypt(np.zeros((1, 16))))
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_sigterm_drains_requests_in_flight(workdir):
    srv = ServerProcess(workdir, "--max-batch", "64", "--max-wait-ms", "1500")
    w = world("cpu")
    http = serving.HttpClient(srv.url, retries=0)
    client = w.clients["t6"]
    http.register("ivan", client.evaluation_key_bytes())
    xs = np.random.default_rng(4).uniform(-1, 1, (16, 1, 16))
    with ThreadPoolExecutor(16) as pool:
        futs = [pool.submit(http.infer, "ivan", "clf", client.encrypt(x)) for x in xs]
        deadline = time.monotonic() + 30
        while True:                     # every request in the server (or answered)
            text = httpx.get(srv.url + "/metrics").text
            held = [s.value for s in metric_samples(text) if s.name == "fhe_http_inflight"]
            if held and held[0] + sum(f.done() for f in futs) >= 16:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        code = srv.stop(signal.SIGTERM)
        outs = [f.result(timeout=60) for f in futs]
    assert code == 0
    for x, out in zip(xs, outs):
        assert fg.precision_bits(w.model.forward_plain(x), client.decrypt(out, 1)) >= BITS
    with pytest.raises(httpx.TransportError):
        httpx.get(srv.url + "/healthz")


# ----------------------------------------------------------------------------- layering
def test_importing_serving_imports_no_framework():
    code = ("import sys, fhe_gpu.serving, fhe_gpu.serving.command; "
            "print(sorted(m for m in ('ray', 'starlette', 'uvicorn', 'httpx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=TESTS, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


# ----------------------------------------------------------------------------- README
def test_readme_serve_it_commands_run(tmp_path):
    """The bash blocks of the README's "Serve it" section, in order (the pip line
    skipped: the test environment has the extras; port 8000 replaced by a free one)."""
    readme = (TESTS.parent / "README.md").read_text()
    section = readme.split("\n## Serve it\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = "\n".join(line for block in blocks for line in block.splitlines()
                       if not line.startswith("pip install"))
    script = ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
              + script.replace("8000", str(port)) + "\nwait $SERVER\n")
    env = dict(os.environ, TMPDIR=str(tmp_path), PATH=os.path.dirname(sys.executable)
               + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    bits = float(re.search(r"precision bits: ([\d.]+)", proc.stdout).group(1))
    assert bits > 15
    assert '"error":"SerializationError"' in proc.stdout
    assert 'tenant="bob"' in proc.stdout and 'tenant="alice"' in proc.stdout
    assert [p.stat().st_size > 0 for p in tmp_path.glob("*/bob.result")] == [True]
