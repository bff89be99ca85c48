"""Typed errors of the serving layer and the HTTP status of every error type.

Every error an HTTP endpoint returns is a JSON body ``{"error": <type name>, "message":
<text>}`` whose type name is either one of :mod:`fhe_gpu.errors` (the same error the
Engine raises in-process: ``SerializationError``, ``KeyMismatchError``, ...) or one of
the classes below (failures that exist only on the network: authentication, body size,
content type). :class:`~fhe_gpu.serving.HttpClient` raises the class the name denotes, so
code written against an in-process Engine handles the same errors over HTTP.
"""
from __future__ import annotations

from .. import errors as _core
from ..errors import FHEError


class ServingError(FHEError):
    """Base class of the errors that exist only on the network."""


class AuthenticationError(ServingError, PermissionError):
    """No bearer token, or one the server does not know (HTTP 401)."""


class PermissionDeniedError(ServingError, PermissionError):
    """A valid token used for another tenant (HTTP 403): a tenant can neither replace
    nor use another tenant's keys."""


class NotFoundError(ServingError, LookupError):
    """An unknown path (HTTP 404); the base of the two below."""


class ModelNotFoundError(NotFoundError, _core.ParameterError):
    """A model the server does not serve (HTTP 404); a ParameterError, as an Engine's."""


class TenantNotFoundError(NotFoundError, _core.KeyMissingError):
    """A tenant the server does not know (HTTP 404); a KeyMissingError, as an Engine's."""


class PayloadTooLargeError(ServingError, ValueError):
    """A request body larger than the endpoint accepts (HTTP 413), refused from its
    Content-Length before reading, or while streaming when it has none."""


class UnsupportedMediaTypeError(ServingError, ValueError):
    """A body whose Content-Type is not ``application/octet-stream`` (HTTP 415)."""


class BadRequestError(ServingError, ValueError):
    """A malformed HTTP request (a bad Content-Length, a body shorter than declared)."""


class RequestTimeoutError(ServingError, TimeoutError):
    """A request body that stopped arriving before its end (HTTP 408): no chunk for
    the server's body timeout."""


class ServerError(ServingError, RuntimeError):
    """An unexpected failure on the server (HTTP 500), or an error response whose type
    this client does not know (its status is in the message)."""


#: HTTP status of each error type; the first base class found in the MRO wins
STATUS = {
    AuthenticationError: 401, PermissionDeniedError: 403, NotFoundError: 404,
    PayloadTooLargeError: 413, UnsupportedMediaTypeError: 415, BadRequestError: 400,
    RequestTimeoutError: 408,
    ServerError: 500,
    _core.EngineOverloadedError: 429, _core.EngineClosedError: 503,
    _core.DeadlineExceededError: 504,
    _core.FHEError: 400,
}

#: every error type a response may name, by name
BY_NAME = {name: getattr(_core, name) for name in _core.__all__}
BY_NAME.update({cls.__name__: cls for cls in (
    ServingError, AuthenticationError, PermissionDeniedError, NotFoundError,
    ModelNotFoundError, TenantNotFoundError, PayloadTooLargeError,
    UnsupportedMediaTypeError, BadRequestError, RequestTimeoutError, ServerError)})


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc`` (500 for anything that is not an FHEError)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def from_response(status: int, name: str | None, message: str | None) -> FHEError:
    """The typed error an error response denotes (:class:`ServerError` when its type name
    is not known, or the body was not the JSON error object)."""
    cls = BY_NAME.get(name or "")
    if cls is None or not issubclass(cls, FHEError):
        return ServerError(f"HTTP {status}: {name or 'error'}: {message or ''}".rstrip(": "))
    return cls(message or f"HTTP {status}")


__all__ = ["ServingError", "AuthenticationError", "PermissionDeniedError", "NotFoundError",
           "ModelNotFoundError", "TenantNotFoundError",
           "PayloadTooLargeError", "UnsupportedMediaTypeError", "BadRequestError",
           "RequestTimeoutError", "ServerError", "status_of", "from_response"]
