"""create_redis(): a client with the settings' URL, timeouts and pool, on a real server."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")

import redis
import redis.exceptions

from fastapi_enterprise.redis import create_redis
from fastapi_enterprise.settings import RedisSettings

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
