"""``DatabaseSessionMiddleware``: a session per request, committed by response status.

The shape of the system this library grew from, kept as an opt-in: the session is
created lazily, on the first :meth:`Database.request_session` call of a request, and
when the response starts:

- status below 400: committed first, then the response starts; if the commit fails,
  nothing was sent yet, so the client gets a problem instead (409 for a conflict, 503 or
  504 when the database is unavailable or slow, 500 otherwise);
- status 400 or above, or an exception: rolled back;
- always: closed, its connection back in the pool, also when the request is cancelled.

Its trap: it sees statuses, not exceptions a handler caught. A handler that catches an
error and still answers 200 gets its half-done writes committed. The session dependency
(:meth:`Database.session`) commits only when the handler returns normally; prefer it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise.errors import log_unhandled_exception, problem_response

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from fastapi_enterprise.database._database import Database

__all__ = ["DatabaseSessionMiddleware"]


class DatabaseSessionMiddleware:
    """Give each HTTP request a lazily created session, committed when it succeeds.

    Added by ``database.install(app, session_middleware=True)`` innermost; handlers
    get the session with ``await database.request_session()`` (or as a dependency).

    Args:
        app: The ASGI app to wrap.
        database: The :class:`~fastapi_enterprise.database.Database` whose sessions
            this middleware manages.
    """

    def __init__(self, app: ASGIApp, *, database: Database) -> None:
        self.app = app
        self.database = database

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lazy = _LazySession(self.database)
        token = self.database._request.set(lazy)
        responder = _Responder(lazy, scope, send)
        try:
            await self.app(scope, receive, responder.send)
        finally:
            self.database._request.reset(token)
            if lazy.session is not None:
                await self.database._close(lazy.session)


class _Responder:
    """Commits or rolls back as the response starts; replaces it if the commit fails."""

    def __init__(self, lazy: _LazySession, scope: Scope, send: Send) -> None:
        self.lazy = lazy
        self.scope = scope
        self.downstream = send
        self.replaced = False

    async def send(self, message: Message) -> None:
        if self.replaced:  # the app's response was replaced: drop the rest of it
            return
        session = self.lazy.session
        if message["type"] == "http.response.start" and session is not None:
            if message["status"] >= 400:
                # A failed rollback must not turn the app's answer into another one:
                # closing the session afterwards drops the connection.
                with contextlib.suppress(SQLAlchemyError):
                    await session.rollback()
            else:
                try:
                    await session.commit()
                except SQLAlchemyError as exc:
                    self.replaced = True
                    await self._answer_failed_commit(exc)
                    return
        await self.downstream(message)

    async def _answer_failed_commit(self, exc: SQLAlchemyError) -> None:
        problem = self.lazy.database.problem_for(exc)
        if problem is None:
            log_unhandled_exception(self.scope, exc)
            response = problem_response(500, detail="The changes could not be saved.")
        else:
            response = problem.response()

        async def nothing() -> Message:  # pragma: no cover - responses do not receive
            return {"type": "http.disconnect"}

        await response(self.scope, nothing, self.downstream)


class _LazySession:
    """The session of one request under the middleware, created on first use."""

    __slots__ = ("database", "session")

    def __init__(self, database: Database) -> None:
        self.database = database
        self.session: AsyncSession | None = None

    def get(self) -> AsyncSession:
        if self.session is None:
            self.session = self.database._open(self.database._sessions)
        return self.session
