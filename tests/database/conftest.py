"""The database suite: the same behaviour on SQLite, PostgreSQL and MariaDB."""

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest

pytest.importorskip("aiosqlite")

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database import Database
from fastapi_enterprise.settings import DatabaseSettings

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

# A statement that takes ``seconds`` on each server.
SLEEP = {"postgresql": "SELECT pg_sleep({s})", "mysql": "SELECT SLEEP({s})"}


@dataclass
class Backend:
    """A database URL for the test, with a table of its own."""

    name: str
    url: str
    table: Table

    def settings(self, **options: Any) -> DatabaseSettings:
        return DatabaseSettings(url=self.url, **options)

    def count(self) -> int:
        """Rows in the table, read on a connection of its own (not the app's pool)."""

        async def read() -> int:
            engine = create_async_engine(self.url)
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(select(func.count()).select_from(self.table))
                    return int(result.scalar_one())
            finally:
                await engine.dispose()

        return asyncio.run(read())

    def names(self) -> list[str]:
        async def read() -> list[str]:
            engine = create_async_engine(self.url)
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(select(self.table.c.name))
                    return sorted(result.scalars())
            finally:
                await engine.dispose()

        return asyncio.run(read())


def _url(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if name == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    if name == "postgres":
        base: str = request.getfixturevalue("postgres_url")
        return base.replace("postgresql://", "postgresql+asyncpg://", 1)
    base = request.getfixturevalue("mariadb_url")
    return base.replace("mysql://", "mysql+aiomysql://", 1)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend with a fresh ``items`` table (unique name), dropped afterwards."""
    url = _url(request.param, request, tmp_path)
    metadata = MetaData()
    table = Table(
        f"items_{uuid.uuid4().hex[:12]}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(100), nullable=False, unique=True),
    )

    async def run(method: str) -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(getattr(metadata, method))
        finally:
            await engine.dispose()

    asyncio.run(run("create_all"))
    try:
        yield Backend(request.param, url, table)
    finally:
        asyncio.run(run("drop_all"))


class ItemIn(BaseModel):
    name: str


def items_app(
    backend: Backend, *, use_install: bool = True, **options: Any
) -> tuple[FastAPI, Database]:
    """An app with the routes the behavioural tests drive."""
    database = Database(backend.settings(**options))
    # Type aliases, named as the docs name them.
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806
    ReadSession = Annotated[AsyncSession, database.session(read_only=True)]  # noqa: N806
    table = backend.table
    app = FastAPI()
    if use_install:
        # The rate limit would answer the bursts of some tests before the database does.
        install(app, EnterpriseSettings(rate_limit={"enabled": False}))
    database.install(app)

    @app.post("/items", status_code=201)
    async def add(item: ItemIn, session: Session) -> dict[str, Any]:
        await session.execute(insert(table).values(name=item.name))
        return {"name": item.name}

    @app.post("/items/then-http-error")
    async def add_then_refuse(item: ItemIn, session: Session) -> None:
        await session.execute(insert(table).values(name=item.name))
        raise HTTPException(418, "changed my mind")

    @app.post("/items/then-crash")
    async def add_then_crash(item: ItemIn, session: Session) -> None:
        await session.execute(insert(table).values(name=item.name))
        raise RuntimeError("handler bug")

    @app.post("/items/pair")
    async def add_pair(item: ItemIn, session: Session) -> dict[str, str]:
        # ORM-style: nothing reaches the database before the commit, whose
        # second insert violates the unique constraint.
        session.add_all([_Item(table, item.name + "-a"), _Item(table, item.name)])
        return {"status": "accepted"}

    @app.get("/items")
    async def names(session: ReadSession) -> list[str]:
        return sorted((await session.execute(select(table.c.name))).scalars())

    @app.post("/items/read-only-write")
    async def read_only_write(item: ItemIn, session: ReadSession) -> None:
        await session.execute(insert(table).values(name=item.name))

    @app.get("/sleep")
    async def sleep(seconds: float, session: Session) -> dict[str, str]:
        from sqlalchemy import text

        dialect = session.get_bind().dialect.name
        await session.execute(text(SLEEP[dialect].format(s=seconds)))
        return {"status": "slept"}

    @app.get("/hold")
    async def hold(seconds: float, session: Session) -> dict[str, str]:
        await session.execute(select(func.count()).select_from(table))
        await asyncio.sleep(seconds)  # the connection stays checked out meanwhile
        return {"status": "held"}

    return app, database


class _Item:
    """Rows added through ``session.add()`` need a mapped class: map one per table."""

    _mapped: ClassVar[dict[str, type]] = {}

    def __new__(cls, table: Table, name: str) -> Any:
        from sqlalchemy.orm import registry

        mapped = cls._mapped.get(table.name)
        if mapped is None:
            mapped = type(f"Item_{table.name}", (), {})
            registry().map_imperatively(mapped, table)
            cls._mapped[table.name] = mapped
        row = mapped()
        row.name = name
        return row
