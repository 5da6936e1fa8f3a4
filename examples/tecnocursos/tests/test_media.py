"""/media: uploads typed by their bytes, limits, quota, downloads, who may see what."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import media_files
import pytest
from fastapi import FastAPI
from starlette.types import Message

from conftest import make_settings, signed_in
from tecnocursos.auth.models import Role
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media.service import sanitize_filename
from tecnocursos.media.storage import FileTooLargeError, LocalStorage, new_key

MAX_IMAGE = 4096
MAX_AUDIO = 8192


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> TecnoCursosSettings:
    """Small media limits, storage in the test's directory; ``media`` overrides by parameter."""
    media: dict[str, Any] = {"max_image_bytes": MAX_IMAGE, "max_audio_bytes": MAX_AUDIO}
    media.update(getattr(request, "param", {}))
    return make_settings(tmp_path, media=media, storage={"local_dir": tmp_path / "media"})


def files_under(root: Path) -> list[Path]:
    """Every file under ``root``, temporary ones included."""
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def stored_files(settings: TecnoCursosSettings) -> list[Path]:
    """Every file in the media storage, temporary ones included."""
    return files_under(settings.storage.local_dir)


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


@pytest.mark.asyncio
async def test_a_huge_declared_content_length_is_413_before_a_byte_is_read(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/media",
        "raw_path": b"/media",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", f"multipart/form-data; boundary={media_files.BOUNDARY}".encode()),
            (b"content-length", str(10**12).encode()),
            (b"authorization", headers["Authorization"].encode()),
        ],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert reads == 0
    assert stored_files(settings) == []


def test_the_upload_route_gets_a_body_limit_from_the_media_limits(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, media={"max_image_bytes": 10, "max_audio_bytes": 500})
    assert settings.body_limit.routes["/media"] == settings.media.upload_body_limit()
    assert settings.media.upload_body_limit() > 500
    explicit = make_settings(tmp_path, body_limit={"routes": {"/media": 1234}})
    assert explicit.body_limit.routes["/media"] == 1234


@pytest.mark.asyncio
async def test_a_chunked_body_growing_past_the_route_limit_is_413_and_nothing_is_stored(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    body, content_headers = media_files.multipart(
        media_files.wav() + bytes(settings.media.upload_body_limit())
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await client.post("/media", content=chunks(), headers={**headers, **content_headers})
    assert response.status_code == 413
    assert stored_files(settings) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "limit"),
    [
        (media_files.png() + bytes(MAX_IMAGE), MAX_IMAGE),
        (media_files.mp3_frame() + bytes(MAX_AUDIO), MAX_AUDIO),
    ],
    ids=["image", "audio"],
)
async def test_a_file_over_its_kinds_limit_is_413_and_nothing_is_stored(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings, data: bytes, limit: int
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    response = await upload(client, headers, data)
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]
    assert stored_files(settings) == []
    # An image of exactly the limit is fine: the limit is inclusive.
    exact = await upload(client, headers, data[:limit])
    assert exact.status_code == 201


@pytest.mark.asyncio
async def test_storage_refuses_a_stream_past_max_bytes_and_leaves_no_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    key = new_key()
    with pytest.raises(FileTooLargeError):
        await storage.save(key, chunks(), max_bytes=3500)
    assert files_under(tmp_path) == []
    assert not await storage.exists(key)
    stored = await storage.save(key, chunks(), max_bytes=4000)
    assert (stored.size, stored.sha256) == (4000, hashlib.sha256(b"x" * 4000).hexdigest())
    assert b"".join([chunk async for chunk in storage.open(key)]) == b"x" * 4000


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "..", "a" * 31, "A" * 32, ""])
def test_storage_refuses_keys_it_did_not_make(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        LocalStorage(tmp_path).path(key)


PNG_SIZE = len(media_files.png())


@pytest.mark.asyncio
@pytest.mark.parametrize("settings", [{"user_quota_bytes": 2 * PNG_SIZE}], indirect=True)
async def test_uploads_past_the_users_quota_are_413_until_something_is_deleted(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    ana = await signed_in(app, client, "ana@example.com")
    bob = await signed_in(app, client, "bob@example.com")
    first = await upload(client, ana, media_files.png())
    assert (await upload(client, ana, media_files.png())).status_code == 201
    refused = await upload(client, ana, media_files.png())
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert f"quota of {2 * PNG_SIZE} bytes" in refused.json()["detail"]
    assert len(stored_files(settings)) == 2
    assert (await upload(client, bob, media_files.png())).status_code == 201  # per user
    assert (await client.delete(f"/media/{first.json()['id']}", headers=ana)).status_code == 204
    assert (await upload(client, ana, media_files.png())).status_code == 201


@pytest.mark.asyncio
@pytest.mark.parametrize("settings", [{"user_quota_bytes": PNG_SIZE}], indirect=True)
async def test_concurrent_uploads_cannot_both_slip_past_the_quota(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    responses = await asyncio.gather(
        *(upload(client, headers, media_files.png()) for _ in range(6))
    )
    assert sorted(response.status_code for response in responses) == [201] + [413] * 5
    assert len(stored_files(settings)) == 1


NASTY_NAME = '..\\..\\etc/x/pa"ss\twd\x0b\x00 ünï 日本.png'


@pytest.mark.asyncio
async def test_downloads_carry_a_safe_content_disposition_for_a_nasty_file_name(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await upload(client, headers, media_files.png(), filename=NASTY_NAME)
    assert created.status_code == 201, created.text
    # The last path component, without control characters.
    assert created.json()["original_name"] == 'pa"sswd ünï 日本.png'

    content = await client.get(f"/media/{created.json()['id']}/content", headers=headers)
    disposition = content.headers["content-disposition"]
    assert disposition == (
        'attachment; filename="pa_sswd _n_ __.png"; '
        "filename*=UTF-8''pa%22sswd%20%C3%BCn%C3%AF%20%E6%97%A5%E6%9C%AC.png"
    )
    assert content.headers["content-type"] == "image/png"
    assert content.headers["content-length"] == str(len(media_files.png()))
    assert content.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../../../tmp/evil.png", "evil.png"),
        ("..\\..\\windows\\system32\\evil.png", "evil.png"),
        ("/etc/passwd", "passwd"),
        ("..", "file"),
        ("a\r\nX-Evil: 1\r\n.png", "aX-Evil: 1.png"),
        ("", "file"),
        (None, "file"),
        ("x" * 300 + ".png", "x" * 255),
    ],
)
def test_file_names_are_sanitised(raw: str | None, clean: str) -> None:
    assert sanitize_filename(raw) == clean


@pytest.mark.asyncio
async def test_path_traversal_in_the_file_name_writes_nothing_outside_the_storage(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings, tmp_path: Path
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    before = set(files_under(tmp_path))
    for name in ["../../../outside.png", "..\\..\\outside.png", "/var/outside.png"]:
        created = await upload(client, headers, media_files.png(), filename=name)
        assert created.status_code == 201
        assert created.json()["original_name"] == "outside.png"
    stored = stored_files(settings)
    assert len(stored) == 3
    assert all(path.name != "outside.png" for path in stored)  # keys are the app's own
    assert set(files_under(tmp_path)) - before == set(stored)
    assert not (tmp_path.parent / "outside.png").exists()


async def _matrix_users(app: FastAPI, client: httpx2.AsyncClient) -> dict[str, dict[str, str]]:
    return {
        "owner": await signed_in(app, client, "ana@example.com"),
        "other": await signed_in(app, client, "bob@example.com"),
        "student": await signed_in(app, client, "sam@example.com", Role.STUDENT),
        "admin": await signed_in(app, client, "admin@example.com", Role.ADMIN),
        "anonymous": {},
    }


@pytest.mark.asyncio
async def test_only_the_owner_and_admins_see_media_others_get_404_anonymous_401(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    users = await _matrix_users(app, client)
    media_id = (await upload(client, users["owner"], media_files.wav())).json()["id"]
    expected = {"owner": 200, "admin": 200, "other": 404, "student": 404, "anonymous": 401}
    for who, status in expected.items():
        for path in [f"/media/{media_id}", f"/media/{media_id}/content"]:
            response = await client.get(path, headers=users[who])
            assert response.status_code == status, (who, path)
            if status == 404:  # exactly what an id that does not exist answers
                missing = await client.get(
                    path.replace(str(media_id), "999999"), headers=users[who]
                )
                assert response.json()["detail"] == missing.json()["detail"]
    for who in ["other", "student", "anonymous"]:
        response = await client.delete(f"/media/{media_id}", headers=users[who])
        assert response.status_code == expected[who], who
    assert len(stored_files(settings)) == 1
    assert (await upload(client, {}, media_files.png())).status_code == 401
    assert len(stored_files(settings)) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("deleter", ["owner", "admin"])
async def test_the_owner_or_an_admin_deletes_media_and_its_file(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings, deleter: str
) -> None:
    users = await _matrix_users(app, client)
    kept = (await upload(client, users["owner"], media_files.gif())).json()["id"]
    media_id = (await upload(client, users["owner"], media_files.png())).json()["id"]
    assert len(stored_files(settings)) == 2
    deleted = await client.delete(f"/media/{media_id}", headers=users[deleter])
    assert deleted.status_code == 204
    assert [path.read_bytes() for path in stored_files(settings)] == [media_files.gif()]
    for path in [f"/media/{media_id}", f"/media/{media_id}/content"]:
        assert (await client.get(path, headers=users["owner"])).status_code == 404
    assert (await client.delete(f"/media/{media_id}", headers=users["owner"])).status_code == 404
    assert (await client.get(f"/media/{kept}", headers=users["owner"])).status_code == 200


@pytest.mark.asyncio
async def test_media_for_a_project_needs_a_project_the_caller_may_change(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    users = await _matrix_users(app, client)
    own = await client.post("/projects", json={"title": "mine"}, headers=users["owner"])
    private = await client.post("/projects", json={"title": "bob's"}, headers=users["other"])
    public = await client.post(
        "/projects", json={"title": "bob's", "visibility": "public"}, headers=users["other"]
    )

    async def upload_for(who: str, project_id: int) -> httpx2.Response:
        return await upload(
            client, users[who], media_files.png(), fields={"project_id": str(project_id)}
        )

    created = await upload_for("owner", own.json()["id"])
    assert created.status_code == 201
    assert created.json()["project_id"] == own.json()["id"]
    for project_id in [private.json()["id"], public.json()["id"], 999999]:
        response = await upload_for("owner", project_id)
        assert response.status_code == 404, project_id
        assert response.json()["detail"] == "Project not found."
    assert (await upload_for("admin", private.json()["id"])).status_code == 201
    assert len(stored_files(settings)) == 2
