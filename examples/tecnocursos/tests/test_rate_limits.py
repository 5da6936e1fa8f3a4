"""Rate-limit zones mirroring the original nginx: 429 with headers, shared on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from fastapi import FastAPI

from conftest import delete_redis_keys, make_settings, started
from tecnocursos.core.app import create_app
from tecnocursos.core.settings import RATE_LIMIT_DEFAULT, RATE_LIMIT_ZONES, TecnoCursosSettings

# The conftest turns limits off for every other test; these turn them on. The moving
# window counts exactly, so the budget's end does not depend on where a second begins.
LIMITED: dict[str, Any] = {"enabled": True, "strategy": "moving-window"}


def test_the_zones_are_the_defaults_and_settings_override_them() -> None:
    settings = TecnoCursosSettings(environment="production", security={"secret_key": "x" * 64})
    assert settings.rate_limit.default == RATE_LIMIT_DEFAULT == "10/second"
    for template in ("/auth/register", "/auth/token", "/auth/refresh", "/auth/logout"):
        assert settings.rate_limit.routes[template] == "5/second"
    assert settings.rate_limit.routes["POST /media"] == "2/second"
    assert RATE_LIMIT_ZONES.items() <= settings.rate_limit.routes.items()

    custom = TecnoCursosSettings(
        environment="test",
        rate_limit={"default": "50/second", "routes": {"post /media": "1/second"}},
    )
    assert custom.rate_limit.default == "50/second"
    assert custom.rate_limit.routes["POST /media"] == "1/second"
    assert custom.rate_limit.routes["/auth/token"] == "5/second"


async def exhaust(
    client: httpx2.AsyncClient, method: str, url: str, budget: int
) -> httpx2.Response:
    """Spend ``budget`` requests (none limited) and return the next one's response."""
    for _ in range(budget):
        response = await client.request(method, url)
        assert response.status_code != 429, f"{method} {url} limited before {budget}"
    return await client.request(method, url)


def assert_limited(response: httpx2.Response, quota: int) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert f";q={quota};w=1" in response.headers["ratelimit-policy"]
    assert ";r=0;" in response.headers["ratelimit"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "url", "quota"),
    [
        pytest.param("GET", "/users/me", 10, id="api"),
        pytest.param("GET", "/projects/1/scenes", 10, id="api-other-route"),
        pytest.param("POST", "/auth/token", 5, id="auth-token"),
        pytest.param("POST", "/auth/refresh", 5, id="auth-refresh"),
        pytest.param("POST", "/media", 2, id="uploads"),
    ],
)
async def test_each_zone_answers_429_with_headers_after_its_budget(
    tmp_path: Path, restore_logging: None, method: str, url: str, quota: int
) -> None:
    app = create_app(make_settings(tmp_path, rate_limit=LIMITED))
    try:
        async with started(app) as client:
            assert_limited(await exhaust(client, method, url, quota), quota)
            # Another zone's budget is untouched.
            other = "/auth/logout" if url.startswith("/media") else "/media"
            assert (await client.post(other)).status_code != 429
    finally:
        app.state.logging.stop()


@pytest_asyncio.fixture
async def shared_apps(
    tmp_path: Path, redis_url: str, restore_logging: None
) -> AsyncIterator[tuple[httpx2.AsyncClient, httpx2.AsyncClient]]:
    """Two app instances (two "workers") whose limiter shares one Redis prefix."""
    prefix = f"tc-rl-{uuid.uuid4().hex[:12]}"
    limits = {**LIMITED, "storage_url": redis_url, "storage_prefix": prefix}
    apps: list[FastAPI] = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        apps.append(create_app(make_settings(tmp_path / name, rate_limit=limits)))
    try:
        async with started(apps[0]) as first, started(apps[1]) as second:
            yield first, second
    finally:
        for app in apps:
            app.state.logging.stop()
        await delete_redis_keys(redis_url, f"{prefix}*")


@pytest.mark.redis
@pytest.mark.asyncio
async def test_two_instances_on_one_redis_share_the_budget(
    shared_apps: tuple[httpx2.AsyncClient, httpx2.AsyncClient],
) -> None:
    first, second = shared_apps
    for client in (first, second, first, second, first):  # 5: the auth zone's budget
        assert (await client.post("/auth/refresh")).status_code != 429
    # Each instance alone has seen at most three: only a shared count refuses this.
    assert_limited(await second.post("/auth/refresh"), 5)
    assert_limited(await first.post("/auth/refresh"), 5)
