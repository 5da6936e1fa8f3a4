"""From ``DatabaseSettings`` to ``create_async_engine()`` arguments, per driver.

One home for what differs between SQLite, PostgreSQL and MySQL/MariaDB: the async driver
a URL without one gets, how each driver takes a connect timeout and a statement
timeout, and SQLite's transaction handling. A URL never appears in an error raised here:
messages name the problem, and the URL only with its password masked.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool, StaticPool

from fastapi_enterprise.database._errors import is_network_error
from fastapi_enterprise.settings import DatabaseSettings

__all__ = [
    "DatabaseConfigError",
    "async_url",
    "engine_options",
    "prepare_engine",
    "use_real_transactions",
]

# The async driver a URL without one gets, per backend.
_DEFAULT_DRIVERS = {"postgresql": "asyncpg", "mysql": "aiomysql", "mariadb": "aiomysql"}
_ASYNC_DRIVERS = {
    "sqlite": {"aiosqlite"},
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"aiomysql", "asyncmy"},
    "mariadb": {"aiomysql", "asyncmy"},
}

logger = logging.getLogger("fastapi_enterprise.database")

# The drivers with a client-side timeout on every wait for the server's answer.
_READ_TIMEOUT_DRIVERS = frozenset({"asyncpg", "asyncmy"})


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
    if settings.read_timeout is not None and driver not in _READ_TIMEOUT_DRIVERS | {"aiosqlite"}:
        raise DatabaseConfigError(
            f"database.read_timeout cannot be applied with the driver {driver!r}, which has "
            "no read timeout; use postgresql+asyncpg:// or mysql+asyncmy://, or unset it"
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
        # SQLite has no server to drop a connection: a ping would only cost a round trip
        # to aiosqlite's thread (about 200 us a request, benchmarks/results/database.md).
        "pool_pre_ping": settings.pool_pre_ping and url.get_backend_name() != "sqlite",
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
        if settings.read_timeout is not None:
            args["command_timeout"] = settings.read_timeout
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
        args = {"connect_timeout": timeout}
        if driver == "asyncmy" and settings.read_timeout is not None:
            args["read_timeout"] = settings.read_timeout
        return args
    # aiosqlite: how long a statement waits for another connection's lock.
    return {"timeout": timeout}


def prepare_engine(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    """Per-backend connection setup, as engine events (call once per engine)."""
    sync_engine = engine.sync_engine
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        _real_sqlite_transactions(sync_engine)
        return
    _network_errors_are_disconnects(sync_engine)
    if backend in ("mysql", "mariadb") and settings.statement_timeout is not None:
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
    """Let SQLite run real transactions where asked: BEGIN at the start, SAVEPOINTs.

    Python's sqlite3 module begins transactions itself, late (before the first write,
    never before a read), and breaks SAVEPOINTs. That default is kept for requests: a
    read then costs no BEGIN and no COMMIT through aiosqlite's thread (about 500 us a
    request, ``benchmarks/results/database.md``), as in any SQLAlchemy app on SQLite.
    A connection that :func:`use_real_transactions` switched (``Database.isolated()``
    does) gets SQLAlchemy's documented remedy ("Serializable isolation / Savepoints /
    Transactional DDL" in its SQLite dialect notes): the driver stays out of it, and
    every SQLAlchemy transaction starts with an explicit BEGIN.
    """

    @event.listens_for(sync_engine, "begin")
    def begin(connection: Any) -> None:
        if connection.connection.dbapi_connection.isolation_level is None:
            connection.exec_driver_sql("BEGIN")


def use_real_transactions(connection: Any, on: bool) -> None:
    """Switch one SQLite connection to real transactions (``on``) or back to the default.

    For ``AsyncConnection.run_sync()``: ``connection`` is the sync ``Connection``.
    """
    connection.connection.dbapi_connection.isolation_level = None if on else ""


def _network_errors_are_disconnects(sync_engine: Any) -> None:
    """Treat a driver's raw socket errors as disconnects: replaced, and a 503 problem."""
    dialect = sync_engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return bool(ping(dbapi_connection))
        except Exception as exc:
            if is_network_error(exc):
                _force_close(dbapi_connection)
                return False  # the pool discards the connection and opens a new one
            raise

    dialect.do_ping = do_ping

    @event.listens_for(sync_engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if is_network_error(exc):
                # A DBAPI error: SQLAlchemy wraps it, and classify() finds the cause.
                raise dialect.loaded_dbapi.OperationalError(
                    f"cannot connect: {type(exc).__name__}: {exc}"
                ) from exc
            raise

    @event.listens_for(sync_engine, "handle_error")
    def invalidate(context: Any) -> Any:
        error = context.original_exception
        if context.sqlalchemy_exception is not None or not is_network_error(error):
            return None
        context.is_disconnect = True  # the connection is invalidated, not pooled again
        if context.connection is not None:
            _force_close(context.connection.connection.dbapi_connection)
        return OperationalError(
            context.statement,
            context.parameters,
            error,
            hide_parameters=True,
            connection_invalidated=True,
        )


def _force_close(dbapi_connection: Any) -> None:
    """Close a broken connection's socket without a goodbye to the server.

    SQLAlchemy's invalidation first tries a graceful close, which writes to the socket;
    on a reset socket under uvloop that raises RuntimeError, which it does not expect,
    and the driver's connection is left open (aiomysql then warns "Unclosed
    connection"). The adapter's force close is what SQLAlchemy falls back to for the
    errors it does expect.
    """
    force_close = getattr(dbapi_connection, "_terminate_force_close", None)
    if force_close is not None:
        try:
            force_close()
        except Exception:  # best effort: SQLAlchemy still invalidates it
            logger.debug("Closing a broken database connection failed", exc_info=True)
