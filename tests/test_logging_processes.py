"""Log lines under real servers: errors without configured logging, SIGTERM, fork, stuck pipes.

Each test starts uvicorn or gunicorn in a process of its own, with an app that logs, and
reads what the process wrote to its standard output, standard error and log file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import GunicornProcess, ServerProcess, UvicornProcess

APP = """
import asyncio
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, configure_logging, install

settings = EnterpriseSettings()
setup = os.environ.get("LOGAPP_SETUP", "configure")
if setup == "configure":
    configure_logging(settings)
elif setup == "basicConfig":
    logging.basicConfig()

log = logging.getLogger("logapp")


@asynccontextmanager
async def lifespan(app):
    (Path(os.environ["LOGAPP_DIR"]) / f"up-{os.getpid()}").touch()
    yield
    log.warning("logapp shutdown complete")


app = FastAPI(lifespan=lifespan)


@app.get("/ok")
async def ok():
    logging.getLogger("fastapi_enterprise.logapp").info("an info line nobody asked for")
    return {"ok": True}


@app.get("/slow")
async def slow(seconds: float = 2.0):
    (Path(os.environ["LOGAPP_DIR"]) / "slow-started").touch()
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/boom")
async def boom():
    raise RuntimeError("boom-7f3a")


install(app, settings)
"""


def app_env(tmp_path: Path, setup: str = "configure", **logging_env: str) -> dict[str, str]:
    (tmp_path / "logapp.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "LOGAPP_SETUP": setup,
        "LOGAPP_DIR": str(tmp_path),
        "FE_ENVIRONMENT": "test",
        "FE_LOGGING__FORMAT": "json",
        "FE_RATE_LIMIT__ENABLED": "false",
    }
    env.update({f"FE_LOGGING__{name.upper()}": value for name, value in logging_env.items()})
    return env


def json_lines(output: bytes) -> list[dict[str, Any]]:
    """Every line of ``output``, parsed: each must be a JSON object."""
    lines = []
    for line in output.decode().splitlines():
        if line.strip():
            parsed = json.loads(line)
            assert isinstance(parsed, dict), line
            lines.append(parsed)
    return lines


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_until_workers_serve(server: ServerProcess, tmp_path: Path, workers: int) -> None:
    """Wait until every worker has started the app (a signal before that kills it)."""
    assert server.wait_until_serving("/ok").status_code == 200
    wait_for(lambda: len(list(tmp_path.glob("up-*"))) >= workers)


def access_lines(lines: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [
        line for line in lines if line.get("event") == "http.request" and line["route"] == route
    ]


@pytest.mark.parametrize("setup", ["none", "basicConfig", "configure"])
def test_an_unhandled_error_reaches_the_output_exactly_once(tmp_path: Path, setup: str) -> None:
    """Bare FastAPI prints a failing route's traceback; so does every setup of ours.

    Without any logging configured it goes to stderr (and nothing else does: the
    library does not configure logging by surprise); with ``logging.basicConfig()`` or
    ``configure_logging()`` it goes where they send it, once.
    """
    env = app_env(tmp_path, setup)
    server = UvicornProcess(
        "logapp:app", env=env, cwd=tmp_path, capture_stdout=True, capture_stderr=True
    )
    with server:
        assert server.wait_until_serving("/ok").status_code == 200
        assert httpx2.get(f"{server.url}/boom", timeout=10).status_code == 500
    stdout, stderr = server.stdout.decode(), server.stderr.decode()
    if setup == "configure":
        (failure,) = [line for line in json_lines(server.stdout) if "exception" in line]
        assert failure["exception"][0]["exc_value"] == "boom-7f3a"
        assert "Traceback" not in stderr
        assert len(access_lines(json_lines(server.stdout), "/boom")) == 1
    else:
        assert stderr.count("Traceback (most recent call last)") == 1, stderr
        assert stderr.count("RuntimeError: boom-7f3a") == 1
    if setup == "none":
        assert "http.request" not in stdout + stderr  # no access log unless asked for
        assert "an info line nobody asked for" not in stdout + stderr


def sigterm_during_a_slow_request(
    server: ServerProcess, tmp_path: Path, workers: int = 1
) -> httpx2.Response:
    """Start a 2-second request, send SIGTERM while it runs, wait for the server to end."""
    wait_until_workers_serve(server, tmp_path, workers)
    responses: list[httpx2.Response] = []
    client = threading.Thread(
        target=lambda: responses.append(httpx2.get(f"{server.url}/slow?seconds=2", timeout=30))
    )
    client.start()
    wait_for((tmp_path / "slow-started").exists)
    server.send_signal(signal.SIGTERM)
    client.join(timeout=30)
    server.wait(timeout=30)
    (response,) = responses
    return response


def test_sigterm_loses_no_line_under_uvicorn(tmp_path: Path) -> None:
    """The drained request's access line, the app's shutdown log, uvicorn's last line."""
    env = app_env(tmp_path)
    server = UvicornProcess(
        "logapp:app",
        env=env,
        cwd=tmp_path,
        args=["--log-level", "info"],
        capture_stdout=True,
        capture_stderr=True,
    )
    with server:
        response = sigterm_during_a_slow_request(server, tmp_path)
    assert response.status_code == 200
    lines = json_lines(server.stdout)
    (slow,) = access_lines(lines, "/slow")
    assert slow["status"] == 200
    events = [line["event"] for line in lines]
    assert "logapp shutdown complete" in events
    assert events[-1].startswith("Finished server process"), events[-3:]
    assert server.stderr.decode().strip() == ""


def test_sigterm_loses_no_line_under_gunicorn(tmp_path: Path) -> None:
    """Two workers get SIGTERM from the master while one serves a slow request."""
    env = app_env(tmp_path)
    server = GunicornProcess(
        "logapp:app", env=env, cwd=tmp_path, workers=2, capture_stdout=True, capture_stderr=True
    )
    with server:
        response = sigterm_during_a_slow_request(server, tmp_path, workers=2)
    assert response.status_code == 200
    lines = json_lines(server.stdout)
    (slow,) = access_lines(lines, "/slow")
    assert slow["status"] == 200
    events = [line["event"] for line in lines]
    assert events.count("logapp shutdown complete") == 2
    assert sum(event.startswith("Finished server process") for event in events) == 2


@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-import", "preload"])
def test_every_request_of_every_gunicorn_worker_is_logged(tmp_path: Path, preload: bool) -> None:
    """With ``--preload`` the pipeline is built before the fork: each worker restarts it."""
    env = app_env(tmp_path)
    server = GunicornProcess(
        "logapp:app",
        env=env,
        cwd=tmp_path,
        workers=2,
        preload=preload,
        capture_stdout=True,
        capture_stderr=True,
    )
    requests = 200
    with server:
        wait_until_workers_serve(server, tmp_path, 2)
        for _ in range(requests):
            assert httpx2.get(f"{server.url}/slow?seconds=0", timeout=10).status_code == 200
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    lines = json_lines(server.stdout)
    assert len(access_lines(lines, "/slow")) == requests
    assert [line["event"] for line in lines].count("logapp shutdown complete") == 2


def metric(text: str, name: str, output: str) -> float:
    prefix = f'{name}{{output="{output}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


@pytest.mark.parametrize("server_kind", ["uvicorn", "gunicorn-multiprocess"])
def test_a_blocked_stdout_does_not_stop_the_log_file(tmp_path: Path, server_kind: str) -> None:
    """A stdout pipe that nobody reads: its lines are dropped, counted, reported, exported.

    Every line still reaches the log file. Under gunicorn with ``PROMETHEUS_MULTIPROC_DIR``
    the scrape reads only the workers' metric files: the counters must be in them.
    """
    metrics = importlib.util.find_spec("prometheus_client") is not None
    log_file = tmp_path / "app.log"
    env = app_env(tmp_path, file_path=str(log_file), queue_size="1000")
    server: ServerProcess
    if server_kind == "uvicorn":
        server = UvicornProcess(
            "logapp:app", env=env, cwd=tmp_path, capture_stdout=True, capture_stderr=True
        )
    else:
        pytest.importorskip("prometheus_client")  # the point of this case is the scrape
        (tmp_path / "prometheus").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
        server = GunicornProcess(
            "logapp:app", env=env, cwd=tmp_path, capture_stdout=True, capture_stderr=True
        )
    requests = 2000  # about 1.3 MB of lines: far more than a pipe and the queue hold
    with server:
        assert server.wait_until_serving("/ok").status_code == 200
        with httpx2.Client(base_url=server.url, timeout=10) as client:
            for _ in range(requests):
                assert client.get("/slow?seconds=0").status_code == 200

            def file_has_every_line() -> bool:  # the last line may be half-written
                text = log_file.read_text()
                return (
                    text.count('{"event":"http.request","method":"GET","route":"/slow"') >= requests
                )

            wait_for(file_has_every_line)

            def drops_exported() -> bool:
                text = client.get("/metrics").text
                return metric(text, "log_lines_dropped_total", "stdout") > 0

            if metrics:  # the tests_minimal session runs without the metrics extra
                wait_for(drops_exported)
                scrape = client.get("/metrics").text
                assert metric(scrape, "log_lines_dropped_total", "file") == 0
                assert metric(scrape, "log_write_errors_total", "file") == 0
    assert len(access_lines(json_lines(log_file.read_bytes()), "/slow")) == requests
    assert "log output stdout dropped" in server.stderr.decode()


def test_gunicorn_master_and_workers_write_only_json(tmp_path: Path) -> None:
    """With the shipped logger class, gunicorn's own lines are JSON too, start to end."""
    env = app_env(tmp_path)
    server = GunicornProcess(
        "logapp:app",
        env=env,
        cwd=tmp_path,
        workers=2,
        args=["--config", "python:fastapi_enterprise.gunicorn"],
        capture_stdout=True,
        capture_stderr=True,
    )
    with server:
        assert server.wait_until_serving("/ok").status_code == 200
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.stderr.decode().strip() == ""
    lines = json_lines(server.stdout)
    gunicorn = [line["event"] for line in lines if line["logger"] == "gunicorn.error"]
    for expected in ("Starting gunicorn", "Listening at", "Booting worker", "Shutting down"):
        assert any(event.startswith(expected) for event in gunicorn), (expected, gunicorn)
    assert len(access_lines(lines, "/ok")) == 1
