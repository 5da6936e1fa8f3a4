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

from conftest import make_settings, new_project, new_scene, signed_in, started
from tecnocursos.core.app import create_app
from tecnocursos.videos import probe

pytestmark = pytest.mark.asyncio

FAST = {
    "lease_seconds": 4,
    "heartbeat_seconds": 1,
    "reconcile_seconds": 0.5,
    "retry_backoff_seconds": 0.2,
    "progress_poll_seconds": 0.1,
    "max_attempts": 2,
}


@pytest_asyncio.fixture
async def videos(
    tmp_path: Path, restore_logging: None
) -> AsyncIterator[tuple[FastAPI, httpx2.AsyncClient]]:
    app = create_app(make_settings(tmp_path, video=FAST))
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


async def course(client: httpx2.AsyncClient, headers: dict[str, str], scenes: int = 3) -> int:
    project = await new_project(client, headers, title="Curso de Python")
    for number in range(scenes):
        await new_scene(
            client,
            headers,
            project["id"],
            title=f"Cena {number + 1}",
            script=f"Esta é a cena número {number + 1} do curso.",
        )
    return int(project["id"])


async def test_a_course_becomes_a_video_followed_live_and_downloaded(
    videos: tuple[FastAPI, httpx2.AsyncClient], tmp_path: Path
) -> None:
    app, client = videos
    headers = await signed_in(app, client, "teacher@example.com")
    project_id = await course(client, headers)

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
