"""Who is calling: the API key of a request, checked against the store (OPTIM_AUTH=api_key).

Each endpoint names the scope it needs with `Depends(require("compute"))` (and the OpenAPI
document declares the two ways to send a key). With OPTIM_AUTH=none (the default) nothing is
checked and every caller is the same anonymous one: today's single-user behaviour.

Keys are read from the store and kept here for OPTIM_AUTH_CACHE_S (default 2 s), unknown keys
too (so a flood of wrong keys costs one store read per key and interval): a key revoked on
any replica stops working on every replica within that time. When the store cannot be asked,
a key not read within that time is not trusted: the request is a 503, not a guess.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from service.auth.keys import KeyRecord, key_hash
from service.auth.keystore import KeyStore
from service.auth.quotas import QuotaBook
from service.errors import AuthenticationError, KeyQuotaError, ScopeError

MAX_KEY_LENGTH = 256
CACHE_ENTRIES = 10_000
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An API key as `Authorization: Bearer <key>` "
                                "(when the service runs with OPTIM_AUTH=api_key)")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="The same key in the X-API-Key header")

# the two ways to send a key, as the OpenAPI document declares them (the check reads both)
BearerDep = Annotated[Any, Security(bearer)]
HeaderDep = Annotated[Any, Security(api_key_header)]


class Authenticator:
    def __init__(self, enabled: bool, keys: KeyStore | None, quotas: QuotaBook | None,
                 cache_s: float, call: Callable[..., Any]) -> None:
        self.enabled, self.keys, self.quotas = enabled, keys, quotas
        self.cache_s = cache_s
        self._call = call  # runs a store call off the event loop, within the store timeout
        self._cache: OrderedDict[str, tuple[KeyRecord | None, float]] = OrderedDict()

    async def identify(self, request: Request) -> KeyRecord | None:
        """The caller's key record, or AuthenticationError; None when auth is off."""
        if not self.enabled:
            return None
        key = _presented_key(request)
        if not key:
            raise AuthenticationError("This endpoint needs an API key: send it as "
                                      "`Authorization: Bearer <key>` or `X-API-Key: <key>`")
        if len(key) > MAX_KEY_LENGTH:
            raise AuthenticationError("The API key is not valid")
        record = await self._lookup(key)
        if record is None:
            raise AuthenticationError("The API key is not valid (unknown); check it, or ask an "
                                      "admin for one")
        if record.revoked_at is not None:
            raise AuthenticationError(f"The API key {record.id} was revoked")
        if not record.usable():
            raise AuthenticationError(f"The API key {record.id} has expired")
        return record

    async def _lookup(self, key: str) -> KeyRecord | None:
        digest = key_hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] <= self.cache_s:
            return cached[0]
        assert self.keys is not None
        record = await self._call(self.keys.find, key)
        self._cache[digest] = (record, now)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return record

    def forget(self) -> None:
        """Drop every cached key (a revocation made by this replica takes effect at once)."""
        self._cache.clear()

    def check_run_steps(self, request: Request, run_steps: int) -> None:
        """A key's limit on runs × max_steps of one request or job."""
        key: KeyRecord | None = getattr(request.state, "key", None)
        if key is None or key.limits.max_run_steps is None:
            return
        if run_steps > key.limits.max_run_steps:
            raise KeyQuotaError(
                "max_run_steps", key.limits.max_run_steps, 60,
                f"The request asks for {run_steps:,} runs × steps; this key may ask for "
                f"{key.limits.max_run_steps:,} at most (send fewer starts, grid points or "
                "max_steps)")


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = request.headers.get("x-api-key")
    return value.strip() if value else None


def require(scope: str) -> Any:
    """The dependency of an endpoint that needs `scope`: the key is checked, its scope and its
    rate; `compute` endpoints also check and charge its compute seconds."""

    async def check(request: Request, _bearer: BearerDep, _header: HeaderDep
                    ) -> AsyncIterator[KeyRecord | None]:
        auth: Authenticator = request.app.state.auth
        record = await auth.identify(request)
        if record is None:
            yield None
            return
        request.state.key = record
        request.scope.setdefault("state", {})["key_id"] = record.id
        if not record.allows(scope):
            raise ScopeError(scope, record.id)
        assert auth.quotas is not None
        auth.quotas.take_request(record)
        if scope != "compute":
            yield record
            return
        auth.quotas.check_compute(record)
        if record.limits.compute_seconds is None:
            yield record
            return
        began = time.perf_counter()
        try:
            yield record
        finally:
            auth.quotas.charge(record.id, time.perf_counter() - began)

    check.__name__ = f"require_{scope}"
    return Depends(check)


def caller(request: Request) -> KeyRecord | None:
    """The key record `require` found for this request (None when auth is off)."""
    return getattr(request.state, "key", None)
