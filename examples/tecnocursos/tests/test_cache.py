"""The read-through cache: hits, misses, counters, invalidation after each write, no leaks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from fastapi import FastAPI

from conftest import delete_redis_keys, make_settings, new_project, new_scene, signed_in, started
from fastapi_enterprise import installed_metrics_registry
from tecnocursos.auth.models import Role
from tecnocursos.core.app import create_app


def count(app: FastAPI, cache: str, result: str) -> float:
    """``cache_requests_total{cache,result}`` on the app's registry."""
    registry = installed_metrics_registry(app)
    value = registry.get_sample_value("cache_requests_total", {"cache": cache, "result": result})
    return 0.0 if value is None else float(value)


@pytest.mark.asyncio
async def test_a_second_read_is_a_hit_and_both_are_counted(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    project = await new_project(client, headers)
    url = f"/projects/{project['id']}"

    first = await client.get(url, headers=headers)
    assert (count(app, "project", "miss"), count(app, "project", "hit")) == (1, 0)
    second = await client.get(url, headers=headers)
    assert (count(app, "project", "miss"), count(app, "project", "hit")) == (1, 1)
    assert second.json() == first.json() == project
    assert second.headers["etag"] == first.headers["etag"]
    # A hit still answers conditional requests.
    unchanged = await client.get(url, headers={**headers, "If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304

    for _ in range(2):
        listed = await client.get("/projects", headers=headers)
        assert [item["id"] for item in listed.json()["items"]] == [project["id"]]
        scenes = await client.get(f"{url}/scenes", headers=headers)
        assert scenes.json()["items"] == []
    assert (count(app, "project_list", "miss"), count(app, "project_list", "hit")) == (1, 1)
    assert (count(app, "scene_list", "miss"), count(app, "scene_list", "hit")) == (1, 1)


@pytest.mark.asyncio
async def test_pages_past_the_cached_ones_always_read_the_database(
    tmp_path: Path, restore_logging: None
) -> None:
    app = create_app(make_settings(tmp_path, cache={"max_cached_page": 1}))
    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "ana@example.com")
            for _ in range(2):
                await client.get("/projects?page=2", headers=headers)
            assert count(app, "project_list", "miss") + count(app, "project_list", "hit") == 0
    finally:
        app.state.logging.stop()


@pytest.mark.asyncio
async def test_project_writes_show_in_the_next_read(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    other = await signed_in(app, client, "ben@example.com")
    project = await new_project(client, headers)
    url = f"/projects/{project['id']}"
    await client.get(url, headers=headers)
    await client.get("/projects", headers=other)  # cached: Ben sees nothing

    # Update: the detail and the lists change (public now: Ben's list too).
    assert (await client.patch(url, json={"visibility": "public"}, headers=headers)).is_success
    assert (await client.get(url, headers=headers)).json()["visibility"] == "public"
    listed = await client.get("/projects", headers=other)
    assert [item["id"] for item in listed.json()["items"]] == [project["id"]]

    # Create: a new one appears in the cached list.
    second = await new_project(client, headers, title="Second", visibility="public")
    listed = await client.get("/projects", headers=other)
    assert [item["id"] for item in listed.json()["items"]] == [project["id"], second["id"]]

    # Delete: gone from the detail and the lists.
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    listed = await client.get("/projects", headers=other)
    assert [item["id"] for item in listed.json()["items"]] == [second["id"]]


@pytest.mark.asyncio
async def test_scene_writes_show_in_the_next_list(app: FastAPI, client: httpx2.AsyncClient) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    project = await new_project(client, headers)
    url = f"/projects/{project['id']}/scenes"

    async def titles() -> list[str]:
        response = await client.get(url, headers=headers)
        return [item["title"] for item in response.json()["items"]]

    assert await titles() == []
    first = await new_scene(client, headers, project["id"], title="Intro")
    assert await titles() == ["Intro"]
    second = await new_scene(client, headers, project["id"], title="Setup")
    assert await titles() == ["Intro", "Setup"]

    patched = await client.patch(f"{url}/{first['id']}", json={"title": "Hello"}, headers=headers)
    assert patched.is_success
    assert await titles() == ["Hello", "Setup"]

    reordered = await client.put(
        f"{url}/order", json={"scene_ids": [second["id"], first["id"]]}, headers=headers
    )
    assert reordered.is_success
    assert await titles() == ["Setup", "Hello"]

    assert (await client.delete(f"{url}/{second['id']}", headers=headers)).status_code == 204
    assert await titles() == ["Hello"]
    assert count(app, "scene_list", "hit") == 0  # every read followed a write
    assert await titles() == ["Hello"]
    assert count(app, "scene_list", "hit") == 1


@pytest.mark.asyncio
async def test_a_private_project_never_reaches_another_users_cached_answers(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    owner = await signed_in(app, client, "ana@example.com")
    other = await signed_in(app, client, "ben@example.com", Role.STUDENT)
    admin = await signed_in(app, client, "root@example.com", Role.ADMIN)
    private = await new_project(client, owner, title="Secret")
    url = f"/projects/{private['id']}"

    for _ in range(2):  # the second round is served from the cache
        assert (await client.get("/projects", headers=owner)).json()["total"] == 1
        assert (await client.get("/projects", headers=admin)).json()["total"] == 1
        assert (await client.get("/projects", headers=other)).json()["items"] == []
        assert (await client.get(url, headers=owner)).status_code == 200
        assert (await client.get(url, headers=other)).status_code == 404
        assert (await client.get(f"{url}/scenes", headers=other)).status_code == 404
    assert count(app, "project_list", "hit") == 3
    assert count(app, "project", "hit") >= 1  # the entry is shared; the check is not


@pytest.mark.asyncio
async def test_metrics_off_the_cache_still_works(tmp_path: Path, restore_logging: None) -> None:
    app = create_app(make_settings(tmp_path, metrics={"enabled": False}))
    try:
        assert installed_metrics_registry(app) is None
        async with started(app) as client:
            headers = await signed_in(app, client, "ana@example.com")
            project = await new_project(client, headers)
            for _ in range(2):
                response = await client.get(f"/projects/{project['id']}", headers=headers)
                assert response.json() == project
    finally:
        app.state.logging.stop()


@pytest_asyncio.fixture
async def redis_app(
    tmp_path: Path, redis_url: str, restore_logging: None
) -> AsyncIterator[tuple[FastAPI, httpx2.AsyncClient]]:
    prefix = f"tc-test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        tmp_path, redis={"url": redis_url}, cache={"backend": "redis", "prefix": prefix}
    )
    app = create_app(settings)
    try:
        async with started(app) as client:
            yield app, client
    finally:
        app.state.logging.stop()
        await delete_redis_keys(redis_url, f"{prefix}:*")


@pytest.mark.redis
@pytest.mark.asyncio
async def test_on_redis_hits_and_invalidation_work_the_same(
    redis_app: tuple[FastAPI, httpx2.AsyncClient],
) -> None:
    app, client = redis_app
    headers = await signed_in(app, client, "ana@example.com")
    project = await new_project(client, headers)
    url = f"/projects/{project['id']}"
    for _ in range(2):
        assert (await client.get(url, headers=headers)).json() == project
    assert (count(app, "project", "miss"), count(app, "project", "hit")) == (1, 1)
    assert (await client.patch(url, json={"title": "Renamed"}, headers=headers)).is_success
    assert (await client.get(url, headers=headers)).json()["title"] == "Renamed"
    assert count(app, "project", "miss") == 2


@pytest.mark.asyncio
async def test_with_redis_down_reads_come_from_the_database(
    tmp_path: Path, restore_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every cache call fails fast with a connection error.
    settings = make_settings(
        tmp_path, redis={"url": "redis://127.0.0.1:1/0"}, cache={"backend": "redis"}
    )
    app = create_app(settings)
    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "ana@example.com")
            project = await new_project(client, headers)
            url = f"/projects/{project['id']}"
            for _ in range(2):
                assert (await client.get(url, headers=headers)).json() == project
                assert (await client.get("/projects", headers=headers)).json()["total"] == 1
                assert (await client.get(f"{url}/scenes", headers=headers)).status_code == 200
            assert (await client.patch(url, json={"title": "New"}, headers=headers)).is_success
            assert (await client.get(url, headers=headers)).json()["title"] == "New"
            assert count(app, "project", "hit") == 0
            assert any("cache backend failed" in r.getMessage() for r in caplog.records)
    finally:
        app.state.logging.stop()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_the_cache_closes_its_redis_connections_at_shutdown(
    tmp_path: Path, redis_url: str, restore_logging: None
) -> None:
    name = f"tc-close-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        tmp_path, redis={"url": f"{redis_url}?client_name={name}"}, cache={"backend": "redis"}
    )
    app = create_app(settings)
    observer = aioredis.Redis.from_url(redis_url)

    async def connected() -> int:
        return sum(client["name"] == name for client in await observer.client_list())

    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "ana@example.com")
            assert (await client.get("/projects", headers=headers)).status_code == 200
            assert await connected() >= 1
        assert await connected() == 0
    finally:
        app.state.logging.stop()
        await observer.aclose()
