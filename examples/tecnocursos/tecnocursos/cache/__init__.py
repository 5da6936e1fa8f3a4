"""A read-through cache for the hot reads, in memory by default or on Redis.

Entries live under *versioned keys*: every key a read builds includes the current token
of each scope it depends on (``projects`` for every project list, ``project:<id>`` for one
project's detail and scene lists). A write bumps the tokens of what it changed, after its
commit, with one ``SET`` per scope. Why tokens rather than deleting entries:

- a list's entries are many (per viewer, page and query); finding them all would take a
  ``SCAN`` on Redis, which is neither cheap nor atomic;
- a read racing a write may store what it read before the commit; it stores it under the
  old token, which no later read asks for (an explicit delete would run before that store
  and leave the stale entry behind);
- a token is a random string, not a counter: when the memory backend evicts it or Redis
  loses it, the next read makes a new one and misses, never falls back to an old entry.

Orphaned entries expire with their TTL. Every backend error is logged and the read falls
through to the database: the cache never turns a request into a 500. If a bump fails
after a commit, the entries of the old token stay reachable until their TTL: that TTL is
the bound on staleness then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import OrderedDict
from functools import partial
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.requests import Request

from fastapi_enterprise import HealthStatus, installed_health_checks, installed_metrics_registry
from fastapi_enterprise.redis import create_redis
from tecnocursos.core.settings import CacheSettings, TecnoCursosSettings

__all__ = ["AppCache", "CacheBackend", "MemoryCache", "RedisCache", "create_cache", "get_cache"]

logger = logging.getLogger("tecnocursos.cache")

_TOKEN_TTL = 24 * 3600
"""Seconds a scope's token lives; when it expires a new one is made (entries just miss)."""


class CacheBackend(Protocol):
    """Where entries are kept: bytes under string keys, each with a TTL."""

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """A bounded in-process LRU with per-entry expiry (the default; per worker).

    Args:
        max_entries: Entries kept; the least recently used goes first.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, evicting the oldest if full."""
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        self._entries.pop(key, None)

    async def aclose(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Entries on Redis (shared by every worker and host), under ``prefix``.

    Args:
        client: A client from the library's ``create_redis()`` (its timeouts bound a
            request's wait when Redis is slow or down).
        prefix: Prepended to every key, so apps can share a database.
    """

    def __init__(self, client: Any, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``."""
        value = await self._client.get(f"{self._prefix}:{key}")
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """``SET key value EX ttl``."""
        await self._client.set(f"{self._prefix}:{key}", value, ex=ttl)

    async def delete(self, key: str) -> None:
        """``DEL key``."""
        await self._client.delete(f"{self._prefix}:{key}")

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()

    async def health(self, timeout: float) -> HealthStatus:
        """The readiness report: ``ok``, or ``degraded`` when Redis does not answer.

        Never ``fail``: with Redis down every read falls through to the database, so the
        instance still serves correctly and must stay in the load balancer. The report
        names the error type only (its message may hold the server's address).

        Args:
            timeout: Seconds the ``PING`` may take before Redis counts as down; below the
                probe's own timeout, so a hung Redis reports ``degraded``, not a failed
                check.
        """
        try:
            await asyncio.wait_for(self._client.ping(), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of Redis is "down"
            return HealthStatus("degraded", {"error": type(exc).__name__})
        return HealthStatus("ok")


class AppCache:
    """The app's read-through cache: versioned keys, JSON values, hit/miss counters.

    Args:
        backend: Where entries live.
        settings: TTLs and limits.
        metrics: The library's ``CacheMetrics`` (``cache_requests_total{cache,result}``),
            or ``None`` when metrics are off.
    """

    def __init__(self, backend: CacheBackend, settings: CacheSettings, metrics: Any) -> None:
        self.backend = backend
        self.settings = settings
        self._metrics = metrics

    async def _token(self, scope: str) -> str:
        key = f"v:{scope}"
        try:
            value = await self.backend.get(key)
            if value is not None:
                return value.decode()
            token = secrets.token_hex(8)
            await self.backend.set(key, token.encode(), _TOKEN_TTL)
        except Exception:
            logger.warning("cache backend failed reading scope %s", scope, exc_info=True)
            return ""
        return token

    async def key(self, name: str, scopes: tuple[str, ...], *parts: object) -> str | None:
        """The versioned key of an entry of cache ``name``; ``None`` when the cache is down."""
        tokens = [await self._token(scope) for scope in scopes]
        if "" in tokens:
            return None
        return ":".join([name, *tokens, *(str(part) for part in parts)])

    async def get(self, name: str, key: str | None) -> Any:
        """The JSON value under ``key`` (counted as a hit), or ``None`` (a miss)."""
        value: bytes | None = None
        if key is not None:
            try:
                value = await self.backend.get(key)
            except Exception:
                logger.warning("cache backend failed reading %s", name, exc_info=True)
        if self._metrics is not None:
            (self._metrics.miss if value is None else self._metrics.hit)(name)
        return None if value is None else json.loads(value)

    async def set(self, key: str | None, value: Any, ttl: int) -> None:
        """Store ``value`` (JSON-serializable) under ``key`` for ``ttl`` seconds."""
        if key is None:
            return
        try:
            await self.backend.set(key, json.dumps(value, separators=(",", ":")).encode(), ttl)
        except Exception:
            logger.warning("cache backend failed storing %s", key, exc_info=True)

    async def bump(self, *scopes: str) -> None:
        """Give each scope a new token: every entry built on the old one is unreachable.

        Call it after the write's commit. On failure the old entries stay readable until
        their TTL ends (logged).
        """
        for scope in scopes:
            await self._renew(scope)

    async def _renew(self, scope: str) -> None:
        try:
            await self.backend.set(f"v:{scope}", secrets.token_hex(8).encode(), _TOKEN_TTL)
        except Exception:
            logger.warning("cache invalidation of %s failed", scope, exc_info=True)

    async def aclose(self) -> None:
        """Release the backend's connections."""
        await self.backend.aclose()


# --8<-- [start:metrics]
def create_cache(app: FastAPI, settings: TecnoCursosSettings) -> AppCache:
    """The cache ``settings.cache`` describes, counting on ``app``'s metrics registry."""
    backend: CacheBackend
    if settings.cache.backend == "redis":
        backend = RedisCache(create_redis(settings.redis), prefix=settings.cache.prefix)
    else:
        backend = MemoryCache(max_entries=settings.cache.memory_max_entries)
    registry = installed_metrics_registry(app)
    metrics: Any = None
    if registry is not None:
        from fastapi_enterprise.metrics import CacheMetrics  # the metrics extra is there

        metrics = CacheMetrics(registry)
    checks = installed_health_checks(app)
    if isinstance(backend, RedisCache) and checks is not None:
        checks.add("cache", partial(backend.health, checks.timeout / 2))
    return AppCache(backend, settings.cache, metrics)


# --8<-- [end:metrics]


def get_cache(request: Request) -> AppCache:
    """The cache of the app serving ``request``."""
    cache: AppCache = request.app.state.cache
    return cache
