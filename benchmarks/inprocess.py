"""In-process CPU cost per request: bare FastAPI, each layer alone, and the full install().

Calls the ASGI app directly (no server, no sockets), so it measures only the Python work
each layer adds. Run: python -m benchmarks.inprocess [--requests N] [--repetitions N]

Measured the way the budgets are set (see the design notes): process CPU time (the log
writer thread counts, and its queue is drained inside the measurement), every app once
per repetition in rotating order, and each row's cost as the median of its paired
differences to bare FastAPI, so that drift on a shared machine cancels out. Sequential
best-of-N wall-clock rows, which this harness used to print, drift by tens of
microseconds here and are gone. ``--micro`` prints only the single operations.

Not a test: nothing here asserts on timing. The server-level benchmark (wrk against
uvicorn, interleaved rounds) is a separate command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import time
import timeit
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from fastapi_enterprise import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    CompressionMiddleware,
    CORSPolicyMiddleware,
    EnterpriseSettings,
    ProxyHeadersMiddleware,
    RateLimitMiddleware,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    configure_logging,
    generate_request_id,
    install,
)
from fastapi_enterprise.metrics import PrometheusMiddleware

RESULTS = Path(__file__).resolve().parent / "results"
PAYLOAD = {"id": 1, "title": "FastAPI in production", "tags": ["asgi", "json"] * 8}


def make_app(
    middleware: list[Middleware] | None = None, settings: EnterpriseSettings | None = None
) -> FastAPI:
    app = FastAPI(middleware=middleware or [])

    @app.get("/small")
    async def small() -> dict[str, Any]:
        return PAYLOAD

    if settings is not None:
        install(app, settings)
    return app


def scope(headers: list[tuple[bytes, bytes]], path: str = "/small") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def drive(
    app: FastAPI,
    requests: int,
    headers: list[tuple[bytes, bytes]],
    *,
    clock: Callable[[], float] = time.perf_counter,
    settle: Callable[[], object] | None = None,
    path: str = "/small",
) -> float:
    """Microseconds per request by ``clock``; ``settle`` runs (and counts) at the end."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    for _ in range(200):  # warm-up
        await app(scope(headers, path), receive, send)
    start = clock()
    for _ in range(requests):
        await app(scope(headers, path), receive, send)
    if settle is not None:
        settle()
    return (clock() - start) / requests * 1e6


def best(fn: Callable[[], float], rounds: int) -> float:
    return min(fn() for _ in range(rounds))


def paired(
    apps: list[tuple[str, FastAPI]],
    requests: int,
    repetitions: int,
    settle: Callable[[], object],
    around: Mapping[str, Callable[[], AbstractContextManager[object]]] | None = None,
) -> list[tuple[str, float, float]]:
    """Each app's CPU per request (median) and its median paired difference to the first.

    Every repetition runs every app once, starting one app further each time, so that no
    app always runs first (or right after another) on a machine whose speed drifts.
    ``around`` names apps whose batch of requests runs inside a context (a patch, say).
    """
    around = around or {}
    host = [(b"host", b"bench"), (b"accept-encoding", b"gzip")]
    samples: dict[str, list[float]] = {name: [] for name, _ in apps}
    for repetition in range(repetitions):
        turn = repetition % len(apps)
        for name, app in apps[turn:] + apps[:turn]:
            cost = drive(app, requests, host, clock=time.process_time, settle=settle)
            with around[name]() if name in around else nullcontext():
                samples[name].append(asyncio.run(cost))
    bare = samples[apps[0][0]]
    return [
        (
            name,
            statistics.median(values),
            statistics.median(value - base for value, base in zip(values, bare, strict=True)),
        )
        for name, values in samples.items()
    ]


def _rows() -> list[tuple[str, FastAPI]]:
    """Bare FastAPI first, then each layer alone, then install() variants."""
    test = "test"
    default = {"default": "1000000/minute"}  # a limit that never trips
    return [
        ("bare FastAPI", make_app()),
        (
            "+ ProxyHeadersMiddleware (one trusted CIDR)",
            make_app([Middleware(ProxyHeadersMiddleware, trusted_proxies=["10.0.0.0/8"])]),
        ),
        ("+ RequestIDMiddleware (ID generated)", make_app([Middleware(RequestIDMiddleware)])),
        ("+ SecurityHeadersMiddleware", make_app([Middleware(SecurityHeadersMiddleware)])),
        ("+ AccessLogMiddleware (JSON line)", make_app([Middleware(AccessLogMiddleware)])),
        (
            "+ CORSPolicyMiddleware (no Origin)",
            make_app([Middleware(CORSPolicyMiddleware, allow_origins=["https://a.example"])]),
        ),
        ("+ BodyLimitMiddleware", make_app([Middleware(BodyLimitMiddleware)])),
        (
            "+ RateLimitMiddleware (memory)",
            make_app([Middleware(RateLimitMiddleware, default="1000000/minute")]),
        ),
        (
            "+ PrometheusMiddleware",
            make_app([Middleware(PrometheusMiddleware, registry=CollectorRegistry())]),
        ),
        (
            "+ CompressionMiddleware (body under 500 B)",
            make_app([Middleware(CompressionMiddleware)]),
        ),
        (
            "install(), access log, rate limit, metrics, compression off",
            make_app(
                settings=EnterpriseSettings(
                    environment=test,
                    logging={"access_log": False},
                    rate_limit={"enabled": False},
                    metrics={"enabled": False},
                    compression={"enabled": False},
                )
            ),
        ),
        (
            "install(), access log off",
            make_app(
                settings=EnterpriseSettings(
                    environment=test, logging={"access_log": False}, rate_limit=default
                )
            ),
        ),
        (
            "install(), full default stack",
            make_app(settings=EnterpriseSettings(environment=test, rate_limit=default)),
        ),
    ]


def main_paired(requests: int, repetitions: int) -> str:
    """Every row's CPU per request, paired with bare FastAPI and interleaved (markdown)."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handle = configure_logging(EnterpriseSettings(environment="production"), stream=devnull)
    load = os.getloadavg()[0]
    rows = paired(_rows(), requests, repetitions, settle=lambda: handle.flush(timeout=10))
    lost = handle.dropped + handle.write_errors
    handle.stop()
    devnull.close()
    bare = rows[0][1]
    lines = [
        f"# In-process benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{repetitions} repetitions of {requests} requests per app, the apps in turns; "
        f"process CPU time (the log writer thread included). Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; load average "
        f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.",
        "",
        f"| app | CPU us/request (median of {repetitions}) | minus bare (paired median) "
        "| ratio to bare |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {value:.1f} | {extra:+.1f} | {(bare + extra) / bare:.2f} |"
        for name, value, extra in rows
    ]
    if lost:
        lines.append(f"\n{lost} access lines were lost: the figures are void")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument(
        "--paired",
        action="store_true",
        help="accepted for compatibility: paired measurement is the default",
    )
    parser.add_argument("--micro", action="store_true", help="single operations only")
    parser.add_argument("--smoke", action="store_true", help="a few requests: the harness runs")
    parser.add_argument("--output", default=None, help="default: benchmarks/results/inprocess.md")
    args = parser.parse_args()
    if args.smoke:
        print(main_paired(200, 2))
        return
    if not args.micro:
        text = main_paired(args.requests, args.repetitions)
        output = Path(args.output) if args.output else RESULTS / "inprocess.md"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n", encoding="utf-8")
        print(text + "\n")
    pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}")
    n = 200_000
    gen = min(timeit.repeat(generate_request_id, number=n, repeat=5)) / n * 1e6
    val = (
        min(timeit.repeat(lambda: pattern.fullmatch("client-supplied-id-0001"), number=n, repeat=5))
        / n
        * 1e6
    )
    print(f"generate_request_id(): {gen:.2f} us; validate an incoming ID: {val:.2f} us")
    print_micro()


def print_micro() -> None:
    """Single operations, each timed alone (best of 5 repeats)."""
    import logging

    from fastapi_enterprise import ClientIPResolver, Redactor
    from fastapi_enterprise.log_config import _direct_handler

    def per_call(function: Callable[[], object], number: int = 20_000) -> float:
        return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6

    redactor = Redactor()
    event = {
        "event": "login",
        "user": {"name": "ann", "password": "hunter2", "roles": ["admin", "ops"]},
        "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
        "path": "/login?next=/home&token=abc",
        "note": "connecting to postgresql://app:pw@db/prod",
    }
    resolver = ClientIPResolver(["10.0.0.0/8"])
    hops = ", ".join(f"203.0.113.{n % 250}" for n in range(19)) + ", 10.0.0.9"
    scope = {
        "client": ("10.0.0.5", 1),
        "scheme": "http",
        "headers": [(b"x-forwarded-for", hops.encode())],
    }
    registry = CollectorRegistry()
    from prometheus_client import Histogram

    histogram = Histogram("bench_seconds", "bench", ["route"], registry=registry)
    child = histogram.labels("/items/{item_id}")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handle = configure_logging(EnterpriseSettings(environment="production"), stream=devnull)
    access = logging.getLogger("fastapi_enterprise.access")
    fields = {
        "method": "GET",
        "route": "/items/{item_id}",
        "path": "/items/1",
        "status": 200,
        "duration_ms": 1.2,
        "request_bytes": 0,
        "response_bytes": 210,
        "client_ip": "198.51.100.7",
        "user_agent": "wrk",
        "http_version": "1.1",
    }

    def access_line() -> None:
        access.handle(
            access.makeRecord(
                access.name, logging.INFO, __file__, 0, "http.request", (), None, extra=fields
            )
        )

    direct = _direct_handler(access)

    def access_line_direct() -> None:
        if direct is not None:
            direct.submit(access.name, logging.INFO, "http.request", dict(fields))

    rows = [
        ("redact a typical event (nested, 5 fields)", per_call(lambda: redactor.value(event))),
        ("one access-log line (record, format, enqueue)", per_call(access_line)),
        ("one access-log line, direct (render, enqueue)", per_call(access_line_direct)),
        ("one histogram observation with a label", per_call(lambda: child.observe(0.012))),
        ("client IP from a 20-hop X-Forwarded-For", per_call(lambda: resolver.resolve(scope))),
    ]
    handle.stop()
    devnull.close()
    print("\n| single operation | us |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
