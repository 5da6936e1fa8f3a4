"""Alembic's environment: migrations run on the app's own settings and async driver.

The URL comes from :class:`~tecnocursos.core.settings.TecnoCursosSettings` (or from the
settings a caller puts in ``config.attributes["settings"]``, as the tests do), and the
engine from the library's ``Database``, so the migrations see exactly the database,
driver and connection options the app uses.
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy.engine import Connection

from fastapi_enterprise.database import Database
from tecnocursos.auth import models as _auth_models  # noqa: F401 - registers the tables
from tecnocursos.core.database import Base
from tecnocursos.core.settings import TecnoCursosSettings
from tecnocursos.media import models as _media_models  # noqa: F401
from tecnocursos.projects import models as _project_models  # noqa: F401
from tecnocursos.scenes import models as _scene_models  # noqa: F401
from tecnocursos.videos import jobs as _video_jobs  # noqa: F401

config = context.config
if config.config_file_name is not None and not config.attributes.get("settings"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _settings() -> TecnoCursosSettings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, TecnoCursosSettings) else TecnoCursosSettings()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    database = Database(_settings().database, name="migrations")
    async with database, database.engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()


def _run_offline() -> None:
    database = Database(_settings().database, name="migrations")
    context.configure(
        url=database.url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    asyncio.run(_run_online())
