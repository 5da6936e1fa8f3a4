"""Issue 15's faults, each with real processes: the API and its workers as deployed.

Every test runs ``uvicorn --factory tecnocursos.core.app:create_app`` and one or more
``python -m tecnocursos.videos.worker`` processes (``TC_VIDEO__QUEUE=redis``) on a
database, a media directory and a dramatiq namespace of its own, then breaks something
the way production breaks it (SIGKILL, SIGTERM, Redis stopped, a commit refused, a
corrupt upload, a cancel, a deleted project) and checks, through HTTP, the job row, the
media directory, the worker's ``/metrics`` and its log lines.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from video_processes import Deployment, free_port, wait_until

from conftest import POSTGRES_URL, delete_redis_keys
from tecnocursos.videos.jobs import VideoJob
from tecnocursos.videos.queue import QUEUE_NAME, VideoQueue

pytestmark = pytest.mark.redis

SKIPPED = "tecnocursos_video_deliveries_skipped_total"
ATTEMPTS = "tecnocursos_video_attempts_total"
CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"garbage" * 50
"""PNG's magic bytes (the upload is accepted as an image), then no PNG at all."""

Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy(tmp_path: Path, redis_url: str) -> Iterator[Deploy]:
    """Make deployments (``deploy(database_url=..., **video)``); all stop with the test.

    Their processes are stopped and their keys on the shared Redis deleted.
    """
    made: list[Deployment] = []

    def make(
        *, database_url: str | None = None, queue_url: str | None = None, **video: Any
    ) -> Deployment:
        root = tmp_path / f"deployment-{len(made) + 1}"
        deployment = Deployment(
            root,
            database_url=database_url or f"sqlite:///{root / 'tc.db'}",
            redis_url=queue_url or redis_url,
            namespace=f"tc-faults-{uuid.uuid4().hex[:12]}",
            video=video,
        )
        made.append(deployment)
        return deployment

    try:
        yield make
    finally:
        for deployment in made:
            deployment.close()
            asyncio.run(delete_redis_keys(redis_url, f"{deployment.namespace}:*"))


def count_jobs(deployment: Deployment) -> int:
    """Rows in the job table."""
    return int(deployment.scalar(select(func.count()).select_from(VideoJob)))


def assert_one_video(deployment: Deployment, job: dict[str, Any]) -> None:
    """The media directory holds the job's MP4 and nothing else (no render leftovers)."""
    files = deployment.media_files()
    assert len(files) == 1, files
    assert ".render" not in files[0].parts
    assert files[0].stat().st_size == job["size"]
    assert files[0].read_bytes()[4:8] == b"ftyp"  # an ISO media file: the MP4
    assert not list((deployment.media / ".render").iterdir())


def assert_nothing_left(deployment: Deployment) -> None:
    """Wait (bounded) until the media directory has no files and no render directories.

    The worker removes its render directory after it recorded the job's end.
    """

    def empty() -> bool:
        work = deployment.media / ".render"
        return not deployment.media_files() and not (work.exists() and any(work.iterdir()))

    wait_until(empty, timeout=15, what="an empty media directory", context=deployment.logs)


@pytest.mark.postgres
@pytest.mark.parametrize("server_database", [POSTGRES_URL], indirect=True)
def test_a_worker_killed_mid_render_is_redelivered_and_makes_one_video(
    server_database: str, deploy: Deploy
) -> None:
    deployment = deploy(database_url=server_database)
    api, first = deployment.api_and_worker("worker-1")
    api.sign_in()
    project_id = api.course(6, seconds=2)
    created = api.request("POST", f"/projects/{project_id}/videos")
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    request_id = created.headers["X-Request-ID"]

    api.wait_scene(job_id, 2)
    first.process.kill_group()  # SIGKILL: no release, no cleanup, the lease just stops
    held = api.job(job_id)
    assert (held["state"], held["attempts"]) == ("running", 1)

    second = deployment.worker("worker-2")
    done = api.wait_finished(job_id)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["error"] is None
    assert_one_video(deployment, done)
    assert count_jobs(deployment) == 1
    second.process.wait_event("video.succeeded", job_id=job_id)
    listed = api.request("GET", f"/projects/{project_id}/videos").json()["items"]
    assert [item["id"] for item in listed] == [job_id]
    # The second worker's reconciler took the job back when its lease expired.
    assert second.process.events("video.lease_expired", job_id=job_id, requeued=True)
    assert second.metric("tecnocursos_video_leases_expired_total") == 1
    # Both workers logged the job under the ID of the request that created it.
    for worker, attempt in ((first, 1), (second, 2)):
        started = worker.process.events("video.started", job_id=job_id, attempt=attempt)
        assert [line["request_id"] for line in started] == [request_id]
    succeeded = second.process.events("video.succeeded", job_id=job_id)
    assert [line["request_id"] for line in succeeded] == [request_id]


def test_a_worker_killed_on_the_last_attempt_fails_the_job_and_its_files_go(
    deploy: Deploy,
) -> None:
    """No retry will claim the job again: the reconciler fails it, the sweep removes its files."""
    deployment = deploy(max_attempts=1)
    api, first = deployment.api_and_worker("worker-1")
    api.sign_in()
    project_id = api.course(6, seconds=2)
    job_id = api.request("POST", f"/projects/{project_id}/videos").json()["id"]
    api.wait_scene(job_id, 2)
    first.process.kill_group()
    assert any((deployment.media / ".render").iterdir())  # what the killed worker left

    second = deployment.worker("worker-2")
    done = api.wait_finished(job_id)
    assert done["state"] == "failed", done
    assert done["attempts"] == done["max_attempts"] == 1
    assert done["error"]["title"] == "The worker rendering the video stopped"
    assert_nothing_left(deployment)
    assert second.process.wait_event("video.workdir_swept", job_id=job_id)


def test_the_same_message_delivered_twice_renders_once(deploy: Deploy) -> None:
    # The reconciler sends no message of its own during the test: two sends, two deliveries.
    deployment = deploy(requeue_after_seconds=600)
    api = deployment.api()
    api.sign_in()
    project_id = api.course(2)
    created = api.request("POST", f"/projects/{project_id}/videos")
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    queue = VideoQueue(deployment.settings, lambda job_id: None)
    try:
        queue.send(job_id)  # the API sent it once already
    finally:
        queue.close()

    worker = deployment.worker()
    done = api.wait_finished(job_id)
    assert done["state"] == "succeeded", done
    worker.process.wait_event("video.succeeded", job_id=job_id)
    skipped = wait_until(
        lambda: worker.metric(SKIPPED),
        timeout=15,
        what="the second delivery",
        context=deployment.logs,
    )
    assert skipped == 1
    # The metric moves before the log line is written (the log writer is a thread of its own).
    assert len(worker.process.wait_event("video.delivery_skipped", job_id=job_id)) == 1
    assert worker.metric(ATTEMPTS, outcome="succeeded") == 1
    assert api.job(job_id)["attempts"] == 1
    assert_one_video(deployment, done)


def test_redis_down_when_a_job_is_requested_keeps_it_queued_until_redis_is_back(
    deploy: Deploy,
) -> None:
    port = free_port()
    deployment = deploy(queue_url=f"redis://127.0.0.1:{port}/0")
    server = deployment.redis_server(port)
    api = deployment.api()
    api.sign_in()
    project_id = api.course(2)
    server.stop()

    created = api.request("POST", f"/projects/{project_id}/videos")
    assert created.status_code == 202, created.text
    job = created.json()
    assert (job["state"], job["attempts"]) == ("queued", 0)
    wait_until(
        lambda: api.process.events("video.send_failed", job_id=job["id"]),
        timeout=10,
        what="the API's send_failed line",
        context=deployment.logs,
    )
    assert (api.job(job["id"])["state"], api.job(job["id"])["attempts"]) == ("queued", 0)

    deployment.redis_server(port)  # back, empty: the API's message never reached it
    worker = deployment.worker()
    done = api.wait_finished(job["id"])
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 1
    assert_one_video(deployment, done)
    assert not worker.process.events("video.send_failed")


REFUSE_JOBS_AT_COMMIT = [
    """
    CREATE FUNCTION tc_refuse_video_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'video jobs refused by the test'; END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER tc_refuse_video_jobs AFTER INSERT ON video_jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tc_refuse_video_jobs()
    """,
]
"""A deferred constraint trigger: the INSERT succeeds, the COMMIT fails."""


def execute(database_url: str, *statements: str) -> None:
    """Run ``statements`` on the database (autocommit)."""

    async def run() -> None:
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.mark.postgres
@pytest.mark.parametrize("server_database", [POSTGRES_URL], indirect=True)
def test_a_request_whose_commit_fails_leaves_no_job_and_sends_no_message(
    server_database: str, deploy: Deploy, redis_url: str
) -> None:
    """The job row was inserted, then the commit failed: nothing may be queued.

    There is no honest way for a client to make the commit fail, so PostgreSQL refuses
    it: a deferred constraint trigger lets the INSERT through and raises at COMMIT, the
    last step before the API would send the message.
    """
    deployment = deploy(database_url=server_database)
    execute(server_database, *REFUSE_JOBS_AT_COMMIT)
    api = deployment.api()
    api.sign_in()
    project_id = api.course(1)
    messages = f"{deployment.namespace}:{QUEUE_NAME}.msgs"
    client = redis.Redis.from_url(redis_url)
    try:
        failed = api.request("POST", f"/projects/{project_id}/videos")
        assert failed.status_code == 500, failed.text
        assert failed.headers["content-type"] == "application/problem+json"
        assert "refused by the test" not in failed.text
        request_id = failed.headers["X-Request-ID"]
        api.process.wait_event("http.request", status=500, request_id=request_id, timeout=10)
        assert count_jobs(deployment) == 0
        assert client.hlen(messages) == 0
        assert not list(client.scan_iter(f"{deployment.namespace}:*"))

        # The same request once the database accepts it: one row, one message.
        execute(server_database, "DROP TRIGGER tc_refuse_video_jobs ON video_jobs")
        created = api.request("POST", f"/projects/{project_id}/videos")
        assert created.status_code == 202, created.text
        assert count_jobs(deployment) == 1
        assert client.hlen(messages) == 1
    finally:
        client.close()


def test_a_corrupt_image_fails_its_scene_after_the_bounded_retries(deploy: Deploy) -> None:
    deployment = deploy(max_attempts=3)
    api, worker = deployment.api_and_worker()
    api.sign_in()
    upload = api.request("POST", "/media", files={"file": ("slide.png", CORRUPT_PNG, "image/png")})
    assert upload.status_code == 201, upload.text
    project_id = api.course(1)
    scene = api.request(
        "POST",
        f"/projects/{project_id}/scenes",
        json={"title": "Com imagem", "image_id": upload.json()["id"]},
    )
    assert scene.status_code == 201, scene.text
    created = api.request("POST", f"/projects/{project_id}/videos")
    assert created.status_code == 202, created.text

    done = api.wait_finished(created.json()["id"])
    assert done["state"] == "failed", done
    assert done["attempts"] == done["max_attempts"] == 3
    error = done["error"]
    assert error["scene"] == 2
    assert error["title"] == "Scene 2 could not be rendered"
    assert (error["attempt"], error["max_attempts"]) == (3, 3)
    assert error["detail"] == "the image is corrupt or truncated"
    (stored,) = deployment.media_files()  # the upload; nothing of the three renders
    problem = json.dumps(error)
    assert "/" not in problem  # no path of any kind, absolute or relative
    for secret in (str(deployment.media), stored.name, ".render"):
        assert secret not in json.dumps(done)
    # Counted, then logged (after the row changed): wait for the line, then read.
    assert len(worker.process.wait_event("video.failed", job_id=done["id"])) == 1
    assert len(worker.process.events("video.retrying", job_id=done["id"])) == 2
    assert worker.metric(ATTEMPTS, outcome="retried") == 2
    assert worker.metric(ATTEMPTS, outcome="failed") == 1
    assert worker.metric(ATTEMPTS, outcome="succeeded") == 0


def test_cancel_during_a_render_stops_it_and_cleans_up(deploy: Deploy) -> None:
    deployment = deploy()
    api, worker = deployment.api_and_worker()
    api.sign_in()
    project_id = api.course(6, seconds=2)
    job_id = api.request("POST", f"/projects/{project_id}/videos").json()["id"]
    api.wait_scene(job_id, 2)

    cancel = api.request("POST", f"/videos/{job_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    assert (cancel.json()["state"], cancel.json()["cancel_requested"]) == ("running", True)
    done = api.wait_finished(job_id)
    assert done["state"] == "cancelled", done
    assert done["file_url"] is None
    assert done["progress"]["percent"] < 100
    assert_nothing_left(deployment)
    worker.process.wait_event("video.cancelled", job_id=job_id)
    assert worker.metric(ATTEMPTS, outcome="cancelled") == 1
    assert (api.request("GET", f"/videos/{job_id}/file")).status_code == 409

    again = api.request("POST", f"/videos/{job_id}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["detail"] == "The video has already cancelled."


def test_deleting_a_project_stops_its_running_job_and_the_worker_goes_on(
    deploy: Deploy,
) -> None:
    deployment = deploy()
    api, worker = deployment.api_and_worker()
    api.sign_in()
    project_id = api.course(6, seconds=2)
    job_id = api.request("POST", f"/projects/{project_id}/videos").json()["id"]
    api.wait_scene(job_id, 2)

    assert api.request("DELETE", f"/projects/{project_id}").status_code == 204
    assert api.request("GET", f"/videos/{job_id}").status_code == 404
    wait_until(
        lambda: worker.process.events("video.lease_lost", job_id=job_id),
        timeout=30,
        what="the worker to notice",
        context=deployment.logs,
    )
    assert_nothing_left(deployment)
    assert count_jobs(deployment) == 0

    # The worker is fine: the next job renders.
    other = api.course(1, title="Outro curso")
    next_job = api.request("POST", f"/projects/{other}/videos").json()["id"]
    done = api.wait_finished(next_job)
    assert done["state"] == "succeeded", done
    assert worker.process.alive()
    assert "Traceback" not in worker.process.text()
    levels = {line["level"] for line in worker.process.lines()}
    assert levels <= {"info", "warning"}, deployment.logs()


def test_sigterm_releases_the_job_uncounted_to_another_worker(deploy: Deploy) -> None:
    deployment = deploy()
    api, first = deployment.api_and_worker("worker-1")
    api.sign_in()
    project_id = api.course(6, seconds=2)
    created = api.request("POST", f"/projects/{project_id}/videos")
    job_id = created.json()["id"]
    request_id = created.headers["X-Request-ID"]
    api.wait_scene(job_id, 2)

    first.process.signal(signal.SIGTERM)
    assert first.process.wait(timeout=60) == 0
    released = first.process.events("video.released", job_id=job_id)
    assert [line["request_id"] for line in released] == [request_id]
    back = api.job(job_id)
    assert (back["state"], back["attempts"]) == ("queued", 0)

    second = deployment.worker("worker-2")
    done = api.wait_finished(job_id)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 1
    assert_one_video(deployment, done)
    started = second.process.wait_event("video.started", job_id=job_id)
    assert [(line["request_id"], line["attempt"]) for line in started] == [(request_id, 1)]
