"""The app factory: settings in, a production-ready FastAPI app out.

Run: ``uvicorn --factory tecnocursos.core.app:create_app`` (settings from ``TC_*``
variables, a ``.env`` file or secret files).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastapi_enterprise import configure_logging, install
from tecnocursos.auth.passwords import Passwords
from tecnocursos.auth.router import router as auth_router
from tecnocursos.auth.tokens import TokenService
from tecnocursos.cache import create_cache
from tecnocursos.core.database import create_database
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media.router import router as media_router
from tecnocursos.media.storage import LocalStorage
from tecnocursos.projects.router import router as projects_router
from tecnocursos.scenes.router import router as scenes_router
from tecnocursos.users.router import router as users_router
from tecnocursos.videos.queue import VideoQueue
from tecnocursos.videos.router import router as videos_router
from tecnocursos.videos.worker import VideoWorker

__all__ = ["create_app"]

logger = logging.getLogger("tecnocursos")


def create_app(settings: TecnoCursosSettings | None = None) -> FastAPI:
    """Build the TecnoCursos API.

    Args:
        settings: The settings; read from the environment (``TC_*``) when ``None``.

    Returns:
        The app, with the library installed (request IDs, logs, security headers, rate
        limits, metrics, problem+json errors), its database hooked into the lifespan and
        readiness, and every domain's routes.
    """
    settings = settings if settings is not None else TecnoCursosSettings()
    logging_handle = configure_logging(settings)
    app = FastAPI(**settings.fastapi_kwargs(), lifespan=_lifespan)
    try:
        install(app, settings)  # runs the deploy check, the app's rules included
    except BaseException:
        logging_handle.stop()  # refused to start: flush the log lines, end the log thread
        raise
    database = create_database(settings)
    database.install(app)

    key = settings.jwt_key()
    if key is None:
        # Only outside production: there the deploy check refused a missing secret key.
        logger.warning(
            "No JWT signing secret configured (auth.jwt_secret, security.secret_key); "
            "signing with a random per-process one: tokens die with this process"
        )
        key = secrets.token_urlsafe(48)
    app.state.settings = settings
    app.state.logging = logging_handle  # flush() and stop() for scripts and tests
    app.state.database = database
    app.state.passwords = Passwords(settings.auth)
    app.state.tokens = TokenService(key, settings.auth)
    app.state.storage = LocalStorage(settings.storage.local_dir)
    app.state.cache = create_cache(app, settings)
    if settings.video.queue == "embedded":
        # The demo's worker: renders in this process (the deploy check refuses it in
        # production, where `python -m tecnocursos.videos.worker` runs beside the app).
        app.state.video_worker = VideoWorker(settings, database)
        app.state.video_queue = app.state.video_worker.queue
    else:
        app.state.video_worker = None
        app.state.video_queue = VideoQueue(settings, _runs_on_the_worker)

    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(projects_router)
    app.include_router(scenes_router)
    app.include_router(media_router)
    app.include_router(videos_router)
    return app


def _runs_on_the_worker(job_id: int) -> None:
    # The API only sends messages; it never starts a dramatiq worker in this mode.
    raise RuntimeError(f"video job {job_id} belongs to the worker process")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The database starts before this and closes after it (database.install() wraps it).
    # The cache's Redis client connects lazily; its connections close at shutdown.
    try:
        worker: VideoWorker | None = app.state.video_worker
        if worker is None:
            yield
        else:
            async with worker.running():
                yield
    finally:
        app.state.video_queue.close()
        await app.state.cache.aclose()
