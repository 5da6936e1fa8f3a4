"""Scenes in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import Base, UTCDateTime

__all__ = ["Scene"]


class Scene(Base):
    """One scene of a project, at a position unique within it (0, 1, ... n-1)."""

    __tablename__ = "scenes"
    __table_args__ = (
        # An explicit name: the convention's uq pattern names only the first column.
        UniqueConstraint("project_id", "position", name="uq_scenes_project_id_position"),
        CheckConstraint("position >= 0", name="position_not_negative"),
        CheckConstraint("duration_seconds >= 0", name="duration_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The unique constraint's index (project_id first) serves the lookups by project.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    script: Mapped[str] = mapped_column(Text(), default="")
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_files.id", ondelete="SET NULL"), index=True, default=None
    )
    """An uploaded image shown on the scene's slide; deleting the media clears it."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped on every change clients see, a move included: the ETag."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
