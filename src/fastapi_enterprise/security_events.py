"""Security events: a dedicated logger and stable event names for what an auditor wants.

Every event is a structured record on the ``fastapi_enterprise.security`` logger with the
event name as its message and ``security_event`` set to the same name, so a SIEM can
alert on ``security_event="auth.failure"`` without parsing text. Values are fields,
never interpolated into the message.

A client can trigger some events at will (send a bad request ID, fail to log in); each
event name is therefore limited to ``max_per_second`` records per process, and the
first record after a burst carries ``suppressed=N``.
"""

from __future__ import annotations

import logging
import threading
import time
from enum import Enum
from typing import Any

from fastapi_enterprise._logging import safe_extra

__all__ = ["SECURITY_LOGGER", "SecurityEvent", "SecurityEventLogger", "security_event"]

SECURITY_LOGGER = "fastapi_enterprise.security"
"""Name of the stdlib logger security events are written to."""


class SecurityEvent(str, Enum):
    """The stable names of the security events the library emits."""

    AUTH_FAILURE = "auth.failure"
    """A request was answered 401 or 403."""

    RATE_LIMITED = "rate_limit.rejected"
    """A request was rejected by a rate limit."""

    INVALID_REQUEST_ID = "request_id.invalid"
    """An incoming request ID was rejected and replaced."""

    CORS_REJECTED = "cors.rejected"
    """A cross-origin request came from an origin that is not allowed."""

    DEPLOY_CHECK_WARNING = "deploy_check.warning"
    """The deploy check reported a finding at startup."""

    UNTRUSTED_FORWARDED_HEADERS = "proxy.untrusted_forwarded_headers"
    """Forwarding headers came from a peer that is not a trusted proxy (reported at most
    once per interval, with the number of such requests)."""


class SecurityEventLogger:
    """Writes security events with per-event flood control.

    Args:
        logger: The stdlib logger; ``fastapi_enterprise.security`` by default.
        max_per_second: Records per event name and second before suppression.
    """

    def __init__(self, logger: logging.Logger | None = None, *, max_per_second: int = 20) -> None:
        self.logger = logger or logging.getLogger(SECURITY_LOGGER)
        self.max_per_second = max_per_second
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int, int]] = {}  # name -> (second, sent, suppressed)

    def emit(
        self, event: SecurityEvent | str, *, level: int = logging.WARNING, **fields: Any
    ) -> None:
        """Write one event unless this name is over its rate; fields become attributes."""
        name = event.value if isinstance(event, SecurityEvent) else str(event)
        if not self.logger.isEnabledFor(level):
            return
        second = int(time.monotonic())
        with self._lock:
            window_second, sent, suppressed = self._windows.get(name, (second, 0, 0))
            if window_second != second:
                window_second, sent = second, 0
            if sent >= self.max_per_second:
                self._windows[name] = (window_second, sent, suppressed + 1)
                return
            self._windows[name] = (window_second, sent + 1, 0)
        extra = safe_extra(fields)
        extra["security_event"] = name
        if suppressed:
            extra["suppressed"] = suppressed
        self.logger.log(level, name, extra=extra)


_DEFAULT = SecurityEventLogger()


def security_event(
    event: SecurityEvent | str, *, level: int = logging.WARNING, **fields: Any
) -> None:
    """Record a security event on the shared security logger.

    Args:
        event: A :class:`SecurityEvent` or your own stable dotted name
            (``"account.locked"``).
        level: Log level; warning by default.
        **fields: Structured details (user ID, route, reason). Never pass secrets: the
            redactor masks secret-looking field names, but not a password under an
            innocent name.
    """
    _DEFAULT.emit(event, level=level, **fields)
