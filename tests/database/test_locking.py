"""``lock_for_update()``: a read-modify-write runs one at a time on every backend."""

import asyncio
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, literal, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise.database import Database, ReadOnlyError, lock_for_update
from fastapi_enterprise.settings import DatabaseSettings
from tests.database.conftest import Backend

CONCURRENT = 6
_T = table("sqlite_master")  # any table: the lock is refused before it is used


def counter_app(backend: Backend) -> tuple[FastAPI, Database]:
    """``POST /next?locked=``: read how many items exist, wait, add the next one.

    The name is unique, so two requests that read the same count collide (409).
    """
    database = Database(backend.settings())
    Session = Annotated[AsyncSession, database.session()]  # noqa: N806
    table = backend.table
    app = FastAPI()
    database.install(app)

    @app.post("/next", status_code=201)
    async def add_next(session: Session, locked: bool = True) -> dict[str, Any]:
        anchor = select(table.c.id).where(table.c.name == "anchor")
        if locked:
            anchor = await lock_for_update(session, anchor)
        await session.execute(anchor)
        count = await session.scalar(select(func.count()).select_from(table))
        await asyncio.sleep(0.05)  # every other request reads meanwhile, unless locked
        name = f"item-{count}"
        await session.execute(insert(table).values(name=name))
        return {"name": name}

    return app, database


async def _burst(backend: Backend, *, locked: bool) -> list[int]:
    app, database = counter_app(backend)
    async with app.router.lifespan_context(app):
        async with database.transaction() as session:
            await session.execute(insert(backend.table).values(name="anchor"))
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(
                *(client.post("/next", params={"locked": locked}) for _ in range(CONCURRENT))
            )
    return [response.status_code for response in responses]


@pytest.mark.parametrize("locked", [True, False], ids=["locked", "unlocked"])
def test_concurrent_read_modify_writes_run_one_at_a_time(backend: Backend, locked: bool) -> None:
    statuses = asyncio.run(_burst(backend, locked=locked))
    if locked:
        assert statuses == [201] * CONCURRENT
        expected = ["anchor", *(f"item-{n}" for n in range(1, CONCURRENT + 1))]
        assert backend.names() == sorted(expected)
    else:
        # The control: without the lock, requests read the same count and collide.
        assert 409 in statuses, statuses
        assert backend.count() < CONCURRENT + 1


def test_on_sqlite_a_statement_from_no_table_is_refused(tmp_path: Path) -> None:
    database = Database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'x.db'}"))

    async def run() -> None:
        async with database, database.transaction() as session:
            with pytest.raises(ValueError, match="reads from a table"):
                await lock_for_update(session, select(literal(1)))

    asyncio.run(run())


def test_on_sqlite_a_read_only_session_cannot_take_the_write_lock(tmp_path: Path) -> None:
    database = Database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'x.db'}"))

    async def run() -> None:
        async with database, database.request_scope(read_only=True) as session:
            with pytest.raises(ReadOnlyError):
                await lock_for_update(session, select(literal(1).label("x")).select_from(_T))

    asyncio.run(run())
