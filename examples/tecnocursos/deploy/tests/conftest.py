"""The live deployment the deploy tests share: nginx, two instances, worker, Prometheus.

One ``deployment`` per session (the local runtime's ``up`` from release ``r1``, ``down``
at the end, whatever happened). Clients connect from 127.0.0.2, nginx connects to the
apps from 127.0.0.3, so the address each log line shows tells who it is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

DEPLOY_DIR = Path(__file__).resolve().parent.parent


def _load_local() -> Any:
    # deploy/ is not a package (it is copied beside the app as is): load local.py by path.
    spec = importlib.util.spec_from_file_location(
        "tecnocursos_deploy_local", DEPLOY_DIR / "local.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


local = _load_local()

CLIENT_ADDRESS: str = local.CLIENT_ADDRESS
PROXY_ADDRESS: str = local.PROXY_ADDRESS
PASSWORD = "correct horse battery staple"

VIDEO_FAST = {
    "TC_VIDEO__LEASE_SECONDS": "4",
    "TC_VIDEO__HEARTBEAT_SECONDS": "1",
    "TC_VIDEO__RECONCILE_SECONDS": "0.5",
    "TC_VIDEO__RETRY_BACKOFF_SECONDS": "0.2",
    "TC_VIDEO__PROGRESS_POLL_SECONDS": "0.1",
    "TC_VIDEO__MAX_ATTEMPTS": "2",
}
"""Short leases and quick passes (as the app's tests' ``VIDEO_FAST``)."""

APP_LIMITED_ROUTE = "/users/me"
APP_LIMIT = 4
"""The app's own (Redis) budget on :data:`APP_LIMITED_ROUTE`, per minute: below nginx's
zone, so the app is the one that refuses."""

RELEASE_ENV = {
    "TC_ENVIRONMENT": "test",
    "TC_LOGGING__FORMAT": "json",
    # Single quotes: the same line reads as JSON here and in a shell's `. release.env`.
    "TC_RATE_LIMIT__ROUTES": f'\'{{"{APP_LIMITED_ROUTE}":"{APP_LIMIT}/minute"}}\'',
    **VIDEO_FAST,
}
"""``release.env`` of the first release, ``r1``."""

NGINX_TEST_VALUES = {
    # Short, so the slow-client tests finish quickly; the defaults are in defaults.env.
    "NGINX_CLIENT_HEADER_TIMEOUT": "2s",
    "NGINX_CLIENT_BODY_TIMEOUT": "5s",
    "NGINX_SEND_TIMEOUT": "10s",
}


def require_tools(*tools: str) -> None:
    """Skip (fail under ``CI=true``) when a tool the deployment runs is not installed."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def write_release(root: Path, name: str, env: dict[str, str], *, current: bool = False) -> Path:
    """Write ``root/releases/name/release.env``; point ``root/current`` at it if asked."""
    release = root / "releases" / name
    release.mkdir(parents=True, exist_ok=True)
    (release / "release.env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    if current:
        link = root / "current"
        temporary = root / f".current-{uuid.uuid4().hex}"
        temporary.symlink_to(Path("releases") / name)
        temporary.replace(link)
    return release


@dataclass
class Deployment:
    """The running deployment: its runtime, addresses, CA and logs."""

    runtime: Any
    root: Path

    @property
    def https_url(self) -> str:
        """The nginx side, over HTTPS."""
        url: str = self.runtime.https_url()
        return url

    @property
    def http_url(self) -> str:
        """The nginx side, over plain HTTP (redirects only)."""
        url: str = self.runtime.http_url()
        return url

    @property
    def command(self) -> list[str]:
        """``TC_RUNTIME`` of this deployment, as a list (for the scripts' tests)."""
        return [sys.executable, str(DEPLOY_DIR / "local.py"), "--root", str(self.root)]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the deployment's generated CA."""
        return ssl.create_default_context(cafile=str(self.runtime.ca_file))

    def client(
        self,
        *,
        verify: ssl.SSLContext | bool | None = None,
        source: str = CLIENT_ADDRESS,
        **options: Any,
    ) -> httpx2.Client:
        """A client of nginx's HTTPS side, from ``source`` (:data:`CLIENT_ADDRESS`).

        nginx's zones and the app's limits count per client address: a test that spends
        a budget uses a loopback address of its own (127.0.0.10 and up).
        """
        transport = httpx2.HTTPTransport(
            local_address=source,
            verify=self.ssl_context() if verify is None else verify,
        )
        return httpx2.Client(base_url=self.https_url, transport=transport, **options)

    def access_log(self) -> list[dict[str, Any]]:
        """The nginx JSON access log lines so far."""
        lines = self.runtime.access_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def app_log(self, service: str) -> list[dict[str, Any]]:
        """The JSON lines ``service`` wrote so far (other lines skipped)."""
        records = []
        for line in self.runtime.log_file(service).read_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def wait_for(
        self, found: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        """Poll ``found`` until it returns something truthy (logs are written by threads)."""
        deadline = time.monotonic() + timeout
        while True:
            value = found()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def upstream(self, service: str) -> str:
        """The address nginx logs as ``upstream`` for ``service`` (``127.0.0.1:PORT``)."""
        url: str = self.runtime.url(service)
        return url.removeprefix("http://")

    def nginx_entry(self, request_id: str) -> dict[str, Any]:
        """The nginx access-log line of ``request_id`` (waits for it)."""
        entry: dict[str, Any] = self.wait_for(
            lambda: next((e for e in self.access_log() if e["request_id"] == request_id), None),
            what=f"nginx's line of {request_id}",
        )
        return entry

    def app_entries(self, request_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The app instances' log lines of ``request_id``, as ``(service, line)`` (waits)."""

        def found() -> list[tuple[str, dict[str, Any]]]:
            return [
                (service, line)
                for service in ("app1", "app2")
                for line in self.app_log(service)
                if line.get("request_id") == request_id
            ]

        entries: list[tuple[str, dict[str, Any]]] = self.wait_for(
            found, what=f"the app's lines of {request_id}"
        )
        return entries

    def set_role(self, email: str, role: str) -> None:
        """Give the account ``email`` a role, in the database (no API makes instructors)."""
        script = (
            "import asyncio, os, sys\n"
            "from sqlalchemy import text\n"
            "from sqlalchemy.ext.asyncio import create_async_engine\n"
            "async def main():\n"
            "    engine = create_async_engine(os.environ['TC_DATABASE__URL'])\n"
            "    async with engine.begin() as connection:\n"
            "        result = await connection.execute(\n"
            "            text('UPDATE users SET role = :role WHERE email = :email'),\n"
            "            {'role': sys.argv[2], 'email': sys.argv[1]})\n"
            "    await engine.dispose()\n"
            "    sys.exit(0 if result.rowcount == 1 else 1)\n"
            "asyncio.run(main())\n"
        )
        status = self.runtime.exec(
            self.root / "current", [sys.executable, "-c", script, email, role]
        )
        assert status == 0, f"could not make {email} {role}"

    def restart(self, service: str) -> None:
        """Start ``service`` again from the current release and wait until it is ready."""
        self.runtime.start(service, self.root / "current")
        self.runtime.wait_ready(service)

    def account(self, client: httpx2.Client, email: str | None = None) -> dict[str, str]:
        """Register a student through nginx and return its bearer header."""
        email = email or f"u{uuid.uuid4().hex[:12]}@example.com"
        response = client.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return self.login(client, email)

    def login(self, client: httpx2.Client, email: str) -> dict[str, str]:
        """Log ``email`` in through nginx and return its bearer header."""
        response = client.post("/auth/token", data={"username": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The whole local deployment, up once per session from release ``r1``."""
    require_tools("nginx", "openssl", "redis-server", "prometheus")
    root = tmp_path_factory.mktemp("deploy")
    write_release(root, "r1", RELEASE_ENV, current=True)
    runtime = local.LocalRuntime(root)
    try:
        runtime.up(nginx_overrides=NGINX_TEST_VALUES)
    except local.RuntimeFailureError as exc:
        pytest.fail(f"the deployment did not start: {exc}")
    try:
        yield Deployment(runtime=runtime, root=root)
    finally:
        runtime.down()
