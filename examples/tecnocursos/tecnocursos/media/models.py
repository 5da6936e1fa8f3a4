"""Media files in the database (their bytes are in :mod:`tecnocursos.media.storage`)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import Base, UTCDateTime

__all__ = ["MediaFile", "MediaKind"]


class MediaKind(str, enum.Enum):
    """What a media file is, as its bytes say."""

    IMAGE = "image"
    AUDIO = "audio"


class MediaFile(Base):
    """An uploaded image or audio file."""

    __tablename__ = "media_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True, default=None
    )
    """The project it was uploaded for; the media outlives a deleted project."""
    kind: Mapped[MediaKind] = mapped_column(
        Enum(
            MediaKind,
            name="kind",
            native_enum=False,
            length=16,
            create_constraint=True,
            values_callable=lambda kinds: [kind.value for kind in kinds],
        )
    )
    content_type: Mapped[str] = mapped_column(String(100))
    """Detected from the bytes, never taken from the client."""
    size: Mapped[int] = mapped_column(BigInteger())
    sha256: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str] = mapped_column(String(255))
    """The client's file name, sanitised; only ever shown, never used as a path."""
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
