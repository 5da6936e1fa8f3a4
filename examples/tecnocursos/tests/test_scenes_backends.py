"""Scenes under concurrent writes on SQLite, PostgreSQL and MariaDB, migrated schemas.

Concurrent reorders and inserts, serialised by the lock on the project row (on SQLite,
which has no row locks and begins transactions at the first write, the database's write
lock taken by ``lock_for_update()``), leave positions 0..n-1 exactly once under a unique
constraint that the servers check row by row; and the LIKE escaping means the same on
every backend (MariaDB reads backslashes in string literals, PostgreSQL's ILIKE is its
own operator).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI

from conftest import (
    MARIADB_URL,
    POSTGRES_URL,
    SQLITE,
    list_scenes,
    make_settings,
    migrated,
    signed_in,
)
from tecnocursos.core.settings import TecnoCursosSettings

BACKENDS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
]
SCENES = 6
CONCURRENT = 8


@pytest.fixture
def settings(server_database: str, tmp_path: Path) -> TecnoCursosSettings:
    settings = make_settings(tmp_path, database={"url": server_database})
    return migrated(settings)


async def _setup(app: FastAPI, client: httpx2.AsyncClient) -> tuple[dict[str, str], int, list[int]]:
    headers = await signed_in(app, client, "ana@example.com")
    project = await client.post("/projects", json={"title": "course"}, headers=headers)
    p: int = project.json()["id"]
    ids = []
    for n in range(SCENES):
        scene = await client.post(
            f"/projects/{p}/scenes", json={"title": f"scene {n}"}, headers=headers
        )
        ids.append(scene.json()["id"])
    return headers, p, ids


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_concurrent_reorders_leave_every_position_exactly_once(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers, p, ids = await _setup(app, client)
    # Rotations, reversed every other time: each request moves every scene.
    orders = [ids[k % SCENES :] + ids[: k % SCENES] for k in range(1, CONCURRENT + 1)]
    orders = [order[::-1] if k % 2 else order for k, order in enumerate(orders)]

    responses = await asyncio.gather(
        *(
            client.put(f"/projects/{p}/scenes/order", json={"scene_ids": order}, headers=headers)
            for order in orders
        )
    )
    assert [response.status_code for response in responses] == [200] * CONCURRENT
    final = await list_scenes(client, headers, p)
    assert [scene["position"] for scene in final] == list(range(SCENES))
    assert [scene["id"] for scene in final] in orders  # one request's order, whole


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_concurrent_inserts_deletes_and_reorders_keep_positions_dense(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers, p, ids = await _setup(app, client)
    requests = [
        client.post(
            f"/projects/{p}/scenes", json={"title": f"new {n}", "position": 0}, headers=headers
        )
        for n in range(3)
    ]
    requests += [
        client.delete(f"/projects/{p}/scenes/{scene_id}", headers=headers) for scene_id in ids[:2]
    ]
    requests.append(
        client.put(f"/projects/{p}/scenes/order", json={"scene_ids": ids[::-1]}, headers=headers)
    )
    responses = await asyncio.gather(*requests)
    statuses = [response.status_code for response in responses]
    # The reorder names the scenes as they were: it wins (200) only if it ran first.
    assert statuses[:5] == [201, 201, 201, 204, 204]
    assert statuses[5] in {200, 409}
    final = await list_scenes(client, headers, p)
    assert [scene["position"] for scene in final] == list(range(SCENES + 3 - 2))


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("q", "titles"),
    [
        ("PERCENT", ["Percent"]),
        ("%", ["Percent"]),
        ("_", ["Under"]),
        ("\\", ["Slash"]),
        ("\\%", []),
        ("!", ["Bang"]),
        ("' OR 1=1 --", []),
    ],
)
async def test_search_is_literal_and_case_insensitive_on_the_server(
    app: FastAPI, client: httpx2.AsyncClient, q: str, titles: list[str]
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = (await client.post("/projects", json={"title": "c"}, headers=headers)).json()["id"]
    for title, script in [
        ("Percent", "100% sure"),
        ("Under", "snake_case"),
        ("Slash", "C:\\temp"),
        ("Bang", "wow!"),
        ("Plain", "nothing"),
    ]:
        response = await client.post(
            f"/projects/{p}/scenes", json={"title": title, "script": script}, headers=headers
        )
        assert response.status_code == 201
    assert [scene["title"] for scene in await list_scenes(client, headers, p, q=q)] == titles
