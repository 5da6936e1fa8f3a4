"""DatabaseSessionMiddleware: commit below 400, roll back otherwise, answer a failed commit."""

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database import Database, DatabaseNotStartedError
from tests.database.conftest import Backend, _Item


class ItemIn(BaseModel):
    name: str


def middleware_app(backend: Backend) -> tuple[FastAPI, Database]:
    database = Database(backend.settings())
    Session = Annotated[AsyncSession, Depends(database.request_session)]  # noqa: N806
    table = backend.table
    app = FastAPI()
    install(app, EnterpriseSettings(rate_limit={"enabled": False}))
    database.install(app, session_middleware=True)

    @app.post("/items", status_code=201)
    async def add(item: ItemIn, session: Session) -> dict[str, str]:
        await session.execute(insert(table).values(name=item.name))
        return {"name": item.name}

    @app.post("/items/then-400")
    async def add_then_400(item: ItemIn, session: Session) -> JSONResponse:
        await session.execute(insert(table).values(name=item.name))
        return JSONResponse({"error": "bad"}, status_code=400)

    @app.post("/items/then-crash")
    async def add_then_crash(item: ItemIn, session: Session) -> None:
        await session.execute(insert(table).values(name=item.name))
        raise RuntimeError("handler bug")

    @app.post("/items/deferred")
    async def add_deferred(item: ItemIn, session: Session) -> dict[str, str]:
        session.add(_Item(table, item.name))  # reaches the database at the commit
        return {"status": "accepted"}

    @app.post("/items/caught")
    async def add_caught(item: ItemIn, session: Session) -> dict[str, str]:
        await session.execute(insert(table).values(name=item.name))
        try:
            raise ValueError("a handled error")
        except ValueError:
            return {"status": "ok anyway"}  # the trap: the write above is committed

    @app.get("/nothing")
    async def nothing() -> dict[str, str]:
        return {"status": "no session"}

    @app.get("/items")
    async def names(session: Session) -> list[str]:
        return sorted((await session.execute(select(table.c.name))).scalars())

    return app, database


def test_commits_below_400(backend: Backend) -> None:
    app, database = middleware_app(backend)
    with TestClient(app) as client:
        assert client.post("/items", json={"name": "kept"}).status_code == 201
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert backend.names() == ["kept"]


def test_rolls_back_at_400_and_on_exceptions(backend: Backend) -> None:
    app, database = middleware_app(backend)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/items/then-400", json={"name": "a"}).status_code == 400
        assert client.post("/items/then-crash", json={"name": "b"}).status_code == 500
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert database.sessions_open == 0
    assert backend.count() == 0


def test_a_failed_commit_replaces_the_response_with_a_problem(backend: Backend) -> None:
    app, _ = middleware_app(backend)
    with TestClient(app) as client:
        assert client.post("/items", json={"name": "taken"}).status_code == 201
        response = client.post("/items/deferred", json={"name": "taken"})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert "accepted" not in response.text
    assert backend.names() == ["taken"]


def test_the_trap_a_handled_exception_still_commits(backend: Backend) -> None:
    """Documented: the middleware sees statuses, not the exceptions a handler caught."""
    app, _ = middleware_app(backend)
    with TestClient(app) as client:
        assert client.post("/items/caught", json={"name": "committed"}).status_code == 200
    assert backend.names() == ["committed"]


def test_no_session_is_opened_for_routes_that_do_not_ask(backend: Backend) -> None:
    app, database = middleware_app(backend)
    opened: list[Any] = []
    with TestClient(app) as client:
        original = database._open

        def spy(maker: Any) -> AsyncSession:
            opened.append(maker)
            return original(maker)

        database._open = spy  # type: ignore[method-assign]
        assert client.get("/nothing").status_code == 200
        assert opened == []
        assert client.get("/items").status_code == 200
        assert len(opened) == 1


@pytest.mark.asyncio
async def test_request_session_outside_the_middleware_says_what_to_do() -> None:
    database = Database()
    with pytest.raises(DatabaseNotStartedError, match="DatabaseSessionMiddleware"):
        await database.request_session()
