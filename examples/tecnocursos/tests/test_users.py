"""/users: the caller's account for everyone signed in, the list for admins only."""

from __future__ import annotations

import httpx2
import pytest
from fastapi import FastAPI

from conftest import add_user, bearer, tokens_for
from tecnocursos.auth.models import Role


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.INSTRUCTOR, 403), (Role.STUDENT, 403), (None, 401)],
)
async def test_only_admins_list_users(
    app: FastAPI, client: httpx2.AsyncClient, role: Role | None, status: int
) -> None:
    headers = {}
    if role is not None:
        await add_user(app, "caller@example.com", role=role)
        headers = bearer((await tokens_for(client, "caller@example.com"))["access_token"])
    response = await client.get("/users", headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.asyncio
async def test_the_user_list_is_paginated(app: FastAPI, client: httpx2.AsyncClient) -> None:
    await add_user(app, "admin@example.com", role=Role.ADMIN)
    for n in range(4):
        await add_user(app, f"student{n}@example.com")
    headers = bearer((await tokens_for(client, "admin@example.com"))["access_token"])
    response = await client.get("/users", params={"page": 2, "size": 2}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["page"], body["size"], body["pages"]) == (5, 2, 2, 3)
    assert [user["email"] for user in body["items"]] == [
        "student1@example.com",
        "student2@example.com",
    ]
    assert body["links"]["next"] == "/users?page=3&size=2"
    assert all("password_hash" not in user for user in body["items"])
    too_big = await client.get("/users", params={"size": 1000}, headers=headers)
    assert too_big.status_code == 422


@pytest.mark.asyncio
async def test_users_me_shows_the_callers_role(app: FastAPI, client: httpx2.AsyncClient) -> None:
    await add_user(app, "ana@example.com", role=Role.INSTRUCTOR)
    headers = bearer((await tokens_for(client, "ana@example.com"))["access_token"])
    body = (await client.get("/users/me", headers=headers)).json()
    assert (body["email"], body["role"]) == ("ana@example.com", "instructor")
