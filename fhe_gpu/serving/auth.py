"""Per-tenant bearer tokens (framework-free).

A tenant's token is issued once, when its first key upload succeeds, and returned in that
response only; the server keeps its SHA-256 digest, never the token. Two modes:

* open registration (no admin token): anyone may create a tenant that does not exist yet
  and receives its token; every later call for that tenant needs that token;
* provisioned (``admin_token`` set): only the admin token creates tenants (the response
  carries the new tenant's token, for the operator to hand over); the admin token may also
  replace or delete any tenant's keys, but never runs inference with them.

A call without a token, or with one the server does not know, is an AuthenticationError
(401); a valid token of another tenant is a PermissionDeniedError (403).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from .errors import AuthenticationError, PermissionDeniedError

#: the role of an authenticated caller
ADMIN, TENANT = "admin", "tenant"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


class TokenStore:
    """Tenants' token digests, and the tenants being registered (thread-safe)."""

    def __init__(self, admin_token: str | None = None):
        if admin_token is not None and len(admin_token) < 16:
            raise ValueError("the admin token must have at least 16 characters")
        self._admin = None if admin_token is None else _digest(admin_token)
        self._by_digest: dict[bytes, str] = {}
        self._by_tenant: dict[str, bytes] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    @property
    def provisioned(self) -> bool:
        """True when only the admin token may create tenants."""
        return self._admin is not None

    def tenants(self) -> list[str]:
        """Tenants that hold a token."""
        with self._lock:
            return sorted(self._by_tenant)

    def known(self, tenant: str) -> bool:
        """True when ``tenant`` holds a token or is being registered."""
        with self._lock:
            return tenant in self._by_tenant or tenant in self._pending

    def identify(self, token: str | None) -> tuple[str, str | None]:
        """(ADMIN, None) or (TENANT, tenant) for a known token; AuthenticationError
        otherwise."""
        if token is None:
            raise AuthenticationError("missing bearer token (Authorization: Bearer <token>)")
        digest = _digest(token)
        if self._admin is not None and hmac.compare_digest(digest, self._admin):
            return ADMIN, None
        with self._lock:
            tenant = self._by_digest.get(digest)
        if tenant is None:
            raise AuthenticationError("unknown bearer token")
        return TENANT, tenant

    def authorize(self, token: str | None, tenant: str, admin_ok: bool) -> str:
        """The caller's role for an operation on ``tenant``'s keys; PermissionDeniedError
        when the token belongs to another tenant (or is the admin's and ``admin_ok`` is
        False)."""
        role, owner = self.identify(token)
        if role == ADMIN and admin_ok:
            return ADMIN
        if role == TENANT and owner == tenant:
            return TENANT
        who = "the admin token" if role == ADMIN else "this token"
        raise PermissionDeniedError(f"{who} may not act on tenant {tenant!r}")

    def begin(self, token: str | None, tenant: str) -> bool:
        """Check that the caller may upload ``tenant``'s keys; returns True when this
        creates the tenant (it is then pending until :meth:`finish` or :meth:`abort`)."""
        with self._lock:
            exists = tenant in self._by_tenant or tenant in self._pending
            if not exists and self._admin is None:
                self._pending.add(tenant)
                return True
        if exists:
            self.authorize(token, tenant, admin_ok=True)
            return False
        role, _ = self.identify(token)
        if role != ADMIN:
            raise PermissionDeniedError("only the admin token may create tenants on this "
                                        "server")
        with self._lock:
            if tenant in self._by_tenant or tenant in self._pending:
                raise PermissionDeniedError(f"tenant {tenant!r} is being created")
            self._pending.add(tenant)
        return True

    def finish(self, tenant: str) -> str:
        """Issue the token of a tenant created by :meth:`begin` (returned once)."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._pending.discard(tenant)
            self._by_tenant[tenant] = _digest(token)
            self._by_digest[_digest(token)] = tenant
        return token

    def abort(self, tenant: str) -> None:
        """Forget a pending tenant whose first upload failed."""
        with self._lock:
            self._pending.discard(tenant)

    def forget(self, tenant: str) -> None:
        """Revoke ``tenant``'s token."""
        with self._lock:
            digest = self._by_tenant.pop(tenant, None)
            if digest is not None:
                self._by_digest.pop(digest, None)
