"""The per-request session dependency, through HTTP, on every backend."""

import asyncio
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer
from tests.database.conftest import Backend, items_app


def test_a_write_is_visible_to_the_very_next_request(backend: Backend) -> None:
    """The commit happens before the response: a second connection sees the row at once."""
    app, _ = items_app(backend)
    with LiveServer(app) as server, httpx2.Client(base_url=server.url) as client:
        for index in range(5):
            response = client.post("/items", json={"name": f"item-{index}"})
            assert response.status_code == 201
            # Read on a connection of our own, not the app's, right after the answer.
            assert backend.count() == index + 1
        assert client.get("/items").json() == [f"item-{i}" for i in range(5)]


def test_http_exception_rolls_back(backend: Backend) -> None:
    app, database = items_app(backend)
    with TestClient(app) as client:
        response = client.post("/items/then-http-error", json={"name": "ghost"})
        assert response.status_code == 418
        assert response.headers["content-type"] == "application/problem+json"
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert backend.count() == 0


def test_unhandled_exception_rolls_back(backend: Backend) -> None:
    app, _ = items_app(backend)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/items/then-crash", json={"name": "ghost"})
        assert response.status_code == 500
    assert backend.count() == 0


def test_an_integrity_error_at_commit_is_a_409_never_a_2xx(backend: Backend) -> None:
    """The violating insert reaches the database only at the commit, after the handler."""
    app, database = items_app(backend)
    with TestClient(app) as client:
        assert client.post("/items", json={"name": "taken"}).status_code == 201
        response = client.post("/items/pair", json={"name": "taken"})
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["status"] == 409
        assert "taken" not in response.text  # the driver's message quotes the values
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert backend.names() == ["taken"]  # the pair's first row was rolled back too


def test_an_integrity_error_in_the_handler_is_a_409(backend: Backend) -> None:
    app, _ = items_app(backend)
    with TestClient(app) as client:
        assert client.post("/items", json={"name": "dup"}).status_code == 201
        response = client.post("/items", json={"name": "dup"})
        assert response.status_code == 409
        assert response.json()["detail"].startswith("The request conflicts")
    assert backend.count() == 1


def test_problems_without_install_keep_their_status(backend: Backend) -> None:
    """Without install(), FastAPI's handler answers: still a 409, never a 2xx."""
    app, _ = items_app(backend, use_install=False)
    with TestClient(app) as client:
        client.post("/items", json={"name": "dup"})
        response = client.post("/items/pair", json={"name": "dup"})
        assert response.status_code == 409
    assert backend.count() == 1


def test_read_only_session_refuses_writes_and_never_commits(backend: Backend) -> None:
    app, _ = items_app(backend)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/items/read-only-write", json={"name": "nope"})
        assert response.status_code == 500
        assert client.get("/items").json() == []
    assert backend.count() == 0


def test_a_statement_timeout_is_a_504(backend: Backend) -> None:
    if backend.name == "sqlite":
        pytest.skip("SQLite has no statement timeout (documented)")
    app, database = items_app(backend, statement_timeout=0.3)
    with TestClient(app) as client:
        response = client.get("/sleep", params={"seconds": 5})
        assert response.status_code == 504, response.text
        assert response.json()["detail"] == "The database did not answer in time."
        assert client.get("/sleep", params={"seconds": 0.01}).status_code == 200
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_pool_exhaustion_answers_503_and_returns_every_connection(backend: Backend) -> None:
    """100 concurrent requests on 5 connections: each succeeds or gets a 503 in time."""
    app, database = items_app(backend, pool_size=5, max_overflow=0, pool_timeout=0.5)

    async def burst(url: str) -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=100)
        async with httpx2.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            return list(
                await asyncio.gather(
                    *(client.get("/hold", params={"seconds": 0.3}) for _ in range(100))
                )
            )

    with LiveServer(app) as server:
        responses = asyncio.run(burst(server.url))
        statuses = {response.status_code for response in responses}
        assert statuses <= {200, 503}, statuses
        assert 200 in statuses
        assert 503 in statuses
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "5"
                assert response.json()["detail"] == "The database is unavailable; try again later."
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert database.sessions_open == 0
        # The pool works afterwards.
        assert httpx2.get(f"{server.url}/items").status_code == 200


async def _call(app: Any, method: str, path: str, body: bytes) -> None:
    """Drive ``app`` in process with a request that never finishes by itself."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"seconds=60",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


@pytest.mark.asyncio
async def test_cancelled_in_the_middle_of_a_transaction_rolls_back(backend: Backend) -> None:
    """A task cancelled mid-transaction (server shutdown, client gone): nothing is kept."""
    from typing import Annotated

    from fastapi import FastAPI
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import AsyncSession

    from fastapi_enterprise.database import Database

    database = Database(backend.settings())
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806
    app = FastAPI()
    wrote = asyncio.Event()

    @app.post("/slow-write")
    async def slow_write(session: Session) -> None:
        await session.execute(insert(backend.table).values(name="half-done"))
        wrote.set()
        await asyncio.sleep(60)

    async with database:
        task = asyncio.create_task(_call(app, "POST", "/slow-write", b""))
        await asyncio.wait_for(wrote.wait(), 10)
        assert database.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert database.sessions_open == 0
    assert await asyncio.to_thread(backend.count) == 0
