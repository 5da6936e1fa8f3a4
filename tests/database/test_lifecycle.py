"""The engine's life: created in the lifespan, on the serving loop; tests, health, misuse."""

import asyncio
from typing import Annotated

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database import (
    Database,
    DatabaseConfigError,
    DatabaseNotStartedError,
    ReadOnlyError,
)
from fastapi_enterprise.settings import DatabaseSettings
from tests.database.conftest import Backend, items_app


def test_no_engine_before_the_lifespan_and_none_after(backend: Backend) -> None:
    app, database = items_app(backend)
    assert database.started is False
    with pytest.raises(DatabaseNotStartedError, match="lifespan"):
        _ = database.engine
    with TestClient(app) as client:
        assert database.engine.url.drivername == database.url.drivername
        assert client.post("/items", json={"name": "x"}).status_code == 201
    assert not database.started


def test_readiness_checks_the_database(backend: Backend) -> None:
    app, _ = items_app(backend)
    with TestClient(app) as client:
        report = client.get("/health/ready").json()
        assert report["checks"]["database"]["status"] == "ok"


def test_a_request_without_a_started_engine_is_a_500_that_says_why(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Served without a lifespan (``--lifespan off``): a 500 and a log line saying why."""
    app, _ = items_app(backend)
    with caplog.at_level("ERROR"):
        client = TestClient(app, raise_server_exceptions=False)  # no lifespan
        response = client.post("/items", json={"name": "x"})
    assert response.status_code == 500
    assert "has no engine yet" in caplog.text


@pytest.mark.asyncio
async def test_isolated_leaves_nothing_behind(backend: Backend) -> None:
    """The helper for users' test suites: requests commit, the test's end rolls back."""
    app, database = items_app(backend)
    async with database:
        async with database.isolated() as session:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.post("/items", json={"name": "a"})).status_code == 201
                assert (await client.post("/items", json={"name": "b"})).status_code == 201
                # A failed request rolls back to its savepoint; the others stay.
                assert (await client.post("/items", json={"name": "a"})).status_code == 409
                assert (await client.get("/items")).json() == ["a", "b"]
            names = (await session.execute(select(backend.table.c.name))).scalars().all()
            assert sorted(names) == ["a", "b"]
        async with database.transaction() as session:
            left = (await session.execute(select(backend.table.c.name))).scalars().all()
            assert left == []
    assert await asyncio.to_thread(backend.count) == 0


@pytest.mark.asyncio
async def test_transaction_commits_or_rolls_back(backend: Backend) -> None:
    async with Database(backend.settings()) as database:
        async with database.transaction() as session:
            await session.execute(insert(backend.table).values(name="kept"))

        async def failing_worker() -> None:
            async with database.transaction() as session:
                await session.execute(insert(backend.table).values(name="dropped"))
                raise RuntimeError("worker failed")

        with pytest.raises(RuntimeError, match="worker failed"):
            await failing_worker()
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await asyncio.to_thread(backend.names) == ["kept"]


def test_a_database_started_on_another_loop_is_refused_with_the_reason(backend: Backend) -> None:
    """An engine made on one event loop cannot serve another (pytest loops, threads)."""
    # No startup connection: a connection pooled on a closed loop could not be closed.
    database = Database(backend.settings(startup_check="off"))
    asyncio.run(database.start())

    async def use() -> None:
        async with database.transaction():
            pass

    try:
        with pytest.raises(DatabaseNotStartedError, match="another event loop"):
            asyncio.run(use())
    finally:
        database._loop = None  # dispose on this thread's new loop
        asyncio.run(database.close())


@pytest.mark.asyncio
async def test_read_only_session_refuses_orm_flushes(backend: Backend) -> None:
    from tests.database.conftest import _Item

    database = Database(backend.settings())
    read_only = database.session(read_only=True).dependency
    async with database:
        sessions = read_only()
        session = await sessions.__anext__()
        session.add(_Item(backend.table, "nope"))
        with pytest.raises(ReadOnlyError, match="read-only"):
            await session.flush()
        await sessions.aclose()
        assert database.sessions_open == 0


@pytest.mark.asyncio
async def test_start_twice_and_close_twice() -> None:
    database = Database(DatabaseSettings(url="sqlite://"))
    async with database:
        with pytest.raises(RuntimeError, match="already started"):
            await database.start()
    await database.close()
    assert not database.started


def test_install_order_and_twice() -> None:
    database = Database(DatabaseSettings(url="sqlite://"))
    app = FastAPI()
    database.install(app)
    with pytest.raises(RuntimeError, match="already installed"):
        database.install(app)
    with pytest.raises(RuntimeError, match=r"call install\(app\) before database.install"):
        install(app, EnterpriseSettings())


def test_an_app_without_install_still_gets_lifespan_and_problems() -> None:
    database = Database(DatabaseSettings(url="sqlite://"))
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806
    app = FastAPI(lifespan=database.lifespan)

    @app.get("/one")
    async def one(session: Session) -> int:
        return int((await session.execute(select(1))).scalar_one())

    with TestClient(app) as client:
        assert client.get("/one").json() == 1
    assert not database.started


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///./app.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/d", "postgresql+asyncpg"),
        ("postgres://u@h/d", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg"),
        ("mysql://u@h/d", "mysql+aiomysql"),
        ("mariadb+asyncmy://u@h/d", "mariadb+asyncmy"),
    ],
)
def test_urls_without_a_driver_get_the_async_one(url: str, driver: str) -> None:
    assert Database(DatabaseSettings(url=url)).url.drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg2://app:pw-S3CRET@h/d", "not async"),
        ("oracle://app:pw-S3CRET@h/d", "supported: sqlite"),
    ],
)
def test_unusable_urls_are_refused_without_the_password(url: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError, match=message) as caught:
        Database(DatabaseSettings(url=url))
    assert "pw-S3CRET" not in str(caught.value)


def test_the_password_setting_replaces_the_urls() -> None:
    settings = DatabaseSettings(url="postgresql://app@db/app", password="from-a-secret-file")
    database = Database(settings)
    assert database.url.password == "from-a-secret-file"
    assert "from-a-secret-file" not in repr(database)


def test_install_publishes_the_database_metrics(backend: Backend) -> None:
    pytest.importorskip("prometheus_client")
    from fastapi_enterprise import installed_metrics_registry

    app, database = items_app(backend)
    registry = installed_metrics_registry(app)
    labels = {"pool": "default", "statement": "insert"}
    with TestClient(app) as client:
        assert client.post("/items", json={"name": "m"}).status_code == 201
        assert registry.get_sample_value("db_query_duration_seconds_count", labels) == 1
        assert registry.get_sample_value("db_pool_checkout_wait_seconds_count", {"pool": "default"})
        assert database.metrics is not None
        database.metrics.mirror.flush()
        assert registry.get_sample_value("db_sessions_open", {"pool": "default"}) == 0
        assert registry.get_sample_value("db_pool_checked_out", {"pool": "default"}) == 0
        assert registry.get_sample_value("db_pool_size", {"pool": "default"}) == 5


@pytest.mark.asyncio
async def test_null_pool_opens_a_connection_per_session(backend: Backend) -> None:
    from sqlalchemy.pool import NullPool

    async with Database(backend.settings(null_pool=True)) as database:
        assert isinstance(database.engine.pool, NullPool)
        async with database.transaction() as session:
            await session.execute(insert(backend.table).values(name="n"))
    assert await asyncio.to_thread(backend.names) == ["n"]


@pytest.mark.asyncio
async def test_read_only_session_rolls_back_what_text_statements_did(backend: Backend) -> None:
    """A text() statement is not inspected; whatever it wrote is rolled back."""
    from sqlalchemy import text

    database = Database(backend.settings())
    read_only = database.session(read_only=True).dependency
    async with database:
        sessions = read_only()
        session = await sessions.__anext__()
        table = backend.table.name  # generated by the fixture, not input
        await session.execute(text(f"INSERT INTO {table} (name) VALUES ('t')"))  # noqa: S608
        with pytest.raises(StopAsyncIteration):
            await sessions.__anext__()
    assert await asyncio.to_thread(backend.count) == 0


def test_installed_session_serves_apps_built_by_a_factory(backend: Backend) -> None:
    """No module-level Database: the dependency finds the one installed on the app."""
    from fastapi_enterprise.database import installed_database, installed_session

    Session = Annotated[AsyncSession, installed_session(name="factory")]  # noqa: N806
    ReadSession = Annotated[AsyncSession, installed_session(name="factory", read_only=True)]  # noqa: N806

    def create_app() -> FastAPI:
        app = FastAPI()
        install(app, EnterpriseSettings(rate_limit={"enabled": False}))
        Database(backend.settings(), name="factory").install(app)

        @app.post("/items", status_code=201)
        async def add(name: str, session: Session) -> None:
            await session.execute(insert(backend.table).values(name=name))

        @app.post("/items/read-only")
        async def add_read_only(name: str, session: ReadSession) -> None:
            await session.execute(insert(backend.table).values(name=name))

        return app

    first, second = create_app(), create_app()
    assert installed_database(first, "factory") is not installed_database(second, "factory")
    with pytest.raises(LookupError, match="no database named 'default'"):
        installed_database(first)
    with TestClient(first) as client, TestClient(second, raise_server_exceptions=False) as other:
        assert client.post("/items", params={"name": "one"}).status_code == 201
        assert other.post("/items", params={"name": "two"}).status_code == 201
        conflict = client.post("/items", params={"name": "one"})
        assert conflict.status_code == 409
        assert conflict.headers["content-type"] == "application/problem+json"
        assert other.post("/items/read-only", params={"name": "three"}).status_code == 500
    assert backend.names() == ["one", "two"]
