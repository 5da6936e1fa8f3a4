"""Database observability on real engines.

Pool gauges, checkout wait, query durations, open sessions, the slow-query log, and the
gauges summed over worker processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.database._observe import STATEMENT_TYPES, DatabaseMetrics, SlowQueryLog

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from tests.conftest import LogCapture

SECRET = "hunter2-SECRET"
POOL = {"pool": "default"}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An async URL of each backend: a SQLite file, PostgreSQL (asyncpg), MariaDB (aiomysql)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        return url.replace("mysql://", "mysql+aiomysql://", 1)
    return f"sqlite+aiosqlite:///{tmp_path / 'observe.db'}"


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry (the metrics tests need the metrics extra)."""
    prometheus_client = pytest.importorskip("prometheus_client")
    fresh: CollectorRegistry = prometheus_client.CollectorRegistry()
    return fresh


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {**POOL, **labels})
    assert value is not None, f"no sample {name} {labels}"
    return value


@contextlib.asynccontextmanager
async def observed_engine(
    metrics: DatabaseMetrics, url: str, **options: Any
) -> AsyncIterator[AsyncEngine]:
    """An engine made with ``metrics.engine_options()``, attached, detached and disposed."""
    engine = create_async_engine(url, **options, **metrics.engine_options(url))
    metrics.attach(engine)
    try:
        yield engine
    finally:
        metrics.detach()
        await engine.dispose()


async def hold(engine: AsyncEngine, count: int) -> list[AsyncConnection]:
    held = []
    for _ in range(count):
        connection = await engine.connect()
        await connection.execute(text("SELECT 1"))  # really checked out and usable
        held.append(connection)
    return held


async def release(connections: list[AsyncConnection]) -> None:
    for connection in connections:
        await connection.close()


@pytest.mark.asyncio
async def test_pool_gauges_follow_checkouts(database_url: str, registry: CollectorRegistry) -> None:
    """Three connections held on a pool of five: 3 checked out, no overflow; released: 0."""
    metrics = DatabaseMetrics(registry=registry)
    async with observed_engine(metrics, database_url, pool_size=5, max_overflow=2) as engine:
        held = await hold(engine, 3)
        assert sample(registry, "db_pool_size") == 5
        assert sample(registry, "db_pool_checked_out") == 3
        assert sample(registry, "db_pool_overflow") == 0  # not SQLAlchemy's -2 while filling
        await release(held)
        assert sample(registry, "db_pool_checked_out") == 0
    # Detached (and disposed): the gauges no longer describe a pool.
    assert sample(registry, "db_pool_size") == 0
    assert sample(registry, "db_pool_checked_out") == 0


@pytest.mark.asyncio
async def test_overflow_counts_connections_beyond_the_pool_size(
    database_url: str, registry: CollectorRegistry
) -> None:
    metrics = DatabaseMetrics(registry=registry)
    async with observed_engine(metrics, database_url, pool_size=2, max_overflow=3) as engine:
        held = await hold(engine, 5)
        assert sample(registry, "db_pool_checked_out") == 5
        assert sample(registry, "db_pool_overflow") == 3
        await release(held)
        assert sample(registry, "db_pool_checked_out") == 0
        # Overflow connections are closed on return: the pool is back to its size.
        assert sample(registry, "db_pool_overflow") == 0


@pytest.mark.asyncio
async def test_a_checkout_that_times_out_is_observed_with_its_whole_wait(
    database_url: str, registry: CollectorRegistry
) -> None:
    """pool_size=1, no overflow: the second checkout waits the pool timeout, then fails."""
    metrics = DatabaseMetrics(registry=registry)
    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.5}
    async with observed_engine(metrics, database_url, **options) as engine:
        held = await hold(engine, 1)
        assert sample(registry, "db_pool_checkout_wait_seconds_count") == 1
        assert sample(registry, "db_pool_timeouts_total") == 0
        with pytest.raises(exc.TimeoutError):
            await engine.connect()
        assert sample(registry, "db_pool_checkout_wait_seconds_count") == 2
        assert sample(registry, "db_pool_timeouts_total") == 1
        # The failed checkout waited the whole timeout: it lies above the 0.25 s bucket.
        total = sample(registry, "db_pool_checkout_wait_seconds_bucket", le="+Inf")
        quick = sample(registry, "db_pool_checkout_wait_seconds_bucket", le="0.25")
        assert total - quick >= 1
        await release(held)


def query_counts(registry: CollectorRegistry) -> dict[str, float]:
    return {
        kind: sample(registry, "db_query_duration_seconds_count", statement=kind)
        for kind in STATEMENT_TYPES
    }


@pytest.mark.asyncio
async def test_query_duration_is_counted_by_statement_type(
    database_url: str, registry: CollectorRegistry
) -> None:
    metrics = DatabaseMetrics(registry=registry)
    table = f"observe_{uuid.uuid4().hex[:12]}"
    # The table name is ours (a random suffix): no injection here.
    statements = [
        (f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))", "other"),
        (f"INSERT INTO {table} (id, name) VALUES (1, 'a')", "insert"),  # noqa: S608
        (f"  select name FROM {table} WHERE id = 1", "select"),  # noqa: S608
        (f"/* a comment */ SELECT name FROM {table}", "select"),  # noqa: S608
        (f"WITH t AS (SELECT id FROM {table}) SELECT id FROM t", "select"),  # noqa: S608
        (f"UPDATE {table} SET name = 'b' WHERE id = 1", "update"),  # noqa: S608
        (f"DELETE FROM {table} WHERE id = 1", "delete"),  # noqa: S608
        (f"DROP TABLE {table}", "other"),
    ]
    async with observed_engine(metrics, database_url) as engine, engine.begin() as connection:
        for statement, kind in statements:
            before = query_counts(registry)
            await connection.execute(text(statement))
            after = query_counts(registry)
            increased = {name: after[name] - before[name] for name in STATEMENT_TYPES}
            assert increased == {name: float(name == kind) for name in STATEMENT_TYPES}, statement
    assert sample(registry, "db_query_duration_seconds_sum", statement="select") > 0


def test_sessions_open_follows_opened_and_closed(registry: CollectorRegistry) -> None:
    metrics = DatabaseMetrics(name="reports", registry=registry)
    labels = {"pool": "reports"}
    assert registry.get_sample_value("db_sessions_open", labels) == 0
    metrics.session_opened()
    metrics.session_opened()
    assert registry.get_sample_value("db_sessions_open", labels) == 2
    metrics.session_closed()
    assert registry.get_sample_value("db_sessions_open", labels) == 1
    metrics.session_closed()
    assert registry.get_sample_value("db_sessions_open", labels) == 0


@pytest.mark.asyncio
async def test_in_memory_sqlite_keeps_its_single_connection_pool(
    registry: CollectorRegistry,
) -> None:
    """An in-memory database lives in one connection: the dialect's StaticPool stays."""
    metrics = DatabaseMetrics(registry=registry)
    async with observed_engine(metrics, "sqlite+aiosqlite://") as engine:
        assert isinstance(engine.sync_engine.pool, StaticPool)
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as connection:  # the same database: one connection
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
        assert sample(registry, "db_query_duration_seconds_count", statement="insert") == 1
        assert sample(registry, "db_pool_checkout_wait_seconds_count") >= 2


# A statement that takes 200 ms on each backend, with a secret as a bound parameter and as
# a literal (and, on MariaDB, as a double-quoted string, which MySQL reads as a literal).
SLOW = {
    "sqlite": "SELECT sleep_ms(200), :secret AS p, 'hunter2-SECRET' AS l",
    "postgresql": "SELECT pg_sleep(0.2), :secret AS p, 'hunter2-SECRET' AS l",
    "mysql": "SELECT SLEEP(0.2), :secret AS p, 'hunter2-SECRET' AS l, \"hunter2-SECRET\" AS d",
}


def sqlite_sleep(engine: AsyncEngine) -> None:
    """Give SQLite connections a ``sleep_ms(ms)`` function."""

    def sleep_ms(milliseconds: int) -> int:
        time.sleep(milliseconds / 1000)
        return milliseconds

    def add_function(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.create_function("sleep_ms", 1, sleep_ms)

    event.listen(engine.sync_engine, "connect", add_function)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    if engine.dialect.name == "sqlite":
        sqlite_sleep(engine)
    yield engine
    await engine.dispose()


def slow_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


@pytest.mark.asyncio
async def test_a_slow_query_is_logged_without_its_values(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    slow = SlowQueryLog(50)  # fastapi_enterprise.database
    patient = SlowQueryLog(60_000, logger=logging.getLogger("tests.patient"))
    slow.attach(engine)
    patient.attach(engine)
    caplog.set_level(logging.WARNING)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # warm: connect queries are fast
            caplog.clear()
            result = await connection.execute(text(SLOW[engine.dialect.name]), {"secret": SECRET})
            assert SECRET in result.one()  # the values were really there
    finally:
        slow.detach()
        patient.detach()
    [record] = slow_lines(caplog, "fastapi_enterprise.database")
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "Slow database query"
    fields: dict[str, Any] = record.__dict__
    assert fields["duration_ms"] >= 50
    assert fields["statement_type"] == "select"
    assert fields["pool"] == "default"
    assert "request_id" not in fields  # no request in flight
    statement: str = fields["statement"]
    assert statement.startswith("SELECT ")
    assert "hunter2" not in repr(fields)
    assert "200" not in statement  # numbers are literals too
    assert "0.2" not in statement
    assert "AS l" in statement  # the SQL is still readable
    assert not slow_lines(caplog, "tests.patient")  # below its threshold: no line


def sqlite_fail_after(engine: AsyncEngine) -> None:
    """Give SQLite connections ``fail_after_ms(ms)``: it works that long, then raises."""

    def fail_after_ms(milliseconds: int) -> int:
        time.sleep(milliseconds / 1000)
        raise RuntimeError("gave up")

    def add_function(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.create_function("fail_after_ms", 1, fail_after_ms)

    event.listen(engine.sync_engine, "connect", add_function)


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.asyncio
async def test_a_slow_statement_that_fails_is_logged_and_timed(
    database_url: str, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement timeout is a slow query too: logged with its error, and timed."""
    metrics = DatabaseMetrics(registry=registry)
    slow = SlowQueryLog(50)
    caplog.set_level(logging.WARNING)
    async with observed_engine(metrics, database_url) as engine:
        slow.attach(engine)
        if engine.dialect.name == "sqlite":
            sqlite_fail_after(engine)
        try:
            async with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    failing = "SELECT fail_after_ms(200), :secret"
                else:
                    await connection.execute(text("SET statement_timeout = 100"))
                    failing = "SELECT pg_sleep(2), :secret"
                before = sample(registry, "db_query_duration_seconds_count", statement="select")
                caplog.clear()
                with pytest.raises(exc.DBAPIError):
                    await connection.execute(text(failing), {"secret": SECRET})
        finally:
            slow.detach()
        after = sample(registry, "db_query_duration_seconds_count", statement="select")
        assert after == before + 1
    [record] = slow_lines(caplog, "fastapi_enterprise.database")
    fields: dict[str, Any] = record.__dict__
    assert fields["duration_ms"] >= 50
    assert fields["error"]  # the driver's exception class, by name
    assert fields["statement"].startswith("SELECT ")
    assert "hunter2" not in repr(fields)


@pytest.mark.asyncio
async def test_no_line_below_the_threshold_and_none_after_detach(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    slow = SlowQueryLog(50)
    slow.attach(engine)
    caplog.set_level(logging.WARNING)
    slow_statement = text(SLOW[engine.dialect.name])
    async with engine.connect() as connection:
        await connection.execute(slow_statement, {"secret": SECRET})
        assert len(slow_lines(caplog, "fastapi_enterprise.database")) == 1
        slow.detach()
        slow.detach()  # harmless twice
        await connection.execute(slow_statement, {"secret": SECRET})
    assert len(slow_lines(caplog, "fastapi_enterprise.database")) == 1


@pytest.mark.asyncio
async def test_detach_removes_the_metrics_listeners(
    database_url: str, registry: CollectorRegistry
) -> None:
    metrics = DatabaseMetrics(registry=registry)
    engine = create_async_engine(database_url, **metrics.engine_options(database_url))
    metrics.attach(engine)
    with pytest.raises(RuntimeError, match="already attached"):
        metrics.attach(engine)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        selects = sample(registry, "db_query_duration_seconds_count", statement="select")
        waits = sample(registry, "db_pool_checkout_wait_seconds_count")
        assert selects >= 1
        metrics.detach()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        assert sample(registry, "db_query_duration_seconds_count", statement="select") == selects
        assert sample(registry, "db_pool_checkout_wait_seconds_count") == waits
        assert sample(registry, "db_pool_size") == 0
    finally:
        metrics.detach()
        await engine.dispose()


@pytest.mark.parametrize(
    ("sql", "masked"),
    [
        (
            "SELECT 'hunter2-SECRET', 'it''s hunter2', X'68756e74657232' -- hunter2\n",
            "SELECT ?, ?, ?",
        ),
        ("SELECT /* hunter2 */ 42, -1.5e3, 0x1F, .5", "SELECT ?, -?, ?, ?"),
        (
            'SELECT "hunter2" FROM (SELECT 1 AS "hunter2")',
            'SELECT "hunter2" FROM (SELECT ? AS "hunter2")',
        ),
        ("SELECT  t1.a\n\n\tFROM (SELECT 3 AS a) AS t1", "SELECT t1.a FROM (SELECT ? AS a) AS t1"),
        ("SELECT :password", "SELECT ?"),
    ],
)
@pytest.mark.asyncio
async def test_statement_text_is_masked(
    sql: str, masked: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Literals become ``?``, comments go, quoted names stay (on SQLite), space collapses."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'mask.db'}")
    every = SlowQueryLog(0)
    every.attach(engine)
    caplog.set_level(logging.WARNING)
    try:
        async with engine.connect() as connection:
            caplog.clear()
            await connection.execute(text(sql), {"password": SECRET} if ":" in sql else {})
    finally:
        every.detach()
        await engine.dispose()
    [record] = slow_lines(caplog, "fastapi_enterprise.database")
    assert record.__dict__["statement"] == masked


def test_a_negative_threshold_fails_at_once() -> None:
    with pytest.raises(ValueError, match="threshold_ms"):
        SlowQueryLog(-1)


def test_the_slow_query_line_carries_the_request_id(
    capture_logs: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through configure_logging(), as JSON: the request's ID, masked statement, fields.

    The record carries ``request_id`` itself too, for logging set up without
    configure_logging() (which adds it to every line of a request).
    """
    settings = EnterpriseSettings(environment="test", logging={"access_log": False})
    logs: LogCapture = capture_logs(settings)
    url = f"sqlite+aiosqlite:///{tmp_path / 'request.db'}"
    app = FastAPI()

    @app.get("/report")
    async def report() -> dict[str, bool]:
        engine = create_async_engine(url)
        every = SlowQueryLog(0)
        every.attach(engine)
        try:
            async with engine.connect() as connection:
                found = await connection.execute(
                    text("SELECT 'hunter2-SECRET' = :secret"), {"secret": SECRET}
                )
                return {"found": bool(found.scalar_one())}
        finally:
            every.detach()
            await engine.dispose()

    install(app, settings)
    response = TestClient(app).get("/report", headers={"X-Request-ID": "req-0000-0042"})
    assert response.json() == {"found": True}
    [line] = [
        line for line in logs.events("Slow database query") if line["statement"] == "SELECT ? = ?"
    ]
    assert line["request_id"] == "req-0000-0042"
    assert line["level"] == "warning"
    assert line["logger"] == "fastapi_enterprise.database"
    assert line["statement_type"] == "select"
    assert line["pool"] == "default"
    assert isinstance(line["duration_ms"], float)
    assert "hunter2" not in logs.text()
    [record] = [
        record
        for record in caplog.records
        if record.name == "fastapi_enterprise.database"
        and record.__dict__["statement"] == "SELECT ? = ?"
    ]
    assert record.__dict__["request_id"] == "req-0000-0042"


WORKER = """
import asyncio, sys
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from fastapi_enterprise.database._observe import DatabaseMetrics

async def main(url, held, sessions):
    metrics = DatabaseMetrics(registry=CollectorRegistry())
    engine = create_async_engine(url, pool_size=5, **metrics.engine_options(url))
    metrics.attach(engine)
    connections = [await engine.connect() for _ in range(held)]
    for connection in connections:
        await connection.execute(text("SELECT 1"))
    for _ in range(sessions):
        metrics.session_opened()
    metrics.mirror.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for connection in connections:
        await connection.close()
    for _ in range(sessions):
        metrics.session_closed()
    metrics.detach()
    await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed if the test leaves any running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_pool_and_session_gauges_sum_over_worker_processes(
    tmp_path: Path, registry: CollectorRegistry, workers: list[subprocess.Popen[str]]
) -> None:
    """PROMETHEUS_MULTIPROC_DIR: two workers' gauges add up in the scrape, and drop to 0."""
    from prometheus_client.multiprocess import MultiProcessCollector

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"
    for held, sessions in ((2, 1), (3, 2)):
        workers.append(
            subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
                [sys.executable, "-c", WORKER, url, str(held), str(sessions)],
                env=env,
                cwd=tmp_path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for worker in workers:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            worker.kill()
            pytest.fail(f"worker failed: {worker.communicate(timeout=30)[1]}")
    MultiProcessCollector(registry, path=str(multiproc))  # type: ignore[no-untyped-call]
    assert sample(registry, "db_pool_checked_out") == 5
    assert sample(registry, "db_sessions_open") == 3
    assert sample(registry, "db_pool_size") == 10
    for worker in workers:
        _, stderr = worker.communicate("\n", timeout=30)
        assert worker.returncode == 0, stderr
    # Each worker wrote its last values on the way out (detached: no pool, no session).
    assert sample(registry, "db_pool_checked_out") == 0
    assert sample(registry, "db_sessions_open") == 0
    assert sample(registry, "db_pool_size") == 0


def test_two_databases_of_one_app_publish_side_by_side(tmp_path: Path) -> None:
    """A primary and a replica on one app: one set of metrics, a ``pool`` series each."""
    pytest.importorskip("prometheus_client")  # the metrics extra serves /metrics
    from fastapi_enterprise.database import Database
    from fastapi_enterprise.settings import DatabaseSettings

    app = FastAPI()
    install(app, EnterpriseSettings(environment="test", rate_limit={"enabled": False}))
    primary = Database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'a.db'}"), name="primary")
    replica = Database(DatabaseSettings(url=f"sqlite:///{tmp_path / 'b.db'}"), name="replica")
    primary.install(app)
    replica.install(app)
    with TestClient(app) as client:
        exposition = client.get("/metrics").text
    for pool in ("primary", "replica"):
        assert f'db_pool_size{{pool="{pool}"}}' in exposition
        assert f'db_sessions_open{{pool="{pool}"}} 0.0' in exposition


def test_a_name_publishes_once_per_registry(registry: CollectorRegistry) -> None:
    import prometheus_client

    first = DatabaseMetrics(name="main", registry=registry)
    with pytest.raises(ValueError, match="'main' already publishes metrics"):
        DatabaseMetrics(name="main", registry=registry)
    other = DatabaseMetrics(name="main", registry=prometheus_client.CollectorRegistry())
    del first  # gone: its name is free again
    import gc

    gc.collect()
    again = DatabaseMetrics(name="main", registry=registry)
    assert again.name == other.name == "main"
