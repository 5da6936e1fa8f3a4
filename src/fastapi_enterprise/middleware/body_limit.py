"""``BodyLimitMiddleware``: a request body can be neither too large nor too slow.

Starlette reads whatever a client sends. This layer, before the app reads a byte:

- answers 400 to a ``Content-Length`` that is negative, non-numeric, absurdly long, or
  given twice with different values (a request-smuggling signal);

and while the app reads:

- raises a 413 as soon as the route's limit is crossed (a declared length over it, or a
  chunked body growing past it), so reading stops and memory stays bounded;
- raises a 408 when the body has not fully arrived within ``read_timeout`` seconds.

Per-route limits: FastAPI's own ``max_body_size`` (on the route decorator or its
``APIRouter``), by route template in ``route_limits``, or on the endpoint with the
:func:`body_limit` decorator. A declared ``Content-Length`` over the limit of the route
that will handle the request is answered 413 before the app runs (the route is found the
way the router will find it); a chunked body is counted as the app reads it. A body the
app never reads is never read at all.

What FastAPI (>= 0.165) does itself, it keeps doing: its ``max_body_size`` counter stays
in place, and when it trips (on a route whose limit only FastAPI knows) the library's
exception handlers answer its 413 in problem+json. This layer keeps what FastAPI does not
do: the 400 on a malformed or conflicting ``Content-Length``, the 408 on a slow body, and
the early 413 on a declared length. It also counts streamed bytes itself: it sits in
front of the rate limiter and the metrics' body counters, so an oversized upload stops
here, before FastAPI's counter (inside the router) would ever see the bytes; and Starlette
answers a declared length over FastAPI's limit with a plain-text 413 that replaces any
response, which this layer prevents by answering first, in problem+json.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.routing import UNMATCHED_ROUTE, RouteMatcher, route_template

__all__ = ["BodyLimitMiddleware", "body_limit", "check_fastapi_limits", "declared_limit"]

_ATTRIBUTE = "__fastapi_enterprise_body_limit__"
_MAX_DIGITS = 19
F = TypeVar("F", bound=Callable[..., Any])


def body_limit(max_bytes: int) -> Callable[[F], F]:
    """Give one endpoint its own body limit (larger for uploads, smaller for logins).

    Prefer FastAPI's own ``@app.post(..., max_body_size=...)``: it is the same limit,
    known to FastAPI too. ``install()`` refuses to start when the route also declares a
    different ``max_body_size``.

    Example:
        ```python
        @app.post("/videos")
        @body_limit(500 * 1024 * 1024)
        async def upload(file: UploadFile) -> dict[str, str]: ...
        ```
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, max_bytes)
        return endpoint

    return mark


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=f"The request body is larger than {limit} bytes.",
            headers={"Connection": "close"},
        )


class _BodyTooSlow(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            detail=f"The request body did not arrive within {seconds:g} seconds.",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Bound the size and the arrival time of request bodies.

    Args:
        app: The ASGI app to wrap.
        max_bytes: Default limit for every route.
        route_limits: Route template to limit, e.g. ``{"/videos": 500_000_000}``.
        read_timeout: Seconds the whole body may take to arrive; ``None`` for no limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = 1_048_576,
        route_limits: Mapping[str, int] | None = None,
        read_timeout: float | None = 30.0,
    ) -> None:
        limits = dict(route_limits or {})
        if max_bytes < 0 or any(limit < 0 for limit in limits.values()):
            raise ValueError("body limits must be >= 0")
        if read_timeout is not None and read_timeout <= 0:
            raise ValueError("read_timeout must be positive")
        self.app = app
        self.max_bytes = max_bytes
        self.route_limits = limits
        self.read_timeout = read_timeout
        self._matcher = RouteMatcher()

    def limit_for(self, scope: Scope) -> int:
        """The limit for the route that handles ``scope``; the default before routing."""
        route = scope.get("route")
        template = route_template(scope) if self.route_limits else UNMATCHED_ROUTE
        return self.limit_for_route(
            template, getattr(route, "endpoint", None), declared_limit(scope, route)
        )

    def limit_for_route(
        self, template: str, endpoint: object, max_body_size: int | None = None
    ) -> int:
        """The limit of the route ``template`` served by ``endpoint`` (as OpenAPI documents it).

        The endpoint's :func:`body_limit` wins, then ``route_limits``, then the route's
        FastAPI ``max_body_size`` (``max_body_size``, when given), then ``max_bytes``.
        """
        library = _library_limit(self, template, endpoint)
        if library is not None:
            return library
        return self.max_bytes if max_body_size is None else max_body_size

    def _limit_before_routing(self, scope: Scope) -> int:
        template, endpoint, context = self._matcher.match_context(scope)
        return self.limit_for_route(template, endpoint, _context_limit(context))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then police the body as the app reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, error = _declared_length(scope)
        if error is not None:
            await problem_response(400, detail=error, headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        if declared:  # an empty body is under every limit: no route lookup
            limit = self._limit_before_routing(scope)
            if declared > limit:
                # Before the app: FastAPI's own counter would answer in plain text.
                await problem_response(
                    413, detail=_BodyTooLarge(limit).detail, headers={"Connection": "close"}
                )(scope, receive, send)
                return
        responder = _Responder(self, scope, receive, declared)
        await self.app(scope, responder.receive, send)


class _Responder:
    """Per-request state of the limited ``receive``."""

    def __init__(
        self, policy: BodyLimitMiddleware, scope: Scope, receive: Receive, declared: int | None
    ) -> None:
        self.policy = policy
        self.scope = scope
        self.upstream = receive
        self.declared = declared
        self.limit: int | None = None
        self.received = 0
        self.complete = False
        self.deadline: float | None = None

    async def receive(self) -> Message:
        if self.complete:
            return await self.upstream()  # e.g. waiting for http.disconnect while streaming
        if self.limit is None:
            self.limit = self.policy.limit_for(self.scope)
            if self.declared is not None and self.declared > self.limit:
                raise _BodyTooLarge(self.limit)
            if self.policy.read_timeout is not None:
                self.deadline = time.monotonic() + self.policy.read_timeout
        message = await self._next()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise _BodyTooLarge(self.limit)
            if not message.get("more_body", False):
                self.complete = True
        return message

    async def _next(self) -> Message:
        timeout = self.policy.read_timeout
        if self.deadline is None or timeout is None:
            return await self.upstream()
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            with anyio.move_on_after(remaining):
                return await self.upstream()
        raise _BodyTooSlow(timeout)


def declared_limit(scope: Scope, route: object) -> int | None:
    """FastAPI's ``max_body_size`` for ``route`` (after routing), ``None`` when it has none.

    For a route of an included router it is the prefix-resolved context's limit (the
    route's own, else its routers'); for a route of the app itself, the route's own.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        if context is not None and getattr(context, "original_route", None) is route:
            return _context_limit(context)
    return _context_limit(route)


def _context_limit(context: object) -> int | None:
    limit = getattr(context, "max_body_size", None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _declared_length(scope: Scope) -> tuple[int | None, str | None]:
    values = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
    if not values:
        return None, None
    parsed = set()
    for value in values:
        text = value.strip()
        if not text.isdigit() or len(text) > _MAX_DIGITS:
            return None, "The Content-Length header is not a non-negative integer."
        parsed.add(int(text))
    if len(parsed) > 1:
        return None, "The request has conflicting Content-Length headers."
    return parsed.pop(), None


def check_fastapi_limits(app: object, limits: BodyLimitMiddleware) -> None:
    """Check that FastAPI's ``max_body_size`` and ``limits`` are one truth for ``app``.

    Read-only on the routes (a router may be shared by several apps), called by
    ``install()`` and again at startup, once every route exists:

    - the app-level ``FastAPI(max_body_size=...)`` must equal ``limits.max_bytes`` (or be
      unset, as ``settings.fastapi_kwargs()`` leaves it). FastAPI applies it twice: in
      its router (stamped on each route, where it composes with this layer) and in an
      outermost layer that replaces any response to a declared length over it, even this
      layer's problem+json 413, with a plain-text one. The outermost copy is switched off;
    - a route with a limit from ``route_limits`` or :func:`body_limit` must not declare a
      different ``max_body_size``, nor carry an app-level one stamped by FastAPI that is
      smaller (FastAPI's counter would refuse what the settings allow).

    Raises:
        ValueError: The app-level limit differs from ``max_bytes``; a route declares a
            ``max_body_size`` other than its ``route_limits`` or :func:`body_limit` value;
            or the app-level ``max_body_size`` caps such a route below its limit.
    """
    app_limit = getattr(app, "max_body_size", None)
    if app_limit is not None:
        if app_limit != limits.max_bytes:
            raise ValueError(
                f"FastAPI(max_body_size={app_limit}) differs from body_limit.max_bytes="
                f"{limits.max_bytes}; pass settings.fastapi_kwargs() to FastAPI, or set one"
            )
        app.max_body_size = None  # type: ignore[attr-defined]
    router = getattr(app, "router", None)
    if router is None:
        return
    from fastapi.routing import APIRoute, iter_route_contexts

    stamped = getattr(router, "max_body_size", None)
    for context in iter_route_contexts(router.routes):
        route = getattr(context, "original_route", context)
        template = getattr(context, "path_format", None)
        if not isinstance(route, APIRoute) or not isinstance(template, str):
            continue
        wanted = _library_limit(limits, template, route.endpoint)
        if wanted is None or route.max_body_size is None or route.max_body_size == wanted:
            continue
        if route.max_body_size == stamped:
            # FastAPI copies its app-level limit onto every route: not a declaration.
            if stamped < wanted:
                raise ValueError(
                    f"FastAPI(max_body_size={stamped}) caps route {template} below its body "
                    f"limit {wanted} from body_limit.routes or @body_limit; leave FastAPI's "
                    "app-level max_body_size unset (settings.fastapi_kwargs() does)"
                )
            continue
        raise ValueError(
            f"route {template} declares max_body_size={route.max_body_size} but its body "
            f"limit from body_limit.routes or @body_limit is {wanted}; keep one of them"
        )


def _library_limit(limits: BodyLimitMiddleware, template: str, endpoint: object) -> int | None:
    """The limit :func:`body_limit` or ``route_limits`` gives the route, if any."""
    marked = getattr(endpoint, _ATTRIBUTE, None)
    if isinstance(marked, int):
        return marked
    return limits.route_limits.get(template)
