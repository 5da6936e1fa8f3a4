"""create_redis(): a client with the settings' URL, timeouts and pool, on a real server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("redis")

import redis
import redis.exceptions

from fastapi_enterprise.redis import create_redis
from fastapi_enterprise.settings import RedisSettings
from tests.conftest import RedisProcess, free_port

pytestmark = pytest.mark.redis


@pytest.mark.asyncio
async def test_client_round_trip(redis_namespace: tuple[str, str]) -> None:
    url, prefix = redis_namespace
    client = create_redis(RedisSettings(url=url, max_connections=3))
    try:
        await client.set(prefix + "k", b"v")
        assert await client.get(prefix + "k") == b"v"
        assert client.connection_pool.max_connections == 3
    finally:
        await client.aclose()


def test_namespace_is_cleaned_between_tests(redis_namespace: tuple[str, str]) -> None:
    url, prefix = redis_namespace
    client = redis.Redis.from_url(url)
    try:
        assert list(client.scan_iter(match="fe-test:*")) == []
        client.set(prefix + "left-behind", 1)
    finally:
        client.close()


@pytest.mark.asyncio
async def test_hung_server_fails_after_the_socket_timeout(
    redis_namespace: tuple[str, str],
) -> None:
    url, prefix = redis_namespace
    admin = redis.Redis.from_url(url)
    client = create_redis(RedisSettings(url=url, socket_timeout=0.2))
    try:
        await client.ping()
        admin.client_pause(1500, all=True)
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.get(prefix + "k")
    finally:
        admin.client_unpause()
        admin.close()
        await client.aclose()


@pytest.mark.asyncio
async def test_dead_server_fails_fast() -> None:
    client = create_redis(RedisSettings(url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_a_burst_waits_for_a_pooled_connection(own_redis: RedisProcess) -> None:
    """300 commands at once on 10 connections: each waits its turn, none fails.

    redis-py's plain pool raised ``MaxConnectionsError`` past ``max_connections``.
    """
    client = create_redis(RedisSettings(url=own_redis.url, max_connections=10))
    admin = redis.Redis.from_url(own_redis.url)
    try:
        results = await asyncio.gather(*(client.incr("burst") for _ in range(300)))
        assert sorted(results) == list(range(1, 301))
        assert int(admin.get("burst") or 0) == 300
        # The pool kept its cap: the server saw at most 10 of its connections (+ admin).
        assert int(admin.info("clients")["connected_clients"]) <= 10 + 1
    finally:
        admin.close()
        await client.aclose()


@pytest.mark.asyncio
async def test_a_full_pool_waits_pool_timeout_from_the_settings(own_redis: RedisProcess) -> None:
    """A command finding every connection busy waits ``redis.pool_timeout``, then fails.

    The one connection is held by a blocking pop; the ping waits for it first.
    """
    settings = RedisSettings(url=own_redis.url, max_connections=1, pool_timeout=0.3)
    client = create_redis(settings)
    try:
        held = asyncio.ensure_future(client.blpop(["never-pushed"], timeout=5))
        await asyncio.sleep(0.1)  # the blocking pop now holds the only connection
        started = time.monotonic()
        with pytest.raises(redis.exceptions.ConnectionError, match="No connection available"):
            await client.ping()
        waited = time.monotonic() - started
        assert waited >= settings.pool_timeout * 0.9  # it waited for a connection first
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError, redis.exceptions.RedisError):
            await held
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_a_restarted_server_costs_no_failed_command(own_redis: RedisProcess) -> None:
    """A pooled connection the server closed is replaced; the command is sent again."""
    client = create_redis(RedisSettings(url=own_redis.url, max_connections=2))
    try:
        assert await client.set("k", b"v")
        own_redis.stop()
        own_redis.start()
        assert await client.get("k") is None  # a fresh server, reached on the first try
    finally:
        await client.aclose()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose server never completes a connection: its accept queue is full."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    # Linux queues backlog + 1 connections; past that it drops the SYNs: connects hang.
    queued = [socket.create_connection(address, timeout=5)]
    try:
        yield f"redis://{address[0]}:{address[1]}/0"
    finally:
        for connection in queued:
            connection.close()
        listener.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["refusing", "not answering"])
async def test_a_dead_server_fails_within_the_connect_timeout(
    server: str, request: pytest.FixtureRequest
) -> None:
    """One connection attempt, no backoff: about ``socket_connect_timeout``, not seconds.

    A burst against the dead server fails as fast: the waiters are not stacked up
    behind a series of attempts.
    """
    if server == "refusing":
        url = f"redis://127.0.0.1:{free_port()}/0"
    else:
        url = request.getfixturevalue("blackhole")
    settings = RedisSettings(url=url, socket_connect_timeout=1.0, max_connections=10)
    client = create_redis(settings)
    # Generous: one attempt takes at most the connect timeout; a second one, or a
    # retry after a backoff, would already need twice as long.
    bound = 2 * settings.socket_connect_timeout
    try:
        start = time.monotonic()
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            await client.ping()
        assert time.monotonic() - start < bound
        start = time.monotonic()
        outcomes = await asyncio.gather(
            *(client.ping() for _ in range(settings.max_connections)), return_exceptions=True
        )
        assert all(isinstance(outcome, redis.exceptions.RedisError) for outcome in outcomes)
        assert time.monotonic() - start < bound
    finally:
        await client.aclose()
