"""Request-scoped values, each owned by one ContextVar behind a public getter.

The middleware that knows a value sets it for the duration of one request and resets
it afterwards; everything else (log processors, error handlers, response models, the
app's own code) reads it through the getter. Nothing outside this module touches the
ContextVars directly.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["get_request_id"]

_request_id: ContextVar[str | None] = ContextVar("fastapi_enterprise.request_id", default=None)


def get_request_id() -> str | None:
    """Return the ID of the request being handled, or ``None`` outside a request.

    Works in async and sync endpoints, dependencies, background tasks and log
    processors alike: sync code runs in a thread that inherits the request's context.
    """
    return _request_id.get()


def _set_request_id(value: str) -> Token[str | None]:
    return _request_id.set(value)


def _reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)
