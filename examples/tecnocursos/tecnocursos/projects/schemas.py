"""Projects as clients send and see them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tecnocursos.core.database import NO_NUL
from tecnocursos.projects.models import Visibility

__all__ = ["ProjectIn", "ProjectOut", "ProjectPatch"]


class ProjectIn(BaseModel):
    """A new project."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    description: str = Field(default="", max_length=10_000, pattern=NO_NUL)
    visibility: Visibility = Visibility.PRIVATE


class ProjectPatch(BaseModel):
    """Changes to a project: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=10_000, pattern=NO_NUL)
    visibility: Visibility | None = None


class ProjectOut(BaseModel):
    """A project."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    title: str
    description: str
    visibility: Visibility
    created_at: datetime
    updated_at: datetime
