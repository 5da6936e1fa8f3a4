"""SQL-injection payloads in every parameter that reaches a query, on all three backends.

Each payload is stored (as a scene's title, so a second-order injection would run on the
way out), searched for (``q``: the literal text, any case, nothing else), and sent as
``sort``, ``page``, ``size``, a path id, a media ``project_id`` and a login email. The
answers are the right rows or a 4xx problem, never a 500, and afterwards every table is
still there with the rows it had. On SQLite, PostgreSQL and MariaDB (markers ``postgres``
and ``mariadb``), each a fresh database built by the migrations.

A NUL character is a 422 naming its field (``q``, a title) on every backend: PostgreSQL
cannot hold one in text, and sending it made asyncpg fail the query (a 500).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import media_files
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from conftest import (
    MARIADB_URL,
    POSTGRES_URL,
    SQLITE,
    login,
    make_settings,
    migrated,
    signed_in,
)
from tecnocursos.core.database import MAX_ID, Base
from tecnocursos.core.settings import TecnoCursosSettings

BACKENDS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
]

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "\\%",
    "!",
    "'; DROP TABLE scenes; --",
    "1; DELETE FROM users",
    "' UNION SELECT id, email, password_hash FROM users --",
    "x') UNION SELECT NULL,NULL,NULL --",
    "Ünïcødé ✓ 日本語 😀",
    "\u202egnp.exe",  # right-to-left override
    "\u02bc OR 1=1 --",  # a modifier letter apostrophe, not a quote
]
"""Stored as titles and searched for; the NUL byte has its own check (a 422)."""

SCRIPTS = {"Plain": "nothing to see", "Percent": "100% literal", "Path": "C:\\temp\\x_y"}
"""Scenes whose scripts contain some payload characters, so a search has more to get wrong."""


@pytest.fixture
def settings(server_database: str, tmp_path: Path) -> TecnoCursosSettings:
    return migrated(make_settings(tmp_path, database={"url": server_database}))


async def _row_counts(app: FastAPI) -> dict[str, int]:
    counts = {}
    async with app.state.database.engine.connect() as connection:
        for table in sorted(Base.metadata.tables):
            count = await connection.execute(text(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608
            counts[table] = count.scalar_one()
    return counts


def _expected(q: str, scenes: dict[str, str]) -> list[str]:
    """The titles a literal, case-insensitive search for ``q`` finds, in position order."""
    needle = q.lower()
    return [title for title, script in scenes.items() if needle in f"{title}\n{script}".lower()]


async def _check_payloads(app: FastAPI, client: httpx2.AsyncClient) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    project = await client.post("/projects", json={"title": "course"}, headers=headers)
    p = project.json()["id"]
    scenes = dict.fromkeys(PAYLOADS, "") | SCRIPTS
    for title, script in scenes.items():
        created = await client.post(
            f"/projects/{p}/scenes", json={"title": title, "script": script}, headers=headers
        )
        assert created.status_code == 201, (title, created.text)
        assert created.json()["title"] == title  # stored as sent
    media = await client.post(
        "/media", files={"file": ("pixel.png", media_files.png())}, headers=headers
    )
    assert media.status_code == 201
    before = await _row_counts(app)
    url = f"/projects/{p}/scenes"

    async def search(**params: Any) -> httpx2.Response:
        return await client.get(url, params={"size": 100, **params}, headers=headers)

    listed = await search()
    assert [scene["title"] for scene in listed.json()["items"]] == list(scenes)  # read back
    for payload in [*PAYLOADS, "'", "--", "%%", "__", "1=1"]:
        found = await search(q=payload)
        assert found.status_code == 200, (payload, found.text)
        titles = [scene["title"] for scene in found.json()["items"]]
        assert titles == _expected(payload, scenes), payload
        for name in ("sort", "page", "size"):
            refused = await search(**{name: payload})
            assert refused.status_code == 422, (name, payload, refused.status_code)
            assert refused.headers["content-type"] == "application/problem+json"
        for path in (f"/projects/{payload}", f"/projects/{p}/scenes/{payload}"):
            wrong = await client.get(path, headers=headers)
            assert wrong.status_code in {404, 422}, (path, wrong.status_code)
        attached = await client.post(
            "/media",
            files={"file": ("pixel.png", media_files.png())},
            data={"project_id": payload},
            headers=headers,
        )
        assert attached.status_code == 422, (payload, attached.status_code)
        assert (await login(client, payload)).status_code in {401, 422}
        assert (await login(client, f"ana@example.com{payload}")).status_code == 401

    for nul in ("\x00", "a\x00b"):
        refused = await search(q=nul)
        assert refused.status_code == 422
        assert [error["loc"] for error in refused.json()["errors"]] == [["query", "q"]]
        stored = await client.post(url, json={"title": nul}, headers=headers)
        assert stored.status_code == 422
        assert [error["loc"] for error in stored.json()["errors"]] == [["body", "title"]]
        assert (await login(client, f"ana@example.com{nul}")).status_code == 401
    for huge in (MAX_ID + 1, 2**63, 2**80):
        assert (await client.get(f"/projects/{huge}", headers=headers)).status_code == 422
        order = await client.put(f"{url}/order", json={"scene_ids": [huge]}, headers=headers)
        assert order.status_code == 422

    assert await _row_counts(app) == before  # every table there, nothing added or lost
    assert (await login(client, "ana@example.com")).status_code == 200
    assert (await search()).json()["total"] == len(scenes)


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_injection_payloads_are_literal_text_or_refused(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await _check_payloads(app, client)
