"""Database errors as problems: 409 for a conflict, 503 when down, 504 on a timeout.

One home for the classification, used by the session dependency, the session middleware
and the exception handler ``Database.install()`` registers:

- a unique, foreign-key, not-null or check violation (``IntegrityError``): **409**;
- a pool that hands out no connection within ``pool_timeout``, a refused or dropped
  connection, a server shutting down or out of connections, a deadlock, a busy SQLite
  file: **503** with ``Retry-After``;
- a statement cancelled by the statement timeout: **504**.

Anything else (a syntax error, a missing table) is a bug, left to the unhandled-error
path: a logged traceback and a 500. Problem bodies never quote the driver's message: it
can hold the values of the row (``Key (email)=(...) already exists``) or a host name.
Logged messages pass through the redactor, with the URL and its password masked.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.responses import Response

from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.redaction import DEFAULT_REDACTOR, mask_dsn_in_text

__all__ = ["DatabaseProblem", "classify", "is_network_error", "problem_for", "safe_message"]

logger = logging.getLogger("fastapi_enterprise.database")

Kind = Literal["conflict", "unavailable", "timeout"]

# PostgreSQL SQLSTATEs: query_canceled (the statement timeout); connection exceptions
# (class 08), insufficient resources (53, "too many connections"), operator
# intervention (57P01-57P05: shutdown, crash, cannot connect now), and the two
# transaction rollbacks a retry cures (serialization failure, deadlock).
_PG_TIMEOUT = frozenset({"57014"})
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P")
_PG_RETRY = frozenset({"40001", "40P01"})
# MySQL/MariaDB error numbers: 1969 (MariaDB max_statement_time), 3024 (MySQL
# max_execution_time); 1040 too many connections, 1053 shutdown, 1205 lock wait
# timeout, 1213 deadlock, 2002/2003 cannot connect, 2006/2013 server gone or lost,
# 2055 lost connection at handshake.
_MYSQL_TIMEOUT = frozenset({1969, 3024})
_MYSQL_UNAVAILABLE = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
_SQLITE_BUSY = ("database is locked", "database table is locked")

_DETAILS = {
    "conflict": "The request conflicts with data already stored (a uniqueness or "
    "reference constraint).",
    "unavailable": "The database is unavailable; try again later.",
    "timeout": "The database did not answer in time.",
}
_STATUS = {"conflict": 409, "unavailable": 503, "timeout": 504}


class DatabaseProblem(HTTPException):
    """An HTTP error standing for a database error the client can act on.

    Raised by the session dependency and the session middleware in place of the
    driver's error (kept as ``__cause__``); ``install()``'s handlers answer it as a
    problem+json body, FastAPI's default handler as ``{"detail": ...}``.

    Attributes:
        kind: ``conflict`` (409), ``unavailable`` (503, with ``Retry-After``) or
            ``timeout`` (504).
    """

    def __init__(self, kind: Kind, *, retry_after: int) -> None:
        self.kind = kind
        headers = {"Retry-After": str(retry_after)} if kind == "unavailable" else None
        super().__init__(_STATUS[kind], detail=_DETAILS[kind], headers=headers)

    def response(self) -> Response:
        """This problem as a problem+json response (for answers outside FastAPI's handlers)."""
        return problem_response(self.status_code, detail=self.detail, headers=self.headers)


def classify(error: BaseException) -> Kind | None:
    """What kind of database problem ``error`` is, or ``None`` for a bug (a 500)."""
    if isinstance(error, sa_exc.IntegrityError):
        return "conflict"
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection within pool_timeout
        return "unavailable"
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return "unavailable"
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_TIMEOUT:
            return "timeout"
        if sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES) or sqlstate in _PG_RETRY:
            return "unavailable"
    args = getattr(original, "args", ())
    code = args[0] if args else None
    if isinstance(code, int) and not isinstance(code, bool):
        if code in _MYSQL_TIMEOUT:
            return "timeout"
        if code in _MYSQL_UNAVAILABLE:
            return "unavailable"
    if isinstance(error, sa_exc.OperationalError) and any(
        busy in str(original) for busy in _SQLITE_BUSY
    ):
        return "unavailable"
    if _caused_by_network(error):
        return "unavailable"
    return None


# What async drivers raise as they are, not as DBAPI errors, when the socket fails:
# asyncpg's refused or timed-out connect and its command_timeout (OSError,
# TimeoutError), and under uvloop a write on a socket the server reset (aiomysql:
# "RuntimeError: unable to perform operation on <TCPTransport closed=True ...>").
# SQLAlchemy only recognises DBAPI errors as disconnects: unrecognised, these errors
# were 500s, and a dead pooled connection failed its pre-ping forever instead of being
# replaced (``_drivers`` makes them disconnects with this same test).
_NETWORK_ERRORS = (OSError, TimeoutError, asyncio.TimeoutError)


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` itself is a socket failure (refused, reset, DNS, timeout)."""
    if isinstance(error, _NETWORK_ERRORS):
        return True
    return isinstance(error, RuntimeError) and "Transport closed=True" in str(error)


def _caused_by_network(error: BaseException) -> bool:
    """Whether a socket failure (:func:`is_network_error`) is in ``error``'s chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_network_error(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def problem_for(error: BaseException, *, retry_after: int, url: str = "") -> DatabaseProblem | None:
    """The problem standing for ``error`` (logged here), or ``None`` if it is a bug."""
    kind = classify(error)
    if kind is None:
        return None
    if kind != "conflict":
        # The client gets a generic detail; operators get the reason, masked.
        logger.warning(
            "Database %s: %s",
            "unavailable" if kind == "unavailable" else "statement timeout",
            safe_message(error, url),
            extra={"db_error": type(error).__name__, "status": _STATUS[kind]},
        )
    return DatabaseProblem(kind, retry_after=retry_after)


def safe_message(error: BaseException, url: str = "") -> str:
    """``error``'s type and message, with ``url``, its password and other secrets masked.

    SQLAlchemy appends the statement and a documentation link to driver errors; only the
    driver's own first line is kept.
    """
    original = getattr(error, "orig", None) or error
    lines = (str(original) or repr(original)).strip().splitlines()
    text = lines[0] if lines else ""
    if url:
        text = mask_dsn_in_text(text, url)
    return f"{type(original).__name__}: {DEFAULT_REDACTOR.text(text)[:300]}"
