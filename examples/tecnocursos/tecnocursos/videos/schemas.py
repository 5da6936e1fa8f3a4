"""Video jobs as clients send and see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tecnocursos.videos.jobs import JobState, VideoJob

__all__ = ["JobError", "JobOut", "JobProgress", "VideoIn"]


class VideoIn(BaseModel):
    """A render request."""

    model_config = ConfigDict(extra="forbid")

    language: Literal["pt", "en"] = "pt"
    """The narration's language: Brazilian Portuguese or English."""


class JobProgress(BaseModel):
    """How far a render is."""

    percent: int = Field(ge=0, le=100)
    scene: int | None
    """The scene being rendered, from 1 (``None`` when not running)."""
    scenes: int


class JobError(BaseModel):
    """Why the last attempt failed: a problem detail (RFC 9457 members plus ``scene``)."""

    type: str = "about:blank"
    title: str
    detail: str | None = None
    scene: int | None = None
    """The scene to blame, from 1, when one is."""
    attempt: int | None = None
    max_attempts: int | None = None


class JobOut(BaseModel):
    """A video job."""

    id: int
    project_id: int
    state: JobState
    language: str
    progress: JobProgress
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    render_seconds: float | None
    """Wall time of the successful render."""
    video_seconds: float | None
    """Duration of the finished video."""
    size: int | None
    """Bytes of the finished MP4."""
    warnings: list[str]
    error: JobError | None
    """The last failure; kept while a retry is queued, so the reason is visible."""
    file_url: str | None
    """Where the MP4 is served (with range requests) once the job succeeded."""
    events_url: str
    """The live-progress stream (Server-Sent Events)."""

    @classmethod
    def of(cls, job: VideoJob) -> JobOut:
        """The representation of ``job``."""
        error: dict[str, Any] | None = job.error
        return cls(
            id=job.id,
            project_id=job.project_id,
            state=job.state,
            language=job.language,
            progress=JobProgress(
                percent=job.progress_percent, scene=job.current_scene, scenes=job.scene_count
            ),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            render_seconds=job.render_seconds,
            video_seconds=job.video_seconds,
            size=job.output_size,
            warnings=list(job.warnings or []),
            error=JobError.model_validate(error) if error else None,
            file_url=f"/videos/{job.id}/file" if job.state is JobState.SUCCEEDED else None,
            events_url=f"/videos/{job.id}/events",
        )
