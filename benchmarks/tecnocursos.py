"""TecnoCursos benchmark: the reference app under uvicorn, driven by a scripted workload.

Run through nox (it installs the library, the example project and wrk):
``nox -s bench_tecnocursos`` or, for the CI smoke mode (every request kind answers
correctly on both configurations and the report is written; no timing assertion),
``nox -s bench_tecnocursos -- --smoke``.

Method: ``benchmarks.server``'s. ``uvicorn --factory tecnocursos.core.app:create_app``
(httptools, uvloop, one worker) pinned to CPU 0, wrk pinned to CPU 1 playing
``benchmarks/tecnocursos.lua``: a deterministic plan (``benchmarks.tecnocursos_workload``)
of logins, reads with a Zipf-skewed popularity over projects and writes, each carrying
a token fetched before the run. Two configurations, interleaved round by round:

- ``sqlite``: a SQLite file in a temporary directory, the in-memory cache, memory
  rate-limit storage;
- ``postgresql``: a database of its own on ``BENCH_POSTGRES_URL`` (created, migrated and
  dropped by the run), the cache and the rate-limit storage on Redis (``BENCH_REDIS_URL``,
  keys under a prefix of the run's own, deleted at the end).

The app runs as in production (``TC_ENVIRONMENT=production``: JSON logs, HSTS, the
deploy check) with three changes, all in the report's header: Argon2 at OWASP's minimum
(the cheapest the deploy check accepts), rate limits raised out of reach but still
checked on every request (the load comes from one IP), access tokens valid for an hour.
The access line is on and written to a file. Latency percentiles come from wrk's own
histogram (p95 through the script's ``done()``); the cache hit rate from the app's
``cache_requests_total`` counters read from ``/metrics`` before and after each run; the
time in the app by route from the access lines. ``benchmarks.tecnocursos_report`` writes
the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import urllib.error
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.server import (  # noqa: E402
    SERVER_PACKAGES,
    Server,
    cpu_seconds,
    fetch,
    write_results,
    wrk,
)
from benchmarks.tecnocursos_report import Results, Routes, hit_rates, percentile, report  # noqa: E402
from benchmarks.tecnocursos_workload import (  # noqa: E402
    EXPECTED_STATUS,
    FORM,
    FULL,
    MARK,
    MIX,
    PASSWORD,
    SMOKE,
    ZIPF_EXPONENT,
    Call,
    Dataset,
    make_plan,
    seed,
    write_plan,
)
from tecnocursos.core.settings import RATE_LIMIT_ZONES, TecnoCursosSettings  # noqa: E402

CONFIGURATIONS = ("sqlite", "postgresql")
SCRIPT = ROOT / "benchmarks" / "tecnocursos.lua"
ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024}
"""OWASP's minimum Argon2id (2 iterations, 19 MiB): the cheapest production accepts."""
RAISED_LIMIT = "1000000/second"
"""Every rate-limit budget of the run: checked on every request, never reached."""
PACKAGES = (
    *SERVER_PACKAGES,
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "redis",
    "limits",
    "structlog",
    "prometheus-client",
)
_CACHE_COUNTER = re.compile(r"^cache_requests_total\{([^}]*)\} (\S+)$", re.MULTILINE)
_ACCESS_LOGGER = b'"fastapi_enterprise.access"'


# --- the configurations ------------------------------------------------------------


def server_env(
    configuration: str, database_url: str, directory: Path, redis_url: str, prefix: str
) -> dict[str, str]:
    """The ``TC_*`` variables of the app in ``configuration``."""
    env = {
        "TC_ENVIRONMENT": "production",
        "TC_SECURITY__SECRET_KEY": secrets.token_urlsafe(48),
        "TC_DATABASE__URL": database_url,
        "TC_AUTH__ARGON2_TIME_COST": str(ARGON2["time_cost"]),
        "TC_AUTH__ARGON2_MEMORY_COST": str(ARGON2["memory_cost"]),
        "TC_AUTH__ACCESS_TOKEN_TTL": "3600",
        "TC_STORAGE__LOCAL_DIR": str(directory / "media"),
        "TC_RATE_LIMIT__DEFAULT": RAISED_LIMIT,
        "TC_RATE_LIMIT__ROUTES": json.dumps(dict.fromkeys(RATE_LIMIT_ZONES, RAISED_LIMIT)),
        "TC_LOGGING__ACCESS_LOG": "true",
        "TC_LOGGING__STDOUT": "false",
        # Production refuses the embedded video worker; no video is requested here, so the
        # broker never connects (its namespace is the run's own all the same).
        "TC_VIDEO__QUEUE": "redis",
        "TC_VIDEO__NAMESPACE": f"{prefix}-video",
    }
    if configuration == "postgresql":
        env |= {
            "TC_CACHE__BACKEND": "redis",
            "TC_CACHE__PREFIX": f"{prefix}-cache",
            "TC_REDIS__URL": redis_url,
            "TC_RATE_LIMIT__STORAGE_URL": redis_url,
            "TC_RATE_LIMIT__STORAGE_PREFIX": f"{prefix}-rl",
        }
    return env


def seed_settings(env: dict[str, str]) -> TecnoCursosSettings:
    """The app's settings for ``env``, to migrate and seed with."""
    return TecnoCursosSettings(
        environment=env["TC_ENVIRONMENT"],
        database={"url": env["TC_DATABASE__URL"]},
        auth={
            "argon2_time_cost": ARGON2["time_cost"],
            "argon2_memory_cost": ARGON2["memory_cost"],
        },
    )


async def _create_database(server_url: str, name: str, *, drop: bool = False) -> None:
    from sqlalchemy import make_url, text
    from sqlalchemy.ext.asyncio import create_async_engine

    # AUTOCOMMIT: PostgreSQL refuses CREATE/DROP DATABASE inside a transaction.
    engine = create_async_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    statement = (
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" if drop else f"CREATE DATABASE {name}"
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database on the server of ``server_url``, dropped at the end."""
    from sqlalchemy import make_url

    name = f"tc_bench_{secrets.token_hex(6)}"
    asyncio.run(_create_database(server_url, name))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_create_database(server_url, name, drop=True))


@contextlib.contextmanager
def redis_keys(url: str, prefix: str) -> Iterator[None]:
    """Delete the keys holding ``prefix`` from the Redis of ``url`` at the end."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
        yield
    finally:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


# --- talking to the app ------------------------------------------------------------


def send(url: str, call: Call, tokens: list[str]) -> tuple[int, Any]:
    """Send ``call`` (its mark replaced) and return the status and the JSON body."""
    headers = {} if call.content_type is None else {"Content-Type": call.content_type}
    if call.user is not None:
        headers["Authorization"] = f"Bearer {tokens[call.user]}"
    data = call.body.replace(MARK, "check").encode() if call.body else None
    try:
        status, body = fetch(f"{url}{call.path}", method=call.method, data=data, headers=headers)
    except urllib.error.HTTPError as error:
        return error.code, None
    return status, json.loads(body) if body else None


def log_in(url: str, dataset: Dataset) -> list[str]:
    """An access token of every seeded user, through ``POST /auth/token``."""
    tokens = []
    for email in dataset.emails:
        body = urlencode({"username": email, "password": PASSWORD})
        status, answer = send(url, Call("login", "POST", "/auth/token", None, FORM, body), [])
        if status != 200:
            raise RuntimeError(f"{url}/auth/token answered {status} for a seeded user")
        tokens.append(answer["access_token"])
    return tokens


def check_answers(url: str, dataset: Dataset, plan: list[Call], tokens: list[str]) -> None:
    """The first call of every kind in the plan answers as it should, with the right rows.

    Reads go first (writes add scenes); a private project is 404 to anyone but its owner.
    """
    first = {call.kind: call for call in reversed(plan)}
    missing = set(MIX) - set(first)
    if missing:
        raise RuntimeError(f"the plan has no {', '.join(sorted(missing))} request")
    for kind in MIX:
        call = first[kind]
        status, body = send(url, call, tokens)
        project = call.project
        if status != EXPECTED_STATUS.get(kind, 200) or body is None:
            raise RuntimeError(f"{call.method} {call.path} answered {status}")
        if kind == "login":
            right = "access_token" in body
        elif kind == "list_projects":
            page_one = call.path.endswith("page=1")
            right = body["total"] == dataset.visible_projects(call.user or 0) and (
                not page_one or len(body["items"]) == min(body["total"], 20)
            )
        elif kind == "list_scenes":
            assert project is not None
            right = body["total"] >= len(project.scene_ids)
        elif kind == "post_scene":
            assert project is not None
            right = body["project_id"] == project.id
        elif kind == "patch_scene":
            right = body["title"] == "Edited check" and call.path.endswith(f"/{body['id']}")
        else:  # read_project, patch_project
            assert project is not None
            right = body["id"] == project.id
        if not right:
            raise RuntimeError(f"{call.method} {call.path} answered {status}: {str(body)[:200]}")
    private = next((p for p in dataset.projects if not p.public), None)
    stranger = len(dataset.emails) - 1  # the last user is a student: owns nothing
    if private is not None:
        call = Call("read_project", "GET", f"/projects/{private.id}", stranger)
        status, _ = send(url, call, tokens)
        if status != 404:
            raise RuntimeError(f"a private project answered {status} to a student, not 404")


def cache_counters(url: str) -> dict[tuple[str, str], float]:
    """``cache_requests_total`` by (cache, result), from the app's ``/metrics``."""
    _, body = fetch(f"{url}/metrics")
    counters = {}
    for labels, value in _CACHE_COUNTER.findall(body.decode()):
        names = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counters[(names["cache"], names["result"])] = float(value)
    return counters


def access_entries(log: Path) -> list[dict[str, Any]]:
    """The access lines of ``log`` and its rotated files, parsed."""
    entries = []
    for path in log.parent.glob(f"{log.name}*"):
        with path.open("rb") as lines:
            entries += [json.loads(line) for line in lines if _ACCESS_LOGGER in line]
    return entries


def route_durations(
    entries: list[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, list[float]]:
    """Milliseconds in the app by ``METHOD route`` of the requests begun in [start, end].

    A line is stamped when its response is done: a request the previous run left in
    flight ends inside the window but began before it, and is left out.
    """
    durations: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        finished = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        if start <= finished - timedelta(milliseconds=entry["duration_ms"]) <= end:
            durations[f"{entry['method']} {entry['route']}"].append(entry["duration_ms"])
    return durations


# --- the run -----------------------------------------------------------------------


def play(url: str, plan: Path, duration: float, connections: int, salt: str) -> dict[str, float]:
    """wrk playing ``plan`` with ``connections`` for ``duration`` seconds.

    A server error fails the run; client errors (a 409 from a write race) are counted.
    """
    return wrk(
        url, duration, connections, script=SCRIPT, script_args=[str(plan), salt], fail_status=500
    )


def run_once(
    env: dict[str, str],
    log: Path,
    dataset: Dataset,
    plan: list[Call],
    plan_file: Path,
    tokens: list[str],
    args: argparse.Namespace,
    salt: str,
) -> tuple[dict[str, float], list[str], dict[str, list[float]]]:
    """One server life: start, log in (first time), check, warm up, measure, stop.

    Returns the measurements, the tokens and the time in the app by route (from the
    access lines) of the light run, or of the measured one when there is no light run.

    The measured run saturates the server (its latencies include the queueing); the light
    run after it, with few connections, gives the latencies of a server with room left.
    """
    server = Server(
        "create_app",
        module="tecnocursos.core.app",
        ready_path="/health/live",
        env={**env, "TC_LOGGING__FILE_PATH": str(log)},
    )
    try:
        server.wait()
        if not tokens:
            tokens = log_in(server.url, dataset)
            write_plan(plan_file, tokens, plan)
        check_answers(server.url, dataset, plan, tokens)
        if args.warmup > 0:
            play(server.url, plan_file, args.warmup, args.connections, f"w{salt}")
        before, cpu_before = cache_counters(server.url), cpu_seconds(server.process.pid)
        start = datetime.now(timezone.utc)
        measured = play(server.url, plan_file, args.duration, args.connections, salt)
        end = datetime.now(timezone.utc)
        measured["cpu_us"] = (
            (cpu_seconds(server.process.pid) - cpu_before) / measured["requests"] * 1e6
        )
        after = cache_counters(server.url)
        served = measured["requests"]
        if args.light_duration > 0:
            time.sleep(1)  # the requests left in flight end first
            start = datetime.now(timezone.utc)
            light = play(
                server.url, plan_file, args.light_duration, args.light_connections, f"l{salt}"
            )
            end = datetime.now(timezone.utc)
            measured |= {f"light_{name}": value for name, value in light.items()}
            served += light["requests"]
    finally:
        stderr = server.stop()
    for (cache, result), value in after.items():
        measured[f"cache_{cache}_{result}"] = value - before.get((cache, result), 0.0)
    entries = access_entries(log)
    measured["access_lines"] = len(entries)
    if len(entries) < served:
        raise RuntimeError(f"fewer access lines than requests; server stderr: {stderr[-2000:]}")
    return measured, tokens, route_durations(entries, start, end)


def run(
    envs: dict[str, dict[str, str]],
    datasets: dict[str, Dataset],
    directory: Path,
    args: argparse.Namespace,
) -> tuple[Results, Routes]:
    """Every configuration once per round; the measurements and durations by route."""
    results: Results = defaultdict(list)
    routes: Routes = defaultdict(lambda: defaultdict(list))
    plans = {name: make_plan(datasets[name], args.plan, args.seed) for name in envs}
    tokens: dict[str, list[str]] = {name: [] for name in envs}
    for round_number in range(1, args.rounds + 1):
        for name, env in envs.items():
            log = directory / f"{name}-{round_number}.log"
            measured, tokens[name], durations = run_once(
                env,
                log,
                datasets[name],
                plans[name],
                directory / f"{name}.plan",
                tokens[name],
                args,
                str(round_number),
            )
            results[name].append(measured)
            for route, values in durations.items():
                routes[name][route] += values
            for path in directory.glob(f"{log.name}*"):
                path.unlink()
            print(f"round {round_number}/{args.rounds}: {name} done", file=sys.stderr)
    return results, routes


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the TecnoCursos benchmarks share: servers, smoke mode, report path."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s: correctness only")
    parser.add_argument("--output", default=None, help="the markdown report; JSON beside it")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--light-connections", type=int, default=1)
    parser.add_argument("--light-duration", type=float, default=8.0, help="0: no light run")
    parser.add_argument("--plan", type=int, default=50_000, help="requests in the plan")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS))
    add_service_arguments(parser)
    args = parser.parse_args()
    shape = FULL
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.connections = 1, 1.0, 0.0, 4
        args.light_duration = 0.0
        args.plan, shape = 2_000, SMOKE
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk); nox installs it")
    configurations = [name for name in args.configurations.split(",") if name]
    output = (
        Path(args.output)
        if args.output
        else ROOT
        / "benchmarks/results"
        / ("tecnocursos-smoke.md" if args.smoke else "tecnocursos.md")
    )
    prefix = f"tc-bench-{secrets.token_hex(4)}"

    with tempfile.TemporaryDirectory(prefix="fe-bench-tc-") as name:
        directory = Path(name)
        envs, datasets = {}, {}
        with contextlib.ExitStack() as stack:
            if "sqlite" in configurations:
                envs["sqlite"] = server_env(
                    "sqlite", f"sqlite:///{directory}/tc.db", directory, args.redis_url, prefix
                )
            if "postgresql" in configurations:
                url = stack.enter_context(postgres_database(args.postgres_url))
                stack.enter_context(redis_keys(args.redis_url, prefix))
                envs["postgresql"] = server_env(
                    "postgresql", url, directory, args.redis_url, prefix
                )
            for configuration, env in envs.items():
                datasets[configuration] = seed(seed_settings(env), shape, args.seed)
                print(f"{configuration}: seeded", file=sys.stderr)
            results, routes = run(envs, datasets, directory, args)

    app = (
        "`TC_ENVIRONMENT=production`, access line on (JSON, to a file), Argon2id "
        f"{ARGON2['time_cost']} iterations / {ARGON2['memory_cost'] // 1024} MiB (OWASP's "
        f"minimum), rate limits raised to {RAISED_LIMIT} on every zone (checked on every "
        "request, never reached: the load comes from one IP), access tokens valid 1 h."
    )
    text = report(results, routes, shape, args, app=app, packages=PACKAGES)
    summary = {
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "plan": args.plan,
            "seed": args.seed,
            "mix_percent": MIX,
            "zipf_exponent": ZIPF_EXPONENT,
            "argon2": ARGON2,
            "rate_limit": RAISED_LIMIT,
        },
        "runs": results,
        "cache_hit_rates": {name: hit_rates(runs) for name, runs in results.items()},
        "route_ms": {
            name: {
                route: {f"p{share}": percentile(values, share) for share in (50, 95, 99)}
                | {"count": len(values)}
                for route, values in durations.items()
            }
            for name, durations in routes.items()
        },
        "load_average": os.getloadavg(),
    }
    write_results(output, text, PACKAGES, summary)
    print(text)


if __name__ == "__main__":
    main()
