"""Scenes as clients send and see them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tecnocursos.core.database import NO_NUL, RowId

__all__ = ["MAX_DURATION_SECONDS", "ReorderIn", "SceneIn", "SceneOut", "ScenePatch", "SceneSort"]

MAX_DURATION_SECONDS = 24 * 60 * 60

SceneSort = Literal["position", "-position", "title", "-title", "created_at", "-created_at"]
"""The orders a scene list accepts (``-`` for descending); anything else is a 422."""


class SceneIn(BaseModel):
    """A new scene; without ``position`` it goes last, with one the later scenes move down.

    Numbers are strict: ``true`` or ``"5"`` is a 422, as the schema says, not a 1 or a 5.
    """

    # The documented example (Postman's body) shows no image: one must be uploaded first.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Introduction", "script": "Welcome to the course.", "duration_seconds": 5}
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    script: str = Field(default="", max_length=20_000, pattern=NO_NUL)
    duration_seconds: int = Field(default=0, ge=0, le=MAX_DURATION_SECONDS, strict=True)
    position: int | None = Field(default=None, ge=0, le=100_000, strict=True)
    image_id: RowId | None = None
    """An image you uploaded (``POST /media``), shown on the scene's slide."""


class ScenePatch(BaseModel):
    """Changes to a scene: only the fields sent change (the order has its own route)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    script: str | None = Field(default=None, max_length=20_000, pattern=NO_NUL)
    duration_seconds: int | None = Field(default=None, ge=0, le=MAX_DURATION_SECONDS, strict=True)
    image_id: RowId | None = None
    """Another uploaded image for the slide."""


class ReorderIn(BaseModel):
    """Every scene id of the project, in the new order."""

    model_config = ConfigDict(extra="forbid")

    scene_ids: list[RowId] = Field(max_length=10_000)

    @field_validator("scene_ids")
    @classmethod
    def _distinct(cls, scene_ids: list[int]) -> list[int]:
        if len(set(scene_ids)) != len(scene_ids):
            raise ValueError("scene ids must not repeat")  # no value echoed
        return scene_ids


class SceneOut(BaseModel):
    """A scene."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    position: int
    title: str
    script: str
    duration_seconds: int
    image_id: int | None
    created_at: datetime
    updated_at: datetime
