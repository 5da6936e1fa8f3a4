"""The whole journey through HTTP, on SQLite, PostgreSQL and MariaDB.

Register, log in, build a course (project, scenes added, inserted and reordered, an
image and a narration uploaded to it), read all of it back, rotate the refresh token,
log out. The one step not over HTTP is the promotion to instructor: the API has no
route for roles yet, so the test does what an operator would do in the database.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx2
import media_files
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from conftest import MARIADB_URL, PASSWORD, POSTGRES_URL, SQLITE, bearer, make_settings, migrated
from tecnocursos.auth.models import Role, User
from tecnocursos.core.settings import TecnoCursosSettings

BACKENDS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
]


@pytest.fixture
def settings(server_database: str, tmp_path: Path) -> TecnoCursosSettings:
    return migrated(make_settings(tmp_path, database={"url": server_database}))


def _ok(response: httpx2.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _journey(app: FastAPI, client: httpx2.AsyncClient) -> None:
    account = {"email": "Ana@Example.com", "password": PASSWORD}
    user = _ok(await client.post("/auth/register", json=account), 201)
    assert (user["email"], user["role"]) == ("ana@example.com", "student")
    login = {"username": "ana@example.com", "password": PASSWORD}
    tokens = _ok(await client.post("/auth/token", data=login))
    headers = bearer(tokens["access_token"])
    assert _ok(await client.get("/users/me", headers=headers))["id"] == user["id"]
    course = {"title": "FastAPI in production", "description": "Ten lessons"}
    assert (await client.post("/projects", json=course, headers=headers)).status_code == 403

    async with app.state.database.transaction() as session:  # an operator promotes Ana
        await session.execute(
            update(User).where(User.id == user["id"]).values(role=Role.INSTRUCTOR)
        )

    project = _ok(await client.post("/projects", json=course, headers=headers), 201)
    scenes_url = f"/projects/{project['id']}/scenes"
    for title, script in [("Welcome", "Hello!"), ("Install", "pip install"), ("Deploy", "")]:
        _ok(
            await client.post(scenes_url, json={"title": title, "script": script}, headers=headers),
            201,
        )
    recap = {"title": "Recap", "position": 1, "duration_seconds": 42}
    inserted = _ok(await client.post(scenes_url, json=recap, headers=headers), 201)
    assert inserted["position"] == 1
    listed = _ok(await client.get(scenes_url, headers=headers))["items"]
    assert [scene["title"] for scene in listed] == ["Welcome", "Recap", "Install", "Deploy"]
    order = [listed[0]["id"], listed[2]["id"], listed[3]["id"], listed[1]["id"]]
    reordered = _ok(
        await client.put(f"{scenes_url}/order", json={"scene_ids": order}, headers=headers)
    )
    assert [scene["id"] for scene in reordered] == order

    uploads = {}
    for name, data, content_type in [
        ("cover.png", media_files.png(), "image/png"),
        ("narration.wav", media_files.wav(), "audio/wav"),
    ]:
        media = _ok(
            await client.post(
                "/media",
                files={"file": (name, data, content_type)},
                data={"project_id": str(project["id"])},
                headers=headers,
            ),
            201,
        )
        assert (media["project_id"], media["content_type"]) == (project["id"], content_type)
        assert media["sha256"] == hashlib.sha256(data).hexdigest()
        uploads[media["id"]] = (data, content_type)

    # Everything reads back as it was built.
    read = _ok(await client.get(f"/projects/{project['id']}", headers=headers))
    assert (read["title"], read["owner_id"]) == (course["title"], user["id"])
    assert [p["id"] for p in _ok(await client.get("/projects", headers=headers))["items"]] == [
        project["id"]
    ]
    scenes = _ok(await client.get(scenes_url, headers=headers))["items"]
    assert [(s["title"], s["position"]) for s in scenes] == [
        ("Welcome", 0),
        ("Install", 1),
        ("Deploy", 2),
        ("Recap", 3),
    ]
    recap_read = _ok(await client.get(f"{scenes_url}/{inserted['id']}", headers=headers))
    assert (recap_read["duration_seconds"], recap_read["position"]) == (42, 3)
    found = _ok(await client.get(scenes_url, params={"q": "PIP"}, headers=headers))["items"]
    assert [s["title"] for s in found] == ["Install"]
    for media_id, (data, content_type) in uploads.items():
        content = await client.get(f"/media/{media_id}/content", headers=headers)
        assert (content.status_code, content.content) == (200, data)
        assert content.headers["content-type"] == content_type

    # Tokens: the refresh token rotates once; logout ends the login.
    rotated = _ok(
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    )
    assert (
        _ok(await client.get("/users/me", headers=bearer(rotated["access_token"])))["role"]
        == "instructor"
    )
    _ok(await client.post("/auth/logout", json={"refresh_token": rotated["refresh_token"]}), 204)
    after = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_the_whole_journey(app: FastAPI, client: httpx2.AsyncClient) -> None:
    await _journey(app, client)
