"""Readiness checks: timed by the time the dependency had, not by a busy event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.health import HealthChecks
from fastapi_enterprise.install import installed_health_checks

TIMEOUT = 0.2  # each check's timeout in these tests
BOUND = 20.0  # however slow the machine, a probe answers within this long


def app_with(add: Callable[[HealthChecks], None]) -> FastAPI:
    """The full stack, with the readiness checks ``add`` registers."""
    app = FastAPI()
    install(app, EnterpriseSettings(environment="test"))
    checks = installed_health_checks(app)
    assert checks is not None
    add(checks)
    return app


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def ready(client: httpx2.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await asyncio.wait_for(client.get("/health/ready"), BOUND)
    checks: dict[str, Any] = response.json()["checks"]
    return response.status_code, checks


def block_the_event_loop() -> None:
    """Other work holding the loop (a CPU-heavy handler, a burst) for 3 timeouts."""
    time.sleep(3 * TIMEOUT)


@pytest.mark.asyncio
async def test_a_busy_event_loop_does_not_fail_a_healthy_check() -> None:
    """Other work holds the event loop for three timeouts while a healthy check runs.

    The dependency answers each of two round trips (connect, query) in a quarter of the
    timeout; the loop is busy during the first. ``anyio.fail_after`` counted the time
    the loop could not listen: the second round trip started after the deadline and was
    cancelled, so a readiness probe failed during a burst on a healthy dependency (the
    A1 class of issue 12).
    """
    started = asyncio.Event()

    async def two_round_trips() -> None:
        started.set()
        await asyncio.sleep(TIMEOUT / 4)  # connect
        await asyncio.sleep(TIMEOUT / 4)  # SELECT 1

    app = app_with(lambda checks: checks.add("dependency", two_round_trips, timeout=TIMEOUT))
    async with client_of(app) as client:
        probe = asyncio.ensure_future(ready(client))
        await asyncio.wait_for(started.wait(), BOUND)
        block_the_event_loop()
        status, checks = await probe
    assert checks["dependency"]["status"] == "ok", checks
    assert status == 200


@pytest.mark.asyncio
async def test_a_hung_async_check_still_times_out() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    app = app_with(lambda checks: checks.add("dependency", hangs, timeout=TIMEOUT))
    async with client_of(app) as client:
        status, checks = await ready(client)
    assert status == 503
    assert checks["dependency"]["status"] == "timeout"
    assert checks["rate_limit"]["status"] == "ok"  # the other checks still report


@pytest.mark.asyncio
async def test_a_hung_sync_check_times_out_and_is_not_started_again() -> None:
    """A blocking check times out; while its thread is stuck, probes do not add threads.

    The thread cannot be stopped: the probe stops waiting for it. Starting the check
    again on every probe would stack one stuck thread per probe, until the thread pool
    that the app's own sync endpoints need is exhausted.
    """
    release = threading.Event()
    calls: list[float] = []

    def hangs() -> None:
        calls.append(time.monotonic())
        release.wait(BOUND)

    app = app_with(lambda checks: checks.add("dependency", hangs, timeout=TIMEOUT))
    async with client_of(app) as client:
        try:
            for _ in range(3):
                status, checks = await ready(client)
                assert status == 503
                assert checks["dependency"]["status"] == "timeout"
            assert len(calls) == 1
        finally:
            release.set()
        # Once the stuck run has returned, the next probe runs the check again.
        deadline = time.monotonic() + BOUND
        while True:
            status, checks = await ready(client)
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert checks["dependency"]["status"] == "ok"
    assert len(calls) == 2
