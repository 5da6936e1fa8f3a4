"""Uploading, finding and describing media: types, sizes, the quota, who may see what.

Only the owner and admins see a media file; anyone else is told it does not exist
(404, never 403), as for private projects.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import BinaryIO
from urllib.parse import quote

import anyio
from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fastapi_enterprise.database import lock_for_update
from tecnocursos.auth.models import Role, User, utcnow
from tecnocursos.core.metrics import measured
from tecnocursos.core.settings import MediaSettings
from tecnocursos.media.detect import SNIFF_BYTES, detect_type, kind_of
from tecnocursos.media.models import MediaFile, MediaKind
from tecnocursos.media.storage import (
    CHUNK_BYTES,
    FileTooLargeError,
    Storage,
    StoredFile,
    new_key,
)

__all__ = [
    "content_disposition",
    "readable_media",
    "sanitize_filename",
    "store_upload",
    "used_bytes",
]

_NAME_MAX = 255


def sanitize_filename(name: str | None) -> str:
    r"""A client's file name made safe to store and show.

    Only the last path component survives (``/`` and ``\`` both separate), control
    characters (CR, LF, NUL...) are dropped, the text is NFC-normalised and cut to 255
    characters; nothing usable left gives ``file``.
    """
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(char for char in text if unicodedata.category(char)[0] != "C").strip()
    text = text.strip(".") and text  # ".", ".." and the like name nothing
    return text[:_NAME_MAX] or "file"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact ``filename*`` (RFC 6266, 5987)."""
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\%' else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _is_admin(user: User) -> bool:
    return user.role is Role.ADMIN


async def readable_media(session: AsyncSession, user: User, media_id: int) -> MediaFile:
    """The media file, if ``user`` owns it or is an admin.

    Raises:
        HTTPException: 404 when it does not exist or belongs to someone else.
    """
    media = await session.get(MediaFile, media_id)
    if media is None or not (_is_admin(user) or media.owner_id == user.id):
        raise HTTPException(404, "Media not found.")
    return media


async def used_bytes(session: AsyncSession, owner_id: int, *, lock: bool = False) -> int:
    """The bytes of media ``owner_id`` stores.

    Args:
        session: The request's session.
        owner_id: The user.
        lock: Read the latest committed rows and lock them (``FOR UPDATE``); aggregates
            cannot be locked on PostgreSQL, so the sizes are summed here.
    """
    statement = select(MediaFile.size).where(MediaFile.owner_id == owner_id)
    if lock:
        statement = statement.with_for_update()
    return sum((await session.scalars(statement)).all())


def _quota_exceeded(settings: MediaSettings) -> HTTPException:
    return HTTPException(
        413,
        f"This upload would take your media past its quota of "
        f"{settings.user_quota_bytes} bytes; delete some media first.",
    )


async def _chunks(file: BinaryIO, head: bytes) -> AsyncIterator[bytes]:
    yield head
    while chunk := await anyio.to_thread.run_sync(file.read, CHUNK_BYTES):
        yield chunk


@measured("media_upload")
async def store_upload(
    session: AsyncSession,
    storage: Storage,
    settings: MediaSettings,
    owner: User,
    file: BinaryIO,
    *,
    filename: str | None,
    size: int | None,
    project_id: int | None,
) -> MediaFile:
    """Type, size-check, store and record an upload, within ``owner``'s quota.

    The type comes from the first bytes; the bytes go to ``storage`` in chunks; the
    quota is checked before storing and again after, in the transaction with the
    owner's row locked, so two concurrent uploads cannot both slip past it. Whenever
    the upload is refused after storing, the stored file is removed.

    Args:
        session: The request's session (committed here, so a failed commit removes
            the stored file too).
        storage: Where the bytes go.
        settings: Limits, allowed types, the quota.
        owner: The uploader.
        file: The upload, positioned at its start.
        filename: The client's file name (only sanitised and recorded).
        size: The upload's size when known (refused early when too large).
        project_id: The project it is for; the caller checked it may write it.

    Raises:
        HTTPException: 415 for an unknown or disallowed type, 413 for a file over its
            kind's limit or over the quota.
    """
    head = await anyio.to_thread.run_sync(file.read, SNIFF_BYTES)
    content_type = detect_type(head)
    allowed = [*settings.allowed_image_types, *settings.allowed_audio_types]
    if content_type is None or content_type not in allowed:
        raise HTTPException(415, f"Unsupported media type; accepted: {', '.join(sorted(allowed))}.")
    kind = MediaKind(kind_of(content_type))
    max_bytes = settings.max_image_bytes if kind is MediaKind.IMAGE else settings.max_audio_bytes
    if size is not None and size > max_bytes:
        raise HTTPException(
            413, f"{kind.value.capitalize()} files may be at most {max_bytes} bytes."
        )
    if await used_bytes(session, owner.id) + (size or 0) > settings.user_quota_bytes:
        raise _quota_exceeded(settings)  # early, before a byte is stored

    key = new_key()
    try:
        stored: StoredFile = await storage.save(key, _chunks(file, head), max_bytes=max_bytes)
    except FileTooLargeError:
        raise HTTPException(
            413, f"{kind.value.capitalize()} files may be at most {max_bytes} bytes."
        ) from None
    try:
        media = MediaFile(
            owner_id=owner.id,
            project_id=project_id,
            kind=kind,
            content_type=content_type,
            size=stored.size,
            sha256=stored.sha256,
            original_name=sanitize_filename(filename),
            storage_key=key,
            created_at=utcnow(),
        )
        # Lock the owner's row first (SQLite: the database's write lock): the uploads of
        # one user go one at a time from here. After the insert it would deadlock, as the
        # insert's foreign key already takes a shared lock on that row.
        owner_row = select(User.id).where(User.id == owner.id)
        await session.execute(await lock_for_update(session, owner_row))
        session.add(media)
        await session.flush()
        if await used_bytes(session, owner.id, lock=True) > settings.user_quota_bytes:
            raise _quota_exceeded(settings)
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await storage.delete(key)
        raise
    return media
