"""``Database.install(app)``: the lifespan, readiness, metrics and error hooks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.middleware import Middleware
from starlette.requests import Request

from fastapi_enterprise.database._middleware import DatabaseSessionMiddleware
from fastapi_enterprise.database._observe import DatabaseMetrics

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.responses import Response

    from fastapi_enterprise.database._database import Database

__all__ = ["install_database", "installed_database", "installed_session"]

_DATABASES_KEY = "fastapi_enterprise_databases"
"""``app.state`` key listing the installed databases; ``install()`` reads it too."""


def installed_database(app: Starlette, name: str = "default") -> Database:
    """The :class:`Database` named ``name`` that ``Database.install()`` hooked into ``app``.

    Raises:
        LookupError: No database of that name is installed on ``app``.
    """
    databases: list[Database] = getattr(app.state, _DATABASES_KEY, [])
    for database in databases:
        if database.name == name:
            return database
    raise LookupError(f"no database named {name!r} is installed on this app")


def installed_session(*, name: str = "default", read_only: bool = False) -> Any:
    """The session dependency of the database installed on the request's app.

    For apps built by a factory (one app, and one ``Database``, per test or per
    process), where no module-level ``Database`` exists to call ``session()`` on:
    ``Session = Annotated[AsyncSession, installed_session()]``. It behaves as
    :meth:`Database.session` does.

    Args:
        name: The ``name`` given to the ``Database``.
        read_only: Never commit; writes raise ``ReadOnlyError``.
    """

    async def dependency(request: Request) -> AsyncIterator[AsyncSession]:
        database = installed_database(request.app, name)
        async with database.request_scope(read_only=read_only) as session:
            yield session

    return Depends(dependency, scope="function")


def install_database(database: Database, app: Starlette, *, session_middleware: bool) -> None:
    """What :meth:`Database.install` documents."""
    if app.middleware_stack is not None:
        raise RuntimeError("database.install() must be called before the app starts")
    databases: list[Database] = getattr(app.state, _DATABASES_KEY, [])
    if database in databases:
        raise RuntimeError(f"database {database.name!r} is already installed on this app")
    setattr(app.state, _DATABASES_KEY, [*databases, database])
    _wrap_lifespan(database, app)
    _hook_health_and_metrics(database, app)

    async def answer_error(request: Request, exc: Exception) -> Response:
        problem = database.problem_for(exc)
        if problem is None:
            raise exc
        return problem.response()

    app.add_exception_handler(SQLAlchemyError, answer_error)
    if session_middleware:
        # Innermost: inside the request-ID shield and the access log.
        app.user_middleware.append(Middleware(DatabaseSessionMiddleware, database=database))


def _wrap_lifespan(database: Database, app: Starlette) -> None:
    """Start the database before the app's own lifespan; close it after."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def database_lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        await database.start()
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            await database.close()

    app.router.lifespan_context = database_lifespan


def _hook_health_and_metrics(database: Database, app: Starlette) -> None:
    from fastapi_enterprise.install import (
        check_database_settings,
        installed_health_checks,
        installed_metrics_registry,
    )

    check_database_settings(app, database.settings)
    checks = installed_health_checks(app)
    if checks is not None:
        name = "database" if database.name == "default" else f"database_{database.name}"
        checks.add(name, database.ping)
    registry = installed_metrics_registry(app)
    if registry is not None and database.metrics is None:
        database.metrics = DatabaseMetrics(name=database.name, registry=registry)
