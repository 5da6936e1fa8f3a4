"""Stdlib logging helpers: structured ``extra`` fields, and the package logger's handler."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from fastapi_enterprise.redaction import DEFAULT_REDACTOR

__all__ = ["RECORD_ATTRIBUTES", "UnheardErrorHandler", "safe_extra"]

RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
"""Attributes every LogRecord has: logging raises KeyError when ``extra`` repeats one."""


def safe_extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``fields`` usable as ``extra=``: reserved names get a trailing underscore."""
    return {f"{key}_" if key in RECORD_ATTRIBUTES else key: value for key, value in fields.items()}


class UnheardErrorHandler(logging.Handler):
    """The package logger's handler: silent, except for errors no other handler hears.

    A library must not configure logging by surprise, so the usual choice is a
    ``NullHandler``. But a ``NullHandler`` also stops Python's ``logging.lastResort``,
    and the library's error shield answers an unhandled exception itself (the server
    never sees it): an app that has not configured logging would lose every traceback,
    where bare FastAPI prints them. This handler writes an error record (with its
    traceback) to standard error only when no other handler on the record's way to the
    root would take it; debug, info and warning records are never written. Once the app
    configures logging (``logging.basicConfig``, ``dictConfig``, ``configure_logging()``)
    it stays quiet, so nothing is written twice. What it writes passes through the
    shared redactor, as configured logs do. Access lines are never written here:
    a 500's line says less than the traceback written with it.
    """

    QUIET = frozenset({"fastapi_enterprise.access"})

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to standard error unless another handler takes it."""
        if record.name in self.QUIET or self._heard_elsewhere(record):
            return
        try:
            stream = sys.stderr
            stream.write(f"{DEFAULT_REDACTOR.text(self.format(record))}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must not raise into the app
            self.handleError(record)

    def _heard_elsewhere(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if (
                    handler is not self
                    and not isinstance(handler, (logging.NullHandler, UnheardErrorHandler))
                    and record.levelno >= handler.level
                ):
                    return True
            logger = logger.parent if logger.propagate else None
        return False
