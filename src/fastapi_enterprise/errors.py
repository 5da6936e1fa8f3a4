"""One error shape: every error becomes an RFC 9457 ``application/problem+json`` body.

::

    {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No such course.",
        "instance": "/courses/42",
        "request_id": "0193...",
    }

:func:`register_exception_handlers` installs handlers for HTTP exceptions (keeping
headers such as ``Allow`` and ``WWW-Authenticate``) and request validation errors (the
``errors`` member lists location, message and type, never the submitted value). Unhandled
exceptions are answered by the innermost of the library's middleware that sees them
(the metrics, the access log, or the request-ID and security-header shields), all
through :func:`answer_exception`, so even a 500 carries the ID and what is reported is
what was sent; the traceback is logged exactly once.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from fastapi_enterprise.context import get_request_id
from fastapi_enterprise.routing import allowed_methods, route_template
from fastapi_enterprise.security_events import SecurityEvent, security_event

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "PROBLEM_CONTENT_TYPE",
    "UNHANDLED_ERROR_KEY",
    "ProblemResponse",
    "answer_exception",
    "error_response",
    "final_status",
    "http_exception_handler",
    "internal_error_response",
    "log_unhandled_exception",
    "problem_response",
    "register_exception_handlers",
    "request_validation_exception_handler",
    "unhandled_exception_response",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
"""The media type of every error body (RFC 9457 section 3)."""

UNHANDLED_ERROR_KEY = "fastapi_enterprise.unhandled_error"
"""Scope key naming the type of the unhandled exception of a request, once it is logged.

The layer that answered the exception sets it; layers outside that saw only the answer
(the access log) read it to say what failed."""

CLIENT_CLOSED_REQUEST = 499
"""The status reported when the client went away before the response was complete."""

_RESERVED = frozenset({"status", "request_id"})
_STANDARD = ("type", "title", "detail", "instance")
_NO_BODY = frozenset({204, 205, 304})
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_MAX_ERRORS = 100

logger = logging.getLogger("fastapi_enterprise.errors")


class ProblemResponse(JSONResponse):
    """A JSON response with the ``application/problem+json`` media type."""

    media_type = PROBLEM_CONTENT_TYPE


def _title(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def problem_response(
    status_code: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """Build a problem+json response; the current request ID is added automatically.

    Args:
        status_code: The HTTP status, repeated as the ``status`` member.
        title: Short summary; defaults to the status phrase (``Not Found``).
        detail: Human-readable explanation of this occurrence.
        type: URI identifying the problem type; ``about:blank`` means "see the status".
        instance: URI reference of this occurrence, usually the request path.
        headers: Extra response headers (``Allow``, ``WWW-Authenticate``, ``Retry-After``).
        extensions: Additional members. They cannot replace ``status`` or ``request_id``.

    Returns:
        A :class:`ProblemResponse`, or an empty response for statuses that forbid a body.
    """
    if status_code in _NO_BODY:
        return Response(status_code=status_code, headers=dict(headers or {}))
    body: dict[str, Any] = {"type": type, "title": title or _title(status_code)}
    body["status"] = status_code
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    request_id = get_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    body.update(
        (key, value)
        for key, value in (extensions or {}).items()
        if key not in _RESERVED and key not in _STANDARD
    )
    return ProblemResponse(body, status_code=status_code, headers=dict(headers or {}))


def _instance(scope: Scope) -> str:
    return quote(scope.get("path", "/"), safe=_PATH_SAFE)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Render an ``HTTPException`` as a problem, keeping its headers.

    A string ``detail`` becomes the ``detail`` member. A mapping ``detail`` is merged in,
    so ``HTTPException(409, detail={"type": "https://example.com/probs/taken",
    "detail": "Name taken", "field": "name"})`` produces a typed problem with an extension
    member. Any other detail (a list, a number) is kept under ``data``.
    """
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registration guard
        raise TypeError(f"expected an HTTPException, got {type(exc).__name__}")
    return _http_exception_response(request.scope, exc)


def _http_exception_response(scope: Scope, exc: StarletteHTTPException) -> Response:
    if exc.status_code in (401, 403):
        security_event(
            SecurityEvent.AUTH_FAILURE,
            status=exc.status_code,
            method=scope.get("method"),
            route=route_template(scope),
        )
    members: dict[str, Any] = {}
    detail: Any = exc.detail
    if isinstance(detail, Mapping):
        members = {str(key): value for key, value in detail.items()}
        detail = members.pop("detail", None)
    elif detail is not None and not isinstance(detail, str):
        members["data"] = detail
        detail = None
    if detail == _title(exc.status_code):
        detail = None  # Starlette's default detail repeats the title; say it once.
    headers = exc.headers
    if exc.status_code == 405:
        headers = _allow_every_method(scope, headers)
    return problem_response(
        exc.status_code,
        title=members.pop("title", None),
        detail=None if detail is None else str(detail),
        type=str(members.pop("type", "about:blank")),
        instance=str(members.pop("instance", _instance(scope))),
        headers=headers,
        extensions=members,
    )


def _allow_every_method(
    scope: Scope, headers: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """A routing 405's ``Allow``: every method the path serves, not the first route's.

    The router answers 405 with the methods of the first route whose path matched, so
    ``GET /notes`` and ``POST /notes`` as two routes told a ``DELETE`` ``Allow: GET``.
    A 405 the app raised itself (its route serves the method) keeps its own headers.
    """
    allowed = allowed_methods(scope)
    if not allowed or scope.get("method") in allowed:
        return headers
    kept = {name: value for name, value in (headers or {}).items() if name.lower() != "allow"}
    return {**kept, "Allow": ", ".join(allowed)}


async def request_validation_exception_handler(request: Request, exc: Exception) -> Response:
    """Render a ``RequestValidationError`` as a 422 problem with an ``errors`` list.

    Each error has ``loc``, ``msg`` and ``type`` only: the submitted ``input`` and the
    ``ctx`` (which can quote it) are dropped, so a password in a failed login body never
    comes back in the response.
    """
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registration guard
        raise TypeError(f"expected a RequestValidationError, got {type(exc).__name__}")
    raw = exc.errors()
    errors = [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
            "msg": str(error["msg"]),
            "type": str(error["type"]),
        }
        for error in raw[:_MAX_ERRORS]
    ]
    detail = f"The request is invalid: {len(raw)} error(s)."
    return problem_response(
        422,
        detail=detail,
        instance=_instance(request.scope),
        extensions={"errors": errors},
    )


def unhandled_exception_response(scope: Scope, exc: BaseException) -> Response:
    """The response for an exception that escaped the app and its handlers.

    An ``HTTPException`` raised by a middleware is answered with its own status. Anything
    else is a 500 with a generic title and the request ID, and its traceback is logged
    once, here, with the request ID and route template.
    """
    if isinstance(exc, StarletteHTTPException):
        return _http_exception_response(scope, exc)
    log_unhandled_exception(scope, exc)
    return internal_error_response(scope)


def internal_error_response(scope: Scope) -> Response:
    """The generic 500 problem: no exception type, message or traceback, just the ID."""
    return problem_response(
        500,
        detail="The server failed to handle this request. Quote the request ID when reporting it.",
        instance=_instance(scope),
    )


def final_status(sent: int | None, *, completed: bool, client_gone: bool) -> int:
    """The one status a request is reported with, in the access log and the metrics.

    Args:
        sent: The status of the ``http.response.start`` that was sent, if any.
        completed: Whether the last body chunk was sent.
        client_gone: Whether the client disconnected (or sending to it failed) before
            the response was complete.

    Returns:
        The status sent, for a complete response; ``499`` when the client went away
        first; otherwise ``500``: no response, or one that broke off mid-stream (its
        status line said ``200``, but the client got a truncated body).
    """
    if completed and sent is not None:
        return sent
    if client_gone:
        return CLIENT_CLOSED_REQUEST
    return 500


def log_unhandled_exception(scope: Scope, exc: BaseException) -> None:
    """Log an unhandled exception's traceback with the request ID and route template.

    Also records the exception's type in the scope (:data:`UNHANDLED_ERROR_KEY`), and
    on the current OpenTelemetry span when one is recording: the library answers the
    exception inside FastAPI's telemetry, which would otherwise see only a 500.
    """
    scope[UNHANDLED_ERROR_KEY] = type(exc).__name__
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, type(exc).__name__)
    request_id = get_request_id()
    route = route_template(scope)
    logger.error(
        "Unhandled %s in %s %s (request_id=%s)",
        type(exc).__name__,
        scope.get("method", "-"),
        route,
        request_id,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": request_id, "route": route},
    )


def register_exception_handlers(app: Starlette) -> None:
    """Make ``app`` answer HTTP and validation errors with problem+json bodies.

    Unhandled exceptions are not registered here: the request-ID middleware answers them
    (Starlette's own 500 handler runs outside every middleware and would drop the ID).
    """
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, request_validation_exception_handler)


async def answer_exception(
    scope: Scope, receive: Receive, send: Send, exc: Exception, *, response_started: bool
) -> None:
    """What an error shield does with an exception that escaped the app.

    Before the response started: send the answer of :func:`error_response`. After: too
    late for a 500 (the status line is gone), so the exception is logged once and the
    response ends; the server closes the connection on the incomplete body.

    The request-ID and security-header middleware answer here, and so do the access log
    and the metrics middleware, through their own ``send``: what they report is the
    answer that was sent, body size included.
    """
    if response_started:
        log_unhandled_exception(scope, exc)
        return
    response = await error_response(scope, exc)
    await response(scope, receive, send)


async def error_response(scope: Scope, exc: Exception) -> Response:
    """Answer an exception that escaped the app: the one place the error shields ask.

    An ``HTTPException`` keeps its status. For anything else the traceback is logged
    once, and the app's own handler for ``500``/``Exception`` answers if one is
    registered (a broken handler still yields the generic problem 500); otherwise the
    generic problem 500.
    """
    app = scope.get("app")
    handlers = getattr(app, "exception_handlers", {})
    handler = handlers.get(500) or handlers.get(Exception)
    if handler is None or isinstance(exc, StarletteHTTPException):
        return unhandled_exception_response(scope, exc)
    log_unhandled_exception(scope, exc)
    request = Request(scope)
    try:
        if _is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
    except Exception as handler_exc:  # noqa: BLE001 - a broken 500 handler still gets a 500
        log_unhandled_exception(scope, handler_exc)
        return internal_error_response(scope)
    if not isinstance(response, Response):
        return internal_error_response(scope)
    return response


def _is_async_callable(obj: object) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
