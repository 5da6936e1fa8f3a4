"""Fixtures: a fresh app per test on its own SQLite file, driven through HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import structlog
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_enterprise.security_events import SECURITY_LOGGER
from tecnocursos.auth.models import Role, User
from tecnocursos.core.app import create_app
from tecnocursos.core.database import Base
from tecnocursos.core.settings import TecnoCursosSettings

PROJECT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "TC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
MARIADB_URL = os.environ.get("TC_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
PASSWORD = "correct horse battery staple"
TEST_SECRET = "tc-test-secret-7f3a9c1e5b2d8f4a6c0e9b3d7f1a5c8e"


def make_settings(tmp_path: Path, **overrides: Any) -> TecnoCursosSettings:
    """Test settings on a SQLite file and a media directory of this test's own."""
    values: dict[str, Any] = {
        "environment": "test",
        "database": {"url": f"sqlite:///{tmp_path / 'tc.db'}"},
        # Not the default relative "media": uploads would land in the directory pytest
        # runs from (the project's own, where they were once committed).
        "storage": {"local_dir": tmp_path / "media"},
        "security": {"secret_key": TEST_SECRET},
        # The app's defaults are the nginx zones (10/s, auth 5/s, uploads 2/s): tests that
        # log in or post many times a second would hit them. Off here, explicitly;
        # test_rate_limits.py turns them back on.
        "rate_limit": {"enabled": False},
        **overrides,
    }
    return TecnoCursosSettings(**values)


async def _create_database(server_url: str, name: str, *, drop: bool = False) -> None:
    """Create (or drop) database ``name`` on the server of ``server_url``."""
    url = make_url(server_url)
    is_postgres = url.get_backend_name() == "postgresql"
    # AUTOCOMMIT: PostgreSQL refuses CREATE/DROP DATABASE inside a transaction.
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    if drop:
        statement = f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if is_postgres else "")
    else:
        statement = f"CREATE DATABASE {name}"
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


SQLITE = "sqlite"
"""A ``server_database`` parameter: a SQLite file of the test's own instead of a server."""


@pytest.fixture
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the server the parameter names; dropped afterwards.

    With :data:`SQLITE`, a new SQLite file: the concurrency tests run there too.
    """
    server_url: str = request.param
    if server_url == SQLITE:
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    name = f"tc_migrations_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_create_database(server_url, name))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        message = f"database server not available ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_create_database(server_url, name, drop=True))


def alembic_config(settings: TecnoCursosSettings) -> Config:
    """Alembic's configuration of this project, migrating the database of ``settings``."""
    config = Config(str(PROJECT / "alembic.ini"))
    config.attributes["settings"] = settings
    return config


@pytest.fixture
def settings(tmp_path: Path) -> TecnoCursosSettings:
    return make_settings(tmp_path)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Give the root logger and structlog back as they were (create_app configures both)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def app(settings: TecnoCursosSettings, restore_logging: None) -> Iterator[FastAPI]:
    """The app; its log pipeline stops with the test."""
    application = create_app(settings)
    try:
        yield application
    finally:
        application.state.logging.stop()


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client on the started app (its lifespan ran; the schema exists)."""
    async with started(app) as http:
        yield http


def migrated(settings: TecnoCursosSettings) -> TecnoCursosSettings:
    """``settings``, once the migrations have built the schema of its database."""
    command.upgrade(alembic_config(settings), "head")
    return settings


async def add_user(
    app: FastAPI, email: str, *, role: Role = Role.STUDENT, password_hash: str | None = None
) -> int:
    """Insert a user directly (admins cannot register through the API)."""
    hashed = password_hash or await app.state.passwords.hash(PASSWORD)
    async with app.state.database.transaction() as session:
        user = User(email=email, password_hash=hashed, role=role)
        session.add(user)
        await session.flush()
        return user.id


async def login(
    client: httpx2.AsyncClient, email: str, password: str = PASSWORD
) -> httpx2.Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


async def tokens_for(client: httpx2.AsyncClient, email: str) -> dict[str, Any]:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def security_events() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The security events logged during the test, as ``{"event": name, **fields}``."""
    handler = _Records()
    logger = logging.getLogger(SECURITY_LOGGER)
    logger.addHandler(handler)

    def events() -> list[dict[str, Any]]:
        return [
            {**record.__dict__, "event": record.getMessage()}
            for record in handler.records
            if hasattr(record, "security_event")
        ]

    try:
        yield events
    finally:
        logger.removeHandler(handler)


async def signed_in(
    app: FastAPI, client: httpx2.AsyncClient, email: str, role: Role = Role.INSTRUCTOR
) -> dict[str, str]:
    """Add a user with ``role`` and return the ``Authorization`` header of its token."""
    await add_user(app, email, role=role)
    return bearer((await tokens_for(client, email))["access_token"])


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    """The app's lifespan (its end closes the cache), its schema and an HTTP client.

    The schema comes from the models (fast, for SQLite files); on a database the
    migrations built, ``create_all`` finds every table and creates nothing.
    """
    async with app.router.lifespan_context(app):
        async with app.state.database.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis (``REDIS_URL`` or 127.0.0.1:6379); fails under CI=true if missing."""
    import asyncio

    async def ping() -> None:
        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        message = f"Redis not available ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


async def new_project(
    client: httpx2.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    """Create a project (title "Course" unless given) and return it."""
    response = await client.post("/projects", json={"title": "Course", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_scene(
    client: httpx2.AsyncClient, headers: dict[str, str], project_id: int, **body: Any
) -> dict[str, Any]:
    """Create a scene of ``project_id`` with ``body`` and return it."""
    response = await client.post(f"/projects/{project_id}/scenes", json=body, headers=headers)
    assert response.status_code == 201, response.text
    scene: dict[str, Any] = response.json()
    return scene


VIDEO_FAST: dict[str, Any] = {
    "lease_seconds": 4,
    "heartbeat_seconds": 1,
    "reconcile_seconds": 0.5,
    "retry_backoff_seconds": 0.2,
    "progress_poll_seconds": 0.1,
    "max_attempts": 2,
}
"""``video`` settings for tests of the embedded worker: short leases, quick passes."""


async def new_course(client: httpx2.AsyncClient, headers: dict[str, str], scenes: int = 3) -> int:
    """A project of ``scenes`` narrated scenes (Portuguese); returns its id."""
    project = await new_project(client, headers, title="Curso de Python")
    for number in range(scenes):
        await new_scene(
            client,
            headers,
            project["id"],
            title=f"Cena {number + 1}",
            script=f"Esta é a cena número {number + 1} do curso.",
        )
    return int(project["id"])


async def list_scenes(
    client: httpx2.AsyncClient, headers: dict[str, str], project_id: int, **params: Any
) -> list[dict[str, Any]]:
    """The first 100 scenes of ``project_id`` (``params``: ``q``, ``sort``, ...)."""
    response = await client.get(
        f"/projects/{project_id}/scenes", params={"size": 100, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def delete_redis_keys(redis_url: str, pattern: str) -> None:
    """Delete the keys a test wrote on the shared Redis (``SCAN`` for ``pattern``)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(pattern)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
