"""Who may do what to projects and scenes: every new route against every kind of caller.

A private project someone else owns does not exist for the caller (404, never 403: no
existence leak); a public one is readable by everyone signed in but written only by its
owner and admins (403); without a token every route is 401.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from conftest import signed_in
from tecnocursos.auth.models import Role

# (name, method, path, json body); {p} is the project, {s} one of its scenes, {t} another.
ROUTES: list[tuple[str, str, str, Any]] = [
    ("list projects", "GET", "/projects", None),
    ("create project", "POST", "/projects", {"title": "new"}),
    ("read", "GET", "/projects/{p}", None),
    ("list scenes", "GET", "/projects/{p}/scenes", None),
    ("read scene", "GET", "/projects/{p}/scenes/{s}", None),
    ("update", "PATCH", "/projects/{p}", {"title": "renamed"}),
    ("reorder", "PUT", "/projects/{p}/scenes/order", "reverse"),
    ("create scene", "POST", "/projects/{p}/scenes", {"title": "extra"}),
    ("update scene", "PATCH", "/projects/{p}/scenes/{s}", {"title": "renamed"}),
    ("delete scene", "DELETE", "/projects/{p}/scenes/{t}", None),
    ("delete", "DELETE", "/projects/{p}", None),
]
READS = {"read", "list scenes", "read scene"}
WRITES = {"update", "create scene", "update scene", "reorder", "delete scene", "delete"}
OK = {"POST": 201, "DELETE": 204}


def expected(caller: str, visibility: str) -> dict[str, int]:
    """The status each route answers ``caller`` on a project of ``visibility``."""
    statuses: dict[str, int] = {}
    for name, method, _, _ in ROUTES:
        ok = OK.get(method, 200)
        if caller == "anonymous":
            statuses[name] = 401
        elif name == "list projects":
            statuses[name] = 200
        elif name == "create project":
            statuses[name] = 403 if caller == "student" else 201
        elif caller in {"owner", "admin"}:
            statuses[name] = ok
        elif visibility == "private":
            statuses[name] = 404  # IDOR: the project does not exist for this caller
        else:
            statuses[name] = ok if name in READS else 403
    return statuses


@pytest.mark.asyncio
@pytest.mark.parametrize("visibility", ["private", "public"])
@pytest.mark.parametrize("caller", ["owner", "admin", "other instructor", "student", "anonymous"])
async def test_the_authorisation_matrix(
    app: FastAPI, client: httpx2.AsyncClient, caller: str, visibility: str
) -> None:
    owner = await signed_in(app, client, "owner@example.com")
    callers = {
        "owner": owner,
        "admin": await signed_in(app, client, "admin@example.com", Role.ADMIN),
        "other instructor": await signed_in(app, client, "other@example.com"),
        "student": await signed_in(app, client, "student@example.com", Role.STUDENT),
        "anonymous": {},
    }
    project = await client.post(
        "/projects", json={"title": "course", "visibility": visibility}, headers=owner
    )
    p = project.json()["id"]
    scenes = [
        (await client.post(f"/projects/{p}/scenes", json={"title": t}, headers=owner)).json()["id"]
        for t in ("one", "two")
    ]
    ids = {"p": p, "s": scenes[0], "t": scenes[1]}

    actual: dict[str, int] = {}
    for name, method, path, body in ROUTES:
        if body == "reverse":
            body = {"scene_ids": list(reversed(scenes))}
        response = await client.request(
            method, path.format(**ids), json=body, headers=callers[caller]
        )
        actual[name] = response.status_code
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
    assert actual == expected(caller, visibility)

    # A refused write changed nothing; an allowed one did.
    still_there = await client.get(f"/projects/{p}", headers=owner)
    assert (still_there.status_code == 404) == (caller in {"owner", "admin"})


@pytest.mark.asyncio
async def test_an_unknown_project_and_a_hidden_one_answer_alike(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    owner = await signed_in(app, client, "owner@example.com")
    other = await signed_in(app, client, "other@example.com")
    p = (await client.post("/projects", json={"title": "secret"}, headers=owner)).json()["id"]
    hidden = await client.get(f"/projects/{p}", headers=other)
    unknown = await client.get(f"/projects/{p + 1000}", headers=other)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == unknown.json()["detail"]


@pytest.mark.asyncio
async def test_a_scene_is_found_only_under_its_own_project(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    owner = await signed_in(app, client, "owner@example.com")
    first = (await client.post("/projects", json={"title": "a"}, headers=owner)).json()["id"]
    second = (await client.post("/projects", json={"title": "b"}, headers=owner)).json()["id"]
    scene = await client.post(f"/projects/{first}/scenes", json={"title": "s"}, headers=owner)
    s = scene.json()["id"]
    assert (await client.get(f"/projects/{first}/scenes/{s}", headers=owner)).status_code == 200
    assert (await client.get(f"/projects/{second}/scenes/{s}", headers=owner)).status_code == 404
