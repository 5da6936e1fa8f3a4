"""From ``DatabaseSettings`` to ``create_async_engine()`` arguments, per driver.

One home for what differs between SQLite, PostgreSQL and MySQL/MariaDB: the async driver
a URL without one gets, how each driver takes a connect timeout and a statement
timeout, and SQLite's transaction handling. A URL never appears in an error raised here:
messages name the problem, and the URL only with its password masked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool, StaticPool

from fastapi_enterprise.settings import DatabaseSettings

__all__ = ["DatabaseConfigError", "async_url", "engine_options", "prepare_engine"]

# The async driver a URL without one gets, per backend.
_DEFAULT_DRIVERS = {"postgresql": "asyncpg", "mysql": "aiomysql", "mariadb": "aiomysql"}
_ASYNC_DRIVERS = {
    "sqlite": {"aiosqlite"},
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"aiomysql", "asyncmy"},
    "mariadb": {"aiomysql", "asyncmy"},
}


class DatabaseConfigError(ValueError):
    """The database settings cannot work (the message never contains the password)."""


def async_url(settings: DatabaseSettings) -> URL:
    """The settings' URL with an async driver and ``settings.password`` applied.

    Raises:
        DatabaseConfigError: The URL does not parse, names an unknown backend, or a
            driver that is not async (``postgresql+psycopg2://``).
    """
    try:
        url = make_url(settings.url.get_secret_value())
    except (ArgumentError, ValueError):
        raise DatabaseConfigError(
            "database.url is not a SQLAlchemy URL (dialect+driver://user:password@host/db)"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise DatabaseConfigError(
            f"database.url names the backend {backend!r}; supported: sqlite, postgresql, "
            "mysql, mariadb"
        )
    if not driver:
        driver = "aiosqlite" if backend == "sqlite" else _DEFAULT_DRIVERS[backend]
    elif driver not in _ASYNC_DRIVERS[backend]:
        choices = ", ".join(f"{backend}+{name}" for name in sorted(_ASYNC_DRIVERS[backend]))
        raise DatabaseConfigError(
            f"database.url names the driver {driver!r}, which is not async; use {choices}"
        )
    url = url.set(drivername=f"{backend}+{driver}")
    if settings.password is not None:
        url = url.set(password=settings.password.get_secret_value())
    return url


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database (one connection holds it all)."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or "mode=memory" in str(url.query.get("mode", ""))
    )


def engine_options(settings: DatabaseSettings, url: URL) -> dict[str, Any]:
    """Keyword arguments for ``create_async_engine(url, **options)``."""
    options: dict[str, Any] = {
        "echo": settings.echo,
        # A driver error's message would otherwise quote the statement's parameters.
        "hide_parameters": not settings.echo,
        "pool_pre_ping": settings.pool_pre_ping,
    }
    if settings.null_pool:
        options["poolclass"] = NullPool
    elif is_memory_sqlite(url):
        # One connection holds the whole database; the pool must hand out that one.
        options["poolclass"] = StaticPool
    else:
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
        )
    options["connect_args"] = {**_connect_args(settings, url), **settings.connect_args}
    return options


def _connect_args(settings: DatabaseSettings, url: URL) -> dict[str, Any]:
    driver = url.get_driver_name()
    timeout = settings.connect_timeout
    statement_ms = (
        None if settings.statement_timeout is None else int(settings.statement_timeout * 1000)
    )
    if driver == "asyncpg":
        args: dict[str, Any] = {"timeout": timeout}
        if statement_ms is not None:
            args["server_settings"] = {"statement_timeout": str(statement_ms)}
        return args
    if driver in ("psycopg", "psycopg_async"):
        args = {"connect_timeout": max(1, round(timeout))}
        if statement_ms is not None:
            args["options"] = f"-c statement_timeout={statement_ms}"
        return args
    if driver in ("aiomysql", "asyncmy"):
        # The statement timeout is set per connection by prepare_engine(): MariaDB and
        # MySQL name it differently, and which one answers is known only once connected.
        return {"connect_timeout": timeout}
    # aiosqlite: how long a statement waits for another connection's lock.
    return {"timeout": timeout}


def prepare_engine(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    """Per-backend connection setup, as engine events (call once per engine)."""
    sync_engine = engine.sync_engine
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        _real_sqlite_transactions(sync_engine)
    elif backend in ("mysql", "mariadb") and settings.statement_timeout is not None:
        seconds = settings.statement_timeout

        @event.listens_for(sync_engine, "connect")
        def set_statement_timeout(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                if sync_engine.dialect.is_mariadb:  # type: ignore[attr-defined]
                    cursor.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
                else:
                    cursor.execute(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
            finally:
                cursor.close()


def _real_sqlite_transactions(sync_engine: Any) -> None:
    """Let SQLite run real transactions: BEGIN at the start, SAVEPOINTs that work.

    Python's sqlite3 module begins transactions itself, late, and not before a SAVEPOINT;
    this is SQLAlchemy's documented remedy ("Serializable isolation / Savepoints /
    Transactional DDL" in its SQLite dialect notes).
    """

    @event.listens_for(sync_engine, "connect")
    def no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(sync_engine, "begin")
    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
