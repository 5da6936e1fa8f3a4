"""Video jobs through the API, with the embedded worker: real renders, real MP4s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from fastapi import FastAPI
from media_files import png
from sqlalchemy import func, select

from conftest import (
    VIDEO_FAST,
    bearer,
    make_settings,
    new_course,
    new_project,
    new_scene,
    signed_in,
    started,
    tokens_for,
)
from tecnocursos.auth.models import Role, User, utcnow
from tecnocursos.core.app import create_app
from tecnocursos.projects.models import Project
from tecnocursos.videos import probe
from tecnocursos.videos.jobs import VideoJob
from tecnocursos.videos.service import create_job

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def videos(
    tmp_path: Path, restore_logging: None
) -> AsyncIterator[tuple[FastAPI, httpx2.AsyncClient]]:
    app = create_app(make_settings(tmp_path, video=VIDEO_FAST))
    try:
        async with started(app) as client:
            yield app, client
    finally:
        app.state.logging.stop()


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a text/event-stream body."""
    events = []
    for block in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_a_course_becomes_a_video_followed_live_and_downloaded(
    videos: tuple[FastAPI, httpx2.AsyncClient], tmp_path: Path
) -> None:
    app, client = videos
    headers = await signed_in(app, client, "teacher@example.com")
    project_id = await new_course(client, headers)

    created = await client.post(
        f"/projects/{project_id}/videos", json={"language": "pt"}, headers=headers
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["Location"] == f"/videos/{job['id']}"
    assert job["state"] == "queued"
    assert job["progress"] == {"percent": 0, "scene": None, "scenes": 3}

    stream = await client.get(job["events_url"], headers=headers)
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = events_of(stream.text)
    states = [event for event, _ in events]
    assert states[-1] == "succeeded", events[-1]
    assert "running" in states
    percents = [data["progress"]["percent"] for _, data in events]
    assert percents == sorted(percents)
    done = events[-1][1]
    assert done["progress"]["percent"] == 100
    assert done["attempts"] == 1
    assert done["file_url"] == f"/videos/{job['id']}/file"
    assert done["error"] is None

    video = await client.get(done["file_url"], headers=headers)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"
    assert int(video.headers["content-length"]) == done["size"] == len(video.content)
    path = tmp_path / "downloaded.mp4"
    path.write_bytes(video.content)
    probed = await probe(path)
    assert (probed.video_codec, probed.audio_codec) == ("h264", "aac")
    assert abs(probed.duration - done["video_seconds"]) < 0.2

    part = await client.get(done["file_url"], headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == video.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(video.content)}"

    listed = await client.get(f"/projects/{project_id}/videos", headers=headers)
    assert [item["id"] for item in listed.json()["items"]] == [job["id"]]


async def upload_png(client: httpx2.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.post(
        "/media", files={"file": ("slide.png", png(), "image/png")}, headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_requests_are_checked_before_a_job_exists(
    videos: tuple[FastAPI, httpx2.AsyncClient],
) -> None:
    app, client = videos
    owner = await signed_in(app, client, "owner@example.com")
    other = await signed_in(app, client, "other@example.com")
    student = await signed_in(app, client, "student@example.com", role=Role.STUDENT)
    empty = await new_project(client, owner)
    refused = await client.post(f"/projects/{empty['id']}/videos", headers=owner)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "The project has no scenes to render."
    project_id = await new_course(client, owner, scenes=1)
    for body in ({"language": "fr"}, {"language": "pt", "voice": "x"}, {"language": None}):
        response = await client.post(f"/projects/{project_id}/videos", json=body, headers=owner)
        assert response.status_code == 422, body
    # A private project's videos are nobody else's business: 404, as for the project.
    for headers in (other, student):
        response = await client.post(f"/projects/{project_id}/videos", headers=headers)
        assert response.status_code == 404
    assert (await client.post("/projects/999999/videos", headers=owner)).status_code == 404
    assert (await client.post(f"/projects/{project_id}/videos")).status_code == 401
    async with app.state.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(VideoJob)) == 0


async def test_a_job_is_private_to_its_project_s_readers(
    videos: tuple[FastAPI, httpx2.AsyncClient],
) -> None:
    app, client = videos
    owner = await signed_in(app, client, "owner@example.com")
    other = await signed_in(app, client, "other@example.com")
    project_id = await new_course(client, owner, scenes=1)
    job = (await client.post(f"/projects/{project_id}/videos", headers=owner)).json()
    for path in ("", "/file", "/events"):
        assert (await client.get(f"/videos/{job['id']}{path}", headers=other)).status_code == 404
    assert (await client.post(f"/videos/{job['id']}/cancel", headers=other)).status_code == 404
    assert (await client.get(f"/projects/{project_id}/videos", headers=other)).status_code == 404
    for bad in ("0", "-1", "x", str(2**31)):
        assert (await client.get(f"/videos/{bad}", headers=owner)).status_code == 422
    await client.get(job["events_url"], headers=owner)  # until it finished


async def test_cancel_file_and_limits_follow_the_state(
    tmp_path: Path, restore_logging: None
) -> None:
    app = create_app(make_settings(tmp_path, video={**VIDEO_FAST, "max_active_per_user": 1}))
    try:
        async with started(app) as client:
            owner = await signed_in(app, client, "owner@example.com")
            project_id = await new_course(client, owner, scenes=6)
            job = (await client.post(f"/projects/{project_id}/videos", headers=owner)).json()
            second = await client.post(f"/projects/{project_id}/videos", headers=owner)
            assert second.status_code == 429
            assert second.headers["Retry-After"] == "30"
            early = await client.get(f"/videos/{job['id']}/file", headers=owner)
            assert early.status_code == 409
            cancelled = await client.post(f"/videos/{job['id']}/cancel", headers=owner)
            assert cancelled.status_code == 202
            body = cancelled.json()
            assert body["state"] == "cancelled" or body["cancel_requested"] is True
            events = events_of((await client.get(job["events_url"], headers=owner)).text)
            final = events[-1][1]
            assert final["state"] == "cancelled"
            assert final["file_url"] is None
            assert final["progress"]["scene"] is None
            again = await client.post(f"/videos/{job['id']}/cancel", headers=owner)
            assert again.status_code == 409
            assert again.json()["detail"] == "The video has already cancelled."
            assert (await client.get(f"/videos/{job['id']}/file", headers=owner)).status_code == 409
            # Nothing of the cancelled render is left; the limit is free again.
            media = tmp_path / "media"
            assert not [p for p in media.rglob("*") if p.is_file()]
            third = await client.post(f"/projects/{project_id}/videos", headers=owner)
            assert third.status_code == 202
            await client.get(third.json()["events_url"], headers=owner)
    finally:
        app.state.logging.stop()


async def test_a_scene_shows_its_owner_s_uploaded_image_only(
    videos: tuple[FastAPI, httpx2.AsyncClient],
) -> None:
    app, client = videos
    owner = await signed_in(app, client, "owner@example.com")
    other = await signed_in(app, client, "other@example.com")
    project = await new_project(client, owner)
    mine, theirs = await upload_png(client, owner), await upload_png(client, other)
    refused = await client.post(
        f"/projects/{project['id']}/scenes", json={"title": "A", "image_id": theirs}, headers=owner
    )
    assert refused.status_code == 422
    for bad in (0, "1", True, 2**31):
        response = await client.post(
            f"/projects/{project['id']}/scenes", json={"title": "A", "image_id": bad}, headers=owner
        )
        assert response.status_code == 422, bad
    scene = await new_scene(client, owner, project["id"], title="Com imagem", image_id=mine)
    assert scene["image_id"] == mine
    patched = await client.patch(
        f"/projects/{project['id']}/scenes/{scene['id']}", json={"image_id": theirs}, headers=owner
    )
    assert patched.status_code == 422
    job = (await client.post(f"/projects/{project['id']}/videos", headers=owner)).json()
    events = events_of((await client.get(job["events_url"], headers=owner)).text)
    assert events[-1][0] == "succeeded", events[-1]
    # Deleting the media clears the scene's image (SQLite enforces no foreign keys here).
    assert (await client.delete(f"/media/{mine}", headers=owner)).status_code == 204
    scenes = await client.get(f"/projects/{project['id']}/scenes", headers=owner)
    assert scenes.json()["items"][0]["image_id"] is None


async def test_deleting_a_project_deletes_its_videos_and_files(
    videos: tuple[FastAPI, httpx2.AsyncClient], tmp_path: Path
) -> None:
    app, client = videos
    owner = await signed_in(app, client, "owner@example.com")
    project_id = await new_course(client, owner, scenes=1)
    job = (await client.post(f"/projects/{project_id}/videos", headers=owner)).json()
    events = events_of((await client.get(job["events_url"], headers=owner)).text)
    assert events[-1][0] == "succeeded"
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert (await client.delete(f"/projects/{project_id}", headers=owner)).status_code == 204
    assert not files[0].exists()
    assert (await client.get(f"/videos/{job['id']}", headers=owner)).status_code == 404


async def test_an_embedded_restart_resends_the_jobs_its_memory_queue_lost(
    tmp_path: Path, restore_logging: None
) -> None:
    """The in-memory broker's messages die with the process; the rows do not."""
    settings = make_settings(tmp_path, video={**VIDEO_FAST, "requeue_after_seconds": 3600})
    first = create_app(settings)
    try:
        async with started(first) as client:
            owner = await signed_in(first, client, "owner@example.com")
            project_id = await new_course(client, owner, scenes=1)
            async with first.state.database.transaction() as session:
                project = await session.get(Project, project_id)
                user = await session.get(User, project.owner_id if project else 0)
                assert project is not None
                assert user is not None
                job = await create_job(
                    session,
                    project,
                    user,
                    settings=settings.video,
                    language="en",
                    request_id=None,
                )
                job.enqueued_at = utcnow()  # "sent" to a queue that is about to vanish
                job_id = job.id
    finally:
        first.state.logging.stop()
    second = create_app(settings)
    try:
        async with started(second) as client:
            owner = bearer((await tokens_for(client, "owner@example.com"))["access_token"])
            events = events_of((await client.get(f"/videos/{job_id}/events", headers=owner)).text)
            assert events[-1][0] == "succeeded", events[-1]
            assert events[-1][1]["attempts"] == 1
    finally:
        second.state.logging.stop()
