"""DatabaseSettings.engine_kwargs() builds working SQLAlchemy engines."""

from __future__ import annotations

import os

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")

from fastapi_enterprise import EnterpriseSettings  # noqa: E402

POSTGRES_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def test_sqlite_default_works(tmp_path: object) -> None:
    settings = EnterpriseSettings(database={"url": "sqlite://", "pool_size": 50})
    kwargs = settings.database.engine_kwargs()
    assert kwargs == {"echo": False}
    engine = sqlalchemy.create_engine(settings.database.url.get_secret_value(), **kwargs)
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("select 1")).scalar() == 1
    engine.dispose()


@pytest.mark.postgres
def test_postgres_pool_options_apply() -> None:
    pytest.importorskip("psycopg")
    settings = EnterpriseSettings(
        database={"url": POSTGRES_URL, "pool_size": 2, "max_overflow": 1, "pool_timeout": 1}
    )
    engine = sqlalchemy.create_engine(
        settings.database.url.get_secret_value(), **settings.database.engine_kwargs()
    )
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select 1")).scalar() == 1
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable: {type(exc).__name__}")
    assert engine.pool.size() == 2
    assert engine.pool._max_overflow == 1
    engine.dispose()
