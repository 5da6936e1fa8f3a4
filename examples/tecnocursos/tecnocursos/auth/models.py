"""Accounts in the database: users and their refresh tokens."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tecnocursos.core.database import Base, UTCDateTime

__all__ = ["RefreshToken", "Role", "User", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(timezone.utc)


class Role(str, enum.Enum):
    """What a user may do."""

    ADMIN = "admin"
    """Everything, including every user's data."""

    INSTRUCTOR = "instructor"
    """Writes courses."""

    STUDENT = "student"
    """Reads courses (the role a registration gets)."""


class User(Base):
    """An account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    """Lower-cased at registration, so uniqueness ignores case on every backend."""
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="role",
            native_enum=False,
            length=16,
            create_constraint=True,
            values_callable=lambda roles: [role.value for role in roles],
        ),
        default=Role.STUDENT,
    )
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Failed logins since ``last_failed_login_at`` started a window."""
    last_failed_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RefreshToken(Base):
    """One refresh token, stored as the SHA-256 of the random value the client holds.

    Tokens issued by one login form a family: each refresh revokes the token used and
    issues its successor (``replaced_by``); presenting a revoked token again revokes the
    whole family (RFC 9700 section 4.14.2, refresh token rotation).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    replaced_by: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
