"""Async SQLAlchemy sessions done right: ``pip install 'fastapi-enterprise[database]'``.

- :class:`Database`: built from ``DatabaseSettings``; creates its engine in the app's
  lifespan (after fork, on the serving loop), never at import.
- ``db.session()``: the per-request session dependency, committed before the response.
- ``db.transaction()`` for workers and scripts, ``db.isolated()`` for tests.
- :func:`installed_session`: the same dependency for apps built by a factory, finding
  the database ``db.install(app)`` hooked into the request's app.
- :class:`DatabaseSessionMiddleware`: the opt-in session-per-request middleware.
- :func:`lock_for_update`: ``SELECT ... FOR UPDATE`` that serialises writers on SQLite too.
- Errors as problems: 409 conflict, 503 unavailable (``Retry-After``), 504 timeout.
- :class:`DatabaseMetrics` and :class:`SlowQueryLog`: pool, checkout-wait, query and
  session metrics, and a masked slow-query log line (``Database.install()`` adds both).

See ``docs/how-to/databases.md``.
"""

from __future__ import annotations

import importlib.util

from fastapi_enterprise._extras import MissingExtraError

# SQLAlchemy's asyncio support needs greenlet (its [asyncio] extra) at the first query;
# say so at import instead.
for _missing in ("sqlalchemy", "greenlet"):
    if importlib.util.find_spec(_missing) is None:
        raise MissingExtraError("database", module="fastapi_enterprise.database", missing=_missing)

from fastapi_enterprise.database._database import (  # noqa: E402 - after the check
    Database,
    DatabaseNotStartedError,
    DatabaseUnavailableError,
    ReadOnlyError,
)
from fastapi_enterprise.database._drivers import DatabaseConfigError  # noqa: E402
from fastapi_enterprise.database._errors import DatabaseProblem, classify  # noqa: E402
from fastapi_enterprise.database._install import (  # noqa: E402
    installed_database,
    installed_session,
)
from fastapi_enterprise.database._locking import lock_for_update  # noqa: E402
from fastapi_enterprise.database._middleware import DatabaseSessionMiddleware  # noqa: E402
from fastapi_enterprise.database._observe import (  # noqa: E402
    STATEMENT_TYPES,
    DatabaseMetrics,
    SlowQueryLog,
)

__all__ = [
    "STATEMENT_TYPES",
    "Database",
    "DatabaseConfigError",
    "DatabaseMetrics",
    "DatabaseNotStartedError",
    "DatabaseProblem",
    "DatabaseSessionMiddleware",
    "DatabaseUnavailableError",
    "ReadOnlyError",
    "SlowQueryLog",
    "classify",
    "installed_database",
    "installed_session",
    "lock_for_update",
]
