"""In-process CPU cost per request: bare FastAPI vs the same app after install().

Calls the ASGI app directly (no server, no sockets), so it measures only the Python
work each layer adds. Run: python -m benchmarks.inprocess [--requests N]
Reports microseconds per request (best of several rounds) and the ratio to bare FastAPI.
Not a test: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
import timeit
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from fastapi_enterprise import EnterpriseSettings, configure_logging, generate_request_id, install

PAYLOAD = {"id": 1, "title": "FastAPI in production", "tags": ["asgi", "json"] * 8}


def make_app(installed: bool, access_log: bool = True) -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> dict[str, Any]:
        return PAYLOAD

    if installed:
        install(app, EnterpriseSettings(environment="test", logging={"access_log": access_log}))
    return app


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/small",
        "raw_path": b"/small",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def drive(app: FastAPI, requests: int, headers: list[tuple[bytes, bytes]]) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    for _ in range(200):  # warm-up
        await app(scope(headers), receive, send)
    start = time.perf_counter()
    for _ in range(requests):
        await app(scope(headers), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


def best(fn: Callable[[], float], rounds: int) -> float:
    return min(fn() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    host = [(b"host", b"bench")]
    with_id = [*host, (b"x-request-id", b"client-supplied-id-0001")]
    # Access lines are rendered to JSON for real and written by the writer thread to
    # /dev/null: the cost measured is the request path's, as in production.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handle = configure_logging(EnterpriseSettings(environment="production"), stream=devnull)
    bare = make_app(False)
    no_access_log = make_app(True, access_log=False)
    full = make_app(True)

    def measure(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> float:
        return best(lambda: asyncio.run(drive(app, args.requests, headers)), args.rounds)

    rows = [
        ("bare FastAPI", measure(bare, host)),
        ("install(), access log off, ID generated", measure(no_access_log, host)),
        ("install(), JSON access log, ID generated", measure(full, host)),
        ("install(), JSON access log, ID reused", measure(full, with_id)),
    ]
    handle.stop()
    devnull.close()
    reference = rows[0][1]
    print("| app | us/request | ratio to bare |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} | {value / reference:.2f} |")
    pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}")
    n = 200_000
    gen = min(timeit.repeat(generate_request_id, number=n, repeat=5)) / n * 1e6
    val = (
        min(timeit.repeat(lambda: pattern.fullmatch("client-supplied-id-0001"), number=n, repeat=5))
        / n
        * 1e6
    )
    print(f"\ngenerate_request_id(): {gen:.2f} us; validate an incoming ID: {val:.2f} us")


if __name__ == "__main__":
    main()
