"""Rate limiting on a real redis-server: bursts, a paused or killed server, the breaker.

Everything here runs against a real Redis (a private ``redis-server``), in process and
over real uvicorn processes; nothing is simulated. Timelines are read from what the
library reports (its log lines) and what clients saw (statuses, with the time each
request was sent); waits are bounded and generous, so a busy machine slows these tests
down without failing them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.install import installed_rate_limiter
from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
from fastapi_enterprise.ratelimit import RateLimiter, rate_limit, rate_limit_exempt
from tests.conftest import RedisProcess, UvicornProcess
from tests.test_rate_limit import read_status

# The Redis fixtures skip without the redis extra (and fail under CI=true without a
# server); the memory tests here run everywhere.
pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["sliding-window-counter", "moving-window", "fixed-window"]
BURST = 300


def limited_app(url: str, *, limit: str = "5/minute", **rate: Any) -> FastAPI:
    """/hit under ``limit`` (fail open), /strict (fail closed), /tight (3/minute)."""
    app = FastAPI()

    @app.get("/hit")
    async def hit() -> dict[str, str]:
        return {}

    @app.get("/strict")
    @rate_limit("100000/minute", fail="closed")
    async def strict() -> dict[str, str]:
        return {}

    @app.get("/tight")
    @rate_limit("3/minute")
    async def tight() -> dict[str, str]:
        return {}

    @app.get("/block")
    @rate_limit_exempt
    async def block() -> dict[str, str]:
        time.sleep(0.5)  # noqa: ASYNC251 - a blocking call in async code, on purpose
        return {}

    options = {"default": limit, "storage_url": url, **rate}
    install(app, EnterpriseSettings(environment="test", rate_limit=options))
    return app


def engine(app: FastAPI) -> RateLimiter:
    limiter = installed_rate_limiter(app)
    assert limiter is not None
    return limiter


async def concurrently(app: FastAPI, paths: list[str]) -> list[int]:
    """Send every request at once through the app; close the storage afterwards."""
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(path) for path in paths))
    await engine(app).aclose()  # in the loop that opened the connections
    return [response.status_code for response in responses]


@pytest.fixture
def prefix(redis_namespace: tuple[str, str]) -> str:
    return redis_namespace[1].rstrip(":")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_burst_lets_exactly_the_limit_through_in_process(
    redis_namespace: tuple[str, str], prefix: str, strategy: str
) -> None:
    """300 requests at once on a healthy Redis, default timeout: 5 pass, none unchecked.

    The burst used to time checks out while they queued for the loop and the pool, open
    the breaker, and let every request through (issue 12, A1).
    """
    app = limited_app(redis_namespace[0], strategy=strategy, storage_prefix=prefix)
    codes = asyncio.run(concurrently(app, ["/hit"] * BURST))
    assert Counter(codes) == {200: 5, 429: BURST - 5}
    stats = engine(app).stats
    assert (stats.storage_errors, stats.fail_open, stats.breaker_opens) == (0, 0, 0)
    assert engine(app).slots.in_use == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_burst_lets_exactly_the_limit_through_in_memory(strategy: str) -> None:
    app = limited_app("memory://", strategy=strategy)
    assert Counter(asyncio.run(concurrently(app, ["/hit"] * BURST))) == {200: 5, 429: BURST - 5}


def metric(text: str, name: str, **labels: str) -> float:
    parser = pytest.importorskip("prometheus_client.parser")
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in the scrape")


def server_env(**rate: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
        "FE_ENVIRONMENT": "test",
        "FE_LOGGING__ACCESS_LOG": "false",
    }
    env.update({f"FE_RATE_LIMIT__{name.upper()}": value for name, value in rate.items()})
    return env


def burst_over_http(port: int, count: int) -> Counter[int]:
    """Send ``count`` requests at once, as a load generator does; count the statuses.

    ``count`` connections are opened first, then every request is written in one go, so
    the server reads them all in the same moment (an HTTP client in Python is slower
    than the server it tests).
    """
    request = b"GET /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    connections = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(count)]
    try:
        for connection in connections:
            connection.sendall(request)
        return Counter(read_status(connection) for connection in connections)
    finally:
        for connection in connections:
            connection.close()


@pytest.mark.parametrize("strategy", [*STRATEGIES, "memory"])
def test_a_burst_over_a_real_server_lets_exactly_the_limit_through(
    redis_namespace: tuple[str, str], prefix: str, tmp_path: Path, strategy: str
) -> None:
    """300 concurrent connections to uvicorn: exactly 5 pass, for Redis and memory."""
    storage = "memory://" if strategy == "memory" else redis_namespace[0]
    env = server_env(
        default="5/minute",
        storage_url=storage,
        strategy="fixed-window" if strategy == "memory" else strategy,
        storage_prefix=prefix,
        exempt_paths="/health,/metrics",
    )
    with UvicornProcess("tests.ratelimit_app:app", env=env, cwd=tmp_path) as server:
        server.wait_until_serving("/health/live")
        codes = burst_over_http(server.port, BURST)
        scrape = httpx2.get(f"{server.url}/metrics").text
    assert codes == {200: 5, 429: BURST - 5}
    assert metric(scrape, "ratelimit_storage_errors_total") == 0
    assert metric(scrape, "ratelimit_decisions_total", decision="fail_open") == 0
    assert metric(scrape, "ratelimit_breaker_open") == 0


def test_a_stalled_event_loop_is_not_a_storage_timeout(
    redis_namespace: tuple[str, str], prefix: str
) -> None:
    """A loop blocked for 5x the timeout while Redis answers in time: nothing times out.

    The timeout measures Redis, not us.
    """
    app = limited_app(redis_namespace[0], limit="1000/minute", timeout=0.1, storage_prefix=prefix)

    async def scenario() -> list[int]:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            await asyncio.gather(*(client.get("/hit") for _ in range(20)))  # warm the pool
            responses = await asyncio.gather(
                *(client.get("/hit") for _ in range(40)), client.get("/block")
            )
        await engine(app).aclose()
        return [response.status_code for response in responses]

    assert asyncio.run(scenario()) == [200] * 41
    stats = engine(app).stats
    assert (stats.allowed, stats.storage_errors, stats.fail_open) == (60, 0, 0)


@pytest.mark.parametrize("shadow", [False, True])
def test_checks_queueing_past_the_queue_timeout_are_shed_never_let_through(
    own_redis: RedisProcess, shadow: bool
) -> None:
    """Two connections, Redis slow (paused writes): the queue is answered 503.

    Waiting for a connection is not a storage failure: the breaker stays closed, and
    the two checks that were sent get their answer once Redis resumes. Shadow mode,
    which never refuses a request for its rate, applies the fail mode instead.
    """
    import redis

    app = limited_app(own_redis.url, max_connections=2, queue_timeout=0.2, timeout=5, shadow=shadow)
    admin = redis.Redis.from_url(own_redis.url)

    async def scenario() -> list[int]:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/hit")).status_code == 200  # connect while healthy
            admin.client_pause(1500, all=False)  # write commands (the limit scripts) wait
            responses = await asyncio.gather(*(client.get("/hit") for _ in range(12)))
        await engine(app).aclose()
        return [response.status_code for response in responses]

    try:
        codes = asyncio.run(scenario())
    finally:
        admin.client_unpause()
        admin.close()
    assert Counter(codes) == ({200: 12} if shadow else {200: 2, 503: 10})
    stats = engine(app).stats
    # In shadow mode an overloaded check is one the storage could not make: the fail
    # mode (open here) applies.
    assert (stats.overloaded, stats.storage_errors, stats.fail_open) == (10, 0, 10 * shadow)
    assert not engine(app).breaker.is_open


@dataclass
class Timeline:
    """What clients saw and what the library logged (time, text).

    ``responses`` holds (sent, path, status, answered): the times a request was sent
    and answered.
    """

    start: float = field(default_factory=time.monotonic)
    responses: list[tuple[float, str, int, float]] = field(default_factory=list)
    logs: list[tuple[float, str]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        return time.monotonic() - self.start

    def mark(self, name: str) -> None:
        self.marks[name] = self.now()

    def logged(self, text: str) -> list[float]:
        return [at for at, message in self.logs if text in message]

    async def warmed_up(self) -> None:
        """Wait (at most a minute) until every path under load has been answered once.

        The fault starts after this and half a second more, so answers before the fault
        exist however slow a loaded machine is to serve the first requests.
        """
        for _ in range(6000):
            if {"/hit", "/strict"} <= {path for _, path, _, _ in self.responses}:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)


@pytest.fixture
def timeline() -> Iterator[Timeline]:
    """A timeline that records the rate limiter's log lines as they are emitted."""
    record = Timeline()

    class Recorder(logging.Handler):
        def emit(self, entry: logging.LogRecord) -> None:
            record.logs.append((record.now(), entry.getMessage()))

    handler = Recorder(logging.INFO)
    logger = logging.getLogger("fastapi_enterprise.ratelimit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield record
    logger.removeHandler(handler)
    logger.setLevel(level)


async def load(
    client: httpx2.AsyncClient, timeline: Timeline, path: str, until: asyncio.Event
) -> None:
    """One client sending requests back to back (with a short pause) until told to stop."""
    while not until.is_set():
        sent = timeline.now()
        status = (await client.get(path)).status_code
        timeline.responses.append((sent, path, status, timeline.now()))
        await asyncio.sleep(0.005)


async def under_load(app: FastAPI, timeline: Timeline, fault: Any) -> None:
    """Bounded load on /hit (fail open) and /strict (fail closed) while ``fault`` runs."""
    stop = asyncio.Event()
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        clients = [
            *(asyncio.create_task(load(client, timeline, "/hit", stop)) for _ in range(8)),
            *(asyncio.create_task(load(client, timeline, "/strict", stop)) for _ in range(3)),
        ]
        try:
            await fault()
        finally:
            stop.set()
            await asyncio.gather(*clients)
        timeline.mark("load stopped")
        after = [(await client.get("/tight")).status_code for _ in range(4)]
    await engine(app).aclose()
    assert after == [200, 200, 200, 429], "enforcement did not resume"


COOLDOWN = 0.5
SLACK = 1.5  # for a slow machine; the defect this guards against took 6-14 cooldowns


def assert_one_clean_outage(app: FastAPI, timeline: Timeline, fault: str, back: str) -> None:
    """Check the timeline of one outage.

    The breaker opened once after the fault, closed once within one cooldown of Redis
    answering again, and never re-opened; clients saw no 500, and the fail-closed route
    was refused only while the breaker was open.
    """
    opened = timeline.logged("times in a row")
    closed = timeline.logged("is back after")
    assert len(opened) == 1, timeline.logs
    assert len(closed) == 1, timeline.logs
    assert timeline.marks[fault] < opened[0] < timeline.marks[back] < closed[0]
    assert closed[0] - timeline.marks[back] < COOLDOWN + SLACK
    assert engine(app).stats.breaker_opens == 1
    assert not engine(app).breaker.is_open
    assert engine(app).slots.in_use == 0
    statuses = Counter(status for _, _, status, _ in timeline.responses)
    assert set(statuses) <= {200, 503}, statuses
    refused = [(sent, path) for sent, path, status, _ in timeline.responses if status == 503]
    assert refused, "the fail-closed route was never refused during the outage"
    assert all(path == "/strict" for _, path in refused)
    assert all(sent < closed[0] for sent, _ in refused)
    # Answered before the fault, or sent after the recovery: all served, all checked.
    before = [s for _, _, s, answered in timeline.responses if answered < timeline.marks[fault]]
    after = [s for sent, _, s, _ in timeline.responses if sent > closed[0]]
    assert before
    assert after
    assert set(before) == set(after) == {200}


def test_redis_paused_under_load_recovers_within_one_cooldown(
    own_redis: RedisProcess, timeline: Timeline
) -> None:
    """SIGSTOP the server under load, SIGCONT it: one outage, no flapping (issue 12, A2)."""
    app = limited_app(own_redis.url, limit="100000/minute", timeout=0.2, breaker_cooldown=COOLDOWN)
    assert own_redis.process is not None
    process = own_redis.process

    async def fault() -> None:
        await timeline.warmed_up()
        timeline.mark("stopped")
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(1.5)
        finally:
            process.send_signal(signal.SIGCONT)
            timeline.mark("continued")
        await asyncio.sleep(COOLDOWN + SLACK + 0.5)

    try:
        asyncio.run(under_load(app, timeline, fault))
    finally:
        process.send_signal(signal.SIGCONT)
    assert_one_clean_outage(app, timeline, "stopped", "continued")


def test_redis_killed_and_restarted_under_load_recovers_without_reopening(
    own_redis: RedisProcess, timeline: Timeline
) -> None:
    """Kill the server under load and start a new one on the same port.

    The pool still holds connections to the dead server; each failed its first command
    after the restart and re-opened the breaker while Redis was healthy. They are now
    replaced silently: one outage, and the new (empty) server enforces limits at once.
    """
    app = limited_app(own_redis.url, limit="100000/minute", timeout=0.2, breaker_cooldown=COOLDOWN)

    async def fault() -> None:
        await timeline.warmed_up()
        timeline.mark("killed")
        own_redis.stop()
        await asyncio.sleep(1.5)
        # Marked as the new server is launched: the loop serves on while start() waits
        # for the port, and the breaker may close before start() returns.
        timeline.mark("restarted")
        await asyncio.to_thread(own_redis.start)
        await asyncio.sleep(COOLDOWN + SLACK + 0.5)

    asyncio.run(under_load(app, timeline, fault))
    assert_one_clean_outage(app, timeline, "killed", "restarted")
    failures_after = timeline.logged("still unavailable")
    assert all(at < timeline.marks["restarted"] + COOLDOWN + SLACK for at in failures_after)


def test_a_cancelled_probe_does_not_leave_the_breaker_open(
    own_redis: RedisProcess, timeline: Timeline
) -> None:
    """The probe's client goes away mid-flight: the next request probes, Redis is back.

    The probe's flag used to stay set when its task was cancelled (CancelledError is
    not an Exception), and the breaker stayed open for good, without a word.
    """
    app = limited_app(own_redis.url, limit="1000/minute", timeout=0.2, breaker_cooldown=0.3)
    limiter = engine(app)
    assert own_redis.process is not None
    process = own_redis.process

    async def scenario() -> list[int]:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/hit")
            process.send_signal(signal.SIGSTOP)
            try:
                await asyncio.gather(*(client.get("/hit") for _ in range(3)))  # time out
                assert limiter.stats.breaker_opens == 1
                await asyncio.sleep(limiter.breaker.remaining() + 0.01)
                probe = asyncio.create_task(client.get("/hit"))
                for _ in range(200):  # until the request is the probe (bounded)
                    if limiter.breaker.probing:
                        break
                    await asyncio.sleep(0.01)
                assert limiter.breaker.probing
                probe.cancel()  # the client goes away
                with pytest.raises(asyncio.CancelledError):
                    await probe
            finally:
                process.send_signal(signal.SIGCONT)
            timeline.mark("continued")
            codes = []
            for _ in range(200):  # bounded: about 2 s of requests
                codes.append((await client.get("/hit")).status_code)
                if not limiter.breaker.is_open:
                    break
                await asyncio.sleep(0.01)
        await limiter.aclose()
        return codes

    try:
        asyncio.run(scenario())
    finally:
        process.send_signal(signal.SIGCONT)
    assert not limiter.breaker.is_open, "the breaker never closed after a cancelled probe"
    assert timeline.logged("probe cancelled")
    assert len(timeline.logged("is back after")) == 1


def test_a_dead_redis_is_reported_for_as_long_as_it_is_dead(
    own_redis: RedisProcess, timeline: Timeline
) -> None:
    """An outage is logged when it starts, while it lasts, and when it ends.

    One warning when the breaker opens, then one per report interval with what went
    unchecked since the last, then one when Redis is back (issue 12, C16).
    """
    app = limited_app(own_redis.url, limit="1000/minute", timeout=0.2, breaker_cooldown=0.1)
    limiter = engine(app)
    limiter.report_interval = 0.3

    async def fault() -> None:
        await asyncio.sleep(0.3)
        timeline.mark("killed")
        own_redis.stop()
        await asyncio.sleep(1.5)
        timeline.mark("restarted")  # as launched (see above)
        await asyncio.to_thread(own_redis.start)
        await asyncio.sleep(1.0)

    asyncio.run(under_load(app, timeline, fault))
    opened = timeline.logged("times in a row")
    reports = [(at, text) for at, text in timeline.logs if "still unavailable" in text]
    back = timeline.logged("is back after")
    assert len(opened) == len(back) == 1
    assert opened[0] < reports[0][0]
    assert reports[-1][0] < back[0]
    # Bounded: at most one line per interval over the 1.5 s outage (and at least two).
    assert 2 <= len(reports) <= 1.5 / 0.3 + 2, reports
    assert all(b - a >= 0.3 for (a, _), (b, _) in itertools.pairwise(reports))
    counts = [int(text.split("; ")[1].split(" ")[0]) for _, text in reports]
    assert sum(counts) > 0  # each line says how many requests went unchecked since the last
    assert "ConnectionError" in reports[0][1]
    assert "redis://" not in " ".join(text for _, text in timeline.logs)


def readiness_app(url: str, **rate: Any) -> FastAPI:
    return limited_app(url, timeout=0.2, breaker_cooldown=0.2, **rate)


def test_readiness_and_metrics_show_the_outage_and_readiness_probes_recovery(
    own_redis: RedisProcess,
) -> None:
    """Fail open: reported degraded, still ready; the gauge says the breaker is open.

    With no traffic at all, the readiness probe itself probes the storage once the
    cooldown is over, so enforcement comes back on an idle server.
    """
    own_redis.stop()
    app = readiness_app(own_redis.url)
    limiter = engine(app)
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        check = ready.json()["checks"]["rate_limit"]
        assert check["status"] == "degraded"
        assert check["storage"] == "unavailable"
        assert check["requests"] == "unchecked"
        assert metric(client.get("/metrics").text, "ratelimit_breaker_open") == 1
        own_redis.start()
        for _ in range(100):  # bounded: about 5 s of probes
            ready = client.get("/health/ready")
            if ready.json()["status"] == "ok":
                break
            time.sleep(0.05)
        assert ready.json() == {
            "status": "ok",
            "checks": {"rate_limit": {"status": "ok", "duration_ms": ANY_NUMBER}},
        }
        assert not limiter.breaker.is_open
        scrape = client.get("/metrics").text
        assert metric(scrape, "ratelimit_breaker_open") == 0
        assert metric(scrape, "ratelimit_breaker_opens_total") == 1


class _AnyNumber:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float)

    __hash__ = None  # type: ignore[assignment]


ANY_NUMBER: Any = _AnyNumber()


def test_readiness_fails_when_requests_are_refused_without_the_storage(
    own_redis: RedisProcess,
) -> None:
    own_redis.stop()
    app = readiness_app(own_redis.url, fail_mode="closed")
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["rate_limit"]["status"] == "fail"
        assert ready.json()["checks"]["rate_limit"]["requests"] == "refused"
        assert client.get("/hit").status_code == 503


def test_a_redis_unreachable_at_startup_is_reported_and_skipped_from_the_start(
    own_redis: RedisProcess, timeline: Timeline
) -> None:
    own_redis.stop()
    app = limited_app(own_redis.url, timeout=0.2, breaker_cooldown=30)
    with TestClient(app) as client:
        assert [client.get("/hit").status_code for _ in range(5)] == [200] * 5
    stats = engine(app).stats
    # The startup check failed once and opened the breaker: no request waited on Redis.
    assert (stats.storage_errors, stats.fail_open, stats.breaker_opens) == (1, 5, 1)
    [warning] = [text for _, text in timeline.logs if "did not answer at startup" in text]
    assert "(ConnectionError)" in warning
    assert "unchecked (fail mode open)" in warning


@pytest.mark.parametrize("manage_storage", [True, False], ids=["alone", "under-install"])
def test_the_middleware_alone_checks_and_closes_its_storage_unless_told_not_to(
    own_redis: RedisProcess, timeline: Timeline, manage_storage: bool
) -> None:
    """Without install(), the limiter hooks the lifespan itself: a check, then a close.

    install() adds it with ``manage_storage=False`` and does both in its own lifespan
    wrapper, so nothing is done twice.
    """
    own_redis.stop()
    limiter = RateLimiter(own_redis.url, timeout=0.2, breaker_cooldown=30)
    closes: list[str] = []
    close = limiter.aclose

    async def aclose() -> None:
        closes.append("closed")
        await close()

    limiter.aclose = aclose  # type: ignore[method-assign]
    app = FastAPI()
    app.add_middleware(RateLimitMiddleware, limiter=limiter, manage_storage=manage_storage)
    with TestClient(app):
        pass
    checked = timeline.logged("did not answer at startup")
    if manage_storage:
        assert (len(checked), limiter.stats.storage_errors, closes) == (1, 1, ["closed"])
    else:
        assert (len(checked), limiter.stats.storage_errors, closes) == (0, 0, [])


SECRET_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"
PRODUCTION_SECURITY: dict[str, Any] = {"secret_key": SECRET_KEY, "allowed_hosts": ["*"]}


def test_production_refuses_to_start_without_the_storage_it_cannot_run_without(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    """Production, fail mode closed: a Redis that does not answer stops the startup.

    Under a real server, with a message that names the cause and no credential.
    """
    own_redis.stop()
    url = own_redis.url.replace("redis://", "redis://:hunter2-secret@")
    env = {
        **server_env(storage_url=url, fail_mode="closed", timeout="0.2"),
        "FE_ENVIRONMENT": "production",
        "FE_SECURITY__SECRET_KEY": SECRET_KEY,
        "FE_SECURITY__ALLOWED_HOSTS": '["*"]',
    }
    with UvicornProcess(
        "tests.ratelimit_app:app", env=env, cwd=tmp_path, capture_stderr=True
    ) as server:
        code = server.wait(timeout=30)
    output = server.stderr.decode()
    assert code != 0
    assert "rate-limit storage did not answer at startup (ConnectionError)" in output
    assert "hunter2" not in output


def test_production_with_fail_open_starts_without_the_storage(own_redis: RedisProcess) -> None:
    own_redis.stop()
    app = FastAPI()
    install(
        app,
        EnterpriseSettings(
            environment="production",
            security=PRODUCTION_SECURITY,
            rate_limit={"storage_url": own_redis.url, "timeout": 0.2},
        ),
    )
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
