"""Request-scoped values, each owned by one ContextVar behind a public getter.

The middleware that knows a value sets it for the duration of one request and resets
it afterwards; everything else (log processors, error handlers, response models, the
app's own code) reads it through the getter. Nothing outside this module touches the
ContextVars directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import structlog
from opentelemetry.trace import get_current_span
from starlette.types import Scope

__all__ = [
    "bind_request",
    "continue_request",
    "get_csp_nonce",
    "get_request_fields",
    "get_request_id",
    "get_trace_ids",
]

_request_id: ContextVar[str | None] = ContextVar("fastapi_enterprise.request_id", default=None)
_scope: ContextVar[Scope | None] = ContextVar("fastapi_enterprise.scope", default=None)
# A dict shared by reference: a sync endpoint or dependency runs in a thread with a
# *copy* of the request's context, so a ContextVar.set() there would never reach the
# access log; mutating the one dict does.
_fields: ContextVar[dict[str, Any] | None] = ContextVar("fastapi_enterprise.fields", default=None)


_csp_nonce: ContextVar[str | None] = ContextVar("fastapi_enterprise.csp_nonce", default=None)


def get_csp_nonce() -> str | None:
    """Return the CSP nonce of the current request, for ``<script nonce="...">``.

    ``None`` outside a request, or when the policy that applies uses no nonce. Each
    request gets its own; concurrent requests never see each other's.
    """
    return _csp_nonce.get()


def _set_csp_nonce(nonce: str | None) -> Token[str | None]:
    return _csp_nonce.set(nonce)


def _reset_csp_nonce(token: Token[str | None]) -> None:
    _csp_nonce.reset(token)


def get_request_id() -> str | None:
    """Return the ID of the request being handled, or ``None`` outside a request.

    Works in async and sync endpoints, dependencies, background tasks and log
    processors alike: sync code runs in a thread that inherits the request's context.
    """
    return _request_id.get()


def get_trace_ids() -> tuple[str, str] | None:
    """Return ``(trace_id, span_id)`` of the current OpenTelemetry span, as lowercase hex.

    ``None`` when no sampled span is current (telemetry off, an excluded path, a trace
    the sampler dropped, outside a request): IDs of a trace nobody can open would only
    mislead. FastAPI's server span is current for the whole request, the access log's
    line after the response included. Log lines, exemplars and the request ID read it
    here.
    """
    context = get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def bind_request(**fields: Any) -> None:
    """Attach fields to the current request: they appear on its access-log line.

    Call it from an endpoint or dependency, async or sync (``bind_request(user_id=42)``).
    The fields are also bound into ``structlog.contextvars``, so log events emitted later
    in the same context carry them. Outside a request, only the structlog binding happens.
    """
    request_fields = _fields.get()
    if request_fields is not None:
        request_fields.update(fields)
    structlog.contextvars.bind_contextvars(**fields)


def get_request_fields() -> dict[str, Any]:
    """Return a copy of the fields bound with :func:`bind_request` to this request."""
    request_fields = _fields.get()
    return dict(request_fields) if request_fields is not None else {}


@contextmanager
def continue_request(request_id: str | None, **fields: Any) -> Iterator[None]:
    """Carry on, outside the request, work that a request started (a job on a worker).

    Inside the block :func:`get_request_id` returns ``request_id`` and every log line
    carries it and ``fields`` (``with continue_request(job.request_id, job_id=job.id):``),
    so the API's access line and the worker's lines of one job share the ID. Both are
    unbound when the block ends, exception or not. ``None`` binds only ``fields``.

    Args:
        request_id: The ID of the request that started the work, as stored with it.
        **fields: Further fields for the log lines of the block.

    Raises:
        ValueError: ``request_id`` is not an ID the request-ID middleware would accept
            (8-128 letters, digits and ``._:-``): an ID read back from a queue or a
            database is input like any other.
    """
    from fastapi_enterprise.middleware.request_id import (
        DEFAULT_REQUEST_ID_PATTERN,
    )  # (imports this module)

    if request_id is not None and re.fullmatch(DEFAULT_REQUEST_ID_PATTERN, request_id) is None:
        raise ValueError("request_id is not a valid request ID")
    bound = dict(fields)
    if request_id is not None:
        bound["request_id"] = request_id
    token = _request_id.set(request_id) if request_id is not None else None
    with structlog.contextvars.bound_contextvars(**bound):
        try:
            yield
        finally:
            if token is not None:
                _request_id.reset(token)


def _current_scope() -> Scope | None:
    return _scope.get()


def _enter_request(request_id: str, scope: Scope) -> tuple[Token[Any], ...]:
    return (_request_id.set(request_id), _scope.set(scope), _fields.set({}))


def _exit_request(tokens: tuple[Token[Any], ...]) -> None:
    request_id_token, scope_token, fields_token = tokens
    bound = _fields.get()
    if bound:
        # Fields bound in this context must not outlive the request in it.
        structlog.contextvars.unbind_contextvars(*bound)
    _fields.reset(fields_token)
    _scope.reset(scope_token)
    _request_id.reset(request_id_token)
