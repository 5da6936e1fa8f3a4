"""Media as clients see it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from tecnocursos.media.models import MediaKind

__all__ = ["MediaOut"]


class MediaOut(BaseModel):
    """A media file's metadata (the bytes are at ``/media/{id}/content``)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    project_id: int | None
    kind: MediaKind
    content_type: str
    size: int
    sha256: str
    original_name: str
    created_at: datetime
