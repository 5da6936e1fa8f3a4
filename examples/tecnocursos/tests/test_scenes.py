"""/projects/{id}/scenes: CRUD, positions, reorder, search, sort, ETags (on SQLite)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from conftest import list_scenes, new_scene, signed_in


async def _project(client: httpx2.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.post("/projects", json={"title": "course"}, headers=headers)
    project_id: int = response.json()["id"]
    return project_id


@pytest.mark.asyncio
async def test_scenes_are_appended_inserted_updated_and_deleted_keeping_positions(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    for title in ("a", "b", "c"):
        await new_scene(client, headers, p, title=title)
    inserted = await new_scene(client, headers, p, title="x", position=1, duration_seconds=30)
    assert inserted["position"] == 1
    far = await new_scene(client, headers, p, title="z", position=99)
    assert far["position"] == 4  # past the end: appended
    scenes = await list_scenes(client, headers, p)
    assert [(s["title"], s["position"]) for s in scenes] == [
        ("a", 0),
        ("x", 1),
        ("b", 2),
        ("c", 3),
        ("z", 4),
    ]

    url = f"/projects/{p}/scenes/{inserted['id']}"
    patched = await client.patch(url, json={"script": "Hello"}, headers=headers)
    assert patched.status_code == 200
    assert (patched.json()["script"], patched.json()["title"]) == ("Hello", "x")

    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    scenes = await list_scenes(client, headers, p)
    assert [(s["title"], s["position"]) for s in scenes] == [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("z", 3),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, ["body", "title"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "t", "duration_seconds": -1}, ["body", "duration_seconds"]),
        ({"title": "t", "duration_seconds": True}, ["body", "duration_seconds"]),  # not a 1
        ({"title": "t", "position": "2"}, ["body", "position"]),
        ({"title": "t", "position": -1}, ["body", "position"]),
        ({"title": "t", "script": "s" * 20_001}, ["body", "script"]),
        ({"title": "t", "project_id": 7}, ["body", "project_id"]),
    ],
)
async def test_invalid_scenes_are_422_problems_with_locations(
    app: FastAPI, client: httpx2.AsyncClient, body: dict[str, Any], location: list[str]
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    response = await client.post(f"/projects/{p}/scenes", json=body, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["loc"] for error in response.json()["errors"]] == [location]
    assert "s" * 20_001 not in response.text


@pytest.mark.asyncio
async def test_reorder_rewrites_every_position(app: FastAPI, client: httpx2.AsyncClient) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    ids = [(await new_scene(client, headers, p, title=title))["id"] for title in "abcd"]
    before = await client.get(f"/projects/{p}/scenes/{ids[0]}", headers=headers)
    untouched = await client.get(f"/projects/{p}/scenes/{ids[2]}", headers=headers)

    order = [ids[3], ids[0], ids[2], ids[1]]
    response = await client.put(
        f"/projects/{p}/scenes/order", json={"scene_ids": order}, headers=headers
    )
    assert response.status_code == 200
    assert [(s["id"], s["position"]) for s in response.json()] == [
        (scene_id, n) for n, scene_id in enumerate(order)
    ]
    assert [s["id"] for s in await list_scenes(client, headers, p)] == order

    after = await client.get(f"/projects/{p}/scenes/{ids[0]}", headers=headers)
    assert after.headers["etag"] != before.headers["etag"]  # it moved
    still = await client.get(f"/projects/{p}/scenes/{ids[2]}", headers=headers)
    assert still.headers["etag"] == untouched.headers["etag"]  # it stayed at 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make_order", "status"),
    [
        (lambda ids, other: ids[:-1], 409),  # one missing
        (lambda ids, other: [*ids, other], 409),  # another project's scene
        (lambda ids, other: [*ids[:-1], 10_000], 409),  # an unknown id
        (lambda ids, other: [*ids, ids[0]], 422),  # a duplicate
        (lambda ids, other: [], 409),
    ],
    ids=["missing", "foreign", "unknown", "duplicate", "empty"],
)
async def test_reorder_refuses_anything_but_the_exact_set_of_ids(
    app: FastAPI, client: httpx2.AsyncClient, make_order: Any, status: int
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    ids = [(await new_scene(client, headers, p, title=title))["id"] for title in "abc"]
    other = (await new_scene(client, headers, await _project(client, headers), title="o"))["id"]
    response = await client.put(
        f"/projects/{p}/scenes/order", json={"scene_ids": make_order(ids, other)}, headers=headers
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert [s["id"] for s in await list_scenes(client, headers, p)] == ids  # nothing moved


SEARCHABLE = [
    ("Intro", "Welcome to 100% FastAPI"),
    ("Setup", "pip install fastapi_enterprise"),
    ("Paths", "C:\\courses\\intro"),
    ("Quotes", 'it\'s "quoted"'),
    ("Plain", "Nothing special here"),
    ("Bang", "Wow! Really"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("q", "titles"),
    [
        ("intro", ["Intro", "Paths"]),  # case-insensitive, title or script
        ("INTRO", ["Intro", "Paths"]),
        ("%", ["Intro"]),  # literal percent, not "anything"
        ("100%", ["Intro"]),
        ("_", ["Setup"]),  # literal underscore, not "any character"
        ("i_stall", []),
        ("\\", ["Paths"]),
        ("!", ["Bang"]),  # the escape character itself is literal
        ("!%", []),
        ("' OR '1'='1", []),
        ("'; DROP TABLE scenes; --", []),
        ('"quoted"', ["Quotes"]),
        ("it's", ["Quotes"]),
    ],
)
async def test_search_treats_the_query_as_literal_text(
    app: FastAPI, client: httpx2.AsyncClient, q: str, titles: list[str]
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    for title, script in SEARCHABLE:
        await new_scene(client, headers, p, title=title, script=script)
    assert [s["title"] for s in await list_scenes(client, headers, p, q=q)] == titles
    assert len(await list_scenes(client, headers, p)) == len(SEARCHABLE)  # the table survived


@pytest.mark.asyncio
async def test_sort_accepts_the_listed_orders(app: FastAPI, client: httpx2.AsyncClient) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    for title in ("b", "c", "a"):
        await new_scene(client, headers, p, title=title)
    assert [s["title"] for s in await list_scenes(client, headers, p)] == ["b", "c", "a"]
    assert [s["title"] for s in await list_scenes(client, headers, p, sort="-position")] == [
        "a",
        "c",
        "b",
    ]
    assert [s["title"] for s in await list_scenes(client, headers, p, sort="title")] == [
        "a",
        "b",
        "c",
    ]
    assert [s["title"] for s in await list_scenes(client, headers, p, sort="-title")] == [
        "c",
        "b",
        "a",
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "sort",
    ["id", "password_hash", "title; DROP TABLE scenes", "position desc", "(SELECT 1)", "-"],
)
async def test_any_other_sort_is_a_422_problem(
    app: FastAPI, client: httpx2.AsyncClient, sort: str
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    await new_scene(client, headers, p, title="a")
    response = await client.get(f"/projects/{p}/scenes", params={"sort": sort}, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["loc"] for error in response.json()["errors"]] == [["query", "sort"]]
    assert "DROP TABLE" not in response.text
    assert len(await list_scenes(client, headers, p)) == 1


@pytest.mark.asyncio
async def test_search_results_are_paginated_with_links_that_keep_the_query(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    for n in range(5):
        await new_scene(client, headers, p, title=f"lesson {n}")
    await new_scene(client, headers, p, title="quiz")
    response = await client.get(
        f"/projects/{p}/scenes",
        params={"q": "lesson", "sort": "-position", "page": 1, "size": 2},
        headers=headers,
    )
    body = response.json()
    assert (body["total"], body["pages"]) == (5, 3)
    assert [s["title"] for s in body["items"]] == ["lesson 4", "lesson 3"]
    assert body["links"]["next"] == f"/projects/{p}/scenes?q=lesson&sort=-position&page=2&size=2"


@pytest.mark.asyncio
async def test_scene_etags_answer_304_and_412(app: FastAPI, client: httpx2.AsyncClient) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    p = await _project(client, headers)
    scene = await client.post(f"/projects/{p}/scenes", json={"title": "a"}, headers=headers)
    url, etag = scene.headers["location"], scene.headers["etag"]

    unchanged = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")

    updated = await client.patch(url, json={"title": "b"}, headers={**headers, "If-Match": etag})
    assert updated.status_code == 200
    stale = await client.patch(url, json={"title": "c"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    stale_delete = await client.delete(url, headers={**headers, "If-Match": etag})
    assert stale_delete.status_code == 412
    weak = await client.patch(
        url, json={"title": "c"}, headers={**headers, "If-Match": f"W/{updated.headers['etag']}"}
    )
    assert weak.status_code == 412  # If-Match compares strongly
    assert (await client.get(url, headers=headers)).json()["title"] == "b"
    modified = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert modified.status_code == 200
