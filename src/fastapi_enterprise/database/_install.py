"""``Database.install(app)``: the lifespan, readiness, metrics and error hooks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware import Middleware

from fastapi_enterprise.database._errors import problem_for
from fastapi_enterprise.database._middleware import DatabaseSessionMiddleware
from fastapi_enterprise.database._observe import DatabaseMetrics
from fastapi_enterprise.errors import problem_response

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from fastapi_enterprise.database._database import Database

__all__ = ["install_database"]

_DATABASES_KEY = "fastapi_enterprise_databases"
"""``app.state`` key listing the installed databases; ``install()`` reads it too."""


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
        problem = problem_for(
            exc, retry_after=database.settings.retry_after, url=database._plain_url
        )
        if problem is None:
            raise exc
        return problem_response(problem.status_code, detail=problem.detail, headers=problem.headers)

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
