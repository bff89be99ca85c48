"""A tenant's HTTP client for ``fhe-gpu serve`` (httpx, imported when a client is made).

    client = HttpClient("http://127.0.0.1:8000")
    key_id = client.register("alice", tenant.evaluation_key_bytes())  # keeps alice's token
    out = client.infer("alice", "clf", tenant.encrypt(x))             # result bytes
    y = tenant.decrypt(out)

Error responses raise the typed error they name (the same classes an in-process Engine
raises: SerializationError, KeyMismatchError, ...; and those of
:mod:`fhe_gpu.serving.errors` for authentication, sizes and content types). A 429
(EngineOverloadedError) or a 503 while the server drains or starts is retried after its
Retry-After, at most ``retries`` times and ``max_retry_wait_s`` per wait, then raised.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import quote

from ..errors import EngineClosedError, EngineOverloadedError
from .errors import ServerError, from_response

OCTET = "application/octet-stream"


class HttpClient:
    """Calls one server's endpoints (thread-safe: one connection pool shared by threads).

    ``url``: the server's base URL. ``token``: a bearer token to use for every tenant
    (an admin token, or a tenant's own); tokens that :meth:`register` receives are kept
    per tenant and take precedence. ``timeout``: seconds per HTTP request. ``retries`` /
    ``max_retry_wait_s``: the bound on retries of 429 and 503 responses."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 300.0,
                 retries: int = 5, max_retry_wait_s: float = 10.0):
        try:
            import httpx
        except ImportError as exc:
            raise ImportError("HttpClient needs httpx: pip install 'fhe-gpu[serve]'") from exc
        self.url = url.rstrip("/")
        self.token = token
        self.retries, self.max_retry_wait_s = int(retries), float(max_retry_wait_s)
        self.tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self.retried = 0

    # ------------------------------------------------------------------ calls
    def register(self, tenant: str, evk_bytes: bytes) -> bytes:
        """Upload ``tenant``'s evaluation keys (creating the tenant, or replacing its keys
        with its token); returns the key id, keeps the token a creation issues."""
        body = self._call("PUT", f"/v1/tenants/{_q(tenant)}/keys", tenant,
                          bytes(evk_bytes)).json()
        if "token" in body:
            with self._lock:
                self.tokens[tenant] = body["token"]
        return bytes.fromhex(body["key_id"])

    def infer(self, tenant: str, model: str, ct_bytes: bytes,
              timeout: float | None = None) -> bytes:
        """The result ciphertext's bytes for one request (``timeout``: its deadline on
        the server, in seconds)."""
        headers = {} if timeout is None else {"X-Timeout-Seconds": f"{float(timeout):g}"}
        return self._call("POST", f"/v1/tenants/{_q(tenant)}/infer/{_q(model)}", tenant,
                          bytes(ct_bytes), headers).content

    def unregister(self, tenant: str) -> None:
        """Drop ``tenant``'s keys and token on the server."""
        self._call("DELETE", f"/v1/tenants/{_q(tenant)}", tenant)
        with self._lock:
            self.tokens.pop(tenant, None)

    def info(self) -> dict:
        """The server's parameters, models, rotations and body limits."""
        return self._call("GET", "/v1/info").json()

    def params(self):
        """The server's Parameters."""
        from ..ckks import Parameters
        return Parameters.from_bytes(self._call("GET", "/v1/params").content)

    def health(self) -> bool:
        """True when the server is ready (``/readyz`` answers 200)."""
        import httpx
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def metrics(self) -> str:
        """The server's ``/metrics`` text."""
        return self._call("GET", "/metrics").text

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _headers(self, tenant: str | None, extra: dict | None) -> dict:
        headers = dict(extra or {})
        with self._lock:
            token = self.tokens.get(tenant) if tenant is not None else None
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _call(self, method: str, path: str, tenant: str | None = None,
              body: bytes | None = None, extra: dict | None = None):
        headers = self._headers(tenant, extra)
        if body is not None:
            headers["Content-Type"] = OCTET
        attempt = 0
        while True:
            response = self._http.request(method, path, content=body, headers=headers)
            if response.status_code < 400:
                return response
            error = _error(response)
            if attempt >= self.retries or \
                    not isinstance(error, (EngineOverloadedError, EngineClosedError)):
                raise error
            self.retried += 1
            time.sleep(self._retry_after(response, attempt))
            attempt += 1

    def _retry_after(self, response, attempt: int) -> float:
        try:
            wait = float(response.headers.get("retry-after", ""))
        except ValueError:
            wait = 0.1 * 2 ** attempt
        return min(max(wait, 0.0), self.max_retry_wait_s)


def _error(response) -> Exception:
    """The typed error of an error response."""
    try:
        body = response.json()
        name, message = body.get("error"), body.get("message")
    except (ValueError, AttributeError):
        return ServerError(f"HTTP {response.status_code}: {response.text[:200]}")
    return from_response(response.status_code, name, message)


def _q(segment: str) -> str:
    return quote(str(segment), safe="")
