"""fhe_gpu.serving: an Engine on the network (HTTP) or on a cluster (Ray Serve).

* :mod:`fhe_gpu.serving.http`: the Starlette app (``create_app``) that ``fhe-gpu serve``
  runs under uvicorn: tenants' keys uploaded once, ciphertexts in and out as wire bytes,
  per-tenant bearer tokens, ``/healthz``, ``/readyz``, ``/metrics``;
* :class:`HttpClient`: a tenant's client for that API (httpx);
* :mod:`fhe_gpu.serving.ray`: a Ray Serve deployment of Engine replicas with
  tenant-affine routing (Serve's model multiplexing, the tenant id as the model id);
* :mod:`fhe_gpu.serving.errors`: the errors that exist only on the network;
* :mod:`fhe_gpu.serving.command`: ``fhe-gpu serve`` (uvicorn, or ``--ray`` replicas).

Frameworks are imported when used: importing this package imports neither starlette,
uvicorn, httpx nor ray (``pip install "fhe-gpu[serve]"``, ``"fhe-gpu[ray]"``).
"""
from .client import HttpClient
from .errors import (AuthenticationError, BadRequestError, ModelNotFoundError, NotFoundError,
                     PayloadTooLargeError, PermissionDeniedError, RequestTimeoutError,
                     ServerError, ServingError, TenantNotFoundError, UnsupportedMediaTypeError)

__all__ = ["HttpClient", "ServingError", "AuthenticationError", "PermissionDeniedError",
           "NotFoundError", "ModelNotFoundError", "TenantNotFoundError",
           "PayloadTooLargeError", "UnsupportedMediaTypeError", "BadRequestError",
           "RequestTimeoutError", "ServerError"]
