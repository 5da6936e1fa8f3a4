"""A Redis client built from :class:`~fastapi_enterprise.settings.RedisSettings`.

Needs the ``redis`` extra: ``pip install 'fastapi-enterprise[redis]'``.
"""

from __future__ import annotations

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise._urls import REDIS_SCHEMES, url_problem
from fastapi_enterprise.redaction import mask_dsn, mask_dsn_in_text
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

    Raises:
        ValueError: The URL is malformed; the message shows it with the password
            masked, never the password.
    """
    url = settings.url.get_secret_value()
    problem = url_problem(url, schemes=REDIS_SCHEMES)
    error: str | None = None
    if problem is None:
        try:
            return aioredis.Redis.from_url(
                url,
                socket_timeout=settings.socket_timeout,
                socket_connect_timeout=settings.socket_connect_timeout,
                max_connections=settings.max_connections,
                health_check_interval=settings.health_check_interval,
            )
        except (ValueError, TypeError) as exc:
            error = mask_dsn_in_text(str(exc), url)
    # Raised outside the except block: the original error, which may quote the URL, is
    # neither the cause nor the context of this one.
    raise ValueError(f"redis.url {mask_dsn(url)}: {error or 'the URL ' + str(problem)}")
