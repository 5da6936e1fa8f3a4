"""Where media bytes live: the ``Storage`` protocol and its local-directory implementation.

Keys are made by the app (:func:`new_key`), never from a client's file name, and a key
that is not one of ours is refused before it touches a path: no traversal is possible.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

__all__ = [
    "CHUNK_BYTES",
    "FileTooLargeError",
    "LocalStorage",
    "Storage",
    "StoredFile",
    "new_key",
]

CHUNK_BYTES = 64 * 1024
"""The size of the chunks read and written: a file is never held whole in memory."""

_KEY = re.compile(r"[0-9a-f]{32}")


def new_key() -> str:
    """A fresh storage key: 32 random hex digits, nothing from the client."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoredFile:
    """What saving a stream produced."""

    size: int
    """Bytes written."""
    sha256: str
    """Their SHA-256, lowercase hex."""


class FileTooLargeError(Exception):
    """The stream grew past ``max_bytes``; nothing was kept."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the stream is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class Storage(Protocol):
    """A place to keep media bytes under app-made keys."""

    async def save(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredFile:
        """Store ``chunks`` under ``key``, all or nothing.

        Raises:
            FileTooLargeError: More than ``max_bytes`` arrived (nothing is kept).
        """
        ...

    def open(self, key: str) -> AsyncIterator[bytes]:
        """The bytes stored under ``key``, in chunks.

        Raises:
            FileNotFoundError: Nothing is stored under ``key`` (on first iteration).
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove what is stored under ``key``; a missing key is not an error."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        ...


class LocalStorage:
    """:class:`Storage` in a local directory: ``<root>/<key[:2]>/<key>``.

    A file is written to a temporary name in its final directory and renamed into place
    (``os.replace``, atomic on POSIX and Windows), so a reader never sees half a file
    and a failed or refused upload leaves nothing behind.

    Args:
        root: The directory; created when missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file of ``key``.

        Raises:
            ValueError: ``key`` is not a key :func:`new_key` makes.
        """
        if _KEY.fullmatch(key) is None:
            raise ValueError("not a storage key")
        return self.root / key[:2] / key

    async def save(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> StoredFile:
        """Store ``chunks`` under ``key`` (see :meth:`Storage.save`)."""
        final = self.path(key)
        await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{key}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        try:
            async with await anyio.open_file(temporary, "xb") as file:
                async for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise FileTooLargeError(max_bytes)
                    digest.update(chunk)
                    await file.write(chunk)
                await file.flush()
                await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
            await anyio.to_thread.run_sync(os.replace, temporary, final)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.Path(temporary).unlink(missing_ok=True)
            raise
        return StoredFile(size=size, sha256=digest.hexdigest())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The bytes of ``key`` in :data:`CHUNK_BYTES` chunks (see :meth:`Storage.open`)."""
        async with await anyio.open_file(self.path(key), "rb") as file:
            while chunk := await file.read(CHUNK_BYTES):
                yield chunk

    async def delete(self, key: str) -> None:
        """Remove the file of ``key``, if there is one."""
        await anyio.Path(self.path(key)).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        """Whether the file of ``key`` exists."""
        return await anyio.Path(self.path(key)).is_file()
