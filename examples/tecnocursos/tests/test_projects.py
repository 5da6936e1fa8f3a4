"""/projects: CRUD, visibility (404 for what the caller may not see), lists, ETags."""

from __future__ import annotations

import httpx2
import pytest
from fastapi import FastAPI

from conftest import signed_in
from tecnocursos.auth.models import Role

XSS = "<script>alert('stored')</script>"


@pytest.mark.asyncio
async def test_an_instructor_creates_reads_updates_and_deletes_a_project(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await client.post(
        "/projects",
        json={"title": "FastAPI in production", "description": "Ten lessons"},
        headers=headers,
    )
    assert created.status_code == 201
    project = created.json()
    assert (project["title"], project["visibility"]) == ("FastAPI in production", "private")
    assert created.headers["location"] == f"/projects/{project['id']}"

    read = await client.get(f"/projects/{project['id']}", headers=headers)
    assert read.json() == project
    assert read.headers["etag"] == created.headers["etag"]

    patched = await client.patch(
        f"/projects/{project['id']}", json={"visibility": "public"}, headers=headers
    )
    assert patched.status_code == 200
    assert patched.json()["visibility"] == "public"
    assert patched.json()["title"] == "FastAPI in production"  # untouched
    assert patched.headers["etag"] != created.headers["etag"]

    deleted = await client.delete(f"/projects/{project['id']}", headers=headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/projects/{project['id']}", headers=headers)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "locations"),
    [
        ({}, [["body", "title"]]),
        ({"title": ""}, [["body", "title"]]),
        ({"title": "x" * 201}, [["body", "title"]]),
        ({"title": "ok", "visibility": "SECRET-VALUE-42"}, [["body", "visibility"]]),
        ({"title": "ok", "owner_id": 99}, [["body", "owner_id"]]),
    ],
)
async def test_invalid_projects_are_422_problems_with_locations_not_values(
    app: FastAPI, client: httpx2.AsyncClient, body: dict[str, object], locations: list[list[str]]
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    response = await client.post("/projects", json=body, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["loc"] for error in response.json()["errors"]] == locations
    assert "SECRET-VALUE-42" not in response.text
    assert "x" * 201 not in response.text


@pytest.mark.asyncio
async def test_the_list_shows_own_and_public_projects_and_admins_see_all(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    ana = await signed_in(app, client, "ana@example.com")
    bob = await signed_in(app, client, "bob@example.com")
    admin = await signed_in(app, client, "admin@example.com", Role.ADMIN)
    for title, visibility, headers in [
        ("ana private", "private", ana),
        ("ana public", "public", ana),
        ("bob private", "private", bob),
    ]:
        response = await client.post(
            "/projects", json={"title": title, "visibility": visibility}, headers=headers
        )
        assert response.status_code == 201

    async def titles(headers: dict[str, str]) -> list[str]:
        response = await client.get("/projects", headers=headers)
        assert response.status_code == 200
        return [item["title"] for item in response.json()["items"]]

    assert await titles(ana) == ["ana private", "ana public"]
    assert await titles(bob) == ["ana public", "bob private"]
    assert await titles(admin) == ["ana private", "ana public", "bob private"]


@pytest.mark.asyncio
async def test_the_project_list_is_paginated_with_links(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    for n in range(5):
        await client.post("/projects", json={"title": f"course {n}"}, headers=headers)
    response = await client.get("/projects", params={"page": 2, "size": 2}, headers=headers)
    body = response.json()
    assert (body["total"], body["page"], body["pages"]) == (5, 2, 3)
    assert [item["title"] for item in body["items"]] == ["course 2", "course 3"]
    assert body["links"]["prev"] == "/projects?page=1&size=2"
    assert body["links"]["next"] == "/projects?page=3&size=2"
    assert body["links"]["last"] == "/projects?page=3&size=2"


@pytest.mark.asyncio
async def test_a_matching_if_none_match_answers_304_without_a_body(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await client.post("/projects", json={"title": "Cached"}, headers=headers)
    url, etag = created.headers["location"], created.headers["etag"]

    unchanged = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    weak = await client.get(url, headers={**headers, "If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304  # If-None-Match compares weakly

    await client.patch(url, json={"title": "Changed"}, headers=headers)
    changed = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["title"] == "Changed"


@pytest.mark.asyncio
async def test_a_stale_if_match_answers_412_and_changes_nothing(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await client.post("/projects", json={"title": "v1"}, headers=headers)
    url, first = created.headers["location"], created.headers["etag"]
    second = (await client.patch(url, json={"title": "v2"}, headers=headers)).headers["etag"]

    stale = await client.patch(url, json={"title": "lost"}, headers={**headers, "If-Match": first})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    stale_delete = await client.delete(url, headers={**headers, "If-Match": first})
    assert stale_delete.status_code == 412
    assert (await client.get(url, headers=headers)).json()["title"] == "v2"

    fresh = await client.patch(url, json={"title": "v3"}, headers={**headers, "If-Match": second})
    assert fresh.status_code == 200
    assert fresh.json()["title"] == "v3"


@pytest.mark.asyncio
async def test_stored_markup_comes_back_as_json_text_under_a_strict_csp(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    created = await client.post(
        "/projects", json={"title": XSS, "description": XSS}, headers=headers
    )
    read = await client.get(created.headers["location"], headers=headers)
    assert read.json()["title"] == XSS  # stored as sent, not altered
    assert read.headers["content-type"] == "application/json"
    assert read.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in read.headers["content-security-policy"]
