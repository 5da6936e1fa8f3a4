"""The database example works as docs/how-to/databases.md shows, tests included."""

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import httpx2
import pytest
import pytest_asyncio
from fastapi.testclient import TestClient

pytest.importorskip("aiosqlite")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    monkeypatch.setenv("FE_DATABASE__URL", f"sqlite:///{tmp_path}/courses.db")
    monkeypatch.setenv("FE_RATE_LIMIT__ENABLED", "false")
    sys.modules.pop("examples.database.app", None)
    module = importlib.import_module("examples.database.app")
    yield module
    sys.modules.pop("examples.database.app", None)


def test_create_read_and_conflict(example: ModuleType) -> None:
    with TestClient(example.app) as client:
        created = client.post("/courses", json={"slug": "sql", "title": "SQL"})
        assert created.status_code == 201
        assert client.get("/courses/sql").json() == created.json()
        duplicate = client.post("/courses", json={"slug": "sql", "title": "Again"})
        assert duplicate.status_code == 409
        assert duplicate.headers["content-type"] == "application/problem+json"
        assert client.get("/courses/none").status_code == 404
        client.portal.call(example.rename_course, "sql", "Databases")
        assert client.get("/courses/sql").json()["title"] == "Databases"
        assert client.get("/health/ready").json()["checks"]["database"]["status"] == "ok"


# --8<-- [start:isolated]
@pytest_asyncio.fixture
async def client(example: ModuleType) -> AsyncIterator[httpx2.AsyncClient]:
    """Each test runs in one transaction that is rolled back: it leaves nothing behind."""
    db = example.db
    async with db:  # the engine, on the test's event loop
        await example.create_tables()
        async with db.isolated():
            transport = httpx2.ASGITransport(app=example.app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client


@pytest.mark.asyncio
async def test_create(client: httpx2.AsyncClient) -> None:
    response = await client.post("/courses", json={"slug": "sql", "title": "SQL"})
    assert response.status_code == 201
    assert (await client.get("/courses/sql")).status_code == 200


@pytest.mark.asyncio
async def test_the_previous_test_left_nothing(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/courses/sql")).status_code == 404


# --8<-- [end:isolated]
