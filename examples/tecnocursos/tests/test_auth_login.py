"""Login: tokens for the right password, 401 otherwise, lockout, hash upgrade, events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from conftest import PASSWORD, add_user, bearer, login
from tecnocursos.auth.models import User, utcnow

Events = Callable[[], list[dict[str, Any]]]


@pytest.mark.asyncio
async def test_login_returns_tokens_that_open_users_me(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "ana@example.com")
    response = await login(client, "ANA@example.com")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    me = await client.get("/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ana@example.com"


@pytest.mark.asyncio
async def test_wrong_password_and_unknown_email_get_the_same_401(
    app: FastAPI, client: httpx2.AsyncClient, security_events: Events
) -> None:
    await add_user(app, "ana@example.com")
    wrong = await login(client, "ana@example.com", "not the password at all")
    unknown = await login(client, "nobody@example.com")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["detail"] == unknown.json()["detail"]
    reasons = [
        event["reason"] for event in security_events() if event["event"] == "auth.login_failed"
    ]
    assert reasons == ["bad_password", "unknown_user"]
    for event in security_events():  # neither the password nor the email is logged
        assert "not the password at all" not in str(event)
        assert "nobody@example.com" not in str(event)


@pytest.mark.asyncio
async def test_repeated_failures_lock_the_account_with_retry_after(
    app: FastAPI, client: httpx2.AsyncClient, security_events: Events
) -> None:
    user_id = await add_user(app, "ana@example.com")
    statuses = [
        (await login(client, "ana@example.com", f"guess number {n}")).status_code for n in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    # Locked: even the right password is refused, with the time left.
    locked = await login(client, "ana@example.com")
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    names = [event["event"] for event in security_events()]
    assert names.count("auth.account_locked") == 1
    assert names.count("auth.login_refused_locked") == 1
    locked_event = next(e for e in security_events() if e["event"] == "auth.account_locked")
    assert locked_event["user_id"] == user_id
    # The lock ends: the right password works again and clears the failures.
    async with app.state.database.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert (await login(client, "ana@example.com")).status_code == 200
    async with app.state.database.transaction() as session:
        user = await session.scalar(select(User).where(User.id == user_id))
        assert user is not None
        assert (user.failed_logins, user.locked_until) == (0, None)


@pytest.mark.asyncio
async def test_failures_outside_the_window_are_forgotten(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    user_id = await add_user(app, "ana@example.com")
    for n in range(4):
        assert (await login(client, "ana@example.com", f"guess number {n}")).status_code == 401
    async with app.state.database.transaction() as session:
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(last_failed_login_at=utcnow() - timedelta(minutes=16))
        )
    # The fifth failure starts a new window instead of locking.
    assert (await login(client, "ana@example.com", "guess number 5")).status_code == 401


@pytest.mark.asyncio
async def test_an_older_argon2_hash_is_upgraded_at_login(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    older = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=4096),)).hash(PASSWORD)
    user_id = await add_user(app, "ana@example.com", password_hash=older)
    assert (await login(client, "ana@example.com")).status_code == 200
    async with app.state.database.transaction() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == user_id))
    assert stored is not None
    assert stored != older
    assert "m=4096,t=2" in older
    assert "m=8192,t=1" in stored  # the test environment's parameters
    assert (await login(client, "ana@example.com")).status_code == 200


@pytest.mark.asyncio
async def test_an_overlong_password_is_refused_without_hashing(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "ana@example.com")
    assert (await login(client, "ana@example.com", "x" * 10_000)).status_code == 401
