"""``/media``: upload images and audio, read their metadata, download, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Response, UploadFile
from sqlalchemy import update
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

from fastapi_enterprise import problem_responses
from tecnocursos.auth.dependencies import CurrentUser
from tecnocursos.core.database import MAX_ID, IdPath, Session
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media import service
from tecnocursos.media.schemas import MediaOut
from tecnocursos.media.storage import Storage
from tecnocursos.projects.service import can_write, readable_project
from tecnocursos.scenes.models import Scene

__all__ = ["get_storage", "router"]

router = APIRouter(prefix="/media", tags=["media"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ATTACHMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment, with its detected content type",
        "content": {"image/*": _BINARY, "audio/*": _BINARY},
    }
}


async def get_storage(request: Request) -> Storage:
    """The app's media storage (set by ``create_app``)."""
    storage: Storage = request.app.state.storage
    return storage


AppStorage = Annotated[Storage, Depends(get_storage)]


@router.post("", status_code=201, responses=problem_responses(401, 404, 413, 415, 422))
async def upload_media(
    file: UploadFile,
    user: CurrentUser,
    session: Session,
    storage: AppStorage,
    request: Request,
    response: Response,
    project_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
) -> MediaOut:
    """Upload an image or audio file (multipart ``file``, optional ``project_id``).

    The type is read from the file's bytes; the name and content type the client sent
    are not trusted. Over the size limit or the caller's quota: 413; a type that is not
    accepted: 415; a project the caller may not change: 404.
    """
    if project_id is not None:
        project = await readable_project(session, user, project_id)
        if not can_write(user, project):
            raise HTTPException(404, "Project not found.")
    settings: TecnoCursosSettings = request.app.state.settings
    media = await service.store_upload(
        session,
        storage,
        settings.media,
        user,
        file.file,
        filename=file.filename,
        size=file.size,
        project_id=project_id,
    )
    response.headers["Location"] = f"/media/{media.id}"
    return MediaOut.model_validate(media)


@router.get("/{media_id}", responses=problem_responses(401, 404))
async def read_media(media_id: IdPath, user: CurrentUser, session: Session) -> MediaOut:
    """A media file's metadata (its owner and admins)."""
    return MediaOut.model_validate(await service.readable_media(session, user, media_id))


@router.get(
    "/{media_id}/content",
    response_class=StreamingResponse,
    responses=_ATTACHMENT | problem_responses(401, 404),
)
async def download_media(
    media_id: IdPath, user: CurrentUser, session: Session, storage: AppStorage
) -> StreamingResponse:
    """The file, with its detected content type, as an attachment (owner and admins)."""
    media = await service.readable_media(session, user, media_id)
    return StreamingResponse(
        storage.open(media.storage_key),
        media_type=media.content_type,
        headers={
            "Content-Length": str(media.size),
            "Content-Disposition": service.content_disposition(media.original_name),
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete("/{media_id}", status_code=204, responses=problem_responses(401, 404))
async def delete_media(
    media_id: IdPath, user: CurrentUser, session: Session, storage: AppStorage
) -> Response:
    """Delete a media file and its bytes (owner or admin); scenes showing it lose the image."""
    media = await service.readable_media(session, user, media_id)
    # Explicitly: SQLite enforces ON DELETE SET NULL only with PRAGMA foreign_keys on.
    await session.execute(update(Scene).where(Scene.image_id == media.id).values(image_id=None))
    await session.delete(media)
    await session.flush()
    # The bytes go once the row's deletion is committed (the session commits before the
    # response is sent; a failed commit sends an error response, without this task).
    return Response(status_code=204, background=BackgroundTask(storage.delete, media.storage_key))
