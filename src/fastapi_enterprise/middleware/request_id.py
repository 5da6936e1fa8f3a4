"""``RequestIDMiddleware``: an ID for every request, and a shield for unhandled errors.

Every HTTP response leaves with exactly one ``X-Request-ID`` header, including 404s,
405s, responses produced by other middleware and unhandled-exception 500s. An incoming
ID is reused only if it passes a strict, length-bounded check; otherwise a fresh,
time-ordered UUIDv7 is generated, so IDs sort by time in logs.

The ID is readable through :func:`fastapi_enterprise.get_request_id` and bound into
``structlog.contextvars`` for the request only.

Starlette answers unhandled exceptions in ``ServerErrorMiddleware``, outside every user
middleware, so its 500 would carry no request ID. This middleware therefore catches them
itself: it logs the traceback once (with the ID) and answers with the app's own 500
handler if one is registered, else a problem+json 500. It does not re-raise, so the
server does not log the same traceback a second time.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from fastapi_enterprise._http import is_header_name
from fastapi_enterprise.context import _enter_request, _exit_request, get_trace_ids
from fastapi_enterprise.errors import answer_exception
from fastapi_enterprise.security_events import SecurityEvent, security_event

__all__ = [
    "DEFAULT_REQUEST_ID_PATTERN",
    "RequestIDMiddleware",
    "generate_request_id",
    "parse_traceparent",
]

DEFAULT_REQUEST_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}"
"""Incoming IDs must match this in full: 8-128 characters, letters, digits and ``._:-``."""

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_TRACEPARENT = 55 + 64  # version 00 is 55 characters; later versions may append fields


class _RandomPool(threading.local):
    """Bytes from ``os.urandom``, fetched 4 KB at a time and handed out 8 at a time (as hex).

    One system call per 512 IDs instead of one per ID. ``os.urandom`` releases the GIL
    around ``getrandom()``; on a busy server pinned to one core, getting the GIL back from
    the log writer thread cost more than the rest of the request (the full stack served
    19% more requests per second with the pool; see the performance page). Per thread, so
    no lock; refilled after a fork, so a worker never reuses its parent's bytes.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self.buffer = ""  # hex digits: formatting is done once per 512 IDs
        self.offset = 0
        self.generation = -1

    def take16(self) -> str:
        """16 random hex digits (64 bits)."""
        offset = self.offset
        if offset >= len(self.buffer) or self.generation != _fork_generation:
            self.buffer = os.urandom(self.SIZE).hex()
            self.generation = _fork_generation
            offset = 0
        self.offset = offset + 16
        return self.buffer[offset : offset + 16]


_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation  # noqa: PLW0603 - one counter the pools compare against
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_random = _RandomPool()


def generate_request_id() -> str:
    """Return a new UUIDv7 (RFC 9562) string: random, unique, and sortable by time.

    The 48-bit millisecond timestamp is followed by 12 bits of sub-millisecond time
    (RFC 9562 section 6.2, method 3), so IDs generated in one process sort in order.
    """
    nanoseconds = time.time_ns()
    milliseconds, remainder = divmod(nanoseconds, 1_000_000)
    stamp = f"{milliseconds & 0xFFFF_FFFF_FFFF:012x}"
    random_digits = _random.take16()  # 62 of its 64 bits are used
    return (
        f"{stamp[:8]}-{stamp[8:]}-7{remainder * 4096 // 1_000_000:03x}-"
        f"{_VARIANT[random_digits[0]]}{random_digits[1:4]}-{random_digits[4:]}"
    )


# The variant's two bits (0b10) over the low two bits of a random hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def parse_traceparent(value: str) -> str | None:
    """Return the trace-id of a valid W3C ``traceparent`` header value, else ``None``.

    Follows W3C Trace Context level 1: version ``ff`` and all-zero trace or parent IDs are
    invalid; version ``00`` must have exactly four fields.
    """
    if len(value) > _MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    rest = value[match.end() :]
    if (version == "00" and rest) or (rest and not rest.startswith("-")):
        return None
    return trace_id


class RequestIDMiddleware:
    """Give every HTTP request an ID and every response exactly one ID header.

    Args:
        app: The ASGI app to wrap.
        header_name: Request and response header carrying the ID.
        trust_incoming: Reuse a valid incoming ID. Off: always generate.
        max_length: Longest incoming ID considered (checked before the pattern, so a
            10 KB header costs nothing).
        pattern: Regular expression an incoming ID must fully match.
        validator: Replaces ``pattern`` with your own check; receives the decoded value
            (already bounded by ``max_length``) and returns whether to reuse it.
        generator: Makes new IDs; defaults to :func:`generate_request_id` (UUIDv7).
        use_traceparent: "The request ID is the trace ID": when no valid ID header came
            in, reuse the trace-id of a valid W3C ``traceparent`` header, else the trace
            ID of the current OpenTelemetry span (FastAPI's server span, which also
            continued that header). Off (the default), the request ID is its own value
            beside the trace ID, and log lines carry both.

    Requests that carry the header more than once get a fresh ID: there is no safe way to
    choose between two values. Non-HTTP scopes (lifespan, websocket) pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = "X-Request-ID",
        trust_incoming: bool = True,
        max_length: int = 128,
        pattern: str = DEFAULT_REQUEST_ID_PATTERN,
        validator: Callable[[str], bool] | None = None,
        generator: Callable[[], str] = generate_request_id,
        use_traceparent: bool = False,
    ) -> None:
        if not is_header_name(header_name):
            raise ValueError(f"header_name {header_name!r} is not a valid HTTP header name")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.app = app
        self.header = header_name.lower().encode("latin-1")
        self.trust_incoming = trust_incoming
        self.max_length = max_length
        self.validator = validator or re.compile(pattern).fullmatch
        self.generator = generator
        self.use_traceparent = use_traceparent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; non-HTTP scopes pass through untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = self.request_id_for(scope)
        value = request_id.encode("latin-1")
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message = {**message, "headers": self.stamped(message.get("headers", ()), value)}
            await send(message)

        tokens = enter_request(request_id, scope)
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:  # noqa: BLE001 - the shield exists to catch everything
            await answer_exception(
                scope, receive, send_with_request_id, exc, response_started=response_started
            )
        finally:
            exit_request(tokens)

    def request_id_for(self, scope: Scope) -> str:
        """The request's ID: a valid incoming one, the trace's (if so configured), or new.

        Stage code this middleware and ``install()``'s fused pipeline share.
        """
        return self._incoming_id(scope) or self._trace_id(scope) or self.generator()

    def stamped(
        self, headers: Iterable[tuple[bytes, bytes]], value: bytes
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` with every ID header the app set replaced by exactly one, ``value``."""
        name = self.header
        kept = [item for item in headers if item[0].lower() != name]
        kept.append((name, value))
        return kept

    def _incoming_id(self, scope: Scope) -> str | None:
        if not self.trust_incoming:
            return None
        found: bytes | None = None
        traceparent: bytes | None = None
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == self.header:
                if found is not None:
                    _rejected(scope, "duplicated", len(found) + len(value))
                    return None  # ambiguous: there is no safe way to choose one
                found = value
            elif lowered == b"traceparent" and traceparent is None:
                traceparent = value
        if found is not None:
            if len(found) > self.max_length:
                _rejected(scope, "too_long", len(found))
            elif self.validator(candidate := found.decode("latin-1")):
                return candidate
            else:
                _rejected(scope, "invalid", len(found))
        if self.use_traceparent and traceparent is not None:
            return parse_traceparent(traceparent.decode("latin-1"))
        return None

    def _trace_id(self, scope: Scope) -> str | None:
        """The current trace's ID, when the request ID is the trace ID.

        Without ``trust_incoming``, only a trace this server started: a trace continued
        from an incoming ``traceparent`` carries an ID the client chose.
        """
        if not self.use_traceparent:
            return None
        ids = get_trace_ids()
        if ids is None:
            return None
        if not self.trust_incoming and any(
            name.lower() == b"traceparent" for name, _ in scope["headers"]
        ):
            return None
        return ids[0]


def enter_request(request_id: str, scope: Scope) -> tuple[Any, Any]:
    """Make ``request_id`` and ``scope`` the current request's (context and structlog)."""
    return _enter_request(request_id, scope), bind_contextvars(request_id=request_id)


def exit_request(tokens: tuple[Any, Any]) -> None:
    """Undo :func:`enter_request`."""
    reset_contextvars(**tokens[1])
    _exit_request(tokens[0])


def _rejected(scope: Scope, reason: str, length: int) -> None:
    # The value itself is never logged: it is attacker-controlled by definition.
    security_event(
        SecurityEvent.INVALID_REQUEST_ID,
        level=logging.INFO,
        reason=reason,
        length=length,
        method=scope.get("method"),
        path=scope.get("path", "")[:256],
    )
