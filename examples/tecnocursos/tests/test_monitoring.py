"""Monitoring: the app's series on /metrics, with route templates, and its readiness checks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI
from media_files import png
from prometheus_client.parser import text_string_to_metric_families

from conftest import PASSWORD, add_user, login, make_settings, signed_in, started
from tecnocursos.core.app import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx2.AsyncClient) -> Samples:
    """Every sample ``GET /metrics`` serves, keyed by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.asyncio
async def test_the_apps_series_appear_with_route_templates(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    before = await scrape(client)  # the service series are process-wide: compare deltas

    assert (await login(client, "ana@example.com")).status_code == 200
    assert (await login(client, "ana@example.com", "wrong password")).status_code == 401
    project = (await client.post("/projects", json={"title": "Course"}, headers=headers)).json()
    scenes = [
        (
            await client.post(
                f"/projects/{project['id']}/scenes", json={"title": title}, headers=headers
            )
        ).json()
        for title in ("One", "Two")
    ]
    order = {"scene_ids": [scenes[1]["id"], scenes[0]["id"]]}
    url = f"/projects/{project['id']}/scenes/order"
    assert (await client.put(url, json=order, headers=headers)).status_code == 200
    files = {"file": ("slide.png", png(), "image/png")}
    assert (await client.post("/media", files=files, headers=headers)).status_code == 201
    refused = {"file": ("notes.png", b"just text, not an image", "image/png")}
    assert (await client.post("/media", files=refused, headers=headers)).status_code == 415
    for _ in range(2):
        assert (await client.get(f"/projects/{project['id']}", headers=headers)).is_success

    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    count = "tecnocursos_service_duration_seconds_count"
    assert delta(count, operation="login") == 2
    assert delta(count, operation="password_verify") == 2
    assert delta(count, operation="scene_reorder") == 1
    assert delta(count, operation="media_upload") == 2
    assert delta("tecnocursos_service_exceptions_total", operation="media_upload") == 1
    assert delta("tecnocursos_service_exceptions_total", operation="login") == 0
    assert value(after, "tecnocursos_service_in_progress", operation="login") == 0

    # HTTP series carry the route template, never the ids of the URL.
    requests = "http_requests_total"
    assert value(after, requests, method="GET", route="/projects/{project_id}", status="200") == 2
    assert value(after, requests, method="POST", route="/media", status="415") == 1
    order_route = "/projects/{project_id}/scenes/order"
    assert value(after, requests, method="PUT", route=order_route, status="200") == 1
    assert not any(str(project["id"]) in dict(labels).get("route", "") for _, labels in after)
    assert value(after, "cache_requests_total", cache="project", result="hit") == 1


@pytest.mark.asyncio
async def test_a_locked_login_counts_as_an_exception(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "bo@example.com")
    before = await scrape(client)
    for _ in range(app.state.settings.auth.max_failed_logins):
        await login(client, "bo@example.com", "wrong password")
    locked = await login(client, "bo@example.com", PASSWORD)
    assert locked.status_code == 429
    after = await scrape(client)
    failures = "tecnocursos_service_exceptions_total"
    # The wrong password that locks the account raises, and so does the locked login;
    # the wrong passwords before it return None: not exceptions.
    raised = value(after, failures, operation="login") - value(before, failures, operation="login")
    assert raised == 2


@pytest.mark.asyncio
async def test_readiness_checks_the_database_on_the_memory_cache(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database_tecnocursos"]["status"] == "ok"  # Database(name="tecnocursos")
    assert "cache" not in checks  # in process: nothing to reach


@pytest.mark.redis
@pytest.mark.asyncio
async def test_readiness_checks_the_redis_cache(
    tmp_path: Path, redis_url: str, restore_logging: None
) -> None:
    app = create_app(make_settings(tmp_path, redis={"url": redis_url}, cache={"backend": "redis"}))
    try:
        async with started(app) as client:
            response = await client.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert response.json()["checks"]["cache"]["status"] == "ok"
    finally:
        app.state.logging.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Redis."""
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = False

    def accept() -> None:
        while not stop:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        stop = True
        server.close()
        for connection in accepted:
            connection.close()
        thread.join(timeout=5)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["refused", "hung"])
async def test_a_down_cache_leaves_the_instance_ready_but_degraded(
    tmp_path: Path, restore_logging: None, silent_server: str, kind: str
) -> None:
    # Refused: nothing listens on port 1. Hung: connected, no answer ever.
    url = "redis://127.0.0.1:1/0" if kind == "refused" else silent_server
    app = create_app(make_settings(tmp_path, redis={"url": url}, cache={"backend": "redis"}))
    try:
        async with started(app) as client:
            response = await client.get("/health/ready")
            headers = await signed_in(app, client, "ana@example.com")
            projects = await client.get("/projects", headers=headers)
        # Reads fall through to the database: the instance serves, so it stays ready.
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        assert body["checks"]["cache"]["status"] == "degraded"
        assert body["checks"]["cache"]["error"] in {"ConnectionError", "TimeoutError"}
        assert "127.0.0.1" not in response.text
        assert projects.status_code == 200
    finally:
        app.state.logging.stop()
