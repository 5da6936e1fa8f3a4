"""Watching the video pipeline: its series on /metrics, its alert rules, its request IDs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    PROJECT,
    TEST_SECRET,
    VIDEO_FAST,
    delete_redis_keys,
    make_settings,
    new_course,
    signed_in,
    started,
)
from tecnocursos.core.app import create_app
from tecnocursos.videos.runner import reconcile_once

RULES = PROJECT / "monitoring" / "video-alerts.rules.yml"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx2.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


async def render(
    client: httpx2.AsyncClient, headers: dict[str, str], project_id: int, **request: str
) -> httpx2.Response:
    """Request a video and follow its progress stream to the end; the POST's response."""
    created = await client.post(f"/projects/{project_id}/videos", headers={**headers, **request})
    assert created.status_code == 202, created.text
    with anyio.fail_after(120):
        stream = await client.get(created.json()["events_url"], headers=headers)
    assert "event: succeeded" in stream.text, stream.text[-2000:]
    return created


# --- Alert rules -------------------------------------------------------------------------


def promtool_or_fail() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but promtool is not installed")
        pytest.skip("promtool (Debian package prometheus) is not installed")
    return promtool


def exported(name: str, **extra: str) -> list[str]:
    """The series of ``name`` the app exports, as PromQL selectors with ``extra`` labels.

    From prometheus-client's own exposition: a rule naming a series or a label value the
    app does not export finds no input here, and its alert never fires in the tests.
    """
    found = []
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            if sample.name == name:
                labels = {**sample.labels, **extra}
                selector = ",".join(f'{key}="{val}"' for key, val in sorted(labels.items()))
                found.append(f"{name}{{{selector}}}")
    assert found, f"{name} is not exported"
    return found


def attempts(**values: str) -> list[dict[str, str]]:
    """The attempt counters of one worker: ``values`` by outcome, the others flat at 0."""
    series = exported("tecnocursos_video_attempts_total", instance="worker-1")
    outcomes = {f'outcome="{outcome}"': v for outcome, v in values.items()}
    inputs = []
    for selector in series:
        given = [v for label, v in outcomes.items() if label in selector]
        inputs.append({"series": selector, "values": given[0] if given else "0x40"})
    assert len([i for i in inputs if i["values"] != "0x40"]) == len(values), (inputs, values)
    return inputs


def firing(alert: str, at: str, *, fires: bool) -> dict[str, Any]:
    expr = f'count(ALERTS{{alertname="{alert}",alertstate="firing"}})'
    expected = [{"labels": "{}", "value": 1}] if fires else []
    return {"expr": expr, "eval_time": at, "exp_samples": expected}


def run_promtool_tests(tmp_path: Path, cases: list[dict[str, Any]]) -> None:
    promtool = promtool_or_fail()
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", **case} for case in cases],
    }
    path = tmp_path / "video-alerts.test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    result = subprocess.run(  # noqa: S603 - a fixed local binary
        [promtool, "test", "rules", str(path)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_video_alert_rules_pass_promtool_check() -> None:
    promtool = promtool_or_fail()
    result = subprocess.run(  # noqa: S603 - a fixed local binary
        [promtool, "check", "rules", str(RULES)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert "SUCCESS: 4 rules found" in result.stdout.decode()


def test_a_stuck_queue_pages_once_its_oldest_job_waited_ten_minutes(tmp_path: Path) -> None:
    """Two workers report the same oldest age: max(), not their sum, crosses 10 minutes.

    The age grows by a minute a minute from the third minute: 660 s at 12 m, firing from
    17 m (after 5 m pending). Summed, the two workers would pass 600 s at 7 m and fire at
    15 m already.
    """
    [gauge_1] = exported("tecnocursos_video_queue_oldest_age_seconds", instance="worker-1")
    [gauge_2] = exported("tecnocursos_video_queue_oldest_age_seconds", instance="worker-2")
    growing = "0 0 60+60x30"
    up = 'up{job="tecnocursos-video-worker",instance="worker-1"}'
    run_promtool_tests(
        tmp_path,
        [
            {
                "input_series": [
                    {"series": gauge_1, "values": growing},
                    {"series": gauge_2, "values": growing},
                    {"series": up, "values": "1x30"},
                ],
                "promql_expr_test": [
                    firing("VideoQueueStuck", "11m", fires=False),
                    firing("VideoQueueStuck", "15m", fires=False),
                    firing("VideoQueueStuck", "18m", fires=True),
                    firing("VideoWorkersDown", "25m", fires=False),
                ],
            },
            {  # a queue that drains in time never pages
                "input_series": [
                    {"series": gauge_1, "values": "0 300 590 120 0x27"},
                    {"series": up, "values": "1x30"},
                ],
                "promql_expr_test": [firing("VideoQueueStuck", "25m", fires=False)],
            },
        ],
    )


def test_a_high_failure_rate_pages_only_with_enough_attempts(tmp_path: Path) -> None:
    """Failed and retried attempts over finished ones, above a fifth, with 5 or more.

    Cancelled, released and lost attempts are not failures; a single failure on an idle
    pipeline is not a rate.
    """
    run_promtool_tests(
        tmp_path,
        [
            {  # 2 succeed and 1 is retried a minute: a third fail
                "input_series": attempts(succeeded="0+2x40", retried="0+1x40"),
                "promql_expr_test": [
                    firing("VideoFailureRate", "2m", fires=False),
                    firing("VideoFailureRate", "25m", fires=True),
                ],
            },
            {  # the same, as jobs that fail for good
                "input_series": attempts(succeeded="0+2x40", failed="0+1x40"),
                "promql_expr_test": [firing("VideoFailureRate", "25m", fires=True)],
            },
            {  # 1 in 11 fails: below the threshold
                "input_series": attempts(succeeded="0+10x40", retried="0+1x40"),
                "promql_expr_test": [firing("VideoFailureRate", "25m", fires=False)],
            },
            {  # every attempt failed, but only three in 15 minutes
                "input_series": attempts(failed="0x9 1x9 2x9 3x12"),
                "promql_expr_test": [firing("VideoFailureRate", "35m", fires=False)],
            },
            {  # many cancelled, released and lost attempts are no failure rate
                "input_series": attempts(
                    succeeded="0+1x40", cancelled="0+5x40", released="0+5x40", lost="0+5x40"
                ),
                "promql_expr_test": [firing("VideoFailureRate", "25m", fires=False)],
            },
        ],
    )


def test_expiring_leases_and_absent_workers_raise_alerts(tmp_path: Path) -> None:
    """Two expired leases in 30 minutes make a ticket; one does not; no worker up pages."""
    [leases] = exported("tecnocursos_video_leases_expired_total", instance="worker-1")
    up = 'up{job="tecnocursos-video-worker",instance="worker-1"}'
    run_promtool_tests(
        tmp_path,
        [
            {
                "input_series": [
                    {"series": leases, "values": "0 0 1 1 2x30"},
                    {"series": up, "values": "1 1 0x30"},
                ],
                "promql_expr_test": [
                    firing("VideoLeasesExpiring", "1m", fires=False),
                    firing("VideoLeasesExpiring", "10m", fires=True),
                    firing("VideoWorkersDown", "5m", fires=False),
                    firing("VideoWorkersDown", "10m", fires=True),
                ],
            },
            {
                "input_series": [
                    {"series": leases, "values": "0 0 1x30"},
                    {"series": up, "values": "1x30"},
                ],
                "promql_expr_test": [
                    firing("VideoLeasesExpiring", "20m", fires=False),
                    firing("VideoWorkersDown", "20m", fires=False),
                ],
            },
            {  # never scraped at all: down too
                "input_series": [{"series": leases, "values": "0x30"}],
                "promql_expr_test": [firing("VideoWorkersDown", "10m", fires=True)],
            },
        ],
    )


# --- Series on /metrics ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_render_shows_on_the_app_s_metrics_with_the_embedded_worker(
    tmp_path: Path, restore_logging: None
) -> None:
    app = create_app(make_settings(tmp_path, video=VIDEO_FAST))
    try:
        async with started(app) as client:
            worker = app.state.video_worker
            queue = app.state.video_queue

            def send(job_id: int, delay: float) -> None:
                queue.send(job_id, delay=delay)

            headers = await signed_in(app, client, "teacher@example.com")
            project_id = await new_course(client, headers, scenes=2)
            await reconcile_once(worker.store, send)
            before = await scrape(client)  # the series are process-wide: compare deltas
            assert value(before, "tecnocursos_video_jobs", state="succeeded") == 0

            await render(client, headers, project_id)
            await reconcile_once(worker.store, send)
            after = await scrape(client)
    finally:
        app.state.logging.stop()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tecnocursos_video_render_seconds_count") == 1
    assert delta("tecnocursos_video_render_seconds_sum") > 0
    assert delta("tecnocursos_video_scene_render_seconds_count") == 2
    assert delta("tecnocursos_video_attempts_total", outcome="succeeded") == 1
    for outcome in ("retried", "failed", "cancelled", "lost", "released"):
        assert delta("tecnocursos_video_attempts_total", outcome=outcome) == 0, outcome
    assert value(after, "tecnocursos_video_jobs", state="succeeded") == 1
    for state in ("queued", "running", "failed", "cancelled"):
        assert value(after, "tecnocursos_video_jobs", state=state) == 0, state
    assert ("tecnocursos_video_queue_depth", frozenset()) in after
    assert value(after, "tecnocursos_video_queue_depth") == 0
    assert value(after, "tecnocursos_video_queue_oldest_age_seconds") == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def worker_process(environment: dict[str, str], output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m tecnocursos.videos.worker`` in its own process group; stopped after."""
    with output.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tecnocursos.videos.worker"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=environment,
            # Its own group: no signal meant for pytest reaches it. Its encoders run in
            # sessions of their own, and it stops them on SIGTERM.
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def scrape_until(url: str, done: Any, process: subprocess.Popen[bytes], log: Path) -> Samples:
    """Scrape ``url`` until ``done(samples)`` (20 s at most); the last scrape."""
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, log.read_text()
        try:
            samples = parse(httpx2.get(url, timeout=5).text)
        except httpx2.TransportError:
            samples = {}
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.mark.redis
@pytest.mark.asyncio
async def test_the_worker_process_serves_its_series_on_its_metrics_port(
    tmp_path: Path, redis_url: str, restore_logging: None
) -> None:
    namespace = f"tc-test-{uuid.uuid4().hex[:12]}"
    video = {**VIDEO_FAST, "queue": "redis", "namespace": namespace}
    settings = make_settings(tmp_path, video=video, redis={"url": redis_url})
    port = free_port()
    environment = {name: val for name, val in os.environ.items() if not name.startswith("TC_")}
    environment.update(
        TC_ENVIRONMENT="test",
        TC_DATABASE__URL=f"sqlite:///{tmp_path / 'tc.db'}",
        TC_STORAGE__LOCAL_DIR=str(tmp_path / "media"),
        TC_SECURITY__SECRET_KEY=TEST_SECRET,
        TC_REDIS__URL=redis_url,
        TC_LOGGING__FORMAT="json",
        TC_VIDEO__WORKER_METRICS_PORT=str(port),
        TC_VIDEO__SCENE_TIMEOUT_SECONDS="60",  # bounds an encoder a SIGKILL would orphan
        **{f"TC_VIDEO__{key.upper()}": str(val) for key, val in video.items()},
    )
    log = tmp_path / "worker.log"
    app: FastAPI = create_app(settings)
    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "teacher@example.com")
            project_id = await new_course(client, headers, scenes=1)
            with worker_process(environment, log) as process:
                created = await render(client, headers, project_id)
                url = f"http://127.0.0.1:{port}/metrics"
                samples = await asyncio.to_thread(
                    scrape_until,
                    url,
                    lambda s: value(s, "tecnocursos_video_jobs", state="succeeded") == 1,
                    process,
                    log,
                )
                os.killpg(process.pid, signal.SIGTERM)
                assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        app.state.logging.stop()
        await delete_redis_keys(redis_url, f"{namespace}:*")

    # A fresh process: its counters are this render's alone.
    assert value(samples, "tecnocursos_video_render_seconds_count") == 1
    assert value(samples, "tecnocursos_video_scene_render_seconds_count") == 1
    assert value(samples, "tecnocursos_video_attempts_total", outcome="succeeded") == 1
    assert value(samples, "tecnocursos_video_attempts_total", outcome="failed") == 0
    assert value(samples, "tecnocursos_video_jobs", state="succeeded") == 1
    assert value(samples, "tecnocursos_video_queue_depth") == 0
    assert ("tecnocursos_video_leases_expired_total", frozenset()) in samples
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert "video.worker_started" in [line["event"] for line in lines]
    # Another process, the same request ID: the API stored it with the job.
    job_id = created.json()["id"]
    started_line = next(line for line in lines if line["event"] == "video.started")
    assert started_line["job_id"] == job_id
    assert started_line["request_id"] == created.headers["X-Request-ID"]


# --- Request IDs -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_worker_s_lines_carry_the_request_id_of_the_post(
    tmp_path: Path, restore_logging: None
) -> None:
    """The embedded worker's log lines of a job carry the ID of the request that made it.

    Not the ID of the progress stream that was open while it rendered, nor none.
    """
    log = tmp_path / "app.log"
    settings = make_settings(
        tmp_path, video=VIDEO_FAST, logging={"format": "json", "file_path": str(log)}
    )
    app = create_app(settings)
    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "teacher@example.com")
            project_id = await new_course(client, headers, scenes=1)
            given = await render(client, headers, project_id, **{"X-Request-ID": "curso-42-abc"})
            made = await render(client, headers, project_id)  # the middleware makes one
    finally:
        app.state.logging.stop()

    assert given.headers["X-Request-ID"] == "curso-42-abc"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for created in (given, made):
        job_id = created.json()["id"]
        # A duplicate delivery (the reconciler's resend racing the POST) claims nothing
        # and runs outside the job's context: its line has only the job_id.
        job_lines = [
            line
            for line in lines
            if line.get("job_id") == job_id and line["event"] != "video.delivery_skipped"
        ]
        events = [line["event"] for line in job_lines]
        assert "video.started" in events, events
        assert "video.succeeded" in events, events
        for line in job_lines:
            if line["event"].startswith("video."):
                assert line["request_id"] == created.headers["X-Request-ID"], line
                assert line["attempt"] == 1, line
    posts = [line for line in lines if line.get("route") == "/projects/{project_id}/videos"]
    assert [line["request_id"] for line in posts] == [
        given.headers["X-Request-ID"],
        made.headers["X-Request-ID"],
    ]
    streams = [line for line in lines if line.get("route") == "/videos/{job_id}/events"]
    assert streams, "the progress streams have access lines of their own"
    assert {line["request_id"] for line in streams}.isdisjoint(
        {given.headers["X-Request-ID"], made.headers["X-Request-ID"]}
    )
