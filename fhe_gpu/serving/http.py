"""The Engine over HTTP: a Starlette (ASGI) app, served by uvicorn (``fhe-gpu serve``).

    app = create_app(engine)                 # or a backend: EngineBackend, ray.RayBackend
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints (bodies of keys and ciphertexts are the wire format, ``application/octet-stream``;
every other body is JSON):

=======  =====================================  ==============================================
method   path                                   what
=======  =====================================  ==============================================
GET      /healthz                               liveness: 200 while the process serves
GET      /readyz                                readiness: 200, or 503 while starting/draining
GET      /metrics                               Prometheus text: the Engine's metrics
                                                (``fhe_engine_*``) and the HTTP ones
                                                (``fhe_http_*``)
GET      /v1/info                               parameters, models, rotations, body limits
GET      /v1/params                             the Parameters' wire bytes
PUT|POST /v1/tenants/{tenant}/keys              upload evaluation keys: 201 {"tenant",
                                                "key_id", "token"} when this creates the
                                                tenant, 200 {"tenant", "key_id"} when it
                                                replaces its keys (tenant or admin token)
GET      /v1/tenants/{tenant}                   {"tenant", "key_id"} (tenant or admin token)
DELETE   /v1/tenants/{tenant}                   drop keys and token: 204 (tenant or admin)
POST     /v1/tenants/{tenant}/infer/{model}     a ciphertext in, the result ciphertext out
                                                (the tenant's own token only); optional
                                                header ``X-Timeout-Seconds``: its deadline
=======  =====================================  ==============================================

Tokens: ``Authorization: Bearer <token>`` (see :mod:`fhe_gpu.serving.auth`: the first key
upload of a tenant issues its token, or only an admin token creates tenants when the
server has one).

Errors are JSON ``{"error": <type name>, "message": <text>}`` (see
:mod:`fhe_gpu.serving.errors`):

* 400 bad bytes or a malformed request, with the typed error (SerializationError,
  ContextMismatchError, KeyMismatchError, KeyMissingError for keys that lack a rotation
  the models need, LevelError, BadRequestError...);
* 401 no or unknown token (AuthenticationError); 403 another tenant's token
  (PermissionDeniedError);
* 404 an unknown model (ModelNotFoundError, a ParameterError), tenant
  (TenantNotFoundError, a KeyMissingError: only the admin token learns that a tenant does
  not exist, a tenant's token gets 403) or path (NotFoundError);
* 408 a body that stops arriving before its end, ``body_timeout_s`` without data
  (RequestTimeoutError; a client that closes mid-body gets no answer);
* 413 a body over the limit, refused from its Content-Length before reading it or while
  streaming one without (PayloadTooLargeError; the connection is closed, the rest unread);
* 415 a Content-Type other than application/octet-stream (UnsupportedMediaTypeError);
* 429 EngineOverloadedError with ``Retry-After``: a full Engine queue, ``max_inflight``
  requests in the server or ``max_uploads`` key uploads (refused before reading the body);
* 503 EngineClosedError while starting or draining (with ``Retry-After``);
* 504 DeadlineExceededError; 500 anything unexpected (ServerError).

An error answered before the body was read (401, 403, 404, 415, 429...) still reads and
drops a body of up to ``DISCARD_BYTES`` so that the client gets the answer and keeps its
connection (closing with unread data resets it); after a 408 or 413, or for a larger body,
the connection is closed.

Shutdown drains: once uvicorn has stopped accepting and finished the requests in flight,
the app's lifespan closes the backend, which finishes every queued request; from the
moment shutdown starts (:meth:`ServingState.drain`) new requests get 503.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import EngineClosedError, EngineOverloadedError, ParameterError
from .auth import TokenStore, bearer
from .backend import EngineBackend, ciphertext_bytes_bound, key_bytes_bound
from .errors import (BadRequestError, ModelNotFoundError, PayloadTooLargeError,
                     RequestTimeoutError, TenantNotFoundError, UnsupportedMediaTypeError,
                     status_of)

log = logging.getLogger("fhe_gpu.serving")

#: the media type of keys, ciphertexts and parameters
OCTET = "application/octet-stream"
#: Prometheus text exposition format
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
#: rows of a request the default body limit leaves room for
DEFAULT_ROWS = 4
#: the largest unread body an error response discards to keep its connection
DISCARD_BYTES = 16 << 20


@dataclass
class Limits:
    """The server's bounds. ``max_key_bytes`` / ``max_request_bytes``: body sizes (None:
    bounds computed from the parameters and the models' rotations, a request of up to
    ``DEFAULT_ROWS`` rows); ``max_inflight``: ciphertext requests held at once (reading,
    queued or evaluating) before 429; ``max_uploads``: key uploads at once before 429
    (each may hold ``max_key_bytes``); ``retry_after_s``: the Retry-After of 429 and 503
    responses; ``max_timeout_s``: the largest X-Timeout-Seconds; ``body_timeout_s``: the
    longest wait for the next chunk of a body (then 408)."""

    max_key_bytes: int | None = None
    max_request_bytes: int | None = None
    max_inflight: int = 256
    max_uploads: int = 2
    retry_after_s: int = 1
    max_timeout_s: float = 300.0
    body_timeout_s: float = 30.0


class ServingState:
    """What the endpoints share: the backend, tokens, limits, HTTP metrics, draining."""

    def __init__(self, backend, tokens: TokenStore, limits: Limits):
        self.backend, self.tokens = backend, tokens
        self.limits = replace(
            limits, retry_after_s=max(1, int(limits.retry_after_s)),
            max_key_bytes=limits.max_key_bytes or key_bytes_bound(backend.params,
                                                                  backend.rotations),
            max_request_bytes=limits.max_request_bytes or ciphertext_bytes_bound(
                backend.params, DEFAULT_ROWS))
        self.key_ids: dict[str, str] = {}
        self.inflight = self.uploads = 0
        self.draining = False
        self.registry = CollectorRegistry()
        self.requests = Counter("fhe_http_requests", "HTTP requests by route, method and "
                                "status", ["route", "method", "status"],
                                registry=self.registry)
        held = Gauge("fhe_http_inflight", "Inference requests in the server (reading, "
                     "queued or evaluating)", registry=self.registry)
        held.set_function(lambda: self.inflight)
        self.seconds = Histogram("fhe_http_request_seconds", "HTTP request time by route",
                                 ["route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                          2.5, 5, 10, 30, 60))

    def drain(self) -> None:
        """Refuse new requests from now on (503); those in flight finish."""
        self.draining = True


def create_app(target, *, admin_token: str | None = None, limits: Limits | None = None,
               close_on_shutdown: bool = True, **bounds) -> Starlette:
    """The ASGI app serving ``target`` (an Engine, or a backend with the interface of
    :class:`~fhe_gpu.serving.backend.EngineBackend`).

    ``admin_token``: None for open registration, else the token that alone creates
    tenants. ``limits``: a :class:`Limits`; ``bounds``: fields of it to override
    (``max_inflight=8``...). ``close_on_shutdown``: close (drain) the backend when the app
    shuts down. ``app.state.serving`` is the :class:`ServingState`."""
    backend = target if hasattr(target, "infer") and hasattr(target, "ready") \
        else EngineBackend(target)
    state = ServingState(backend, TokenStore(admin_token), replace(limits or Limits(),
                                                                   **bounds))

    @asynccontextmanager
    async def lifespan(app):
        yield
        state.drain()
        if close_on_shutdown:
            await backend.close()

    routes = [Route("/healthz", _healthz, methods=["GET"]),
              Route("/readyz", _readyz, methods=["GET"]),
              Route("/metrics", _metrics, methods=["GET"]),
              Route("/v1/info", _info, methods=["GET"]),
              Route("/v1/params", _params, methods=["GET"]),
              Route("/v1/tenants/{tenant}/keys", _upload_keys, methods=["PUT", "POST"]),
              Route("/v1/tenants/{tenant}", _tenant, methods=["GET", "DELETE"]),
              Route("/v1/tenants/{tenant}/infer/{model}", _infer, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_exception})
    app.state.serving = state
    return app


# ------------------------------------------------------------------------- plumbing
def error_response(exc: BaseException, state: ServingState | None = None) -> JSONResponse:
    """The JSON error response of ``exc`` (its status from :func:`status_of`)."""
    status = status_of(exc)
    name = type(exc).__name__ if status != 500 else "ServerError"
    message = str(exc) if status != 500 else f"internal error: {type(exc).__name__}"
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = str(state.limits.retry_after_s if state else 1)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": name, "message": message}, status, headers=headers)


async def _http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    name = "NotFoundError" if exc.status_code == 404 else "BadRequestError"
    return JSONResponse({"error": name, "message": f"{request.method} {request.url.path}: "
                         f"{exc.detail}"}, exc.status_code, headers=exc.headers)


def _endpoint(route: str, body_limit: str | None = None):
    """Wrap a handler: typed errors become JSON error responses; every response is
    counted in the HTTP metrics under the route's template (never the tenant's id). An
    error answered before the body was read discards a body of at most ``body_limit``
    (the name of a Limits field) and DISCARD_BYTES, so the connection survives; a larger
    one is not read and the connection is closed."""
    def wrap(handler):
        async def endpoint(request: Request) -> Response:
            state: ServingState = request.app.state.serving
            t0 = time.perf_counter()
            try:
                response = await handler(request, state)
            except ClientDisconnect:
                response = Response(status_code=499)
            except Exception as exc:            # noqa: BLE001 (every failure is answered)
                if status_of(exc) == 500:
                    log.exception("%s %s failed", request.method, route)
                response = error_response(exc, state)
            if response.status_code >= 400 and body_limit and \
                    not getattr(request.state, "body_read", False):
                if response.status_code not in (408, 413, 499):
                    limit = min(getattr(state.limits, body_limit), DISCARD_BYTES)
                    await discard_body(request, limit, state.limits.body_timeout_s)
                if not getattr(request.state, "body_read", False):
                    response.headers["Connection"] = "close"
            state.requests.labels(route, request.method, str(response.status_code)).inc()
            state.seconds.labels(route).observe(time.perf_counter() - t0)
            return response
        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint
    return wrap


def _check_open(state: ServingState) -> None:
    if state.draining:
        raise EngineClosedError("the server is draining: it accepts no new requests")


async def read_body(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    """The body of a wire-format request, at most ``limit`` bytes: 415 unless its
    Content-Type is application/octet-stream; 413 from a Content-Length over the limit
    (before reading anything) or as soon as a streamed body passes it; 408 when no chunk
    arrives for ``timeout`` seconds; 400 when it ends before its Content-Length."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != OCTET:
        raise UnsupportedMediaTypeError(f"the body must be {OCTET}, got "
                                        f"{ctype or 'no Content-Type'!r}")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequestError(f"bad Content-Length {declared!r:.40}")
        if int(declared) > limit:
            raise PayloadTooLargeError(f"the body declares {int(declared)} bytes; this "
                                       f"endpoint accepts at most {limit}")
    body = bytearray()
    chunks = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise RequestTimeoutError(f"the body stopped arriving after {len(body)} bytes "
                                      f"(no data for {timeout:g} s)") from None
        if len(body) + len(chunk) > limit:
            raise PayloadTooLargeError(f"the body passed {limit} bytes, the most this "
                                       f"endpoint accepts")
        body += chunk
    request.state.body_read = True
    if declared is not None and len(body) != int(declared):
        raise BadRequestError(f"the body has {len(body)} bytes, Content-Length says "
                              f"{int(declared)}")
    return bytes(body)


async def discard_body(request: Request, limit: int, timeout: float) -> None:
    """Read and drop a body of at most ``limit`` declared bytes, so that the connection
    survives a refusal (closing it with unread data would reset it, and the client could
    miss the answer); a larger, undeclared or stalled body is left unread."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > limit:
        return
    chunks = request.stream()
    try:
        while True:
            await asyncio.wait_for(chunks.__anext__(), timeout)
    except StopAsyncIteration:
        request.state.body_read = True
    except (asyncio.TimeoutError, ClientDisconnect):
        pass


def _tenant_name(request: Request) -> str:
    tenant = request.path_params["tenant"]
    if not 0 < len(tenant) <= 256:
        raise ParameterError(f"a tenant id has 1 to 256 characters, got {len(tenant)}")
    return tenant


def _token(request: Request) -> str | None:
    return bearer(request.headers.get("authorization"))


# ------------------------------------------------------------------------- endpoints
@_endpoint("/healthz")
async def _healthz(request: Request, state: ServingState) -> Response:
    """Liveness: the process serves HTTP."""
    return JSONResponse({"status": "ok"})


@_endpoint("/readyz")
async def _readyz(request: Request, state: ServingState) -> Response:
    """Readiness: 200 when the backend takes requests, 503 while starting or draining."""
    _check_open(state)
    if not await state.backend.ready():
        raise EngineClosedError("the backend is not ready yet")
    return JSONResponse({"status": "ready", "models": sorted(state.backend.models),
                         "tenants": len(state.tokens.tenants())})


@_endpoint("/metrics")
async def _metrics(request: Request, state: ServingState) -> Response:
    """The Engine's metrics and the HTTP metrics, Prometheus text format."""
    text = await state.backend.metrics_text() + generate_latest(state.registry)
    return Response(text, media_type=PROMETHEUS)


@_endpoint("/v1/info")
async def _info(request: Request, state: ServingState) -> Response:
    """What a client needs to know: parameters, models, rotations, limits."""
    p = state.backend.params
    models = {name: {"input_dim": m.input_dim, "output_dim": m.output_dim,
                     "vectors": m.vectors, "depth": m.depth}
              for name, m in state.backend.models.items()}
    return JSONResponse({
        "params": {"log_n": p.log_n, "slots": p.slots, "max_level": p.max_level,
                   "fingerprint": p.fingerprint.hex()},
        "models": models, "rotations": state.backend.rotations,
        "max_key_bytes": state.limits.max_key_bytes,
        "max_request_bytes": state.limits.max_request_bytes,
        "registration": "admin" if state.tokens.provisioned else "open"})


@_endpoint("/v1/params")
async def _params(request: Request, state: ServingState) -> Response:
    """The Parameters' wire bytes (``Parameters.from_bytes`` reads them)."""
    return Response(state.backend.params.to_bytes(), media_type=OCTET)


@_endpoint("/v1/tenants/{tenant}/keys", "max_key_bytes")
async def _upload_keys(request: Request, state: ServingState) -> Response:
    """Create a tenant with its evaluation keys (201, with its token) or replace them
    (200)."""
    _check_open(state)
    tenant = _tenant_name(request)
    limits = state.limits
    created = state.tokens.begin(_token(request), tenant)
    state.uploads += 1
    try:
        if state.uploads > limits.max_uploads:
            raise EngineOverloadedError(f"{state.uploads - 1} key uploads in progress "
                                        f"(max_uploads={limits.max_uploads}); retry later")
        data = await read_body(request, limits.max_key_bytes, limits.body_timeout_s)
        key_id = (await state.backend.register(tenant, data)).hex()
    except BaseException:
        if created:
            state.tokens.abort(tenant)
        raise
    finally:
        state.uploads -= 1
    state.key_ids[tenant] = key_id
    if not created:
        return JSONResponse({"tenant": tenant, "key_id": key_id})
    return JSONResponse({"tenant": tenant, "key_id": key_id,
                         "token": state.tokens.finish(tenant)}, 201)


@_endpoint("/v1/tenants/{tenant}")
async def _tenant(request: Request, state: ServingState) -> Response:
    """GET: the tenant's key id; DELETE: drop its keys and revoke its token."""
    tenant = _tenant_name(request)
    state.tokens.authorize(_token(request), tenant, admin_ok=True)
    if tenant not in state.key_ids:             # only the admin token gets this far
        raise TenantNotFoundError(f"unknown tenant {tenant!r}")
    if request.method == "GET":
        return JSONResponse({"tenant": tenant, "key_id": state.key_ids[tenant]})
    _check_open(state)
    await state.backend.unregister(tenant)
    state.key_ids.pop(tenant, None)
    state.tokens.forget(tenant)
    return Response(status_code=204)


@_endpoint("/v1/tenants/{tenant}/infer/{model}", "max_request_bytes")
async def _infer(request: Request, state: ServingState) -> Response:
    """Evaluate ``model`` on the tenant's ciphertext; the result ciphertext's bytes."""
    _check_open(state)
    tenant, model = _tenant_name(request), request.path_params["model"]
    state.tokens.authorize(_token(request), tenant, admin_ok=False)
    if model not in state.backend.models:
        raise ModelNotFoundError(f"unknown model {model!r}: this server serves "
                                 f"{sorted(state.backend.models)}")
    timeout = _timeout(request, state)
    limits = state.limits
    if state.inflight >= limits.max_inflight:
        raise EngineOverloadedError(f"{state.inflight} requests in flight (max_inflight="
                                    f"{limits.max_inflight}); retry later")
    state.inflight += 1
    try:
        data = await read_body(request, limits.max_request_bytes, limits.body_timeout_s)
        out = await state.backend.infer(tenant, model, data, timeout)
    finally:
        state.inflight -= 1
    return Response(out, media_type=OCTET)


def _timeout(request: Request, state: ServingState) -> float | None:
    raw = request.headers.get("x-timeout-seconds")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= state.limits.max_timeout_s:
        raise BadRequestError(f"X-Timeout-Seconds must be a number in (0, "
                              f"{state.limits.max_timeout_s:g}], got {raw!r:.40}")
    return value
