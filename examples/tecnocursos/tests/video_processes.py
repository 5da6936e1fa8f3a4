"""The video pipeline as it is deployed: the API and its workers as real processes.

A :class:`Deployment` is one test's installation: a database (a SQLite file of its own or
a fresh PostgreSQL database) migrated by Alembic, a media directory, a dramatiq namespace
of its own on a Redis server, and the ``TC_*`` environment every process of it reads.
:meth:`Deployment.api` starts ``uvicorn --factory tecnocursos.core.app:create_app`` and
:meth:`Deployment.worker` starts ``python -m tecnocursos.videos.worker``, each in a
process group of its own with its log lines in a file; every process is stopped (its
whole group, ffmpeg included) when the deployment closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from conftest import PASSWORD, TEST_SECRET, bearer, make_settings, migrated
from tecnocursos.auth.models import Role, User
from tecnocursos.auth.passwords import Passwords
from tecnocursos.core.database import create_database

__all__ = ["Api", "Deployment", "Process", "Worker", "free_port", "wait_until"]

T = TypeVar("T")

VIDEO = {
    "lease_seconds": 3,
    "heartbeat_seconds": 1,
    "reconcile_seconds": 0.5,
    "requeue_after_seconds": 2,
    "retry_backoff_seconds": 0.2,
    "progress_poll_seconds": 0.1,
    "max_attempts": 3,
}
"""Short leases and fast passes, so a fault is noticed in seconds."""

STARTUP_SECONDS = 60.0
"""Longest a process may take to be ready (imports on a busy 2-core machine)."""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    context: Callable[[], str] = lambda: "",
) -> T:
    """``check()``'s first truthy value, polled every 0.1 s for at most ``timeout`` s.

    Raises:
        AssertionError: Nothing truthy came in time; the message says ``what`` was
            awaited and ends with ``context()`` (the processes' logs).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{context()}")
        time.sleep(0.1)


class Process:
    """A child process in a group of its own, its output (stdout and stderr) in ``log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as output:
            self.popen = subprocess.Popen(  # noqa: S603 - the project's own commands
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process ID (also its group's)."""
        return self.popen.pid

    def text(self) -> str:
        """Everything it wrote so far."""
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines (other output, e.g. a traceback, is skipped)."""
        parsed = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written as we read
                    continue
        return parsed

    def events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """Its log lines of ``event`` whose fields include ``fields``."""
        return [
            line
            for line in self.lines()
            if line.get("event") == event
            and all(line.get(name) == value for name, value in fields.items())
        ]

    def wait_event(self, event: str, *, timeout: float = 30, **fields: Any) -> list[dict[str, Any]]:
        """Wait (at most ``timeout`` s) until it logged ``event`` with ``fields``."""
        return wait_until(
            lambda: self.events(event, **fields),
            timeout=timeout,
            what=f"{self.name} to log {event} {fields}",
            context=lambda: self.text()[-8000:],
        )

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself (not its children)."""
        self.popen.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL the whole group (the process and its ffmpeg) and reap the process."""
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        """Its exit status, waiting at most ``timeout`` seconds."""
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then after ``timeout`` seconds SIGKILL; the group is killed either way."""
        if self.alive():
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill_group()


class Deployment:
    """One test's API, workers, database, media directory and Redis namespace.

    Args:
        root: The test's directory (database file, media, logs).
        database_url: The database (already existing, empty); migrated here.
        redis_url: The Redis the queue lives on (the API's and the workers' default).
        namespace: The dramatiq namespace: this test's keys only.
        video: Overrides of :data:`VIDEO`.
    """

    def __init__(
        self,
        root: Path,
        *,
        database_url: str,
        redis_url: str,
        namespace: str,
        video: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.media = root / "media"
        self.database_url = database_url
        self.redis_url = redis_url
        self.namespace = namespace
        self.video = {**VIDEO, **(video or {})}
        self.settings = make_settings(
            root,
            database={"url": database_url},
            redis={"url": redis_url},
            video={**self.video, "queue": "redis", "namespace": namespace},
        )
        root.mkdir(parents=True, exist_ok=True)
        migrated(self.settings)
        self.processes: list[Process] = []
        self.apis: list[Api] = []
        self._count = 0

    def environment(self, **extra: str) -> dict[str, str]:
        """The ``TC_*`` variables of this deployment (``extra`` last), on this environment."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("TC_")}
        env.update(
            TC_ENVIRONMENT="test",
            TC_DATABASE__URL=self.database_url,
            TC_STORAGE__LOCAL_DIR=str(self.media),
            TC_SECURITY__SECRET_KEY=TEST_SECRET,
            TC_RATE_LIMIT__ENABLED="false",
            TC_LOGGING__FORMAT="json",
            TC_REDIS__URL=self.redis_url,
            TC_VIDEO__QUEUE="redis",
            TC_VIDEO__NAMESPACE=self.namespace,
            **{f"TC_VIDEO__{name.upper()}": str(value) for name, value in self.video.items()},
        )
        env.update(extra)
        return env

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        self._count += 1
        log = self.root / f"{self._count:02d}-{name}.log"
        process = Process(name, command, env, log)
        self.processes.append(process)
        return process

    def logs(self) -> str:
        """The last lines of every process's log, for a failure's message."""
        parts = []
        for process in self.processes:
            tail = "\n".join(process.text().splitlines()[-40:])
            parts.append(f"--- {process.name} (pid {process.pid}) ---\n{tail}")
        return "\n".join(parts)

    def api(self, **env: str) -> Api:
        """Start the API (``uvicorn --factory``) and wait until it answers."""
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tecnocursos.core.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",  # the library writes the access lines
        ]
        process = self._start("api", command, self.environment(**env))
        url = f"http://127.0.0.1:{port}"

        def live() -> bool:
            assert process.alive(), self.logs()
            try:
                return httpx2.get(f"{url}/health/live", timeout=2).status_code == 200
            except httpx2.TransportError:
                return False

        wait_until(live, timeout=STARTUP_SECONDS, what="the API", context=self.logs)
        api = Api(url, process, self)
        self.apis.append(api)
        return api

    def worker(self, name: str = "worker", *, wait: bool = True, **env: str) -> Worker:
        """Start ``python -m tecnocursos.videos.worker``; with ``wait``, until it consumes."""
        port = free_port()
        process = self._start(
            name,
            [sys.executable, "-m", "tecnocursos.videos.worker"],
            self.environment(TC_VIDEO__WORKER_METRICS_PORT=str(port), **env),
        )
        worker = Worker(process, port)
        if wait:
            worker.ready(self)
        return worker

    def api_and_worker(self, name: str = "worker") -> tuple[Api, Worker]:
        """Start a worker and the API side by side (imports overlap); wait for both."""
        worker = self.worker(name, wait=False)
        api = self.api()
        worker.ready(self)
        return api, worker

    def add_instructor(self, email: str) -> None:
        """Insert an instructor directly (as ``conftest.add_user`` does)."""

        async def insert() -> None:
            database = create_database(self.settings)
            await database.start()
            try:
                hashed = await Passwords(self.settings.auth).hash(PASSWORD)
                async with database.transaction() as session:
                    session.add(User(email=email, password_hash=hashed, role=Role.INSTRUCTOR))
            finally:
                await database.close()

        asyncio.run(insert())

    def scalar(self, statement: Any) -> Any:
        """The first column of ``statement``'s first row, read from the database."""

        async def read() -> Any:
            database = create_database(self.settings)
            await database.start()
            try:
                async with database.transaction() as session:
                    return await session.scalar(statement)
            finally:
                await database.close()

        return asyncio.run(read())

    def redis_server(self, port: int) -> Process:
        """A private ``redis-server`` on ``port`` (no persistence); waits for its PING."""
        binary = shutil.which("redis-server")
        if binary is None:  # as the conftest markers do: CI must have it
            message = "redis-server is not on PATH (a private server is stopped and restarted)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        process = self._start(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
        )

        def pong() -> bool:
            assert process.alive(), self.logs()
            client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False
            finally:
                client.close()

        wait_until(pong, timeout=STARTUP_SECONDS, what="redis-server", context=self.logs)
        return process

    def media_files(self) -> list[Path]:
        """Every file under the media directory (temp files of renders included)."""
        return sorted(path for path in self.media.rglob("*") if path.is_file())

    def close(self) -> None:
        """Close the HTTP clients; stop every process this deployment started (latest first)."""
        for api in self.apis:
            api.close()
        # All at once: each shuts down gracefully in parallel, then the groups are killed.
        for process in self.processes:
            if process.alive():
                process.signal(signal.SIGTERM)
        for process in reversed(self.processes):
            process.stop()


class Worker:
    """A worker process and its ``/metrics`` port."""

    def __init__(self, process: Process, metrics_port: int) -> None:
        self.process = process
        self.metrics_port = metrics_port

    def ready(self, deployment: Deployment) -> None:
        """Wait until it logged that it consumes the queue."""
        wait_until(
            lambda: self._started(deployment),
            timeout=STARTUP_SECONDS,
            what=f"{self.process.name} to start",
            context=deployment.logs,
        )

    def _started(self, deployment: Deployment) -> bool:
        assert self.process.alive(), deployment.logs()
        return bool(self.process.events("video.worker_started"))

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of its ``/metrics`` (0 when absent)."""
        text = httpx2.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


class Api:
    """The API process and an instructor's HTTP session on it."""

    def __init__(self, url: str, process: Process, deployment: Deployment) -> None:
        self.url = url
        self.process = process
        self.deployment = deployment
        self.http = httpx2.Client(base_url=url, timeout=30)
        self.headers: dict[str, str] = {}

    def sign_in(self, email: str = "teacher@example.com") -> None:
        """Add an instructor and use its token from now on."""
        self.deployment.add_instructor(email)
        response = self.http.post("/auth/token", data={"username": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        self.headers = bearer(response.json()["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """A request signed as the instructor."""
        return self.http.request(method, path, headers=self.headers, **kwargs)

    def course(self, scenes: int, *, seconds: int = 0, title: str = "Curso") -> int:
        """A project of ``scenes`` scenes of ``seconds`` each; returns its ID."""
        project = self.request("POST", "/projects", json={"title": title})
        assert project.status_code == 201, project.text
        project_id = int(project.json()["id"])
        for number in range(1, scenes + 1):
            scene = self.request(
                "POST",
                f"/projects/{project_id}/scenes",
                json={
                    "title": f"Cena {number}",
                    "script": f"Esta é a cena {number}.",
                    "duration_seconds": seconds,
                },
            )
            assert scene.status_code == 201, scene.text
        return project_id

    def job(self, job_id: int) -> dict[str, Any]:
        """``GET /videos/{job_id}``."""
        response = self.request("GET", f"/videos/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_job(
        self, job_id: int, check: Callable[[dict[str, Any]], bool], *, what: str, timeout: float
    ) -> dict[str, Any]:
        """Poll the job until ``check(job)``; returns it then."""
        return wait_until(
            lambda: (lambda job: job if check(job) else None)(self.job(job_id)),
            timeout=timeout,
            what=f"job {job_id}: {what}",
            context=self.deployment.logs,
        )

    def wait_scene(self, job_id: int, scene: int, *, timeout: float = 60) -> dict[str, Any]:
        """Wait until the job runs scene ``scene`` (the ones before it are rendered)."""
        return self.wait_job(
            job_id,
            lambda job: job["state"] == "running" and (job["progress"]["scene"] or 0) >= scene,
            what=f"running scene {scene}",
            timeout=timeout,
        )

    def wait_finished(self, job_id: int, *, timeout: float = 90) -> dict[str, Any]:
        """Wait until the job is succeeded, failed or cancelled."""
        return self.wait_job(
            job_id,
            lambda job: job["state"] in {"succeeded", "failed", "cancelled"},
            what="finished",
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()
