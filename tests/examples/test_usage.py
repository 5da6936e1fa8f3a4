"""The README's usage example and the minimal notes app work as documented.

``nox -s demo`` serves TecnoCursos: its own suite runs that command
(``examples/tecnocursos/tests/test_demo.py``). The minimal app stays tested here, as a
separate uvicorn process too.
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import UvicornProcess

ROOT = Path(__file__).resolve().parents[2]


def load(module: str) -> ModuleType:
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def test_readme_embeds_the_usage_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "examples/usage/app.py").read_text(encoding="utf-8")
    assert f"```python\n{example}```" in readme


def test_usage_example() -> None:
    app = load("examples.usage.app").app
    client = TestClient(app)
    ok = client.get("/courses/1")
    assert ok.json()["request_id"] == ok.headers["x-request-id"]
    missing = client.get("/courses/2")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "No such course."


def test_minimal_app_crud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FE_DATABASE__URL", f"sqlite:///{tmp_path}/demo.db")
    app = load("examples.minimal.app").app
    with TestClient(app) as client:
        assert client.get("/").json()["docs"] == "/docs"
        created = client.post("/notes", json={"title": "Hello", "body": "world"})
        assert created.status_code == 201
        note_id = created.json()["id"]
        assert client.get(f"/notes/{note_id}").json()["title"] == "Hello"
        assert len(client.get("/notes").json()) == 1
        assert client.delete(f"/notes/{note_id}").status_code == 204
        gone = client.get(f"/notes/{note_id}")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "application/problem+json"
        invalid = client.post("/notes", json={"title": ""})
        assert invalid.status_code == 422
        assert client.delete(f"/notes/{note_id}").status_code == 404
    assert (tmp_path / "demo.db").exists()


@pytest.mark.parametrize("note_id", ["0", "-1", str(2**63), "22171342303346716672"])
def test_minimal_app_answers_out_of_range_ids_with_422(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, note_id: str
) -> None:
    """An ID SQLite cannot hold is the client's mistake (422), not an OverflowError (500)."""
    monkeypatch.setenv("FE_DATABASE__URL", f"sqlite:///{tmp_path}/demo.db")
    app = load("examples.minimal.app").app
    with TestClient(app) as client:
        for method in ("GET", "DELETE"):
            response = client.request(method, f"/notes/{note_id}")
            assert response.status_code == 422, (method, response.text)
            assert response.headers["content-type"] == "application/problem+json"


def test_minimal_app_refuses_other_databases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_DATABASE__URL", "postgresql://u@h/db")
    with pytest.raises(ValueError, match="only speaks SQLite"):
        load("examples.minimal.app")


def test_minimal_app_under_a_real_uvicorn_process(tmp_path: Path) -> None:
    """A separate uvicorn process serving the minimal app over HTTP."""
    env = {
        **os.environ,
        "FE_DATABASE__URL": f"sqlite:///{tmp_path}/demo.db",
        "PYTHONPATH": str(ROOT),
    }
    demo = UvicornProcess(
        "examples.minimal.app:app",
        env=env,
        cwd=tmp_path,
        args=["--no-access-log"],
        capture_stderr=True,
    )
    with demo:
        response = demo.wait_until_serving("/", timeout=20)
        assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-request-id"])
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert b"Traceback" not in demo.stderr


def test_minimal_app_console_shows_access_lines_and_tracebacks(tmp_path: Path) -> None:
    """Its console: an access line per request, and a failure's traceback."""
    database = tmp_path / "demo.db"
    env = {**os.environ, "FE_DATABASE__URL": f"sqlite:///{database}", "PYTHONPATH": str(ROOT)}
    demo = UvicornProcess(
        "examples.minimal.app:app",
        env=env,
        cwd=tmp_path,
        capture_stderr=True,
        capture_stdout=True,
    )
    with demo:
        assert demo.wait_until_serving("/", timeout=20).status_code == 200
        with sqlite3.connect(database) as connection:
            connection.execute("drop table notes")  # the next /notes fails inside the app
        failed = httpx2.get(f"{demo.url}/notes", timeout=10)
        assert failed.status_code == 500
    console = demo.stdout.decode() + demo.stderr.decode()
    access = [line for line in console.splitlines() if "http.request" in line]
    assert any("route=/notes" in line and "status=500" in line for line in access), console
    assert any("route=/ " in line or line.rstrip().endswith("route=/") for line in access)
    assert "Traceback (most recent call last)" in console
    assert "no such table: notes" in console
    assert failed.json()["request_id"] in console
