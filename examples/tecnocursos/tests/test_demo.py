"""The demo data command and the demo server, run as a user runs them.

``python -m tecnocursos.demo`` runs as a subprocess on a SQLite file of the test's own;
what it loaded is then read through HTTP, logged in as the demo accounts.
``python -m tecnocursos.demo serve`` runs as a real server process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from conftest import MARIADB_URL, POSTGRES_URL, bearer, login, make_settings, started
from tecnocursos.core.app import create_app
from tecnocursos.demo.cli import PASSWORD_VARIABLE
from tecnocursos.demo.data import ACCOUNTS, COURSE, COURSE_OWNER, SCENES

DEMO_PASSWORD = "demo password for the tests"
ADMIN, INSTRUCTOR, STUDENT = (account.email for account in ACCOUNTS)


def run_demo(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m tecnocursos.demo ARGS`` on the database of ``make_settings(tmp_path)``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TC_") and name != PASSWORD_VARIABLE
    }
    environment["TC_ENVIRONMENT"] = "test"
    environment["TC_DATABASE__URL"] = f"sqlite:///{tmp_path / 'tc.db'}"
    environment.update(env or {})
    if password is not None:
        environment[PASSWORD_VARIABLE] = password
    return subprocess.run(  # noqa: S603 - the project's own command
        [sys.executable, "-m", "tecnocursos.demo", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


async def token(client: httpx2.AsyncClient, email: str, password: str = DEMO_PASSWORD) -> str:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


async def course_as(client: httpx2.AsyncClient, email: str) -> dict[str, Any]:
    """The sample course and its scenes, as ``email`` reads them through the API."""
    headers = bearer(await token(client, email))
    projects = (await client.get("/projects", headers=headers)).json()["items"]
    [course] = [project for project in projects if project["title"] == COURSE.title]
    detail = await client.get(f"/projects/{course['id']}", headers=headers)
    assert detail.status_code == 200
    scenes = await client.get(f"/projects/{course['id']}/scenes?size=100", headers=headers)
    assert scenes.status_code == 200
    return {"project": detail.json(), "etag": detail.headers["etag"], "scenes": scenes.json()}


def scene_titles(course: dict[str, Any]) -> list[str]:
    items = course["scenes"]["items"]
    assert [scene["position"] for scene in items] == list(range(len(items)))
    return [scene["title"] for scene in items]


@pytest.mark.asyncio
async def test_the_demo_loads_accounts_and_a_course_readable_through_http(
    tmp_path: Path, app: FastAPI
) -> None:
    result = run_demo(tmp_path, password=DEMO_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert DEMO_PASSWORD not in result.stdout + result.stderr  # a password it was given
    async with started(app) as client:
        course = await course_as(client, INSTRUCTOR)
        project = course["project"]
        assert project["description"] == COURSE.description
        assert project["visibility"] == "public"
        assert scene_titles(course) == [scene.title for scene in SCENES]
        assert course["scenes"]["items"][1]["script"] == SCENES[1].script
        # The student reads the public course; the admin sees the three accounts.
        assert scene_titles(await course_as(client, STUDENT)) == scene_titles(course)
        admin = bearer(await token(client, ADMIN))
        users = (await client.get("/users", headers=admin)).json()
        roles = {user["email"]: user["role"] for user in users["items"]}
        assert roles == {ADMIN: "admin", INSTRUCTOR: "instructor", STUDENT: "student"}
        me = await client.get("/users/me", headers=bearer(await token(client, INSTRUCTOR)))
        assert me.json()["id"] == project["owner_id"]  # the instructor owns the course


@pytest.mark.asyncio
async def test_running_it_again_changes_nothing_and_completes_a_partial_run(
    tmp_path: Path, app: FastAPI
) -> None:
    assert run_demo(tmp_path, password=DEMO_PASSWORD).returncode == 0
    async with started(app) as client:
        before = await course_as(client, INSTRUCTOR)
    again = run_demo(tmp_path, password=DEMO_PASSWORD)
    assert again.returncode == 0, again.stderr
    assert "Nothing to add" in again.stdout
    assert again.stdout.count("exists (password unchanged)") == len(ACCOUNTS)
    async with started(app) as client:
        assert await course_as(client, INSTRUCTOR) == before  # rows, ETag, times, positions
        admin = bearer(await token(client, ADMIN))
        assert (await client.get("/users", headers=admin)).json()["total"] == len(ACCOUNTS)

    # What an interrupted run, or a user's deletions, leave: the next run completes it.
    with sqlite3.connect(tmp_path / "tc.db") as connection:
        connection.execute("DELETE FROM users WHERE email = ?", (STUDENT,))
        connection.execute("DELETE FROM scenes WHERE position >= 5")
    completed = run_demo(tmp_path, password=DEMO_PASSWORD)
    assert completed.returncode == 0, completed.stderr
    assert f"{STUDENT:<38} created" in completed.stdout
    assert f"{len(SCENES)} scenes (2 added)" in completed.stdout
    async with started(app) as client:
        assert scene_titles(await course_as(client, STUDENT)) == [scene.title for scene in SCENES]


@pytest.mark.asyncio
async def test_a_generated_password_is_printed_once_and_logs_in(
    tmp_path: Path, app: FastAPI
) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stderr
    [line] = [line for line in first.stdout.splitlines() if line.startswith("Password of")]
    password = line.rsplit(": ", 1)[1]
    assert len(password) >= 16
    async with started(app) as client:
        assert (await login(client, COURSE_OWNER, password)).status_code == 200
    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert password not in second.stdout
    assert "Password of" not in second.stdout  # nothing created, no password to show


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "server_database",
    [
        pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
        pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
    ],
    indirect=True,
)
async def test_the_demo_on_postgresql_and_mariadb(
    server_database: str, tmp_path: Path, restore_logging: None
) -> None:
    """What the README tells users: the same command, pointed at a server database."""
    url = {"TC_DATABASE__URL": server_database}
    first = run_demo(tmp_path, env=url, password=DEMO_PASSWORD)
    assert first.returncode == 0, first.stderr
    again = run_demo(tmp_path, env=url, password=DEMO_PASSWORD)
    assert again.returncode == 0, again.stderr
    assert "Nothing to add" in again.stdout
    app = create_app(make_settings(tmp_path, database={"url": server_database}))
    try:
        async with started(app) as client:
            course = await course_as(client, INSTRUCTOR)
            assert scene_titles(course) == [scene.title for scene in SCENES]
    finally:
        app.state.logging.stop()


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_refuses_staging_and_production_before_touching_the_database(
    tmp_path: Path, environment: str
) -> None:
    result = run_demo(tmp_path, env={"TC_ENVIRONMENT": environment}, password=DEMO_PASSWORD)
    assert result.returncode == 2
    assert f"refusing to load demo accounts in {environment}" in result.stderr
    assert DEMO_PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "tc.db").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def demo_server(directory: Path, console: Path) -> Iterator[str]:
    """``python -m tecnocursos.demo serve`` with its data in ``directory``; yields its URL."""
    port = free_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TC_")}
    environment.pop(PASSWORD_VARIABLE, None)
    command = [sys.executable, "-m", "tecnocursos.demo", "serve", "--dir", str(directory)]
    with console.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - the project's own command
            [*command, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=directory.parent,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, console.read_text()
            try:
                if httpx2.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, console.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_demo_server_serves_the_demo_with_json_access_lines_and_offline_docs(
    tmp_path: Path,
) -> None:
    directory = tmp_path / ".demo"
    console = tmp_path / "console.txt"
    with demo_server(directory, console) as url:
        password = (directory / "password").read_text().strip()
        tokens = httpx2.post(
            f"{url}/auth/token", data={"username": INSTRUCTOR, "password": password}
        )
        assert tokens.status_code == 200, tokens.text
        access = tokens.json()["access_token"]
        projects = httpx2.get(f"{url}/projects", headers=bearer(access)).json()["items"]
        assert [project["title"] for project in projects] == [COURSE.title]
        docs = httpx2.get(f"{url}/docs")
        assert docs.status_code == 200
        assert "<title>TecnoCursos" in docs.text
        assert 'src="/docs/assets/swagger-ui-bundle.js"' in docs.text  # no CDN
        assert "cdn.jsdelivr.net" not in docs.text + docs.headers["content-security-policy"]
        bundle = httpx2.get(f"{url}/docs/assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200
        assert len(bundle.content) > 100_000
    text = console.read_text()
    assert f"Password of the demo accounts: {password}" in text
    for account in ACCOUNTS:
        assert account.email in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["event"] == "http.request"]
    login_line = next(line for line in requests if line["route"] == "/auth/token")
    assert login_line["status"] == 200
    assert login_line["request_id"] == tokens.headers["x-request-id"]
    assert password not in json.dumps(lines)
    assert "Traceback" not in text
    assert oct((directory / "secret_key").stat().st_mode & 0o777) == "0o600"

    # A restart keeps the data, the password and the signing key: the old token works.
    with demo_server(directory, console) as url:
        me = httpx2.get(f"{url}/users/me", headers=bearer(access))
        assert me.status_code == 200, me.text
        assert me.json()["email"] == INSTRUCTOR
    assert "Nothing to add" in console.read_text()
