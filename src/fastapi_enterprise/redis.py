"""A Redis client built from :class:`~fastapi_enterprise.settings.RedisSettings`.

Needs the ``redis`` extra: ``pip install 'fastapi-enterprise[redis]'``.

A burst is not a failure and a dead server is a fast one (issue 12, A1, for the
application's own client):

- the pool is a ``BlockingConnectionPool``: a command that finds all
  ``max_connections`` connections busy waits for one (up to ``pool_timeout``), where
  redis-py's plain pool raises ``MaxConnectionsError`` at once;
- a command is sent again once, at once, when its connection turns out closed (the
  server restarted, or dropped an idle connection): a fresh connection answers it;
- nothing else is retried: a timeout may have run the command already, and a server
  that does not answer a connection attempt within ``socket_connect_timeout`` is not
  asked again, so a dead server costs one connect timeout, not a series of attempts
  with backoff.
"""

from __future__ import annotations

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise._urls import REDIS_SCHEMES, url_problem
from fastapi_enterprise.redaction import mask_dsn, mask_dsn_in_text
from fastapi_enterprise.settings import RedisSettings

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
except ImportError as exc:  # pragma: no cover - exercised by the tests_minimal session
    raise MissingExtraError("redis", module=__name__, missing="redis") from exc

__all__ = ["create_redis", "reconnect_once"]


def reconnect_once() -> Retry:
    """redis-py's retry policy for a client that fails fast: once, at once, on a lost connection.

    A pooled connection that the server closed fails its first command with a
    ``ConnectionError``; sent again, the command gets a fresh connection. Timeouts are
    not retried (the first attempt may have run the command, and a second would double
    the wait), and there is no backoff.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def create_redis(settings: RedisSettings, *, pool_timeout: float | None = None) -> aioredis.Redis:
    """Return an asyncio Redis client with the timeouts and pool cap of ``settings``.

    The pool never opens more than ``max_connections`` connections; a command that
    finds them all busy waits for one, up to ``pool_timeout`` seconds, then fails
    with ``ConnectionError("No connection available.")``. Every command fails after
    ``socket_timeout`` seconds instead of hanging the request, and connecting fails
    after ``socket_connect_timeout``; a connection the server closed is replaced and
    the command sent again once (see :func:`reconnect_once`). The client connects
    lazily; close it with ``await client.aclose()`` on shutdown.

    Args:
        settings: The ``redis`` section of the settings.
        pool_timeout: Seconds a command may wait for a free pooled connection;
            ``settings.pool_timeout`` by default.

    Raises:
        ValueError: The URL is malformed, or ``pool_timeout`` is not positive; the
            message shows the URL with the password masked, never the password.
    """
    if pool_timeout is None:
        pool_timeout = settings.pool_timeout
    if not pool_timeout > 0:
        raise ValueError("pool_timeout must be a positive number of seconds")
    url = settings.url.get_secret_value()
    problem = url_problem(url, schemes=REDIS_SCHEMES)
    error: str | None = None
    if problem is None:
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                timeout=pool_timeout,
                socket_timeout=settings.socket_timeout,
                socket_connect_timeout=settings.socket_connect_timeout,
                max_connections=settings.max_connections,
                health_check_interval=settings.health_check_interval,
                retry=reconnect_once(),
            )
        except (ValueError, TypeError) as exc:
            error = mask_dsn_in_text(str(exc), url)
        else:
            return aioredis.Redis.from_pool(pool)  # closing the client closes the pool
    # Raised outside the except block: the original error, which may quote the URL, is
    # neither the cause nor the context of this one.
    raise ValueError(f"redis.url {mask_dsn(url)}: {error or 'the URL ' + str(problem)}")
