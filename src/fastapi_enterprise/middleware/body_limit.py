"""``BodyLimitMiddleware``: a request body can be neither too large nor too slow.

Starlette reads whatever a client sends. This layer, before the app reads a byte:

- answers 400 to a ``Content-Length`` that is negative, non-numeric, absurdly long, or
  given twice with different values (a request-smuggling signal);

and while the app reads:

- raises a 413 as soon as the route's limit is crossed (a declared length over it, or a
  chunked body growing past it), so reading stops and memory stays bounded;
- raises a 408 when the body has not fully arrived within ``read_timeout`` seconds.

Per-route limits: by route template in ``route_limits``, or on the endpoint with the
:func:`body_limit` decorator. The route is known when the app first reads the body, so
a per-route limit still rejects a declared length before a byte is read. A body the app
never reads is never read at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.routing import UNMATCHED_ROUTE, route_template

__all__ = ["BodyLimitMiddleware", "body_limit"]

_ATTRIBUTE = "__fastapi_enterprise_body_limit__"
_MAX_DIGITS = 19
F = TypeVar("F", bound=Callable[..., Any])


def body_limit(max_bytes: int) -> Callable[[F], F]:
    """Give one endpoint its own body limit (larger for uploads, smaller for logins).

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

    def limit_for(self, scope: Scope) -> int:
        """The limit for the route that handles ``scope``; the default before routing."""
        template = route_template(scope) if self.route_limits else UNMATCHED_ROUTE
        return self.limit_for_route(template, getattr(scope.get("route"), "endpoint", None))

    def limit_for_route(self, template: str, endpoint: object) -> int:
        """The limit of the route ``template`` served by ``endpoint`` (as OpenAPI documents it).

        The endpoint's :func:`body_limit` wins, then ``route_limits``, then ``max_bytes``.
        """
        marked = getattr(endpoint, _ATTRIBUTE, None)
        if isinstance(marked, int):
            return marked
        return self.route_limits.get(template, self.max_bytes)

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
