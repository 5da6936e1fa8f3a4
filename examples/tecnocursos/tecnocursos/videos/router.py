"""``/projects/{project_id}/videos`` and ``/videos``: render requests and their results."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select, update
from starlette.requests import Request

from fastapi_enterprise import Page, PaginatedResponse, get_request_id, problem_responses
from fastapi_enterprise.pagination import paginate_select_async
from tecnocursos.auth.dependencies import CurrentUser
from tecnocursos.auth.models import utcnow
from tecnocursos.core.database import IdPath, Session, get_database
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media.storage import LocalStorage
from tecnocursos.projects.service import writable_project
from tecnocursos.videos import service
from tecnocursos.videos.jobs import TERMINAL_STATES, JobState, VideoJob
from tecnocursos.videos.queue import VideoQueue
from tecnocursos.videos.schemas import JobOut, VideoIn

__all__ = ["router"]

logger = logging.getLogger("tecnocursos.videos")

router = APIRouter(tags=["videos"])

STREAM_SECONDS = 3600.0
"""A progress stream ends after this; ``EventSource`` reconnects by itself."""


async def readable_job(job_id: IdPath, user: CurrentUser, session: Session) -> VideoJob:
    """The job of the path, if the caller may read its project (else a 404 problem)."""
    return await service.readable_job(session, user, job_id)


ReadableJob = Annotated[VideoJob, Depends(readable_job)]


@router.post(
    "/projects/{project_id}/videos",
    status_code=202,
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def create_video(
    project_id: IdPath,
    user: CurrentUser,
    session: Session,
    request: Request,
    response: Response,
    body: VideoIn | None = None,
) -> JobOut:
    """Render the project's scenes into an MP4 (owner or admin).

    The job is committed first and queued second, so a request that fails never leaves
    a render behind; when the queue is unreachable the job stays ``queued`` and the
    reconciler sends it once the queue is back. Follow it at ``events_url``.
    """
    settings: TecnoCursosSettings = request.app.state.settings
    project = await writable_project(session, user, project_id)
    job = await service.create_job(
        session,
        project,
        user,
        settings=settings.video,
        language=(body or VideoIn()).language,
        request_id=get_request_id(),
    )
    await session.commit()
    out = JobOut.of(job)
    queue: VideoQueue = request.app.state.video_queue
    try:
        await anyio.to_thread.run_sync(queue.send, job.id)
    except Exception:
        logger.warning("video.send_failed", extra={"job_id": job.id}, exc_info=True)
    else:
        await session.execute(
            update(VideoJob)
            .where(VideoJob.id == job.id, VideoJob.enqueued_at.is_(None))
            .values(enqueued_at=utcnow())
        )
    response.headers["Location"] = f"/videos/{job.id}"
    return out


@router.get("/projects/{project_id}/videos", responses=problem_responses(401, 404, 422))
async def list_videos(
    project_id: IdPath, user: CurrentUser, page: Page, request: Request, session: Session
) -> PaginatedResponse[JobOut]:
    """The project's video jobs, newest first."""
    query = await service.project_jobs(session, user, project_id)
    return await paginate_select_async(session, query, page, request, transform=JobOut.of)


@router.get("/videos/{job_id}", responses=problem_responses(401, 404, 422))
async def read_video(job: ReadableJob) -> JobOut:
    """A job: state, progress, timings, the error when it failed, the file when done."""
    return JobOut.of(job)


@router.post(
    "/videos/{job_id}/cancel", status_code=202, responses=problem_responses(401, 403, 404, 409, 422)
)
async def cancel_video(job_id: IdPath, user: CurrentUser, session: Session) -> JobOut:
    """Cancel a job (owner or admin): a queued one at once, a running one at its next scene.

    A running job shows ``cancel_requested`` until the worker stops; a finished one: 409.
    """
    job = await service.readable_job(session, user, job_id, lock=True)
    await writable_project(session, user, job.project_id)
    return JobOut.of(await service.request_cancel(session, job))


@router.get(
    "/videos/{job_id}/file",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The MP4 (range requests: 206)"},
        **problem_responses(401, 404, 409, 416, 422),
    },
)
async def download_video(job: ReadableJob, request: Request) -> FileResponse:
    """The finished MP4; ``Range`` requests are answered with 206, so players can seek."""
    if job.state is not JobState.SUCCEEDED:
        raise HTTPException(409, f"The video is {job.state.value}, not ready.")
    storage: LocalStorage = request.app.state.storage
    path = storage.path(job.output_key)
    if not await anyio.Path(path).is_file():
        logger.error("video.file_missing", extra={"job_id": job.id})
        raise HTTPException(404, "The video's file is missing.")
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=f"video-{job.id}.mp4",
        content_disposition_type="inline",
    )


@router.get(
    "/videos/{job_id}/events",
    response_class=EventSourceResponse,
    responses=problem_responses(401, 404, 422),
)
async def video_events(job: ReadableJob, request: Request) -> AsyncIterator[ServerSentEvent]:
    """Live progress (Server-Sent Events), until the job finishes.

    Each event is the job as ``GET /videos/{job_id}`` shows it, sent when it changes;
    ``event`` is the state. A deleted job ends the stream with a ``deleted`` event.
    """
    settings: TecnoCursosSettings = request.app.state.settings
    database = get_database(request)
    job_id = job.id
    last = None
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        async with database.transaction() as session:
            current = await session.scalar(select(VideoJob).where(VideoJob.id == job_id))
            out = JobOut.of(current) if current is not None else None
        if out is None:
            yield ServerSentEvent(event="deleted", data={"id": job_id}, retry=2000)
            return
        payload = out.model_dump(mode="json")
        if payload != last:
            last = payload
            yield ServerSentEvent(event=out.state.value, data=payload, retry=2000)
        if out.state in TERMINAL_STATES:
            return
        await asyncio.sleep(settings.video.progress_poll_seconds)
