"""/media: uploads typed by their bytes, limits, quota, downloads, who may see what."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import media_files
import pytest
from fastapi import FastAPI

from conftest import make_settings, signed_in
from tecnocursos.core.settings import TecnoCursosSettings

MAX_IMAGE = 4096
MAX_AUDIO = 8192


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> TecnoCursosSettings:
    """Small media limits, storage in the test's directory; ``media`` overrides by parameter."""
    media: dict[str, Any] = {"max_image_bytes": MAX_IMAGE, "max_audio_bytes": MAX_AUDIO}
    media.update(getattr(request, "param", {}))
    return make_settings(tmp_path, media=media, storage={"local_dir": tmp_path / "media"})


def stored_files(settings: TecnoCursosSettings) -> list[Path]:
    """Every file under the storage directory, temporary ones included."""
    root = settings.storage.local_dir
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


async def upload(
    client: httpx2.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    filename: str = "upload.bin",
    content_type: str = "application/octet-stream",
    fields: dict[str, str] | None = None,
) -> httpx2.Response:
    body, content_headers = media_files.multipart(
        data, filename=filename, content_type=content_type, fields=fields
    )
    return await client.post("/media", content=body, headers={**headers, **content_headers})


ACCEPTED: list[tuple[Callable[[], bytes], str, str]] = [
    (media_files.png, "image/png", "image"),
    (media_files.jpeg, "image/jpeg", "image"),
    (media_files.gif, "image/gif", "image"),
    (media_files.webp, "image/webp", "image"),
    (media_files.mp3_id3, "audio/mpeg", "audio"),
    (media_files.mp3_frame, "audio/mpeg", "audio"),
    (media_files.wav, "audio/wav", "audio"),
    (media_files.ogg, "audio/ogg", "audio"),
    (media_files.flac, "audio/flac", "audio"),
    (media_files.m4a, "audio/mp4", "audio"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make", "content_type", "kind"), ACCEPTED, ids=[make.__name__ for make, _, _ in ACCEPTED]
)
async def test_each_accepted_type_is_stored_with_its_detected_type_and_sha256(
    app: FastAPI,
    client: httpx2.AsyncClient,
    settings: TecnoCursosSettings,
    make: Callable[[], bytes],
    content_type: str,
    kind: str,
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    data = make()
    created = await upload(client, headers, data, filename="clip.bin")
    assert created.status_code == 201, created.text
    media = created.json()
    assert (media["content_type"], media["kind"]) == (content_type, kind)
    assert media["size"] == len(data)
    assert media["sha256"] == hashlib.sha256(data).hexdigest()
    assert media["original_name"] == "clip.bin"
    assert created.headers["location"] == f"/media/{media['id']}"
    assert "storage_key" not in media

    assert (await client.get(f"/media/{media['id']}", headers=headers)).json() == media
    content = await client.get(f"/media/{media['id']}/content", headers=headers)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"] == content_type
    assert content.headers["x-content-type-options"] == "nosniff"
    assert [path.read_bytes() for path in stored_files(settings)] == [data]


@pytest.mark.asyncio
async def test_a_png_named_mp3_and_sent_as_audio_is_stored_as_a_png(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await upload(
        client, headers, media_files.png(), filename="song.mp3", content_type="audio/mpeg"
    )
    assert created.status_code == 201
    assert (created.json()["kind"], created.json()["content_type"]) == ("image", "image/png")
    content = await client.get(f"/media/{created.json()['id']}/content", headers=headers)
    assert content.headers["content-type"] == "image/png"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "data",
    [media_files.HTML, media_files.ELF, b"", b"plain text"],
    ids=["html", "elf", "empty", "text"],
)
async def test_html_elf_or_unknown_bytes_named_png_are_415_and_not_stored(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings, data: bytes
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    response = await upload(client, headers, data, filename="photo.png", content_type="image/png")
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "image/png" in response.json()["detail"]  # names what is accepted
    assert stored_files(settings) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("settings", [{"allowed_audio_types": ["audio/wav"]}], indirect=True)
async def test_a_recognised_type_that_settings_do_not_allow_is_415(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    assert (await upload(client, headers, media_files.flac())).status_code == 415
    assert (await upload(client, headers, media_files.wav())).status_code == 201
