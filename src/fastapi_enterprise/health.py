"""Liveness and readiness: ``/health/live`` and ``/health/ready`` with pluggable checks.

Liveness says the process answers; it checks nothing else, so a slow database never gets
a healthy pod restarted. Readiness runs every registered check concurrently, each under
its own timeout, and answers 503 with each check's status when any fails, so a load
balancer stops sending traffic without a single slow dependency stalling the probe.
A check can also report ``degraded`` (a :class:`HealthStatus`): shown in the report,
with its details, while the instance stays ready (``"status": "degraded"``, 200).
Failures report the exception type only: messages can hold connection strings.

A check's timeout counts only the time in which it could have been answered, as the
rate limiter's storage calls do (:class:`~fastapi_enterprise._flow.Deadline`):
time the event loop spent busy with other requests is given back, so a burst does not
fail a probe of a healthy dependency (issue 12, A1). A check that really hangs still
times out, and however busy the loop, a check ends after at most 30 seconds. A
synchronous check runs in a worker thread, which cannot be stopped: on timeout the
probe stops waiting for it, and until that thread returns the check is reported as
timing out without being started again, so a hung check holds one thread, not one per
probe.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastapi_enterprise._flow import Deadline, LoopClock

__all__ = ["HealthCheck", "HealthChecks", "HealthStatus", "health_routes"]

HealthCheck = Callable[[], Awaitable[object] | object]
"""A check: raises (or returns ``False``) when the dependency is not usable; may return a
:class:`HealthStatus` to say more."""


@dataclass(frozen=True)
class HealthStatus:
    """What a check may return to report more than up or down.

    Attributes:
        status: ``ok``; ``degraded`` (working in a reduced mode: reported, still ready);
            or ``fail`` (not ready).
        details: Extra fields for the report (never secrets: the report is served).
    """

    status: Literal["ok", "degraded", "fail"]
    details: Mapping[str, object] = field(default_factory=dict)


class HealthChecks:
    """A named set of readiness checks.

    Args:
        timeout: Default seconds each check may take (time in which the event loop
            was busy with other work does not count).
    """

    def __init__(self, *, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.checks: dict[str, tuple[HealthCheck, float]] = {}
        self._clock = LoopClock()
        # Synchronous checks whose thread has not returned, with when it started.
        self._running: dict[str, float] = {}

    def add(self, name: str, check: HealthCheck, *, timeout: float | None = None) -> None:
        """Register a check (sync functions run in a worker thread, one run at a time)."""
        self.checks[name] = (check, timeout or self.timeout)

    def add_database(self, engine: Any, *, name: str = "database") -> None:
        """Check a SQLAlchemy engine (sync or async) with ``SELECT 1``."""
        import sqlalchemy

        if hasattr(engine, "sync_engine"):

            async def ping_async() -> None:
                async with engine.connect() as connection:
                    await connection.execute(sqlalchemy.text("SELECT 1"))

            self.add(name, ping_async)
            return

        def ping() -> None:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT 1"))

        self.add(name, ping)

    def add_redis(self, client: Any, *, name: str = "redis") -> None:
        """Check an asyncio Redis client with ``PING``."""

        async def ping() -> None:
            await client.ping()

        self.add(name, ping)

    async def run(self) -> tuple[bool, dict[str, dict[str, object]]]:
        """Run every check concurrently; return (ready, per-check results).

        Ready when every check is ``ok`` or ``degraded``.
        """
        names = list(self.checks)
        results = await asyncio.gather(*(self._run_one(name, *self.checks[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        return all(result["status"] in ("ok", "degraded") for result in results), report

    async def _run_one(self, name: str, check: HealthCheck, seconds: float) -> dict[str, object]:
        stuck_since = self._running.get(name)
        if stuck_since is not None:  # its last run is still blocked in its thread
            return {"status": "timeout", "duration_ms": _ms(stuck_since)}
        start = time.perf_counter()
        try:
            # Runs in a task of its own (gather): the deadline cancels this check only.
            with Deadline(seconds, self._clock, ceiling=max(seconds, _CEILING)):
                outcome = await self._call(name, check)
        except TimeoutError:
            return {"status": "timeout", "duration_ms": _ms(start)}
        except Exception as exc:  # noqa: BLE001 - a failing check is a report, not a crash
            return {"status": "fail", "error": type(exc).__name__, "duration_ms": _ms(start)}
        if outcome is False:
            return {"status": "fail", "duration_ms": _ms(start)}
        if isinstance(outcome, HealthStatus):
            return {**outcome.details, "status": outcome.status, "duration_ms": _ms(start)}
        return {"status": "ok", "duration_ms": _ms(start)}

    async def _call(self, name: str, check: HealthCheck) -> object:
        if inspect.iscoroutinefunction(check):
            return await check()
        running = self._running

        def run() -> object:
            # Marked in the thread: a run cancelled before a thread took it never ran.
            running[name] = time.perf_counter()
            try:
                return check()
            finally:
                running.pop(name, None)

        # Abandoned on timeout: the thread cannot be stopped, the probe need not wait.
        result = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            return await result
        return result


# However busy the event loop, a check ends after this long (or its own timeout).
_CEILING = 30.0


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def health_routes(
    checks: HealthChecks, *, live_path: str = "/health/live", ready_path: str = "/health/ready"
) -> list[Route]:
    """The two probe routes (kept out of the OpenAPI schema)."""

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def ready(request: Request) -> JSONResponse:
        healthy, report = await checks.run()
        degraded = any(result["status"] == "degraded" for result in report.values())
        status = ("degraded" if degraded else "ok") if healthy else "fail"
        return JSONResponse(
            {"status": status, "checks": report},
            status_code=200 if healthy else 503,
            headers={"Cache-Control": "no-store"},
        )

    return [
        Route(live_path, live, methods=["GET"], include_in_schema=False),
        Route(ready_path, ready, methods=["GET"], include_in_schema=False),
    ]
