"""The video jobs' state changes: what the API asks for and what workers report.

Every change a worker makes is a conditional ``UPDATE`` naming the job's state and the
worker's lease token, and is applied only when exactly that row matches: a duplicate
delivery, a worker that lost its lease, a cancelled job or a deleted project all match
nothing, and change nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise.database import Database, lock_for_update
from tecnocursos.auth.models import User, utcnow
from tecnocursos.core.settings import VideoSettings
from tecnocursos.media.models import MediaFile
from tecnocursos.media.storage import new_key
from tecnocursos.projects.models import Project
from tecnocursos.projects.service import can_read, readable_project
from tecnocursos.scenes.models import Scene
from tecnocursos.videos.jobs import ACTIVE_STATES, JobState, VideoJob

__all__ = [
    "Claim",
    "ClaimedScene",
    "JobStore",
    "QueueStats",
    "Reconciled",
    "create_job",
    "delete_project_jobs",
    "project_jobs",
    "readable_job",
    "request_cancel",
]

LANGUAGES = ("pt", "en")


async def create_job(
    session: AsyncSession,
    project: Project,
    user: User,
    *,
    settings: VideoSettings,
    language: str,
    request_id: str | None,
) -> VideoJob:
    """Add a queued job for ``project``'s scenes (the caller commits, then enqueues).

    Raises:
        HTTPException: 422 when the project has no scenes or more than
            ``settings.max_scenes``; 429 when ``user`` already has
            ``settings.max_active_per_user`` queued or running jobs.
    """
    scenes = await session.scalar(
        select(func.count()).select_from(Scene).where(Scene.project_id == project.id)
    )
    if not scenes:
        raise HTTPException(422, "The project has no scenes to render.")
    if scenes > settings.max_scenes:
        raise HTTPException(
            422, f"The project has {scenes} scenes; a video may have {settings.max_scenes}."
        )
    active = await session.scalar(
        select(func.count())
        .select_from(VideoJob)
        .where(VideoJob.owner_id == user.id, VideoJob.state.in_(ACTIVE_STATES))
    )
    if (active or 0) >= settings.max_active_per_user:
        raise HTTPException(
            429,
            f"You have {active} videos queued or rendering; wait for one to finish.",
            headers={"Retry-After": "30"},
        )
    now = utcnow()
    job = VideoJob(
        project_id=project.id,
        owner_id=user.id,
        state=JobState.QUEUED,
        language=language,
        request_id=request_id,
        attempts=0,
        max_attempts=settings.max_attempts,
        scene_count=scenes,
        progress_percent=0,
        cancel_requested=False,
        run_after=now,
        output_key=new_key(),
        warnings=[],
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    await session.flush()
    return job


async def readable_job(
    session: AsyncSession, user: User, job_id: int, *, lock: bool = False
) -> VideoJob:
    """The job, if ``user`` may read its project.

    Raises:
        HTTPException: 404 when there is no such job or its project is not the
            caller's to see (a private project's jobs are not disclosed).
    """
    query = select(VideoJob, Project).join(Project).where(VideoJob.id == job_id)
    if lock:  # a cancel must not overwrite a claim made between its read and its write
        query = await lock_for_update(session, query)
    row = (await session.execute(query)).first()
    if row is None or not can_read(user, row[1]):
        raise HTTPException(404, "Video not found.")
    job: VideoJob = row[0]
    return job


async def project_jobs(session: AsyncSession, user: User, project_id: int) -> Select[Any]:
    """The select of ``project_id``'s jobs, newest first (404 when the project is hidden)."""
    await readable_project(session, user, project_id)
    return (
        select(VideoJob)
        .where(VideoJob.project_id == project_id)
        .order_by(VideoJob.created_at.desc(), VideoJob.id.desc())
    )


async def request_cancel(session: AsyncSession, job: VideoJob) -> VideoJob:
    """Cancel ``job``: a queued one at once, a running one at its next scene.

    Raises:
        HTTPException: 409 when the job has already finished.
    """
    now = utcnow()
    if job.state is JobState.QUEUED:
        job.state = JobState.CANCELLED
        job.finished_at = now
    elif job.state is JobState.RUNNING:
        job.cancel_requested = True
    else:
        raise HTTPException(409, f"The video has already {job.state.value}.")
    job.updated_at = now
    await session.flush()
    return job


async def delete_project_jobs(session: AsyncSession, project_id: int) -> list[str]:
    """Delete ``project_id``'s jobs; returns the storage keys of their files.

    A worker rendering one of them finds its row gone at its next heartbeat and stops.
    """
    keys = list(
        await session.scalars(select(VideoJob.output_key).where(VideoJob.project_id == project_id))
    )
    await session.execute(delete(VideoJob).where(VideoJob.project_id == project_id))
    return keys


@dataclass(frozen=True)
class ClaimedScene:
    """A scene as the renderer needs it."""

    title: str
    script: str
    duration_seconds: int
    image_key: str | None


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds, with what it needs to render it."""

    job_id: int
    token: str
    attempt: int
    max_attempts: int
    request_id: str | None
    language: str
    output_key: str
    course_name: str
    scenes: list[ClaimedScene]


@dataclass(frozen=True)
class Heartbeat:
    """What a heartbeat learned."""

    held: bool
    """Whether the worker still holds the job (false: deleted, cancelled or taken)."""

    cancel_requested: bool


@dataclass(frozen=True)
class Reconciled:
    """One pass of the reconciler."""

    requeued: list[int]
    """Jobs whose lease expired, back in the queue."""

    failed: list[int]
    """Jobs whose lease expired on their last attempt."""

    resend: list[int]
    """Queued jobs to send a message for (never sent, or unclaimed too long)."""


@dataclass(frozen=True)
class QueueStats:
    """The gauges' values."""

    by_state: dict[JobState, int]
    due: int
    """Queued jobs a worker may claim now."""
    oldest_due_seconds: float
    """Age of the oldest of them (0 when there is none)."""


@dataclass(frozen=True)
class AttemptFailed:
    """What became of a failed attempt."""

    retry_in: float | None
    """Seconds until the retry, or ``None`` when that was the last attempt (failed)."""

    held: bool
    """False when the worker had lost the job already (nothing was written)."""


class JobStore:
    """The worker's side of the job table.

    Args:
        database: The app's database (started).
        settings: The ``video`` settings: lease, retries.
    """

    def __init__(self, database: Database, settings: VideoSettings) -> None:
        self.database = database
        self.settings = settings

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.lease_seconds)

    def _held(self, job_id: int, token: str) -> Any:
        return (
            (VideoJob.id == job_id)
            & (VideoJob.state == JobState.RUNNING)
            & (VideoJob.lease_token == token)
        )

    async def _update_held(
        self, session: AsyncSession, job_id: int, token: str, **values: Any
    ) -> bool:
        """Set ``values`` on the job if ``token`` still holds it; whether it did."""
        result = await session.execute(
            update(VideoJob)
            .where(self._held(job_id, token))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def claim(self, job_id: int) -> Claim | None:
        """Take ``job_id`` if it is queued and due.

        Returns ``None`` when it is not (a duplicate or early delivery, a cancelled or
        deleted job): then nothing changed.
        """
        token = uuid.uuid4().hex
        now = utcnow()
        async with self.database.transaction() as session:
            result = await session.execute(
                update(VideoJob)
                .where(
                    VideoJob.id == job_id,
                    VideoJob.state == JobState.QUEUED,
                    VideoJob.run_after <= now,
                )
                .values(
                    state=JobState.RUNNING,
                    lease_token=token,
                    lease_expires_at=self._lease_until(now),
                    heartbeat_at=now,
                    attempts=VideoJob.attempts + 1,
                    started_at=now,
                    progress_percent=0,
                    current_scene=1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            job = await session.scalar(select(VideoJob).where(VideoJob.id == job_id))
            if job is None:  # pragma: no cover - the claim just matched the row
                raise RuntimeError(f"video job {job_id} vanished inside its claim")
            project = await session.scalar(select(Project).where(Project.id == job.project_id))
            rows = await session.execute(
                select(Scene, MediaFile.storage_key)
                .outerjoin(MediaFile, MediaFile.id == Scene.image_id)
                .where(Scene.project_id == job.project_id)
                .order_by(Scene.position)
            )
            scenes = [
                ClaimedScene(scene.title, scene.script, scene.duration_seconds, key)
                for scene, key in rows
            ]
        if project is None:  # pragma: no cover - deleting the project deletes the job row
            raise RuntimeError(f"video job {job_id} has no project")
        return Claim(
            job_id=job.id,
            token=token,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            request_id=job.request_id,
            language=job.language,
            output_key=job.output_key,
            course_name=project.title,
            scenes=scenes,
        )

    async def heartbeat(
        self, job_id: int, token: str, *, percent: int | None = None, scene: int | None = None
    ) -> Heartbeat:
        """Extend the lease (and record progress); learn of a cancellation."""
        now = utcnow()
        values: dict[str, Any] = {
            "lease_expires_at": self._lease_until(now),
            "heartbeat_at": now,
        }
        if percent is not None:
            values.update(progress_percent=percent, current_scene=scene, updated_at=now)
        async with self.database.transaction() as session:
            held = await self._update_held(session, job_id, token, **values)
            if not held:
                return Heartbeat(held=False, cancel_requested=False)
            cancel = await session.scalar(
                select(VideoJob.cancel_requested).where(VideoJob.id == job_id)
            )
        return Heartbeat(held=True, cancel_requested=bool(cancel))

    async def succeed(
        self,
        job_id: int,
        token: str,
        *,
        size: int,
        video_seconds: float,
        render_seconds: float,
        warnings: list[str],
        publish: Any,
    ) -> bool:
        """Mark the job succeeded and, inside the same transaction, ``publish()`` its file.

        The row is updated first (locking it), the file moved into place second, the
        commit last: a worker that lost its lease publishes nothing, and a commit that
        fails leaves a running job whose lease will expire and whose retry overwrites
        the same file. Returns whether the worker still held the job.
        """
        now = utcnow()
        async with self.database.transaction() as session:
            held = await self._update_held(
                session,
                job_id,
                token,
                state=JobState.SUCCEEDED,
                progress_percent=100,
                current_scene=None,
                lease_token=None,
                lease_expires_at=None,
                output_size=size,
                video_seconds=video_seconds,
                render_seconds=render_seconds,
                warnings=warnings,
                error=None,
                finished_at=now,
                updated_at=now,
            )
            if not held:
                return False
            await publish()
        return True

    async def cancelled(self, job_id: int, token: str) -> bool:
        """Record that the render stopped on request."""
        return await self._finish(job_id, token, JobState.CANCELLED, error=None)

    async def _finish(
        self, job_id: int, token: str, state: JobState, *, error: dict[str, Any] | None
    ) -> bool:
        now = utcnow()
        async with self.database.transaction() as session:
            return await self._update_held(
                session,
                job_id,
                token,
                state=state,
                lease_token=None,
                lease_expires_at=None,
                current_scene=None,
                error=error,
                finished_at=now,
                updated_at=now,
            )

    def backoff(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt`` (doubling from the base)."""
        return float(self.settings.retry_backoff_seconds * 2 ** max(attempt - 1, 0))

    async def fail_attempt(
        self, job_id: int, token: str, attempt: int, error: dict[str, Any]
    ) -> AttemptFailed:
        """Record a failed attempt: queue a retry after the backoff, or fail the job."""
        now = utcnow()
        async with self.database.transaction() as session:
            held_row = select(
                VideoJob.attempts, VideoJob.max_attempts, VideoJob.cancel_requested
            ).where(self._held(job_id, token))
            row = (await session.execute(await lock_for_update(session, held_row))).first()
            if row is None:
                return AttemptFailed(retry_in=None, held=False)
            attempts, max_attempts, cancel = row
            final = attempts >= max_attempts or cancel
            delay = None if final else self.backoff(attempts)
            values: dict[str, Any] = {
                "lease_token": None,
                "lease_expires_at": None,
                "error": {**error, "attempt": attempts, "max_attempts": max_attempts},
                "updated_at": now,
            }
            if delay is None:
                values.update(
                    state=JobState.CANCELLED if cancel else JobState.FAILED,
                    current_scene=None,
                    finished_at=now,
                )
            else:
                values.update(
                    state=JobState.QUEUED,
                    run_after=now + timedelta(seconds=delay),
                    enqueued_at=now,
                    progress_percent=0,
                    current_scene=None,
                )
            await self._update_held(session, job_id, token, **values)  # locked: it matches
        return AttemptFailed(retry_in=delay, held=True)

    async def release(self, job_id: int, token: str) -> bool:
        """Give the job back to the queue uncounted (the worker is shutting down)."""
        now = utcnow()
        async with self.database.transaction() as session:
            return await self._update_held(
                session,
                job_id,
                token,
                state=JobState.QUEUED,
                attempts=VideoJob.attempts - 1,
                lease_token=None,
                lease_expires_at=None,
                progress_percent=0,
                current_scene=None,
                run_after=now,
                enqueued_at=now,
                updated_at=now,
            )

    async def running(self, job_ids: Collection[int]) -> set[int]:
        """Those of ``job_ids`` that are running now (a worker holds their lease)."""
        if not job_ids:
            return set()
        async with self.database.transaction() as session:
            rows = await session.scalars(
                select(VideoJob.id).where(
                    VideoJob.id.in_(list(job_ids)), VideoJob.state == JobState.RUNNING
                )
            )
            return set(rows)

    async def mark_sent(self, job_ids: list[int]) -> None:
        """Record that a message went out for these jobs now."""
        if not job_ids:
            return
        async with self.database.transaction() as session:
            await session.execute(
                update(VideoJob)
                .where(VideoJob.id.in_(job_ids), VideoJob.state == JobState.QUEUED)
                .values(enqueued_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    async def reconcile(self, *, resend_all: bool = False) -> Reconciled:
        """Requeue jobs whose lease expired (or fail them on their last attempt).

        Also picks the queued jobs whose message was never sent or went unclaimed too long
        (``resend_all``: every due queued job, after a restart on an in-memory broker).
        """
        now = utcnow()
        requeued: list[int] = []
        failed: list[int] = []
        async with self.database.transaction() as session:
            expired = (
                await session.execute(
                    select(VideoJob.id, VideoJob.attempts, VideoJob.max_attempts)
                    .where(VideoJob.state == JobState.RUNNING, VideoJob.lease_expires_at < now)
                    .order_by(VideoJob.id)
                    .limit(100)
                )
            ).all()
            for job_id, attempts, max_attempts in expired:
                lost = {
                    "title": "The worker rendering the video stopped",
                    "detail": "Its lease expired: the worker died or stalled.",
                    "attempt": attempts,
                    "max_attempts": max_attempts,
                }
                last = attempts >= max_attempts
                values: dict[str, Any] = {
                    "lease_token": None,
                    "lease_expires_at": None,
                    "current_scene": None,
                    "error": lost,
                    "updated_at": now,
                }
                if last:
                    values.update(state=JobState.FAILED, finished_at=now)
                else:
                    values.update(state=JobState.QUEUED, run_after=now, progress_percent=0)
                result = await session.execute(
                    update(VideoJob)
                    .where(
                        VideoJob.id == job_id,
                        VideoJob.state == JobState.RUNNING,
                        VideoJob.lease_expires_at < now,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    (failed if last else requeued).append(job_id)
            stale = (
                now if resend_all else now - timedelta(seconds=self.settings.requeue_after_seconds)
            )
            resend = list(
                await session.scalars(
                    select(VideoJob.id)
                    .where(
                        VideoJob.state == JobState.QUEUED,
                        VideoJob.run_after <= now,
                        (VideoJob.enqueued_at.is_(None)) | (VideoJob.enqueued_at <= stale),
                    )
                    .order_by(VideoJob.run_after)
                    .limit(100)
                )
            )
        return Reconciled(requeued=requeued, failed=failed, resend=sorted({*requeued, *resend}))

    async def stats(self) -> QueueStats:
        """Jobs by state, and the due queue's depth and oldest age."""
        now = utcnow()
        async with self.database.transaction() as session:
            rows = await session.execute(
                select(VideoJob.state, func.count()).group_by(VideoJob.state)
            )
            counts = {state: count for state, count in rows}  # noqa: C416 - Rows, not pairs
            due, oldest = (
                await session.execute(
                    select(func.count(), func.min(VideoJob.run_after)).where(
                        VideoJob.state == JobState.QUEUED, VideoJob.run_after <= now
                    )
                )
            ).one()
        by_state = {state: int(counts.get(state, 0)) for state in JobState}
        age = 0.0
        if oldest is not None:
            # A naive UTC datetime when the aggregate bypasses the column type.
            started = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            age = max((now - started).total_seconds(), 0.0)
        return QueueStats(by_state=by_state, due=int(due), oldest_due_seconds=age)
