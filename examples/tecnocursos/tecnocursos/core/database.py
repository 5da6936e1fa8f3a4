"""The database: one :class:`~fastapi_enterprise.database.Database` per app, and the models' base.

Routes take ``session: Session``: a session committed before the response is sent, rolled
back on any exception, from the ``Database`` that :func:`tecnocursos.core.app.create_app`
installed on the app (so each app, and each test, has its own): the library's
``installed_session()`` finds it from the request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Protocol

from fastapi import Path
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from starlette.requests import Request

from fastapi_enterprise.database import Database, installed_database, installed_session
from tecnocursos.core.settings import TecnoCursosSettings

__all__ = [
    "DATABASE_NAME",
    "MAX_ID",
    "NO_NUL",
    "Base",
    "IdPath",
    "ReadSession",
    "RowId",
    "Session",
    "UTCDateTime",
    "Versioned",
    "apply_patch",
    "create_database",
    "get_database",
]

# Named constraints: migrations create, compare and drop them identically on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The base of every model; its metadata is what the migrations must produce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back timezone-aware (UTC).

    SQLite and MariaDB have no time zone in their column types; storing naive UTC
    everywhere and attaching UTC on the way out makes comparisons with
    ``datetime.now(timezone.utc)`` work on all three backends.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC; refuse a naive one (ambiguous)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Attach UTC to what the database returns."""
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - every driver gives datetimes
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return value.replace(tzinfo=timezone.utc)


MAX_ID = 2**31 - 1
"""The largest value of an ``Integer`` id column on every backend (PostgreSQL's and
MariaDB's ``INT``). A larger id in a request is a 422, not a query: SQLite raises
``OverflowError`` past 2**63 and asyncpg refuses a parameter past the column's range,
both unhandled 500s."""

NO_NUL = r"^[^\x00]*$"
"""The ``pattern`` of every text field and query the database sees: no NUL character.
PostgreSQL's text types cannot hold one (asyncpg refuses the parameter: a 500), while
SQLite and MariaDB store it; a 422 naming the field is the same answer everywhere."""

RowId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]
"""An id in a JSON body: an integer (``true`` or ``"5"`` is refused) from 1 to :data:`MAX_ID`."""

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in the URL path: 1 to :data:`MAX_ID`, anything else a 422 problem."""


DATABASE_NAME = "tecnocursos"
"""The ``Database``'s name: the ``pool`` label of its metrics, its readiness check."""


class Versioned(Protocol):
    """A row whose ``version`` (its ETag) changes with every change of its fields."""

    version: int
    updated_at: datetime


def apply_patch(row: Versioned, patch: BaseModel, *, now: datetime) -> bool:
    """Set the fields ``patch`` sets (``None`` means unchanged) on ``row``.

    A real change bumps ``row.version`` (and so its ETag) and ``updated_at``; setting a
    field to the value it already has changes nothing. Returns whether anything changed.
    """
    changes = {
        name: value
        for name, value in patch.model_dump(exclude_unset=True).items()
        if value is not None
    }
    if not any(getattr(row, name) != value for name, value in changes.items()):
        return False
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at = now
    return True


def create_database(settings: TecnoCursosSettings) -> Database:
    """Build the app's ``Database`` from ``settings.database`` (no engine until startup)."""
    return Database(settings.database, name=DATABASE_NAME)


def get_database(request: Request) -> Database:
    """The ``Database`` of the app serving ``request`` (installed by ``create_app``)."""
    return installed_database(request.app, DATABASE_NAME)


# --8<-- [start:sessions]
Session = Annotated[AsyncSession, installed_session(name=DATABASE_NAME)]
"""The per-request session: committed before the response is sent, rolled back on any
exception; errors the client can act on become problems (409, 503, 504)."""

ReadSession = Annotated[AsyncSession, installed_session(name=DATABASE_NAME, read_only=True)]
"""A session that never commits: writes raise ``ReadOnlyError``."""
# --8<-- [end:sessions]
