"""Preflight of deploy.sh: can this release reach its database and its Redis?

Run in the release's environment (``$TC_RUNTIME exec RELEASE python check_services.py``):
the settings load as the app loads them, the database answers a ping, and so does every
Redis the settings use (the ``redis`` section when the cache or the video queue is on
Redis, the rate limiter's storage when it is a Redis URL). One line per check; errors show
the exception type and a redacted message, never a URL's password. Exit status 1 when a
check fails.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from fastapi_enterprise.redaction import DEFAULT_REDACTOR
from fastapi_enterprise.redis import create_redis
from fastapi_enterprise.settings import RedisSettings
from tecnocursos.core.database import create_database
from tecnocursos.core.settings import TecnoCursosSettings

TIMEOUT = 10.0
"""Seconds each check may take."""


def _redis_targets(settings: TecnoCursosSettings) -> dict[str, RedisSettings]:
    targets: dict[str, RedisSettings] = {}
    if settings.cache.backend == "redis" or settings.video.queue == "redis":
        targets["redis"] = settings.redis
    storage = settings.rate_limit.storage_url.get_secret_value()
    if storage.startswith(("redis://", "rediss://", "unix://")):
        targets["rate-limit storage"] = settings.redis.model_copy(
            update={"url": settings.rate_limit.storage_url}
        )
    return targets


async def _check_database(settings: TecnoCursosSettings) -> None:
    database = create_database(settings)
    async with database:
        await database.ping()


async def _check_redis(settings: RedisSettings) -> None:
    client = create_redis(settings)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _report(name: str, check: Coroutine[Any, Any, None]) -> bool:
    try:
        await asyncio.wait_for(check, TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
        # One line: driver messages span several (SQLAlchemy's background link).
        reason = " ".join(DEFAULT_REDACTOR.text(str(exc)).split()) or "no message"
        print(f"{name}: unreachable ({type(exc).__name__}: {reason})")
        return False
    print(f"{name}: reachable")
    return True


async def _run(settings: TecnoCursosSettings) -> int:
    checks = {"database": _check_database(settings)}
    for name, redis_settings in _redis_targets(settings).items():
        checks[name] = _check_redis(redis_settings)
    results = [await _report(name, check) for name, check in checks.items()]
    return 0 if all(results) else 1


def main() -> int:
    """Check every service of the settings; return the exit status."""
    return asyncio.run(_run(TecnoCursosSettings()))


if __name__ == "__main__":
    sys.exit(main())
