"""Migrations: ``upgrade head`` builds exactly the models' schema; ``downgrade base`` undoes it.

On SQLite always; on PostgreSQL and MariaDB (markers ``postgres``, ``mariadb``) in a
database created for the test and dropped after it. A missing server skips, or fails
under ``CI=true``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from conftest import MARIADB_URL, POSTGRES_URL, alembic_config
from fastapi_enterprise.database import Database
from tecnocursos.core.database import Base
from tecnocursos.core.settings import TecnoCursosSettings

APP_TABLES = {"users", "refresh_tokens", "projects", "scenes", "media_files", "video_jobs"}


def _settings(url: str) -> TecnoCursosSettings:
    return TecnoCursosSettings(environment="test", database={"url": url, "null_pool": True})


def _inspect(settings: TecnoCursosSettings) -> dict[str, Any]:
    """The tables, the recorded revision and the autogenerate diff against the models."""

    def read(connection: Connection) -> dict[str, Any]:
        tables = set(inspect(connection).get_table_names())
        revision = None
        if "alembic_version" in tables:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return {
            "tables": tables,
            "revision": revision,
            "diff": compare_metadata(context, Base.metadata),
        }

    async def run() -> dict[str, Any]:
        database = Database(settings.database, name="inspect")
        async with database, database.engine.connect() as connection:
            return await connection.run_sync(read)

    return asyncio.run(run())


def _upgrade_compare_downgrade(settings: TecnoCursosSettings) -> None:
    config = alembic_config(settings)
    command.upgrade(config, "head")
    after_upgrade = _inspect(settings)
    assert after_upgrade["tables"] == APP_TABLES | {"alembic_version"}
    assert after_upgrade["revision"] == "0004"
    assert after_upgrade["diff"] == []  # the migrations build exactly Base.metadata

    command.downgrade(config, "base")
    after_downgrade = _inspect(settings)
    assert after_downgrade["tables"] == {"alembic_version"}
    assert after_downgrade["revision"] is None
    # Against an empty database the comparison sees every model table missing: the
    # check above is not vacuous.
    added = {diff[1].name for diff in after_downgrade["diff"] if diff[0] == "add_table"}
    assert added == APP_TABLES

    command.upgrade(config, "head")  # and back up again: the round trip is clean
    assert _inspect(settings)["diff"] == []


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    _upgrade_compare_downgrade(_settings(f"sqlite:///{tmp_path / 'tc.db'}"))


@pytest.mark.postgres
@pytest.mark.parametrize("server_database", [POSTGRES_URL], indirect=True, ids=["postgres"])
def test_migrations_on_postgresql(server_database: str) -> None:
    _upgrade_compare_downgrade(_settings(server_database))


@pytest.mark.mariadb
@pytest.mark.parametrize("server_database", [MARIADB_URL], indirect=True, ids=["mariadb"])
def test_migrations_on_mariadb(server_database: str) -> None:
    _upgrade_compare_downgrade(_settings(server_database))
