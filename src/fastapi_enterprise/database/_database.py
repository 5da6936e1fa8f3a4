"""``Database``: one engine per process, created on the serving loop, and its sessions.

Nothing connects at import: ``Database(settings)`` only checks the URL. The engine is
created by :meth:`Database.start` (the app's lifespan calls it, after a server's fork,
on the loop that serves requests) and disposed by :meth:`Database.close`. A module-level
engine created before gunicorn forks shares pooled sockets between workers; one created
on another event loop fails on the first query; both are refused here with a message
saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Depends
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session

from fastapi_enterprise.database._drivers import (
    async_url,
    engine_options,
    prepare_engine,
    use_real_transactions,
)
from fastapi_enterprise.database._errors import DatabaseProblem, problem_for, safe_message
from fastapi_enterprise.database._middleware import _LazySession
from fastapi_enterprise.database._observe import DatabaseMetrics, SlowQueryLog
from fastapi_enterprise.settings import DatabaseSettings

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["Database", "DatabaseNotStartedError", "DatabaseUnavailableError", "ReadOnlyError"]

logger = logging.getLogger("fastapi_enterprise.database")


class DatabaseNotStartedError(RuntimeError):
    """The database was used before its engine exists, or where it cannot be used."""


class DatabaseUnavailableError(RuntimeError):
    """The database did not answer at startup (``startup_check="fail"``)."""


class ReadOnlyError(RuntimeError):
    """A read-only session was asked to write."""


class _ReadOnlySession(Session):
    """The sync session behind a read-only ``AsyncSession``: refuses ORM writes."""


@event.listens_for(_ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, flush_context: Any, instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyError("this session is read-only: it cannot add, change or delete rows")


@event.listens_for(_ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyError("this session is read-only: it cannot run INSERT, UPDATE or DELETE")


class Database:
    """A SQL database for an async app: engine, sessions, lifespan, health, errors.

    Args:
        settings: The ``database`` section (``EnterpriseSettings().database``).
        name: Names the database in metrics (``pool`` label), readiness and logs when an
            app has several.
        session_options: Extra ``async_sessionmaker`` options (``expire_on_commit`` is
            ``False`` by default: objects stay readable after the commit).

    Raises:
        DatabaseConfigError: The URL does not parse or names no async driver (the
            message never contains the password).

    Example:
        ```python
        db = Database(settings.database)
        Session = Annotated[AsyncSession, db.session()]

        app = FastAPI()
        install(app, settings)
        db.install(app)


        @app.post("/notes")
        async def add(note: NoteIn, session: Session) -> NoteOut: ...
        ```
    """

    def __init__(
        self,
        settings: DatabaseSettings | None = None,
        *,
        name: str = "default",
        session_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else DatabaseSettings()
        self.name = name
        self.url = async_url(self.settings)
        self._masked_url = self.url.render_as_string(hide_password=True)
        self._plain_url = self.url.render_as_string(hide_password=False)
        self._session_options = {"expire_on_commit": False, **(session_options or {})}
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._read_only_sessions: async_sessionmaker[AsyncSession] | None = None
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bind: AsyncConnection | None = None
        self._request: ContextVar[_LazySession | None] = ContextVar(
            f"fastapi_enterprise_db_{name}", default=None
        )
        self._slow_queries = (
            None
            if self.settings.slow_query_ms is None
            else SlowQueryLog(self.settings.slow_query_ms, name=name)
        )
        self.metrics: DatabaseMetrics | None = None
        """The metrics ``install()`` registered (set by :meth:`install`), or ``None``."""
        self.sessions_open = 0
        """Sessions opened by this object and not yet closed."""

    def __repr__(self) -> str:
        return f"Database(name={self.name!r}, url={self._masked_url!r})"

    # -- engine lifecycle -------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The engine (raises :class:`DatabaseNotStartedError` before :meth:`start`)."""
        engine = self._engine
        if engine is None:
            raise DatabaseNotStartedError(
                f"database {self.name!r} has no engine yet: it is created by the app's "
                "lifespan (database.install(app), or FastAPI(lifespan=database.lifespan)), "
                "or by 'await database.start()' / 'async with database:' in a script"
            )
        if self._pid != os.getpid():
            raise DatabaseNotStartedError(
                f"database {self.name!r} was started in process {self._pid}, before a fork: "
                "its pooled connections belong to that process. Start it in each worker "
                "(in the app's lifespan), not at import or in gunicorn's master"
            )
        return engine

    @property
    def started(self) -> bool:
        """Whether :meth:`start` created the engine (and :meth:`close` has not run)."""
        return self._engine is not None

    async def start(self) -> None:
        """Create the engine on the running loop; then connect once (``startup_check``).

        Raises:
            RuntimeError: Already started.
            DatabaseUnavailableError: ``startup_check="fail"`` and no connection.
        """
        if self._engine is not None:
            raise RuntimeError(f"database {self.name!r} is already started")
        options = engine_options(self.settings, self.url)
        if self.metrics is not None and not self.settings.null_pool:
            # The dialect's own pool class, timed: checkout waits and pool timeouts.
            options.update(self.metrics.engine_options(self.url))
        engine = create_async_engine(self.url, **options)
        prepare_engine(engine, self.settings)
        if self.metrics is not None:
            self.metrics.attach(engine)
        if self._slow_queries is not None:
            self._slow_queries.attach(engine)
        self._engine = engine
        self._pid = os.getpid()
        self._loop = asyncio.get_running_loop()
        self._sessions = async_sessionmaker(engine, **self._session_options)
        self._read_only_sessions = async_sessionmaker(
            engine, sync_session_class=_ReadOnlySession, **self._session_options
        )
        if self.settings.startup_check != "off":
            await self._check_at_startup()

    async def _check_at_startup(self) -> None:
        try:
            with anyio.fail_after(self.settings.connect_timeout + 1):
                await self.ping()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            reason = safe_message(exc, self._plain_url)
            if self.settings.startup_check == "fail":
                await self.close()
                raise DatabaseUnavailableError(
                    f"database {self.name!r} at {self._masked_url} does not answer: {reason}"
                ) from None
            logger.warning(
                "Database %r at %s does not answer at startup: %s; starting anyway "
                "(readiness fails and requests that need it get 503 until it answers)",
                self.name,
                self._masked_url,
                reason,
            )

    async def close(self) -> None:
        """Dispose of the engine: close pooled connections (safe to call twice)."""
        engine, self._engine = self._engine, None
        self._sessions = self._read_only_sessions = None
        if self.metrics is not None:
            self.metrics.detach()
        if self._slow_queries is not None:
            self._slow_queries.detach()
        if engine is not None and self._pid == os.getpid():
            with anyio.CancelScope(shield=True):
                await engine.dispose()

    async def __aenter__(self) -> Database:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan that starts and closes the database: ``FastAPI(lifespan=db.lifespan)``."""
        await self.start()
        try:
            yield
        finally:
            await self.close()

    async def ping(self) -> None:
        """Run ``SELECT 1`` on a pooled connection (the readiness check)."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def problem_for(self, error: BaseException) -> DatabaseProblem | None:
        """The problem (409, 503, 504) standing for ``error``, or ``None`` for a bug.

        A 503 or 504 is logged with the reason, this database's URL masked; a bug is
        left to the unhandled-error path (a 500 and its traceback).
        """
        return problem_for(error, retry_after=self.settings.retry_after, url=self._plain_url)

    # -- sessions ---------------------------------------------------------------------

    def session(self, *, read_only: bool = False) -> Any:
        """The per-request session dependency: ``Annotated[AsyncSession, db.session()]``.

        A session is created only for routes that ask for it. It is committed after the
        handler returns and before the response is sent (``Depends(scope="function")``),
        so a failed commit answers a problem, never a 2xx; it is rolled back on any
        exception (``HTTPException`` included) and always closed, its connection back in
        the pool, also when the request is cancelled.

        Args:
            read_only: Never commit; ORM writes and INSERT/UPDATE/DELETE statements
                raise :class:`ReadOnlyError` (a ``text()`` statement is not inspected:
                whatever it did is rolled back).
        """
        dependency = self._read_only_dependency if read_only else self._dependency
        return Depends(dependency, scope="function")

    async def _dependency(self) -> AsyncIterator[AsyncSession]:
        async with self.request_scope() as session:
            yield session

    async def _read_only_dependency(self) -> AsyncIterator[AsyncSession]:
        async with self.request_scope(read_only=True) as session:
            yield session

    @contextlib.asynccontextmanager
    async def request_scope(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """What :meth:`session` runs around a handler, for dependencies of your own.

        Commits at the end of the block (unless ``read_only``), closes always, and
        raises a :class:`~fastapi_enterprise.database.DatabaseProblem` (409, 503, 504)
        in place of a database error the client can act on. Use it inside a
        ``Depends(..., scope="function")`` dependency, or the commit comes after the
        response.
        """
        session = self._open(self._read_only_sessions if read_only else self._sessions)
        try:
            yield session
            if not read_only:
                await session.commit()
        except SQLAlchemyError as exc:
            problem = self.problem_for(exc)
            if problem is None:
                raise
            raise problem from exc
        finally:
            await self._close(session)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed at the end of the block, rolled back on any exception.

        For workers, scripts and tests; errors are the driver's own (no HTTP problem)::

            async with db.transaction() as session:
                session.add(Job(...))
        """
        session = self._open(self._sessions)
        try:
            yield session
            await session.commit()
        finally:
            await self._close(session)

    @contextlib.asynccontextmanager
    async def isolated(self) -> AsyncIterator[AsyncSession]:
        """Run a test inside one outer transaction that is rolled back at the end.

        Every session the database opens inside the block (the request dependency,
        :meth:`transaction`, the middleware) joins that transaction through a SAVEPOINT,
        so commits are real to the code under test and nothing is left behind. The
        sessions share one connection: run requests one at a time inside the block.
        """
        if self._bind is not None:
            raise RuntimeError("database.isolated() is already active")
        async with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:  # SAVEPOINTs need the driver out of the way (see _drivers)
                await connection.run_sync(use_real_transactions, True)
            outer = await connection.begin()
            self._bind = connection
            try:
                session = self._open(self._sessions)
                try:
                    yield session
                finally:
                    await self._close(session)
            finally:
                self._bind = None
                if outer.is_active:
                    await outer.rollback()
                if sqlite:
                    await connection.run_sync(use_real_transactions, False)

    def _open(self, maker: async_sessionmaker[AsyncSession] | None) -> AsyncSession:
        _ = self.engine  # not started, or started before a fork: say so
        if maker is None:  # pragma: no cover - engine and makers are set together
            raise DatabaseNotStartedError(f"database {self.name!r} is not started")
        if asyncio.get_running_loop() is not self._loop:
            raise DatabaseNotStartedError(
                f"database {self.name!r} was started on another event loop; its pooled "
                "connections cannot be used here. Start it on the loop that uses it"
            )
        if self._bind is not None:
            session = maker(bind=self._bind, join_transaction_mode="create_savepoint")
        else:
            session = maker()
        self.sessions_open += 1
        if self.metrics is not None:
            self.metrics.session_opened()
        return session

    async def _close(self, session: AsyncSession) -> None:
        """Close ``session`` (rolling back what was not committed), even when cancelled.

        Shielded from cancellation, within ``connect_timeout``. A close that cannot
        finish (the server hangs) or fails (the connection died) drops the connection
        instead of returning it, and never replaces the request's own outcome.
        """
        self.sessions_open -= 1
        if self.metrics is not None:
            self.metrics.session_closed()
        timeout = self.settings.connect_timeout
        failed = False
        try:
            with anyio.move_on_after(timeout, shield=True) as scope:
                await session.close()
        except Exception as exc:  # noqa: BLE001 - the request's outcome must stand
            failed = True
            logger.warning(
                "Database %r: closing a session failed (%s); its connection is dropped",
                self.name,
                safe_message(exc, self._plain_url),
            )
        if failed or scope.cancelled_caught:
            with anyio.move_on_after(timeout, shield=True), contextlib.suppress(Exception):
                await session.invalidate()

    # -- the opt-in session middleware --------------------------------------------------

    async def request_session(self) -> AsyncSession:
        """The current request's session under :class:`DatabaseSessionMiddleware`.

        Created on first use; usable as a dependency
        (``Annotated[AsyncSession, Depends(db.request_session)]``) or called directly.

        Raises:
            DatabaseNotStartedError: No ``DatabaseSessionMiddleware`` of this database
                wraps the current request.
        """
        lazy = self._request.get()
        if lazy is None:
            raise DatabaseNotStartedError(
                f"no DatabaseSessionMiddleware of database {self.name!r} wraps this request: "
                "use database.install(app, session_middleware=True), or the session() "
                "dependency"
            )
        return lazy.get()

    # -- installing on an app ----------------------------------------------------------

    def install(self, app: Starlette, *, session_middleware: bool = False) -> None:
        """Hook this database into ``app``: lifespan, readiness, metrics, error problems.

        - the engine is created at the app's startup and disposed at its shutdown,
          around the app's own lifespan (which can use the database);
        - with ``install()`` called first: ``/health/ready`` checks the database (with
          the health timeout), and the database's metrics
          (:class:`~fastapi_enterprise.database.DatabaseMetrics`) join the app's
          registry; the slow-query log works with or without ``install()``;
        - database errors raised outside the session dependency become problems (409,
          503 with ``Retry-After``, 504) instead of 500s;
        - ``session_middleware=True`` adds :class:`DatabaseSessionMiddleware`, innermost
          (inside the library's stack, so its answers carry the request ID).

        Raises:
            RuntimeError: This database is already installed on ``app``, or ``app``
                already started.
        """
        from fastapi_enterprise.database._install import install_database

        install_database(self, app, session_middleware=session_middleware)
