"""The video worker: ``python -m tecnocursos.videos.worker`` beside the app, or embedded.

With ``TC_VIDEO__QUEUE=redis`` the app only writes job rows and sends messages; one or
more worker processes (same settings, same database, same media directory) consume them,
one render at a time each, and run the reconciler. With ``embedded`` (the default outside
production) the app starts the same worker and reconciler inside its own process, so the
demo renders with no server to install.

The worker stops gracefully on SIGTERM or SIGINT: a render in progress stops at its next
scene and its job goes back to the queue for another worker, uncounted. SIGKILL loses
nothing either: the job's lease expires, the reconciler requeues it, and the retry
overwrites the same output file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from prometheus_client import start_http_server

from fastapi_enterprise import configure_logging
from fastapi_enterprise.database import Database
from tecnocursos.core.database import create_database
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media.storage import LocalStorage
from tecnocursos.videos.ffmpeg import NICENESS
from tecnocursos.videos.providers import avatar_from_settings, tts_from_settings
from tecnocursos.videos.queue import VideoQueue
from tecnocursos.videos.runner import JobRunner, reconcile_forever
from tecnocursos.videos.service import JobStore

__all__ = ["VideoWorker", "lower_priority", "main"]

logger = logging.getLogger("tecnocursos.videos")


class VideoWorker:
    """A queue, a runner and a reconciler on one event loop.

    Args:
        settings: The app's settings (``video``, ``redis``, ``storage``, ``ai``).
        database: The started database the jobs live in.
    """

    def __init__(self, settings: TecnoCursosSettings, database: Database) -> None:
        video = settings.video
        self.settings = settings
        self.store = JobStore(database, video)
        self.runner = JobRunner(
            self.store,
            LocalStorage(Path(settings.storage.local_dir)),
            tts=tts_from_settings(settings.ai),
            avatar=avatar_from_settings(settings.ai),
            send=self._send,
            time_limit=video.time_limit_seconds,
            scene_timeout=video.scene_timeout_seconds,
        )
        self.queue = VideoQueue(settings, self.runner.handle)

    def _send(self, job_id: int, delay: float) -> None:
        self.queue.send(job_id, delay=delay)

    @contextlib.asynccontextmanager
    async def running(self, *, consume: bool = True) -> AsyncIterator[VideoWorker]:
        """Run the reconciler (and, with ``consume``, a dramatiq worker thread).

        Both run on the current loop; on exit the renders drain, then both stop.
        """
        self.runner.bind(asyncio.get_running_loop())
        worker = self.queue.worker() if consume else None
        if worker is not None:
            worker.start()
        reconciler = asyncio.create_task(
            reconcile_forever(
                self.store,
                self._send,
                interval=self.settings.video.reconcile_seconds,
                # The in-memory broker's messages died with the previous process.
                resend_all_first=self.settings.video.queue == "embedded",
                sweep=self.runner.sweep_workdirs,
            )
        )
        try:
            yield self
        finally:
            reconciler.cancel()
            await asyncio.gather(reconciler, return_exceptions=True)
            await self.runner.drain()
            if worker is not None:
                # The actor thread is free once its render drained; join it off the loop.
                await anyio.to_thread.run_sync(lambda: worker.stop(timeout=10_000))
            self.queue.close()


def lower_priority(niceness: int = NICENESS) -> bool:
    """Lower the whole worker's CPU priority, so renders yield to the API on a small machine.

    The ``nice`` of each ffmpeg does not reach across scheduling groups: the kernel's
    autogroups (one per session, on by default) and cgroups (one per systemd service or
    container) share the CPU between groups equally, whatever the niceness inside. A
    worker started as a service of its own took as much CPU as the API (the video
    benchmark's first run: the API kept 31% of its throughput while two videos rendered).
    So the worker lowers its own niceness (speech and ffmpeg inherit it) and, when it
    leads its own session, its autogroup's; under cgroups, give its service a low CPU
    weight too (systemd ``CPUWeight=``, Docker ``--cpu-shares``).

    Returns:
        Whether the autogroup was lowered too.
    """
    os.nice(niceness)
    autogroup = Path("/proc/self/autogroup")
    # A session another process leads (a shell, the API's launcher) is not ours to lower.
    if os.getsid(0) != os.getpid() or not autogroup.exists():
        return False
    try:
        autogroup.write_text(f"{niceness}\n")
    except OSError:  # read-only /proc (some containers): the niceness still applies inside
        return False
    return True


async def _serve(settings: TecnoCursosSettings) -> None:
    database = create_database(settings)
    await database.start()
    stop = asyncio.Event()
    worker = VideoWorker(settings, database)

    def stopping() -> None:
        worker.runner.stopping = True  # at once: a render in progress stops at its next scene
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping)
    try:
        async with worker.running():
            logger.info("video.worker_started", extra={"queue": settings.video.queue})
            await stop.wait()
            logger.info("video.worker_stopping")
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> int:
    """Run a worker until SIGTERM/SIGINT; returns the exit status."""
    del argv
    settings = TecnoCursosSettings()
    handle = configure_logging(settings)
    try:
        if settings.video.queue != "redis":
            logger.error(
                "video.worker_refused",
                extra={"reason": "TC_VIDEO__QUEUE is embedded: the app renders by itself"},
            )
            return 2
        grouped = lower_priority()
        logger.info("video.worker_priority", extra={"nice": os.nice(0), "autogroup": grouped})
        port = settings.video.worker_metrics_port
        if port:
            start_http_server(port, addr=settings.video.worker_metrics_host)
        asyncio.run(_serve(settings))
        return 0
    finally:
        handle.stop()


if __name__ == "__main__":  # pragma: no cover - the process entry point
    threading.current_thread().name = "video-worker"
    sys.exit(main())
