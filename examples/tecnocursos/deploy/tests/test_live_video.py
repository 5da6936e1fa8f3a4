"""A video job end to end through nginx: rendered by the worker, followed live (SSE)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from conftest import Deployment


def sse_events(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of each complete event in the stream's lines."""
    events: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                events.append((fields["event"], json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    return events


def test_a_video_job_runs_end_to_end_with_progress_streamed_through_nginx(
    deployment: Deployment,
) -> None:
    email = f"teacher-{uuid.uuid4().hex[:10]}@example.com"
    with deployment.client(source="127.0.0.17", timeout=120) as client:
        deployment.account(client, email)
        deployment.set_role(email, "instructor")
        headers = deployment.login(client, email)
        project = client.post("/projects", json={"title": "Curso ao vivo"}, headers=headers)
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]
        for number in (1, 2):
            scene = client.post(
                f"/projects/{project_id}/scenes",
                json={"title": f"Cena {number}", "script": f"Esta é a cena {number}."},
                headers=headers,
            )
            assert scene.status_code == 201, scene.text

        created = client.post(
            f"/projects/{project_id}/videos", json={"language": "pt"}, headers=headers
        )
        assert created.status_code == 202, created.text
        job = created.json()

        lines: list[str] = []
        state_at_first_event = None
        with client.stream("GET", job["events_url"], headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                lines.append(line)
                if state_at_first_event is None and sse_events(lines):
                    # Streamed, not buffered by nginx: the first event is here while
                    # the job (whose end ends the stream) is still being rendered.
                    current = client.get(f"/videos/{job['id']}", headers=headers)
                    state_at_first_event = current.json()["state"]
        events = sse_events(lines)
        assert state_at_first_event in {"queued", "running"}
        states = [event for event, _ in events]
        assert states[-1] == "succeeded", events[-1]
        percents = [data["progress"]["percent"] for _, data in events]
        assert percents == sorted(percents)
        assert percents[-1] == 100
        done = events[-1][1]

        video = client.get(done["file_url"], headers=headers)
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        assert int(video.headers["content-length"]) == done["size"] == len(video.content)
        assert video.content[4:8] == b"ftyp"

    served = {
        entry["upstream"]
        for entry in deployment.access_log()
        if entry["uri"].startswith(f"/videos/{job['id']}")
    }
    assert served <= {deployment.upstream("app1"), deployment.upstream("app2")}
    worker_lines = deployment.app_log("worker")
    assert any(line.get("job_id") == job["id"] for line in worker_lines), "worker never ran it"
