"""The apps the database benchmark compares; each is a factory for ``uvicorn --factory``.

Every app serves ``GET /row/{item_id}``: one row of the 1000-row ``bench_items`` table
as JSON (404 when absent). The database is named by ``BENCH_DATABASE_URL`` without a
driver (``sqlite:////tmp/x/bench.db`` or ``postgresql://postgres@127.0.0.1:5432/test``);
``benchmarks.database`` seeds the table, starts each app with it and drops it at the end.

- ``raw``: the driver alone, the floor. SQLite: a pool of ``POOL_SIZE`` long-lived
  aiosqlite connections held in an ``asyncio.Queue``, one taken per request. PostgreSQL:
  ``asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE)``, one ``acquire()`` per
  request;
- ``sqlalchemy_dependency``: the usual hand-written code: ``create_async_engine`` +
  ``async_sessionmaker`` + a ``yield`` dependency in the default scope that commits
  after the endpoint (FastAPI runs that part after the response is sent);
- ``ours``: ``fastapi_enterprise.database`` with its defaults (pool pre-ping and the
  slow-query log on): ``Database(...).session()``, engine from ``db.lifespan``;
  ``ours_read_only``: ``db.session(read_only=True)``; ``ours_no_pre_ping``: ``ours``
  with ``pool_pre_ping=False`` (what the default's round trip per checkout costs);
- ``base_http_middleware``: a session opened in an ``@app.middleware("http")`` function
  (Starlette's ``BaseHTTPMiddleware``), put on ``request.state`` and committed after
  ``call_next``.

The SQLAlchemy variants run the same ORM query, ``select(Item).where(Item.id == id)``;
``raw`` runs the equivalent SQL. No library middleware (``install()``) in any of them:
the rows isolate the session layer.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the endpoints'
# ``Annotated[..., Depends(local_function)]`` annotations, which name closures.
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sqlalchemy_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

POOL_SIZE = 10
ROWS = 1000
TABLE = "bench_items"
COLUMNS = ("id", "name", "price", "stock", "description")
_Row = dict[str, Any]
_Call = Callable[[Request], Awaitable[Response]]


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    price: Mapped[float]
    stock: Mapped[int]
    description: Mapped[str]


def expected_row(item_id: int) -> _Row:
    """The seeded row ``item_id`` as every app must return it."""
    return {
        "id": item_id,
        "name": f"Item {item_id}",
        # Multiples of 0.25 are exact in binary floating point on every backend.
        "price": item_id * 1.25,
        "stock": item_id % 97,
        "description": f"A benchmark item, number {item_id}, with a short description.",
    }


def database_url() -> str:
    """The benchmark database, without a driver, from ``BENCH_DATABASE_URL``."""
    return os.environ["BENCH_DATABASE_URL"]


def sqlalchemy_url(url: str) -> str:
    """``url`` with the async driver SQLAlchemy uses here (aiosqlite or asyncpg)."""
    scheme, _, rest = url.partition("://")
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}[scheme]
    return f"{driver}://{rest}"


def _item(item: Item | None) -> _Row:
    if item is None:
        raise HTTPException(status_code=404)
    return {
        "id": item.id,
        "name": item.name,
        "price": item.price,
        "stock": item.stock,
        "description": item.description,
    }


async def _read(session: AsyncSession, item_id: int) -> _Row:
    return _item(await session.scalar(select(Item).where(Item.id == item_id)))


def _app(lifespan: Any) -> FastAPI:
    return FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def _engine() -> AsyncEngine:
    """The hand-written engine: the same pool size as every other app, no overflow."""
    return sqlalchemy_engine(sqlalchemy_url(database_url()), pool_size=POOL_SIZE, max_overflow=0)


# --- raw -----------------------------------------------------------------------------

_SQL = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE id = "


class _SQLitePool:
    """``POOL_SIZE`` long-lived aiosqlite connections, one lent per request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.idle: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self) -> None:
        import aiosqlite

        for _ in range(POOL_SIZE):
            self.idle.put_nowait(await aiosqlite.connect(self.path))

    async def close(self) -> None:
        while not self.idle.empty():
            await self.idle.get_nowait().close()

    async def fetch(self, item_id: int) -> _Row | None:
        connection = await self.idle.get()
        try:
            async with connection.execute(_SQL + "?", (item_id,)) as cursor:
                found = await cursor.fetchone()
        finally:
            self.idle.put_nowait(connection)
        return None if found is None else dict(zip(COLUMNS, found, strict=True))


def raw() -> FastAPI:
    """The driver alone: aiosqlite connections from a tiny pool, or an asyncpg pool."""
    url = database_url()
    fetch: Callable[[int], Awaitable[_Row | None]]
    if url.startswith("sqlite"):
        pool = _SQLitePool(url.partition(":///")[2])
        fetch = pool.fetch

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await pool.open()
            yield
            await pool.close()

    else:
        import asyncpg  # type: ignore[import-untyped]

        pools: list[Any] = []

        async def fetch_asyncpg(item_id: int) -> _Row | None:
            async with pools[0].acquire() as connection:
                found = await connection.fetchrow(_SQL + "$1", item_id)
            return None if found is None else dict(found)

        fetch = fetch_asyncpg

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            pools.append(await asyncpg.create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE))
            yield
            await pools[0].close()

    app = _app(lifespan)

    @app.get("/row/{item_id}")
    async def row(item_id: int) -> _Row:
        found = await fetch(item_id)
        if found is None:
            raise HTTPException(status_code=404)
        return found

    return app


# --- SQLAlchemy by hand --------------------------------------------------------------


def sqlalchemy_dependency() -> FastAPI:
    """``async_sessionmaker`` + a ``yield`` dependency that commits, default scope."""
    engine = _engine()
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session
            await session.commit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = _app(lifespan)

    @app.get("/row/{item_id}")
    async def row(item_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> _Row:
        return await _read(session, item_id)

    return app


# --- ours --------------------------------------------------------------------------


def _ours(*, read_only: bool = False, **settings: Any) -> FastAPI:
    from fastapi_enterprise.database import Database
    from fastapi_enterprise.settings import DatabaseSettings

    db = Database(
        DatabaseSettings(url=database_url(), pool_size=POOL_SIZE, max_overflow=0, **settings)
    )
    session_dependency = db.session(read_only=read_only)
    app = _app(db.lifespan)

    @app.get("/row/{item_id}")
    async def row(item_id: int, session: Annotated[AsyncSession, session_dependency]) -> _Row:
        return await _read(session, item_id)

    return app


def ours() -> FastAPI:
    """``db.session()`` with the library's defaults."""
    return _ours()


def ours_read_only() -> FastAPI:
    """``db.session(read_only=True)``: never commits; writes refused."""
    return _ours(read_only=True)


def ours_no_pre_ping() -> FastAPI:
    """``db.session()`` without the pre-ping round trip at each checkout."""
    return _ours(pool_pre_ping=False)


# --- the common pattern the issue names ----------------------------------------------


def base_http_middleware() -> FastAPI:
    """A session opened in ``@app.middleware("http")``, on ``request.state``."""
    engine = _engine()
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = _app(lifespan)

    @app.middleware("http")
    async def db_session(request: Request, call_next: _Call) -> Response:
        async with sessions() as session:
            request.state.db = session
            response = await call_next(request)
            await session.commit()
            return response

    @app.get("/row/{item_id}")
    async def row(item_id: int, request: Request) -> _Row:
        session: AsyncSession = request.state.db
        return await _read(session, item_id)

    return app
