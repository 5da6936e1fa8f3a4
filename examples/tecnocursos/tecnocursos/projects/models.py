"""Projects in the database."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import Base, UTCDateTime

__all__ = ["Project", "Visibility"]


class Visibility(str, enum.Enum):
    """Who may read a project."""

    PRIVATE = "private"
    """Its owner and admins only; anyone else gets 404."""

    PUBLIC = "public"
    """Every signed-in user."""


class Project(Base):
    """A course video: a titled, ordered list of scenes."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text(), default="")
    visibility: Mapped[Visibility] = mapped_column(
        Enum(
            Visibility,
            name="visibility",
            native_enum=False,
            length=16,
            create_constraint=True,
            values_callable=lambda values: [value.value for value in values],
        ),
        default=Visibility.PRIVATE,
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped on every change clients see: the ETag."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
