"""deploy.sh and rollback.sh on the live local deployment, under a request loop.

Each test deploys through the scripts exactly as an operator would (``TC_RUNTIME`` is the
local runtime's command line) while a thread sends GETs and POSTs through nginx; every
request must succeed. The deployment is the session's: each test leaves it serving a
working release.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import RELEASE_ENV, Deployment

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
POSTGRES_URL = os.environ.get(
    "TC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
READY_TIMEOUT = "60"
"""Seconds deploy.sh waits for an instance's readiness (the wait ends as soon as it is)."""

BROKEN_READY_TIMEOUT = "8"
"""The broken release's wait, which always runs out: long enough for a healthy start."""


class RequestLoop:
    """GETs and POSTs through nginx on a thread until stopped, bounded in count and time.

    Paced below nginx's zones (api 10 r/s, auth 5 r/s) so that every answer but a real
    failure is a success: any exception or unexpected status is recorded as a failure.
    """

    def __init__(self, deployment: Deployment, *, max_requests: int = 2000) -> None:
        self.deployment = deployment
        self.max_requests = max_requests
        self.max_seconds = 300.0
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[str] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._thread.join(60)

    def _check(self, client: httpx2.Client, method: str, path: str, **options: Any) -> None:
        self.sent += 1
        try:
            response = client.request(method, path, **options)
        except httpx2.HTTPError as exc:
            self.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return
        if response.status_code != 200:
            self.failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.max_seconds
            with self.deployment.client(timeout=30) as client:
                email = f"loop-{uuid.uuid4().hex[:12]}@example.com"
                auth = self.deployment.account(client, email)
                login = {"username": email, "password": "correct horse battery staple"}
                while not self.stop.is_set() and self.sent < self.max_requests:
                    if time.monotonic() > deadline:
                        break
                    self._check(client, "GET", "/projects", headers=auth)
                    self._check(client, "GET", "/health/ready")
                    self._check(client, "POST", "/auth/token", data=login)
                    self.stop.wait(0.5)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.error = exc

    def assert_clean(self, *, at_least: int) -> None:
        """No failure, no crash of the loop, and it really ran (``at_least`` requests)."""
        assert self.error is None, repr(self.error)
        assert self.failures == []
        assert self.sent >= at_least


@pytest.fixture
def loop(deployment: Deployment) -> Iterator[RequestLoop]:
    """A request loop through nginx, running for the whole test."""
    with RequestLoop(deployment) as running:
        # Requests are flowing before the scripts start.
        deadline = time.monotonic() + 30
        while running.sent < 3 and running.error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        yield running


def script_env(deployment: Deployment) -> dict[str, str]:
    """The scripts' environment: the runtime contract of the session's deployment."""
    return {
        **os.environ,
        "TC_RUNTIME": " ".join(deployment.command),
        "TC_DEPLOY_ROOT": str(deployment.root),
        "TC_PYTHON": sys.executable,
        "TC_READY_TIMEOUT": READY_TIMEOUT,
        "TC_MIN_FREE_MB": "100",
    }


def run_script(
    deployment: Deployment, script: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a deploy script against the live deployment, as an operator would."""
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env={**script_env(deployment), **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def make_release(tmp_path: Path, name: str, **env: str) -> Path:
    """A release directory outside the deploy root, as an operator hands it over."""
    directory = tmp_path / name
    directory.mkdir()
    values = {**RELEASE_ENV, **env}
    (directory / "release.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return directory


def link(deployment: Deployment, name: str) -> str | None:
    """The release name ``current`` or ``previous`` points at."""
    path = deployment.root / name
    return Path(os.readlink(path)).name if path.is_symlink() else None


def served_releases(deployment: Deployment) -> dict[str, str]:
    """The release each service was started from, by the runtime's own record."""
    state = deployment.runtime.state()
    return {
        service: Path(state["releases"][service]).name for service in ("app1", "app2", "worker")
    }


def pids(deployment: Deployment) -> dict[str, int | None]:
    return {service: deployment.runtime.pid(service) for service in ("app1", "app2", "worker")}


APP_INFO = re.compile(r'^app_info\{[^}]*\bversion="([^"]*)"', re.MULTILINE)


def versions(deployment: Deployment) -> dict[str, str]:
    """The app version each instance reports in ``app_info``, asked directly.

    Loopback may scrape /metrics in production, and gunicorn empties the metrics
    directory at each start, so the one version there is the running release's.
    """
    found = {}
    for service in ("app1", "app2"):
        response = httpx2.get(f"{deployment.runtime.url(service)}/metrics", timeout=10)
        assert response.status_code == 200
        [version] = set(APP_INFO.findall(response.text))
        found[service] = version
    return found


class _Hooks(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL and the notifications it got."""
    received: list[dict[str, Any]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://deploy:hook-secret@127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_deploy_then_rollback_without_a_failed_request(
    deployment: Deployment, loop: RequestLoop, tmp_path: Path
) -> None:
    """A new release replaces the old one instance by instance; rollback.sh goes back."""
    old = link(deployment, "current")
    assert old is not None
    old_version = versions(deployment)["app1"]
    name = f"r-{uuid.uuid4().hex[:8]}"
    before = pids(deployment)

    deployed = run_script(
        deployment, "deploy.sh", str(make_release(tmp_path, name, TC_APP__VERSION="2.0.0")), name
    )

    assert deployed.returncode == 0, deployed.stderr
    assert (link(deployment, "current"), link(deployment, "previous")) == (name, old)
    assert served_releases(deployment) == {"app1": name, "app2": name, "worker": name}
    assert versions(deployment) == {"app1": "2.0.0", "app2": "2.0.0"}
    after = pids(deployment)
    assert all(after[service] not in (None, before[service]) for service in after)
    assert list(deployment.root.glob("backups/*.sha256"))
    steps = deployed.stderr
    # One instance at a time: app1 is back in nginx before app2 leaves it.
    assert steps.index("app1: undraining") < steps.index("app2: draining")
    assert "worker: running, its metrics server answers" in steps

    # Running it again is safe: the same release, restarted in place, links unchanged.
    again = run_script(deployment, "deploy.sh", str(tmp_path / name), name)
    assert again.returncode == 0, again.stderr
    assert f"releases/{name} already holds this release" in again.stderr
    assert (link(deployment, "current"), link(deployment, "previous")) == (name, old)
    assert served_releases(deployment) == {"app1": name, "app2": name, "worker": name}
    sent_during_deploy = loop.sent

    rolled_back = run_script(deployment, "rollback.sh")

    assert rolled_back.returncode == 0, rolled_back.stderr
    assert (link(deployment, "current"), link(deployment, "previous")) == (old, name)
    assert served_releases(deployment) == {"app1": old, "app2": old, "worker": old}
    assert versions(deployment) == {"app1": old_version, "app2": old_version}
    loop.stop.set()
    loop.assert_clean(at_least=sent_during_deploy + 10)


def test_a_release_that_never_gets_ready_is_rolled_back(
    deployment: Deployment,
    loop: RequestLoop,
    tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    """A broken release fails app1's readiness gate and is rolled back automatically.

    app1 goes back to the old release, app2 is never touched, current does not move, and
    the webhook hears of it. The release passes every preflight check, but its allowed
    hosts leave out the instances' own address, so /health/ready (like every request)
    answers 400.
    """
    url, received = webhook
    old = link(deployment, "current")
    before_releases = served_releases(deployment)
    before_versions = versions(deployment)
    app2_pid = deployment.runtime.pid("app2")
    name = f"broken-{uuid.uuid4().hex[:8]}"
    release = make_release(
        tmp_path, name, TC_APP__VERSION="9.9.9", TC_SECURITY__ALLOWED_HOSTS="broken.invalid"
    )

    result = run_script(
        deployment,
        "deploy.sh",
        str(release),
        name,
        TC_DEPLOY_WEBHOOK_URL=url,
        TC_READY_TIMEOUT=BROKEN_READY_TIMEOUT,
    )

    assert result.returncode == 1
    assert "app1 did not come up" in result.stderr
    assert f"rolled back to {old}" in result.stderr
    assert link(deployment, "current") == old
    assert served_releases(deployment) == before_releases
    assert versions(deployment) == before_versions
    assert deployment.runtime.pid("app2") == app2_pid
    assert "app2: draining" not in result.stderr
    assert [(note["event"], note["status"]) for note in received] == [
        ("deploy", "started"),
        ("deploy", "failed"),
    ]
    assert "rolled back" in received[-1]["message"]
    assert "hook-secret" not in result.stderr + result.stdout
    loop.stop.set()
    loop.assert_clean(at_least=10)


def test_an_unreachable_database_stops_the_deploy_before_any_restart(
    deployment: Deployment, loop: RequestLoop, tmp_path: Path
) -> None:
    """Preflight refuses a release whose database does not answer; nothing restarts."""
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    old = link(deployment, "current")
    before = pids(deployment)
    name = f"nodb-{uuid.uuid4().hex[:8]}"
    release = make_release(
        tmp_path, name, TC_DATABASE__URL=f"postgresql+asyncpg://tc:db-secret@127.0.0.1:{port}/tc"
    )

    result = run_script(deployment, "deploy.sh", str(release), name)

    assert result.returncode == 1
    assert "the database or Redis is unreachable" in result.stderr
    assert "nothing was restarted" in result.stderr
    assert "db-secret" not in result.stderr + result.stdout
    assert link(deployment, "current") == old
    assert pids(deployment) == before
    loop.stop.set()
    loop.assert_clean(at_least=3)


def test_a_deploy_refuses_to_run_beside_another(deployment: Deployment, tmp_path: Path) -> None:
    """While the lock is held (a deploy running), another deploy exits 1 at once."""
    old = link(deployment, "current")
    before = pids(deployment)
    with (deployment.root / ".deploy.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        name = f"locked-{uuid.uuid4().hex[:8]}"
        result = run_script(deployment, "deploy.sh", str(make_release(tmp_path, name)), name)
    assert result.returncode == 1
    assert "another deploy or rollback holds" in result.stderr
    assert link(deployment, "current") == old
    assert pids(deployment) == before


def test_a_release_name_is_never_reused_for_other_contents(
    deployment: Deployment, tmp_path: Path
) -> None:
    """releases/NAME is immutable: other contents under an installed name are refused."""
    current = link(deployment, "current")
    assert current is not None
    before = pids(deployment)
    other = make_release(tmp_path, "other", TC_APP__VERSION="3.0.0")
    result = run_script(deployment, "deploy.sh", str(other), current)
    assert result.returncode == 1
    assert "already exists with other contents" in result.stderr
    assert link(deployment, "current") == current
    assert pids(deployment) == before


def test_an_interrupted_deploy_puts_back_what_it_moved(
    deployment: Deployment, loop: RequestLoop, tmp_path: Path
) -> None:
    """SIGTERM in the middle of the rollout undoes it before the script exits.

    The instance already moved returns to the old release, the other is never touched,
    the exit status is 1 and current does not move.
    """
    old = link(deployment, "current")
    before_releases = served_releases(deployment)
    name = f"int-{uuid.uuid4().hex[:8]}"
    release = make_release(tmp_path, name, TC_APP__VERSION="4.0.0")
    log = tmp_path / "deploy.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["bash", str(SCRIPTS / "deploy.sh"), str(release), name],
            env=script_env(deployment),
            stderr=output,
        )
        try:
            deadline = time.monotonic() + 300
            while "app1: starting" not in log.read_text() and process.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
    steps = log.read_text()
    assert returncode == 1, steps
    assert "failed gate: interrupted" in steps
    assert f"rollback: app1 back to {old}" in steps
    assert "app2: draining" not in steps
    assert link(deployment, "current") == old
    assert served_releases(deployment) == before_releases
    loop.stop.set()
    loop.assert_clean(at_least=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own on a free port; its URL."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own; dropped after."""
    server = make_url(POSTGRES_URL)
    name = f"tc_first_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(POSTGRES_URL, f"CREATE DATABASE {name}"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        message = f"PostgreSQL not available ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(POSTGRES_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def test_the_first_release_is_installed_and_migrated_for_up(
    tmp_path: Path, private_redis: str, scratch_postgres: str
) -> None:
    """With no current release, deploy.sh installs the release for ``up``.

    It checks, backs up and migrates, then points current at the release; it starts no
    service (none runs yet).
    """
    root = tmp_path / "root"
    release = make_release(
        tmp_path,
        "first",
        TC_DATABASE__URL=scratch_postgres,
        TC_REDIS__URL=private_redis,
        TC_RATE_LIMIT__STORAGE_URL=private_redis,
        TC_VIDEO__QUEUE="redis",
        TC_SECURITY__SECRET_KEY=uuid.uuid4().hex * 2,
    )
    runtime = [sys.executable, str(SCRIPTS.parent / "local.py"), "--root", str(root)]
    result = subprocess.run(
        ["bash", str(SCRIPTS / "deploy.sh"), str(release), "first"],
        env={
            **os.environ,
            "TC_RUNTIME": " ".join(runtime),
            "TC_DEPLOY_ROOT": str(root),
            "TC_PYTHON": sys.executable,
            "TC_MIN_FREE_MB": "100",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "first release" in result.stderr
    assert os.readlink(root / "current") == "releases/first"
    assert not (root / "previous").exists()
    assert (root / "releases" / "first" / "release.env").read_text() == (
        release / "release.env"
    ).read_text()
    assert len(list((root / "backups").glob("*.pgdump"))) == 1
    assert "app1: " not in result.stderr
    tables = asyncio.run(_tables(scratch_postgres))
    assert {"alembic_version", "users", "projects", "scenes", "video_jobs"} <= tables


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names)
