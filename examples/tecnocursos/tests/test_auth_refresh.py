"""Refresh tokens: rotation, reuse revokes the family, logout revokes, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from conftest import add_user, bearer, tokens_for
from tecnocursos.auth.models import RefreshToken, utcnow
from tecnocursos.auth.tokens import hash_refresh_token

Events = Callable[[], list[dict[str, Any]]]


async def _refresh(client: httpx2.AsyncClient, token: str) -> httpx2.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


@pytest.mark.asyncio
async def test_refresh_rotates_and_stores_only_hashes(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "ana@example.com")
    first = await tokens_for(client, "ana@example.com")
    response = await _refresh(client, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        await client.get("/users/me", headers=bearer(second["access_token"]))
    ).status_code == 200
    async with app.state.database.transaction() as session:
        rows = (await session.scalars(select(RefreshToken).order_by(RefreshToken.id))).all()
    assert [row.token_hash for row in rows] == [
        hash_refresh_token(first["refresh_token"]),
        hash_refresh_token(second["refresh_token"]),
    ]
    old, new = rows
    assert old.revoked_at is not None
    assert old.replaced_by == new.id
    assert new.revoked_at is None
    assert old.family_id == new.family_id
    assert new.expires_at == old.expires_at  # rotation never extends a login


@pytest.mark.asyncio
async def test_reusing_a_rotated_token_revokes_the_whole_family(
    app: FastAPI, client: httpx2.AsyncClient, security_events: Events
) -> None:
    user_id = await add_user(app, "ana@example.com")
    first = await tokens_for(client, "ana@example.com")
    other_login = await tokens_for(client, "ana@example.com")
    second = (await _refresh(client, first["refresh_token"])).json()
    reuse = await _refresh(client, first["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.headers["content-type"] == "application/problem+json"
    # The thief's copy and the legitimate successor are both dead now...
    assert (await _refresh(client, second["refresh_token"])).status_code == 401
    # ...but another login (another family) is untouched.
    assert (await _refresh(client, other_login["refresh_token"])).status_code == 200
    # Both presentations of a revoked token were reported.
    events = [e for e in security_events() if e["event"] == "auth.refresh_reuse"]
    assert [event["user_id"] for event in events] == [user_id, user_id]


@pytest.mark.asyncio
async def test_logout_revokes_the_family(app: FastAPI, client: httpx2.AsyncClient) -> None:
    await add_user(app, "ana@example.com")
    first = await tokens_for(client, "ana@example.com")
    second = (await _refresh(client, first["refresh_token"])).json()
    response = await client.post("/auth/logout", json={"refresh_token": second["refresh_token"]})
    assert response.status_code == 204
    assert (await _refresh(client, second["refresh_token"])).status_code == 401
    # Unknown tokens log out quietly: logout is idempotent and reveals nothing.
    unknown = await client.post("/auth/logout", json={"refresh_token": "never-issued"})
    assert unknown.status_code == 204


@pytest.mark.asyncio
async def test_unknown_and_expired_refresh_tokens_are_refused(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "ana@example.com")
    tokens = await tokens_for(client, "ana@example.com")
    assert (await _refresh(client, "never-issued")).status_code == 401
    async with app.state.database.transaction() as session:
        await session.execute(
            update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 401


@pytest.mark.asyncio
async def test_a_refresh_token_is_not_an_access_token(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "ana@example.com")
    tokens = await tokens_for(client, "ana@example.com")
    response = await client.get("/users/me", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 401
