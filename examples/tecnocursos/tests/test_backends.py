"""The account flow on PostgreSQL and MariaDB, on a schema built by the migrations.

What SQLite cannot prove: timestamps round-trip as UTC, the atomic failure counter
(``CASE`` in an ``UPDATE``), the refresh claim's row count, and the unique email under
the servers' own collations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from conftest import (
    MARIADB_URL,
    PASSWORD,
    POSTGRES_URL,
    bearer,
    login,
    make_settings,
    migrated,
)
from tecnocursos.core.settings import TecnoCursosSettings

BACKENDS = [
    pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
]


@pytest.fixture
def settings(server_database: str, tmp_path: Path) -> TecnoCursosSettings:
    settings = make_settings(tmp_path, database={"url": server_database})
    return migrated(settings)


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_the_account_flow_on_a_database_server(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    registered = await client.post(
        "/auth/register", json={"email": "ana@example.com", "password": PASSWORD}
    )
    assert registered.status_code == 201
    duplicate = await client.post(
        "/auth/register", json={"email": "Ana@Example.com", "password": PASSWORD}
    )
    assert duplicate.status_code == 409

    tokens: dict[str, Any] = (await login(client, "ana@example.com")).json()
    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == "ana@example.com"

    rotated = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    reuse = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401
    successor = rotated.json()["refresh_token"]
    assert (
        await client.post("/auth/refresh", json={"refresh_token": successor})
    ).status_code == 401

    statuses = [
        (await login(client, "ana@example.com", f"guess number {n}")).status_code for n in range(5)
    ]
    assert statuses == [401, 401, 401, 401, 429]
    assert (await login(client, "ana@example.com")).status_code == 429
