"""Database benchmark: the cost of the session layer per request, on SQLite and PostgreSQL.

Run through nox (it installs everything, wrk included): ``nox -s bench_database`` or,
for the CI smoke mode (every app answers correctly on both backends and the report is
written; no timing assertion), ``nox -s bench_database -- --smoke``.

Method: ``benchmarks.server``'s. Each app of ``benchmarks.database_apps`` runs under
uvicorn (httptools, uvloop, one worker) pinned to CPU 0, wrk pinned to CPU 1 requests
``/row/500`` over keep-alive connections; each round runs every app on every backend
once, so drifts hit all alike. Server CPU per request is the uvicorn process's
user+system time (every thread, so aiosqlite's worker threads count) over the run divided
by the requests served; the database server's own CPU is not in it. The session layer's
cost is the median over rounds of the paired difference of CPU per request between two
apps measured in the same round.

The table is seeded before the run (SQLite: a file in a temporary directory;
PostgreSQL: ``BENCH_POSTGRES_URL``, default the ``test`` database at 127.0.0.1:5432) and
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.database_apps import COLUMNS, ROWS, TABLE, expected_row  # noqa: E402
from benchmarks.inprocess import drive  # noqa: E402
from benchmarks.inprocess import scope as inprocess_scope  # noqa: E402
from benchmarks.server import (  # noqa: E402
    Server,
    cpu_seconds,
    fetch,
    package_version,
    table_row,
    write_results,
    wrk,
)

BACKENDS = ("sqlite", "postgresql")
APPS = (
    "raw",
    "sqlalchemy_dependency",
    "ours",
    "ours_read_only",
    "ours_no_pre_ping",
    "base_http_middleware",
)
MEASURED_ID = 500
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "pydantic",
)
# (app, reference): the cost rows of the report, CPU(app) - CPU(reference) per request.
COSTS = (
    ("ours", "raw"),
    ("ours", "sqlalchemy_dependency"),
    ("ours_read_only", "raw"),
    ("ours_read_only", "sqlalchemy_dependency"),
    ("ours_no_pre_ping", "raw"),
    ("ours_no_pre_ping", "sqlalchemy_dependency"),
    ("sqlalchemy_dependency", "raw"),
    ("base_http_middleware", "raw"),
    ("base_http_middleware", "ours"),
)
_Results = dict[str, list[dict[str, float]]]


# --- the table ---------------------------------------------------------------------


def _values() -> list[tuple[Any, ...]]:
    return [tuple(expected_row(n)[column] for column in COLUMNS) for n in range(1, ROWS + 1)]


async def _seed_sqlite(path: str) -> None:
    import aiosqlite

    async with aiosqlite.connect(path) as connection:
        await connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await connection.execute(
            f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "price REAL NOT NULL, stock INTEGER NOT NULL, description TEXT NOT NULL)"
        )
        await connection.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", _values())
        await connection.commit()


async def _seed_postgresql(url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await connection.execute(
            f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, name text NOT NULL, "
            "price double precision NOT NULL, stock integer NOT NULL, "
            "description text NOT NULL)"
        )
        await connection.copy_records_to_table(TABLE, records=_values(), columns=COLUMNS)
        await connection.execute(f"ANALYZE {TABLE}")
    finally:
        await connection.close()


async def _drop_postgresql(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        await connection.close()


# --- the run -----------------------------------------------------------------------


def check_answers(url: str) -> None:
    """Every app must return the seeded rows, and 404 for a row that does not exist."""
    for item_id in (1, MEASURED_ID, ROWS):
        status, body = fetch(f"{url}/row/{item_id}")
        if status != 200 or json.loads(body) != expected_row(item_id):
            raise RuntimeError(f"{url}/row/{item_id} answered {status}: {body[:200]!r}")
    try:
        status, _ = fetch(f"{url}/row/{ROWS + 1}")
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 404:
        raise RuntimeError(f"{url}/row/{ROWS + 1} answered {status}, not 404")


def run(
    databases: dict[str, str], apps: list[str], rounds: int, duration: float, connections: int
) -> _Results:
    results: _Results = defaultdict(list)
    for round_number in range(1, rounds + 1):
        for backend, url in databases.items():
            for app in apps:
                server = Server(
                    app,
                    module="benchmarks.database_apps",
                    ready_path=f"/row/{MEASURED_ID}",
                    env={"BENCH_DATABASE_URL": url},
                )
                try:
                    server.wait()
                    check_answers(server.url)
                    before = cpu_seconds(server.process.pid)
                    measured = wrk(f"{server.url}/row/{MEASURED_ID}", duration, connections)
                    measured["cpu_us"] = (
                        (cpu_seconds(server.process.pid) - before) / measured["requests"] * 1e6
                    )
                    results[f"{backend}/{app}"].append(measured)
                finally:
                    server.stop()
                print(f"round {round_number}/{rounds}: {backend}/{app} done", file=sys.stderr)
    return results


# --- in process --------------------------------------------------------------------


async def _status(app: Any, path: str) -> int:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(inprocess_scope([], path), receive, send)
    return statuses[0]


async def _inprocess(
    url: str, apps: list[str], requests: int, repetitions: int
) -> dict[str, list[float]]:
    """Process CPU per request of each app, the apps in turns, ``repetitions`` times."""
    from benchmarks import database_apps

    os.environ["BENCH_DATABASE_URL"] = url
    built = {name: getattr(database_apps, name)() for name in apps}
    path = f"/row/{MEASURED_ID}"
    samples: dict[str, list[float]] = defaultdict(list)
    async with contextlib.AsyncExitStack() as stack:
        for name, app in built.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            status = await _status(app, path)
            if status != 200:
                raise RuntimeError(f"{name} answered {status} in process")
        for _ in range(repetitions):
            for name, app in built.items():
                samples[name].append(
                    await drive(app, requests, [], clock=time.process_time, path=path)
                )
    return samples


def inprocess_report(samples: dict[str, dict[str, list[float]]], args: Any) -> str:
    lines = [
        f"# Database session layer in process ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Process CPU time per request, one request at a time through the ASGI app (no "
        f"server), {args.repetitions} repetitions of {args.requests} requests, the apps in "
        f"turns; differences paired by repetition: median (min-max). Python "
        f"{platform.python_version()}, uvloop.",
        "",
    ]
    for backend, runs in samples.items():
        lines += [
            f"## {backend}",
            "",
            "| app | us/request | - raw | - sqlalchemy_dependency |",
            "|---|---:|---:|---:|",
        ]
        for app, values in runs.items():
            cells = [f"{statistics.median(values):.0f}"]
            for reference in ("raw", "sqlalchemy_dependency"):
                if reference not in runs or reference == app:
                    cells.append("")
                    continue
                pairs = [a - b for a, b in zip(values, runs[reference], strict=True)]
                cells.append(
                    f"{statistics.median(pairs):+.0f} ({min(pairs):+.0f} to {max(pairs):+.0f})"
                )
            lines.append(f"| {app} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main_inprocess(args: Any, databases: dict[str, str], apps: list[str]) -> str:
    import uvloop

    samples = {
        backend: uvloop.run(_inprocess(url, apps, args.requests, args.repetitions))
        for backend, url in databases.items()
    }
    return inprocess_report(samples, args)


# --- the report --------------------------------------------------------------------


def costs(results: _Results, backend: str, apps: list[str]) -> list[dict[str, Any]]:
    """CPU(app) - CPU(reference) per request: median and min-max of the per-round pairs."""
    rows = []
    for app, reference in COSTS:
        if app not in apps or reference not in apps:
            continue
        pairs = zip(results[f"{backend}/{app}"], results[f"{backend}/{reference}"], strict=True)
        differences = [mine["cpu_us"] - theirs["cpu_us"] for mine, theirs in pairs]
        rows.append(
            {
                "app": app,
                "reference": reference,
                "median_us": statistics.median(differences),
                "min_us": min(differences),
                "max_us": max(differences),
            }
        )
    return rows


def report(results: _Results, backends: list[str], apps: list[str], args: Any) -> str:
    lines = [
        f"# Database benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s per app and backend, "
        f"{args.connections} connections, `GET /row/{MEASURED_ID}` (one row of {ROWS}), "
        "pool of 10 connections in every app, wrk on CPU 1, uvicorn (httptools, uvloop, "
        f"1 worker) on CPU 0. Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs.",
        "",
        "Versions: " + ", ".join(f"{name} {package_version(name)}" for name in PACKAGES),
        "",
    ]
    for backend in backends:
        reference = statistics.median(r["rps"] for r in results[f"{backend}/raw"])
        lines += [
            f"## {backend}",
            "",
            "| app | req/s median (min-max) | ratio to raw | p50 ms | p99 ms | server CPU us/req |",
            "|---|---:|---:|---:|---:|---:|",
            *(table_row(app, results[f"{backend}/{app}"], reference) for app in apps),
            "",
            "| server CPU per request | us, median of paired rounds (min-max) |",
            "|---|---:|",
            *(
                f"| {row['app']} - {row['reference']} | {row['median_us']:+.0f} "
                f"({row['min_us']:+.0f} to {row['max_us']:+.0f}) |"
                for row in costs(results, backend, apps)
            ),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s: correctness only")
    parser.add_argument("--output", default=None, help="the markdown report; JSON beside it")
    parser.add_argument(
        "--inprocess", action="store_true", help="process CPU per request, no server, paired"
    )
    parser.add_argument("--requests", type=int, default=500, help="per repetition (--inprocess)")
    parser.add_argument("--repetitions", type=int, default=15, help="(--inprocess)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.connections = 1, 1.0, 4
    if shutil.which("wrk") is None and not args.inprocess:
        raise SystemExit("wrk is not installed (Debian package wrk); `nox -s bench` installs it")
    apps = [name for name in args.apps.split(",") if name]
    if "raw" not in apps:
        apps.insert(0, "raw")
    backends = [name for name in args.backends.split(",") if name]
    output = (
        Path(args.output)
        if args.output
        else ROOT / "benchmarks/results" / ("database-smoke.md" if args.smoke else "database.md")
    )

    with tempfile.TemporaryDirectory(prefix="fe-bench-db-") as directory:
        databases = {}
        if "sqlite" in backends:
            databases["sqlite"] = f"sqlite:///{directory}/bench.db"
            asyncio.run(_seed_sqlite(f"{directory}/bench.db"))
        if "postgresql" in backends:
            databases["postgresql"] = args.postgres_url
            asyncio.run(_seed_postgresql(args.postgres_url))
        try:
            if args.inprocess:
                text = main_inprocess(args, databases, apps)
            else:
                results = run(databases, apps, args.rounds, args.duration, args.connections)
        finally:
            if "postgresql" in databases:
                asyncio.run(_drop_postgresql(args.postgres_url))

    if args.inprocess:
        output = (
            Path(args.output) if args.output else ROOT / "benchmarks/results/database-inprocess.md"
        )
        output.write_text(text + "\n", encoding="utf-8")
        print(text)
        return

    text = report(results, list(databases), apps, args)
    summary = {
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "path": f"/row/{MEASURED_ID}",
        },
        "runs": results,
        "costs_us": {backend: costs(results, backend, apps) for backend in databases},
    }
    write_results(output, text, PACKAGES, summary)
    print(text)


if __name__ == "__main__":
    main()
