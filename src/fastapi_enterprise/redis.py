"""A Redis client built from :class:`~fastapi_enterprise.settings.RedisSettings`.

Needs the ``redis`` extra: ``pip install 'fastapi-enterprise[redis]'``.
"""

from __future__ import annotations

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise.settings import RedisSettings

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - exercised by the tests_minimal session
    raise MissingExtraError("redis", module=__name__, missing="redis") from exc

__all__ = ["create_redis"]


def create_redis(settings: RedisSettings) -> aioredis.Redis:
    """Return an asyncio Redis client with the timeouts and pool cap of ``settings``.

    Every command fails after ``socket_timeout`` seconds instead of hanging the request,
    and the pool never opens more than ``max_connections`` connections. The client
    connects lazily; close it with ``await client.aclose()`` on shutdown.

    Args:
        settings: The ``redis`` section of the settings.
    """
    return aioredis.Redis.from_url(
        settings.url.get_secret_value(),
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.socket_connect_timeout,
        max_connections=settings.max_connections,
        health_check_interval=settings.health_check_interval,
    )
