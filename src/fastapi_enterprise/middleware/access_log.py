"""``AccessLogMiddleware``: exactly one structured line per HTTP request.

The line is written when the last body chunk has been sent (so a streamed response is
timed to its end, and background tasks are not counted). An exception that escapes the
app is answered here, through the shared :func:`~fastapi_enterprise.errors.answer_exception`
(problem+json 500, traceback logged once), so the line reports the answer that was sent,
body size included. A response that breaks off mid-stream is a ``500`` (a client that went
away first, ``499``): :func:`~fastapi_enterprise.errors.final_status` decides, for the
metrics too. Fields:

``method``, ``route`` (template), ``path`` (with secret query values masked), ``status``,
``duration_ms``, ``request_bytes``, ``response_bytes``, ``client_ip``, ``user_agent``
(truncated), ``http_version``, ``request_id`` (from the request context), any fields the
app bound with :func:`~fastapi_enterprise.bind_request`, plus ``slow`` and ``error`` when
they apply (``error``: the type of the unhandled exception, ``disconnected`` or
``incomplete``). Level:
info, warning for 4xx and slow requests, error for 5xx. Only info lines are sampled:
errors are always written.

Lines go to the stdlib logger ``fastapi_enterprise.access`` with the fields as record
attributes; :func:`~fastapi_enterprise.configure_logging` renders them as JSON. When that
pipeline is the logger's only listener, the line is rendered straight from the fields
(the same line, without building a ``LogRecord``); any other handler or filter on the
way, pytest's ``caplog`` included, gets ordinary records.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise._logging import safe_extra
from fastapi_enterprise.client_ip import client_address
from fastapi_enterprise.context import get_request_fields
from fastapi_enterprise.errors import UNHANDLED_ERROR_KEY, answer_exception, final_status
from fastapi_enterprise.log_config import ACCESS_EVENT, _direct_handler
from fastapi_enterprise.redaction import DEFAULT_REDACTOR, Redactor
from fastapi_enterprise.routing import route_template

__all__ = ["ACCESS_LOGGER", "AccessLogMiddleware"]

ACCESS_LOGGER = "fastapi_enterprise.access"
"""Name of the stdlib logger the access lines are written to."""

_EVENT = ACCESS_EVENT


class AccessLogMiddleware:
    """Write one access-log line per HTTP request.

    Args:
        app: The ASGI app to wrap.
        logger: Where lines go; ``logging.getLogger("fastapi_enterprise.access")`` by
            default.
        exclude_paths: Exact paths that are never logged (health probes, scrapes).
        slow_request_ms: Requests slower than this are marked ``slow=true`` and logged
            at warning level or above; 0 disables.
        sample_rate: Fraction of successful, fast requests logged (1.0: all).
        sample_routes: Per-route-template sample rates, overriding ``sample_rate``.
        user_agent_max_length: Longest User-Agent written.
        redactor: Masks secret query parameters; the shared default if omitted.
        chance: Source of randomness for sampling.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | None = None,
        exclude_paths: Iterable[str] = (),
        slow_request_ms: float = 1000.0,
        sample_rate: float = 1.0,
        sample_routes: Mapping[str, float] | None = None,
        user_agent_max_length: int = 256,
        redactor: Redactor | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        rates = [sample_rate, *(sample_routes or {}).values()]
        if any(not 0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError("sample rates must be between 0 and 1")
        if slow_request_ms < 0 or user_agent_max_length < 1:
            raise ValueError("slow_request_ms must be >= 0 and user_agent_max_length >= 1")
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.exclude_paths = frozenset(exclude_paths)
        self.slow_seconds = slow_request_ms / 1000 if slow_request_ms else None
        self.sample_rate = sample_rate
        self.sample_routes = dict(sample_routes or {})
        self.user_agent_max_length = user_agent_max_length
        self.redactor = redactor or DEFAULT_REDACTOR
        self.chance = chance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; non-HTTP scopes pass through untouched."""
        if scope["type"] != "http" or scope["path"] in self.exclude_paths:
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status: int | None = None
        request_bytes = 0
        response_bytes = 0
        completed = False
        client_gone = False
        logged = False

        async def receive_counting_bytes() -> Message:
            nonlocal request_bytes, client_gone
            message = await receive()
            if message["type"] == "http.request":
                request_bytes += len(message.get("body", b""))
            elif message["type"] == "http.disconnect" and not completed:
                client_gone = True
            return message

        async def send_then_log(message: Message) -> None:
            nonlocal status, response_bytes, completed, client_gone, logged
            try:
                await send(message)
            except BaseException:
                client_gone = True  # the server could not write to the client
                raise
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False) and not logged:
                    completed = logged = True
                    self.log_line(scope, status or 500, start, request_bytes, response_bytes)

        failure: BaseException | None = None
        try:
            try:
                await self.app(scope, receive_counting_bytes, send_then_log)
            except Exception as exc:
                if client_gone:
                    raise  # nobody to answer; the server ends the connection
                # Answered here rather than by an outer shield, so that the line reports
                # the answer that was sent (a 500 with its body).
                await answer_exception(
                    scope, receive, send_then_log, exc, response_started=status is not None
                )
        except BaseException as exc:  # the client went away, or the task was cancelled
            failure = exc
            raise
        finally:
            if not logged:
                self.log_unfinished(
                    scope,
                    status,
                    start,
                    request_bytes,
                    response_bytes,
                    completed=completed,
                    client_gone=client_gone,
                    failure=failure,
                )

    def log_unfinished(
        self,
        scope: Scope,
        status: int | None,
        start: float,
        request_bytes: int,
        response_bytes: int,
        *,
        completed: bool,
        client_gone: bool,
        failure: BaseException | None,
    ) -> None:
        """Write the line of a request that got no complete response (shared, as above).

        None at all, or one broken off mid-stream: the status is
        :func:`~fastapi_enterprise.errors.final_status`'s, and ``error`` names the
        exception that ended it, else ``disconnected`` or ``incomplete``.
        """
        reported = final_status(status, completed=completed, client_gone=client_gone)
        if failure is not None:
            error = type(failure).__name__
        else:
            error = "disconnected" if client_gone else "incomplete"
        self.log_line(scope, reported, start, request_bytes, response_bytes, error)

    def log_line(
        self,
        scope: Scope,
        status: int,
        start: float,
        request_bytes: int,
        response_bytes: int,
        error: str | None = None,
    ) -> None:
        """Write the line of a finished request (shared with ``install()``'s pipeline).

        Args:
            scope: The request's scope.
            status: The status to report (:func:`~fastapi_enterprise.errors.final_status`).
            start: ``time.perf_counter()`` when the request came in.
            request_bytes: Body bytes received.
            response_bytes: Body bytes sent.
            error: Why no complete response went out, if so.
        """
        error = scope.get(UNHANDLED_ERROR_KEY, error)
        duration = time.perf_counter() - start
        slow = self.slow_seconds is not None and duration > self.slow_seconds
        level = (
            logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        )
        if slow:
            level = max(level, logging.WARNING)
        route = route_template(scope)
        if level == logging.INFO:
            rate = self.sample_routes.get(route, self.sample_rate)
            if rate < 1.0 and self.chance() >= rate:
                return
        if not self.logger.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": route,
            "path": self._path(scope),
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "client_ip": client_address(scope),
            "user_agent": self._user_agent(scope),
            "http_version": scope.get("http_version", "1.1"),
        }
        if slow:
            fields["slow"] = True
        if error is not None:
            fields["error"] = error
        bound = get_request_fields()
        if bound:
            # A bound field named like a LogRecord attribute (``name``) becomes ``name_``.
            fields.update(safe_extra(bound))
        logger = self.logger
        direct = _direct_handler(logger)
        if direct is not None:
            # configure_logging()'s pipeline is the only listener: render the line
            # straight from the fields, without a LogRecord in between.
            direct.submit(logger.name, level, _EVENT, fields)
            return
        # makeRecord + handle: Logger.log() would walk the stack to find the caller,
        # which costs more than the rest of this line and says nothing useful here.
        logger.handle(
            logger.makeRecord(logger.name, level, __file__, 0, _EVENT, (), None, extra=fields)
        )

    def _path(self, scope: Scope) -> str:
        path: str = scope.get("path", "")
        query: bytes = scope.get("query_string", b"")
        if query:
            path = f"{path}?{self.redactor.query_string(query.decode('latin-1'))}"
        return path

    def _user_agent(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"user-agent":
                text: str = value[: self.user_agent_max_length].decode("latin-1")
                return text
        return None
