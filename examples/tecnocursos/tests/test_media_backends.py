"""Media under concurrent uploads on SQLite, PostgreSQL and MariaDB, migrated schemas.

SQLite serialises every writer, the servers do not. Concurrent uploads against the quota
are serialised by the lock on the owner's row (SQLite: the write lock) and re-counted
with a locking read (which on MariaDB's REPEATABLE READ sees the latest commits, not
the transaction's snapshot), so exactly what fits is kept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import media_files
import pytest
from fastapi import FastAPI

from conftest import MARIADB_URL, POSTGRES_URL, SQLITE, make_settings, migrated, signed_in
from tecnocursos.core.settings import TecnoCursosSettings

BACKENDS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres"),
    pytest.param(MARIADB_URL, marks=pytest.mark.mariadb, id="mariadb"),
]
PNG = media_files.png()
FITS = 2
CONCURRENT = 8


@pytest.fixture
def settings(server_database: str, tmp_path: Path) -> TecnoCursosSettings:
    settings = make_settings(
        tmp_path,
        database={"url": server_database},
        media={"user_quota_bytes": FITS * len(PNG)},
        storage={"local_dir": tmp_path / "media"},
    )
    return migrated(settings)


def _stored(settings: TecnoCursosSettings) -> list[Path]:
    return [path for path in settings.storage.local_dir.rglob("*") if path.is_file()]


@pytest.mark.asyncio
@pytest.mark.parametrize("server_database", BACKENDS, indirect=True)
async def test_concurrent_uploads_keep_exactly_what_fits_in_the_quota(
    app: FastAPI, client: httpx2.AsyncClient, settings: TecnoCursosSettings
) -> None:
    headers = await signed_in(app, client, "ana@example.com")
    body, content_headers = media_files.multipart(PNG, filename="still.png")

    async def upload() -> httpx2.Response:
        return await client.post("/media", content=body, headers={**headers, **content_headers})

    responses = await asyncio.gather(*(upload() for _ in range(CONCURRENT)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * FITS + [413] * (CONCURRENT - FITS)
    assert len(_stored(settings)) == FITS
    # The rows agree with the files: full until one is deleted, then room for one more.
    assert (await upload()).status_code == 413
    kept = next(response for response in responses if response.status_code == 201)
    assert (await client.delete(f"/media/{kept.json()['id']}", headers=headers)).status_code == 204
    assert (await upload()).status_code == 201
    assert len(_stored(settings)) == FITS
