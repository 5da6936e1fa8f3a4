"""Decompression traps: nothing an upload carries is ever inflated or decoded.

The app types a file by its first bytes and stores the bytes as sent; it decodes no
pixels and opens no archive. So a PNG "decompression bomb" (a few KB declaring ten
billion pixels, its IDAT inflating to 16 MiB and claiming far more) is an ordinary small
PNG here, stored and served back unchanged; a zip bomb is a type it does not accept; a
gzip-encoded request body is not inflated (the body limit counts the bytes on the wire).
A future thumbnailer must refuse the bomb by its declared size before inflating it, and
this test changes with it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zipfile
import zlib

import httpx2
import media_files
import pytest
from fastapi import FastAPI

from conftest import signed_in
from tecnocursos.core.settings import TecnoCursosSettings

SIDE = 100_000
"""Declared width and height: 10**10 grey pixels, 10 GB if anything decoded them."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb() -> bytes:
    """A valid PNG header declaring ``SIDE`` x ``SIDE``; IDAT: 16 MiB of zeros, deflated."""
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(16 * 1024 * 1024), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def zip_bomb() -> bytes:
    """A zip whose one member, ``cover.png``, inflates to 64 MiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cover.png", bytes(64 * 1024 * 1024))
    return buffer.getvalue()


def stored(settings: TecnoCursosSettings) -> list[bytes]:
    root = settings.storage.local_dir
    files = sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
    return [path.read_bytes() for path in files]


@pytest.mark.asyncio
async def test_a_png_bomb_is_stored_and_served_as_its_bytes_never_decoded(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    bomb = png_bomb()
    assert len(bomb) < 64 * 1024  # tiny on the wire
    created = await client.post(
        "/media", files={"file": ("huge.png", bomb, "image/png")}, headers=headers
    )
    assert created.status_code == 201, created.text
    media = created.json()
    assert (media["content_type"], media["size"]) == ("image/png", len(bomb))
    assert media["sha256"] == hashlib.sha256(bomb).hexdigest()
    assert stored(settings) == [bomb]  # not re-encoded, not inflated
    content = await client.get(f"/media/{media['id']}/content", headers=headers)
    assert content.content == bomb


@pytest.mark.asyncio
async def test_a_zip_bomb_named_png_is_415_and_never_opened(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    bomb = zip_bomb()
    body, content_headers = media_files.multipart(
        bomb, filename="cover.png", content_type="image/png"
    )
    response = await client.post("/media", content=body, headers={**headers, **content_headers})
    assert response.status_code == 415
    assert stored(settings) == []


@pytest.mark.asyncio
async def test_a_gzip_encoded_upload_is_not_inflated(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    """5 MiB of multipart gzipped to a few KB: read as the bytes sent, a malformed form."""
    headers = await signed_in(app, client, "ana@example.com")
    body, content_headers = media_files.multipart(media_files.png() + bytes(5 * 1024 * 1024))
    compressed = gzip.compress(body)
    assert len(compressed) < 64 * 1024
    response = await client.post(
        "/media",
        content=compressed,
        headers={**headers, **content_headers, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert stored(settings) == []
