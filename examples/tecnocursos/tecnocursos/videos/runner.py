"""Running jobs: claim, render under a heartbeat, publish or retry; and the reconciler.

One :class:`JobRunner` per process, on one event loop: the dramatiq actor (a worker
thread) hands it job IDs with :meth:`JobRunner.handle`, which blocks the thread until the
job is done, so dramatiq acknowledges the message only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio

from fastapi_enterprise import continue_request
from tecnocursos.media.storage import LocalStorage
from tecnocursos.videos.metrics import (
    ATTEMPTS,
    DELIVERIES_SKIPPED,
    LEASES_EXPIRED,
    RENDER_SECONDS,
    SCENE_RENDER_SECONDS,
    record_stats,
)
from tecnocursos.videos.models import (
    Branding,
    RenderCancelled,
    RenderProgress,
    SceneInput,
    SceneRenderError,
)
from tecnocursos.videos.render import render_video
from tecnocursos.videos.service import Claim, JobStore
from tecnocursos.videos.tts import AvatarProvider, TTSProvider

__all__ = ["JobRunner", "reconcile_forever"]

logger = logging.getLogger("tecnocursos.videos")

_VOICES = {"pt": "pt-BR", "en": "en"}


class _Watch:
    """What the heartbeat learned about a running job."""

    def __init__(self) -> None:
        self.cancel = False
        self.lost = False


class JobRunner:
    """Renders the jobs this process claims.

    Args:
        store: The job table.
        storage: Where finished videos go (their key is the job's ``output_key``).
        tts: Narration provider (built once: its breaker spans jobs).
        avatar: Avatar provider.
        send: Sends a job's message again after a delay (a retry, a release).
        time_limit: Seconds a whole render may take.
        scene_timeout: Seconds one scene's step may take.
    """

    def __init__(
        self,
        store: JobStore,
        storage: LocalStorage,
        *,
        tts: TTSProvider,
        avatar: AvatarProvider,
        send: Callable[[int, float], None],
        time_limit: float,
        scene_timeout: float,
    ) -> None:
        self.store = store
        self.storage = storage
        self.tts = tts
        self.avatar = avatar
        self.send = send
        self.time_limit = time_limit
        self.scene_timeout = scene_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self._running: set[asyncio.Task[None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run jobs on ``loop`` (the app's, or the worker process's own)."""
        self.loop = loop

    def handle(self, job_id: int) -> None:
        """The dramatiq actor: run ``job_id`` on the runner's loop and wait for it."""
        if self.loop is None:
            raise RuntimeError("JobRunner.bind() was not called")
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._tracked(job_id), self.loop)
        future.result()

    async def _tracked(self, job_id: int) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self.run(job_id)
        finally:
            self._running.discard(task)

    async def drain(self) -> None:
        """Stop taking jobs; renders stop at their next scene and go back to the queue."""
        self.stopping = True
        if self._running:
            await asyncio.wait(set(self._running))

    async def run(self, job_id: int) -> None:
        """Claim ``job_id`` and render it; a message with nothing to claim does nothing."""
        if self.stopping:  # fetched as the worker stops: hand it to another worker
            await self._send(job_id, 0.0)
            return
        claim = await self.store.claim(job_id)
        if claim is None:
            DELIVERIES_SKIPPED.inc()
            logger.info("video.delivery_skipped", extra={"job_id": job_id})
            return
        with continue_request(claim.request_id, job_id=job_id, attempt=claim.attempt):
            logger.info("video.started")
            await self._render(claim)

    async def _render(self, claim: Claim) -> None:
        watch = _Watch()
        workdir = await anyio.to_thread.run_sync(self._workdir, claim.job_id)
        beating = asyncio.create_task(self._heartbeats(claim, watch))
        started = time.perf_counter()
        scenes = [
            SceneInput(
                title=scene.title,
                script=scene.script,
                image=self.storage.path(scene.image_key) if scene.image_key else None,
                duration_hint=float(scene.duration_seconds) or None,
            )
            for scene in claim.scenes
        ]

        async def progress(update: RenderProgress) -> None:
            scene = min(update.scene_index + 2, update.scene_count)
            beat = await self.store.heartbeat(
                claim.job_id, claim.token, percent=min(int(update.percent), 99), scene=scene
            )
            watch.lost = watch.lost or not beat.held
            watch.cancel = watch.cancel or beat.cancel_requested

        try:
            result = await asyncio.wait_for(
                render_video(
                    scenes,
                    workdir=workdir,
                    output=workdir / "video.mp4",
                    tts=self.tts,
                    branding=Branding(course_name=claim.course_name[:200] or "TecnoCursos"),
                    language=_VOICES.get(claim.language, claim.language),
                    progress=progress,
                    cancelled=lambda: watch.cancel or watch.lost or self.stopping,
                    avatar=self.avatar,
                    scene_timeout=self.scene_timeout,
                ),
                timeout=self.time_limit,
            )
        except RenderCancelled:
            await self._stopped(claim, watch)
        except SceneRenderError as error:
            await self._failed(
                claim,
                {
                    "title": f"Scene {error.scene_index + 1} could not be rendered",
                    "detail": error.reason,
                    "scene": error.scene_index + 1,
                },
            )
        except TimeoutError:
            await self._failed(
                claim,
                {
                    "title": "The render took too long",
                    "detail": f"It passed the time limit of {self.time_limit:g} seconds.",
                },
            )
        except Exception as error:  # a defect: record it, never lose the job
            logger.exception("video.render_crashed")
            await self._failed(
                claim,
                {
                    "title": "The render failed",
                    "detail": f"Internal error ({type(error).__name__}).",
                },
            )
        else:
            seconds = time.perf_counter() - started
            size = result.output.stat().st_size
            final = self.storage.path(claim.output_key)

            async def publish() -> None:
                await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
                await anyio.to_thread.run_sync(os.replace, result.output, final)

            held = await self.store.succeed(
                claim.job_id,
                claim.token,
                size=size,
                video_seconds=result.duration,
                render_seconds=seconds,
                warnings=result.warnings,
                publish=publish,
            )
            if held:
                ATTEMPTS.labels(outcome="succeeded").inc()
                RENDER_SECONDS.observe(seconds)
                for timing in result.scenes:
                    SCENE_RENDER_SECONDS.observe(timing.tts_seconds + timing.encode_seconds)
                logger.info(
                    "video.succeeded",
                    extra={"render_seconds": round(seconds, 3), "video_seconds": result.duration},
                )
            else:
                ATTEMPTS.labels(outcome="lost").inc()
                logger.warning("video.lease_lost", extra={"stage": "publish"})
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))

    def _work_root(self) -> Path:
        # On the storage's file system, so publishing is a rename, not a copy.
        root = self.storage.root / ".render"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _workdir(self, job_id: int) -> Path:
        """A new render directory for ``job_id``, once its earlier attempts' are gone.

        A worker killed mid-render (SIGKILL, OOM) leaves its directory behind; the claim
        just made means no live worker holds the job (one that lost its lease may still
        run, but can publish nothing), so the directories of its earlier attempts are
        garbage, removed here rather than left to fill the disk.
        """
        root = self._work_root()
        prefix = f"job-{job_id}-"
        for stale in root.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    async def sweep_workdirs(self) -> list[int]:
        """Remove the render directories of jobs no worker runs; returns those jobs.

        A claim removes its job's earlier directories, but a job whose worker was killed
        on its last attempt, or whose project was deleted meanwhile, is never claimed
        again. A directory is swept when its job is not running and it is older than a
        lease (so one a claim has just made, before its row is read, stays).
        """
        root = self.storage.root / ".render"
        before = time.time() - self.store.settings.lease_seconds

        def listing() -> dict[int, list[Path]]:
            found: dict[int, list[Path]] = {}
            for path in root.glob("job-*-*"):
                number = path.name.split("-")[1]
                with contextlib.suppress(OSError):  # removed meanwhile by its worker
                    if number.isdigit() and path.stat().st_mtime < before:
                        found.setdefault(int(number), []).append(path)
            return found

        found = await anyio.to_thread.run_sync(listing)
        if not found:
            return []
        running = await self.store.running(found)
        swept = sorted(set(found) - running)

        def remove() -> None:
            for job_id in swept:
                for path in found[job_id]:
                    shutil.rmtree(path, ignore_errors=True)

        await anyio.to_thread.run_sync(remove)
        for job_id in swept:
            logger.info("video.workdir_swept", extra={"job_id": job_id})
        return swept

    async def _heartbeats(self, claim: Claim, watch: _Watch) -> None:
        interval = self.store.settings.heartbeat_seconds
        while not watch.lost:
            await asyncio.sleep(interval)
            try:
                beat = await self.store.heartbeat(claim.job_id, claim.token)
            except Exception:  # the database blinked: the lease has slack for a few misses
                logger.warning("video.heartbeat_failed", exc_info=True)
                continue
            watch.lost = not beat.held
            watch.cancel = watch.cancel or beat.cancel_requested

    async def _stopped(self, claim: Claim, watch: _Watch) -> None:
        if watch.lost:
            ATTEMPTS.labels(outcome="lost").inc()
            logger.warning("video.lease_lost", extra={"stage": "render"})
        elif watch.cancel:
            await self.store.cancelled(claim.job_id, claim.token)
            ATTEMPTS.labels(outcome="cancelled").inc()
            logger.info("video.cancelled")
        else:  # shutting down: back to the queue, uncounted, for another worker
            if await self.store.release(claim.job_id, claim.token):
                ATTEMPTS.labels(outcome="released").inc()
                logger.info("video.released")
                await self._send(claim.job_id, 0.0)

    async def _failed(self, claim: Claim, error: dict[str, Any]) -> None:
        if self.stopping:  # e.g. the encoder got the shutdown's signal too: not its fault
            logger.warning("video.failed_while_stopping", extra={"error": error["title"]})
            await self._stopped(claim, _Watch())
            return
        outcome = await self.store.fail_attempt(claim.job_id, claim.token, claim.attempt, error)
        if not outcome.held:
            ATTEMPTS.labels(outcome="lost").inc()
            return
        if outcome.retry_in is None:
            ATTEMPTS.labels(outcome="failed").inc()
            logger.error("video.failed", extra={"error": error["title"]})
            return
        ATTEMPTS.labels(outcome="retried").inc()
        logger.warning(
            "video.retrying", extra={"error": error["title"], "retry_in": outcome.retry_in}
        )
        await self._send(claim.job_id, outcome.retry_in)

    async def _send(self, job_id: int, delay: float) -> None:
        try:
            await anyio.to_thread.run_sync(self.send, job_id, delay)
        except Exception:  # the reconciler resends what is due and unclaimed
            logger.warning("video.send_failed", extra={"job_id": job_id}, exc_info=True)


async def reconcile_forever(
    store: JobStore,
    send: Callable[[int, float], None],
    *,
    interval: float,
    resend_all_first: bool = False,
    sweep: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Every ``interval`` seconds, one :func:`reconcile_once` pass, until cancelled.

    A failed pass (the database or the broker down) is logged and tried again. With
    ``resend_all_first`` (an in-memory broker, whose messages died with the last process)
    the first successful pass resends every due queued job. ``sweep`` (e.g.
    :meth:`JobRunner.sweep_workdirs`) runs after each pass.
    """
    resend_all = resend_all_first
    while True:
        # First sleep: a lease can only have expired ``lease_seconds`` after a crash, and
        # an app's schema may still be in the making when its lifespan starts this.
        await asyncio.sleep(interval)
        try:
            await reconcile_once(store, send, resend_all=resend_all)
        except Exception:
            logger.warning("video.reconcile_failed", exc_info=True)
        else:
            resend_all = False
        if sweep is not None:
            try:
                await sweep()
            except Exception:  # a file system error: the next pass tries again
                logger.warning("video.sweep_failed", exc_info=True)


async def reconcile_once(
    store: JobStore, send: Callable[[int, float], None], *, resend_all: bool = False
) -> list[int]:
    """One reconciler pass; returns the jobs it sent messages for."""
    outcome = await store.reconcile(resend_all=resend_all)
    LEASES_EXPIRED.inc(len(outcome.requeued) + len(outcome.failed))
    # The dead worker counted nothing: its attempt failed, and is retried or was the last.
    ATTEMPTS.labels(outcome="retried").inc(len(outcome.requeued))
    ATTEMPTS.labels(outcome="failed").inc(len(outcome.failed))
    for job_id in outcome.requeued:
        logger.warning("video.lease_expired", extra={"job_id": job_id, "requeued": True})
    for job_id in outcome.failed:
        logger.error("video.lease_expired", extra={"job_id": job_id, "requeued": False})
    sent: list[int] = []
    for job_id in outcome.resend:
        try:
            await anyio.to_thread.run_sync(send, job_id, 0.0)
        except Exception:
            logger.warning("video.send_failed", extra={"job_id": job_id}, exc_info=True)
            break  # the broker is down: the next pass tries again
        sent.append(job_id)
    await store.mark_sent(sent)
    record_stats(await store.stats())
    return sent
