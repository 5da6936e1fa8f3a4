"""A ``fastapi.sse`` endpoint behind the full ``install()`` stack, for the streaming tests.

``GET /events`` yields one large event, then waits until ``POST /release`` is called (the
test calls it only after it has read the first event), then yields a second one and
ends. ``GET /forever`` yields an event every 50 ms until the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.log_config import configure_logging

PAYLOAD = "x" * 4096
"""Large and compressible: gzip would take it if it were allowed to."""

settings = EnterpriseSettings(environment="test", logging={"format": "json"})
configure_logging(settings)
app = FastAPI(**settings.fastapi_kwargs())
released = asyncio.Event()


@app.get("/events", response_class=EventSourceResponse)
async def events() -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(event="first", data=PAYLOAD)
    await released.wait()
    yield ServerSentEvent(event="second", data=PAYLOAD)


@app.post("/release")
async def release() -> dict[str, bool]:
    released.set()
    return {"released": True}


@app.get("/forever", response_class=EventSourceResponse)
async def forever() -> AsyncIterator[ServerSentEvent]:
    while True:
        yield ServerSentEvent(event="tick", data=PAYLOAD)
        await asyncio.sleep(0.05)


install(app, settings)
