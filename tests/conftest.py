"""Shared fixtures: a real HTTP server, a real Redis server, isolated settings."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.types import ASGIApp
from typing_extensions import Self

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's FE_* variables or a stray .env file."""
    for name in list(os.environ):
        if name.upper().startswith("FE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _log_pipelines_end_with_their_test() -> Iterator[None]:
    """A log pipeline a test started ends with the test; the root logger is restored.

    An example app configures logging at import, say: its pipeline must not write
    into the next test's captured output.
    """
    import logging

    import structlog

    from fastapi_enterprise._log_pipeline import PipelineHandler

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in root.handlers:
        if isinstance(handler, PipelineHandler) and handler not in handlers:
            handler.pipeline.stop()
    if root.handlers != handlers:
        structlog.reset_defaults()
        root.handlers[:] = handlers
    root.setLevel(level)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """An app served by a real uvicorn server on a free port, in a background thread."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "log_level": "warning",
            "access_log": False,
            "ws": "none",
            "lifespan": "on",
        }
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ServerProcess:
    """A server command in a process group of its own, on a free port.

    For what a server in a thread cannot show: several worker processes, separate
    processes sharing a storage, the app as a deployment starts it, signals. Stopped (the
    whole group, SIGTERM then SIGKILL) on exit. With ``capture_stderr`` what it wrote to
    stderr is in :attr:`stderr` after exit; with ``capture_stdout``, its stdout in
    :attr:`stdout`.
    """

    def __init__(
        self,
        *,
        env: dict[str, str],
        cwd: Path,
        capture_stderr: bool = False,
        capture_stdout: bool = False,
    ) -> None:
        self.env = env
        self.cwd = cwd
        self.capture_stderr = capture_stderr
        self.capture_stdout = capture_stdout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr = b""
        self.stdout = b""

    def command(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(  # noqa: S603 - fixed interpreter and arguments
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE if self.capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE if self.capture_stderr else subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def wait_until_serving(self, path: str, timeout: float = 30.0) -> httpx2.Response:
        """Poll ``path`` until the server answers and return that first answer.

        Fails at once if the process exited, and after ``timeout`` seconds otherwise.
        """
        assert self.process is not None, "use the server as a context manager"
        deadline = time.monotonic() + timeout
        while True:
            try:
                return httpx2.get(self.url + path, timeout=1)
            except httpx2.TransportError:  # noqa: PERF203 - polling until the server is up
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the server's main process (not the whole group)."""
        assert self.process is not None, "use the server as a context manager"
        self.process.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the server to exit by itself; collect its output; return its code."""
        assert self.process is not None, "use the server as a context manager"
        stdout, stderr = self.process.communicate(timeout=timeout)
        self.stdout, self.stderr = stdout or b"", stderr or b""
        return self.process.returncode

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            stdout, stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            stdout, stderr = self.process.communicate(timeout=5)
        self.stdout, self.stderr = stdout or b"", stderr or b""


class UvicornProcess(ServerProcess):
    """``python -m uvicorn TARGET`` (see :class:`ServerProcess`)."""

    def __init__(
        self,
        target: str,
        *,
        env: dict[str, str],
        cwd: Path,
        workers: int = 1,
        args: Sequence[str] = (),
        capture_stderr: bool = False,
        capture_stdout: bool = False,
    ) -> None:
        super().__init__(
            env=env, cwd=cwd, capture_stderr=capture_stderr, capture_stdout=capture_stdout
        )
        self.target = target
        self.workers = workers
        self.args = list(args)

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", self.target),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(self.workers), "--log-level", "warning", *self.args),
        ]


class GunicornProcess(ServerProcess):
    """``python -m gunicorn TARGET`` with uvicorn workers (see :class:`ServerProcess`).

    Without gunicorn's control socket. Skips without gunicorn installed, except under
    ``CI=true``, where it fails.
    """

    def __init__(
        self,
        target: str,
        *,
        env: dict[str, str],
        cwd: Path,
        workers: int = 2,
        preload: bool = False,
        args: Sequence[str] = (),
        capture_stderr: bool = False,
        capture_stdout: bool = False,
    ) -> None:
        if importlib.util.find_spec("gunicorn") is None:
            if IN_CI:
                pytest.fail("CI=true but gunicorn is not installed (test dependency group)")
            pytest.skip("gunicorn is not installed")
        super().__init__(
            env=env, cwd=cwd, capture_stderr=capture_stderr, capture_stdout=capture_stdout
        )
        self.target = target
        self.workers = workers
        self.preload = preload
        self.args = list(args)

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", self.target),
            *("--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)),
            *("--worker-class", "uvicorn_worker.UvicornWorker", "--graceful-timeout", "10"),
            # gunicorn >= 25.1 listens on ~/.gunicorn/gunicorn.ctl by default: one path
            # for every gunicorn of the user, so tests running at once would share it.
            "--no-control-socket",
            *(["--preload"] if self.preload else []),
            *self.args,
        ]


@pytest.fixture
def live_server() -> type[LiveServer]:
    """Return the LiveServer class: an app served by real uvicorn on a free port."""
    return LiveServer


def _missing_redis(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but Redis is not available: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis server for the whole session.

    ``REDIS_URL`` if set; otherwise a private ``redis-server`` from PATH on a free port
    (no persistence), stopped at the end. Without either, Redis tests skip, except under
    ``CI=true`` where they fail.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _missing_redis(f"redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    _missing_redis("redis-server did not start listening within 10 s")


@pytest.fixture
def redis_namespace(redis_server: str) -> Iterator[tuple[str, str]]:
    """``(url, prefix)``: a Redis server and a key prefix private to this test.

    Every key under the prefix is deleted after the test, so tests never see each
    other's data, even on a shared server given by ``REDIS_URL``.
    """
    redis = pytest.importorskip("redis")
    prefix = f"fe-test:{uuid.uuid4().hex}:"
    yield redis_server, prefix
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class LogCapture:
    """configure_logging() writing into memory; ``lines()`` parses what was written."""

    def __init__(self, settings: Any) -> None:
        import io

        from fastapi_enterprise import configure_logging

        self.stream = io.StringIO()
        self.handle = configure_logging(settings, stream=self.stream, chance=lambda: 0.5)

    def text(self) -> str:
        assert self.handle.flush(timeout=10), "log queue did not drain"
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in self.text().splitlines()]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real OTLP/HTTP receiver on 127.0.0.1 (tests/otlp_receiver.py), stopped after."""
    pytest.importorskip("opentelemetry.proto")
    from tests.otlp_receiver import start_receiver, stop_receiver

    started = start_receiver()
    try:
        yield started
    finally:
        stop_receiver(started)


@pytest.fixture
def capture_logs() -> Iterator[Any]:
    """Return a starter that configures logging into memory for one test."""
    import logging

    import structlog

    captures: list[LogCapture] = []
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)

    def start(settings: Any) -> LogCapture:
        capture = LogCapture(settings)
        captures.append(capture)
        return capture

    yield start
    for capture in captures:
        capture.handle.stop()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.NOTSET)


class RedisProcess:
    """A redis-server of the test's own, on a fixed free port, that can be stopped and restarted."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing_redis("put redis-server on PATH (or set REDIS_URL for the shared server)")
        self.binary = str(binary)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed local binary and arguments
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private redis-server for fault injection: ``stop()``, ``start()`` again."""
    pytest.importorskip("redis")
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _server_url(variable: str, default: str, name: str) -> str:
    """``variable``'s URL, or ``default``, once its server accepts a TCP connection.

    Skips the test when the server is not listening, except under ``CI=true`` where the
    test fails: CI must not pass by skipping the database suite.
    """
    url = os.environ.get(variable, default)
    host_port = url.partition("@")[2].partition("/")[0] or "127.0.0.1"
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            pass
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({type(exc).__name__})"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the PostgreSQL test database, without a driver: ``postgresql://...``."""
    return _server_url("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test", "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """URL of the MariaDB/MySQL test database, without a driver: ``mysql://...``."""
    return _server_url("MARIADB_URL", "mysql://root@127.0.0.1:3306/test", "MariaDB")
