"""Video jobs in the database: the row is the source of truth, the queue only a wake-up.

A job goes ``queued -> running -> succeeded | failed | cancelled``; a failed attempt
goes back to ``queued`` (with ``run_after`` in the future) until ``max_attempts`` have
run. A worker owns a running job through its ``lease_token`` until ``lease_expires_at``;
every write a worker makes names that token, so a worker that lost its lease (it stalled,
the reconciler gave the job to another, the job was cancelled or its project deleted)
changes nothing.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import Base, UTCDateTime

__all__ = ["ACTIVE_STATES", "TERMINAL_STATES", "JobState", "VideoJob"]


class JobState(str, enum.Enum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Waiting for a worker (first attempt, or a retry after ``run_after``)."""

    RUNNING = "running"
    """Claimed by a worker that holds its lease."""

    SUCCEEDED = "succeeded"
    """The MP4 is stored under ``output_key``."""

    FAILED = "failed"
    """Every attempt failed; ``error`` says why and names the scene."""

    CANCELLED = "cancelled"
    """Stopped on request; nothing is kept."""


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})


class VideoJob(Base):
    """One request to render a project's scenes into one MP4."""

    __tablename__ = "video_jobs"
    __table_args__ = (
        CheckConstraint("progress_percent BETWEEN 0 AND 100", name="progress_in_range"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The reconciler's and the queue gauges' scans: by state, oldest first.
        Index("ix_video_jobs_state_run_after", "state", "run_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    """Who asked for it (the project's owner, or an admin)."""
    state: Mapped[JobState] = mapped_column(
        Enum(
            JobState,
            name="state",
            native_enum=False,
            length=16,
            create_constraint=True,
            values_callable=lambda states: [state.value for state in states],
        ),
        default=JobState.QUEUED,
    )
    language: Mapped[str] = mapped_column(String(8))
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    """The ID of the request that created it: the worker logs under it."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts started (claims); a retry is allowed while below ``max_attempts``."""
    max_attempts: Mapped[int] = mapped_column(Integer)
    scene_count: Mapped[int] = mapped_column(Integer)
    progress_percent: Mapped[int] = mapped_column(Integer, default=0)
    current_scene: Mapped[int | None] = mapped_column(Integer, default=None)
    """The scene being rendered, from 1."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    """A queued job is not claimed before this (the backoff of a retry)."""
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When a message was last sent for it; ``None`` until the first send succeeded."""
    output_key: Mapped[str] = mapped_column(String(32), unique=True)
    """The storage key of the MP4, fixed at creation: a second attempt overwrites, never
    adds a file."""
    output_size: Mapped[int | None] = mapped_column(BigInteger(), default=None)
    video_seconds: Mapped[float | None] = mapped_column(Float(), default=None)
    """The finished video's duration."""
    render_seconds: Mapped[float | None] = mapped_column(Float(), default=None)
    """Wall time of the successful attempt's render."""
    warnings: Mapped[list[str]] = mapped_column(JSON(), default=list)
    """What the render wants the user to know (e.g. narration replaced by captions)."""
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(), default=None)
    """The last failure: ``title``, ``detail``, ``scene`` (from 1, when one is to blame),
    ``attempt``."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    """When the latest attempt was claimed."""
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
