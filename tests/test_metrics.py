"""Prometheus metrics through the full install() stack, a real scrape, and real workers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

import httpx2
import structlog
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
)
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.types import Message

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.install import installed_health_checks, installed_metrics_registry
from fastapi_enterprise.metrics import (
    CacheMetrics,
    LabelGuard,
    MetricsEndpoint,
    PrometheusMiddleware,
    SQLAlchemyPoolCollector,
    cleanup_dead_processes,
    count_calls,
    count_exceptions,
    register_runtime_collectors,
    time_calls,
    track_in_progress,
)
from tests.conftest import GunicornProcess, RedisProcess, UvicornProcess

ROOT = Path(__file__).resolve().parents[1]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def make_app(environment: str = "test", **metrics: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/crash")
    async def crash() -> None:
        raise KeyError("boom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for _ in range(3):
                await asyncio.sleep(0.02)
                yield b"x" * 10

        return StreamingResponse(chunks())

    security = {"secret_key": "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ", "allowed_hosts": ["*"]}
    install(
        app,
        EnterpriseSettings(
            environment=environment,
            metrics=metrics,
            security=security,
            rate_limit={"default": "1000000/minute"},
        ),
    )
    return app


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in parse_text(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_requests_are_counted_by_route_template_and_status() -> None:
    client = TestClient(make_app())
    for path in ("/items/1", "/items/2", "/items/x", "/nowhere", "/crash"):
        client.get(path)
    text = client.get("/metrics").text
    counts = samples(text, "http_requests_total")
    assert counts[(("method", "GET"), ("route", "/items/{item_id}"), ("status", "200"))] == 2
    assert counts[(("method", "GET"), ("route", "/items/{item_id}"), ("status", "422"))] == 1
    assert counts[(("method", "GET"), ("route", "<unmatched>"), ("status", "404"))] == 1
    assert counts[(("method", "GET"), ("route", "/crash"), ("status", "500"))] == 1
    assert not any("metrics" in str(key) for key in counts)  # the scrape is not measured
    assert (
        samples(text, "app_info")[
            (("environment", "test"), ("name", "FastAPI"), ("version", "0.1.0"))
        ]
        == 1
    )
    assert "process_cpu_seconds_total" in text  # the global registry's collectors too


def test_ten_thousand_unknown_paths_keep_the_series_count_constant() -> None:
    app = make_app()
    client = TestClient(app, raise_server_exceptions=False)
    client.get("/scan/0")
    before = len(parse_text_lines(client.get("/metrics").text))

    async def scan() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            return None

        for n in range(1, 10_000):
            path = f"/scan/{n}/{'x' * (n % 7)}"
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"t")],
                "client": ("127.0.0.1", 1),
                "server": ("t", 80),
            }
            await app(scope, receive, send)

    asyncio.run(scan())
    text = client.get("/metrics").text
    assert (
        samples(text, "http_requests_total")[
            (("method", "GET"), ("route", "<unmatched>"), ("status", "404"))
        ]
        == 10_000
    )
    assert len(parse_text_lines(text)) == before


def test_invented_methods_share_one_series() -> None:
    client = TestClient(make_app())
    client.get("/items/1")
    before = len(parse_text_lines(client.get("/metrics").text))
    for n in range(200):
        assert client.request(f"X{n}", "/items/1").status_code == 405
    client.request("PROPFIND", "/items/1")
    text = client.get("/metrics").text
    counts = samples(text, "http_requests_total")
    assert counts[(("method", "OTHER"), ("route", "/items/{item_id}"), ("status", "405"))] == 201
    assert not any(value.startswith("X") for key in counts for _, value in key)
    # One new requests_total series plus the OTHER duration and size histograms.
    added = len(parse_text_lines(text)) - before
    assert 0 < added < 60


def parse_text_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and not line.startswith(("process_", "python_"))
    ]


def test_openmetrics_scrape_has_request_id_exemplars_and_parses() -> None:
    client = TestClient(make_app())
    client.get("/items/1", headers={"X-Request-ID": "exemplar-req-0001"})
    response = client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = list(text_string_to_metric_families(response.text))  # type: ignore[no-untyped-call]
    exemplars = [
        sample.exemplar
        for family in families
        if family.name == "http_request_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    ]
    assert any(exemplar.labels == {"request_id": "exemplar-req-0001"} for exemplar in exemplars)


def test_gzip_and_promtool_accept_the_exposition(tmp_path: Path) -> None:
    client = TestClient(make_app())
    client.get("/items/1")
    response = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but promtool is not installed")
        pytest.skip("promtool (Debian package prometheus) is not installed")
    plain = client.get("/metrics", headers={"Accept-Encoding": "identity"}).text
    check = subprocess.run(  # noqa: S603 - a fixed local binary
        [promtool, "check", "metrics"], input=plain.encode(), capture_output=True, check=False
    )
    assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
    rules = subprocess.run(  # noqa: S603
        [promtool, "check", "rules", str(ROOT / "docs/metrics/alerts.rules.yml")],
        capture_output=True,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout.decode()


def test_rules_and_dashboard_name_only_metrics_the_library_exports() -> None:
    client = TestClient(make_app())
    client.get("/items/1")
    client.get("/crash")
    exported = {family.name for family in parse_text(client.get("/metrics").text)}
    exported |= {
        f"{name}{suffix}" for name in exported for suffix in ("_total", "_bucket", "_count", "_sum")
    }
    rules = (ROOT / "docs/metrics/alerts.rules.yml").read_text()
    dashboard = json.loads((ROOT / "docs/metrics/grafana-dashboard.json").read_text())
    expressions = [rules] + [
        target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
    ]
    recorded = set(re.findall(r"record: (\S+)", rules))
    used = set()
    for expression in expressions:
        used |= set(re.findall(r"\b([a-z_][a-z0-9_]*)(?=\{|\[)", expression))
    used -= recorded | {"rate", "increase", "sum", "by", "histogram_quantile", "clamp_min"}
    assert used, "no metric names found"
    assert used <= exported, used - exported


def test_protection() -> None:
    protected = make_app(bearer_token="s3cret-token", allow_ips=["10.0.0.0/8"])
    client = TestClient(protected)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    )
    allowed = TestClient(protected, client=("10.1.2.3", 1))
    assert allowed.get("/metrics").status_code == 200
    production = TestClient(make_app(environment="production"))
    assert production.get("/metrics").status_code == 403  # not public by default
    assert (
        TestClient(make_app(environment="production"), client=("127.0.0.1", 1))
        .get("/metrics")
        .status_code
        == 200
    )


def test_allow_ips_go_through_the_client_ip_rules() -> None:
    """A bad entry is named by its position, never shown (issue 12, B8).

    Entries are parsed where the client IP's rules live: an IPv4-mapped entry stands for
    the IPv4 network it carries, since clients are compared as IPv4.
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    with pytest.raises(ValueError, match=r"^allow_ips entry 2 ") as caught:
        MetricsEndpoint(CollectorRegistry(), allow_ips=["10.0.0.0/8", "ops:hunter2@scraper"])
    error = caught.value
    assert "hunter2" not in f"{error} {error!r}"
    assert error.__cause__ is None  # the parser's error quotes the entry
    assert error.__suppress_context__
    endpoint = MetricsEndpoint(CollectorRegistry(), allow_ips=["::ffff:10.0.0.0/104"])
    app = Starlette(routes=[Route("/metrics", endpoint)])
    assert TestClient(app, client=("10.1.2.3", 1)).get("/metrics").status_code == 200
    assert TestClient(app, client=("::ffff:10.1.2.3", 1)).get("/metrics").status_code == 200
    assert TestClient(app, client=("192.0.2.1", 1)).get("/metrics").status_code == 403


TOKEN = "s3cret-token"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}",  # a prefix
        f"Bearer {TOKEN[:1]}",
        f"Bearer {TOKEN}x",  # the token plus a suffix
        f"Bearer {TOKEN}{TOKEN}",
        f"Bearer x{TOKEN}",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN} extra",
    ],
)
def test_only_the_exact_bearer_token_scrapes(authorization: str | None) -> None:
    client = TestClient(make_app(bearer_token=TOKEN))
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "]
)
def test_the_bearer_token_scrapes(authorization: str) -> None:
    client = TestClient(make_app(bearer_token=TOKEN))
    assert client.get("/metrics", headers={"Authorization": authorization}).status_code == 200


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_configured_token_fails_at_startup(token: str) -> None:
    with pytest.raises(ValueError, match="bearer_token must not be empty"):
        make_app(bearer_token=token)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PURGE"])
def test_metrics_answers_only_get_and_head(method: str) -> None:
    client = TestClient(make_app())
    response = client.request(method, "/metrics")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 405
    assert "x-request-id" in response.headers
    # Protection is not bypassed by a method either: denied scrapes stay denied.
    protected = TestClient(make_app(bearer_token=TOKEN))
    assert protected.request(method, "/metrics").status_code == 405


def test_head_gives_the_headers_of_a_scrape_without_its_body() -> None:
    """At the ASGI level: HTTP clients drop a HEAD body, so only the messages can tell."""
    app = make_app()
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "HEAD",
        "scheme": "http",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start, *bodies = messages
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain")
    assert int(headers[b"content-length"]) > 0
    assert b"".join(body.get("body", b"") for body in bodies) == b""


def test_streamed_duration_disconnects_and_in_flight_scrapes() -> None:
    registry = CollectorRegistry()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        message = await receive()
        assert message["type"] == "http.disconnect"

    middleware = PrometheusMiddleware(slow_app, registry=registry)
    in_flight: list[float] = []

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            in_flight.append(
                registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) or 0
            )
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            return None

        await middleware(
            {"type": "http", "method": "GET", "path": "/s", "headers": []}, receive, send
        )

    asyncio.run(run())
    assert in_flight == [1.0]  # a scrape during the request sees it in progress
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "<unmatched>", "status": "499"}
        )
        == 1
    )
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0

    client = TestClient(make_app())
    client.get("/stream")
    registry_of_app = installed_metrics_registry(client.app)  # type: ignore[arg-type]
    total = registry_of_app.get_sample_value(
        "http_request_duration_seconds_sum", {"method": "GET", "route": "/stream"}
    )
    assert total is not None
    # A lower bound, not a speed check: the stream sleeps 3 x 20 ms before its last chunk,
    # so a duration measured to the last chunk cannot be shorter (load only lengthens it).
    assert total >= 0.06


def test_unhandled_exceptions_are_counted_by_type() -> None:
    client = TestClient(make_app())
    client.get("/crash")
    registry = installed_metrics_registry(client.app)  # type: ignore[arg-type]
    assert (
        registry.get_sample_value(
            "http_unhandled_exceptions_total",
            {"method": "GET", "route": "/crash", "exception": "KeyError"},
        )
        == 1
    )


def test_decorators_time_the_whole_coroutine_and_work_on_methods() -> None:
    registry = CollectorRegistry()
    duration = Histogram("job_seconds", "jobs", ["kind"], registry=registry)
    summary = Summary("sync_seconds", "sync", registry=registry)
    calls = Counter("job_calls", "calls", ["kind"], registry=registry)
    failures = Counter("job_failures", "failures", registry=registry)
    running = Gauge("job_running", "running", registry=registry)
    observed_running: list[float] = []

    class Worker:
        @time_calls(duration, labels=lambda self, kind: {"kind": kind})
        @count_calls(calls, labels=lambda self, kind: {"kind": kind})
        @track_in_progress(running)
        async def run(self, kind: str) -> str:
            observed_running.append(registry.get_sample_value("job_running") or 0)
            await asyncio.sleep(0.05)
            return kind

    @time_calls(summary)
    @count_exceptions(failures, exception=ValueError)
    def parse(text: str) -> int:
        return int(text)

    assert asyncio.run(Worker().run("import")) == "import"
    assert observed_running == [1.0]
    assert registry.get_sample_value("job_running") == 0
    # Lower bound: the coroutine sleeps 50 ms, so timing the whole coroutine (not just
    # until its first await) can only give more.
    elapsed = registry.get_sample_value("job_seconds_sum", {"kind": "import"})
    assert elapsed is not None
    assert elapsed >= 0.05
    assert registry.get_sample_value("job_calls_total", {"kind": "import"}) == 1
    assert parse("3") == 3
    with pytest.raises(ValueError, match="invalid literal"):
        parse("x")
    assert registry.get_sample_value("job_failures_total") == 1
    assert registry.get_sample_value("sync_seconds_count") == 2


def test_label_guard_folds_unbounded_values() -> None:
    registry = CollectorRegistry()
    counter = Counter("tenant_calls", "calls", ["tenant"], registry=registry)
    guard = LabelGuard(max_values=3)

    @count_calls(counter, labels=lambda tenant: {"tenant": tenant}, guard=guard)
    def call(tenant: str) -> None:
        return None

    for n in range(1000):
        call(f"tenant-{n}")
    values = {
        s.labels["tenant"]
        for f in registry.collect()
        for s in f.samples
        if s.name == "tenant_calls_total"
    }
    assert values == {"tenant-0", "tenant-1", "tenant-2", "other"}
    assert registry.get_sample_value("tenant_calls_total", {"tenant": "other"}) == 997


def test_collectors(tmp_path: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    registry = CollectorRegistry()
    register_runtime_collectors(registry)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/pool.db", pool_size=3)
    SQLAlchemyPoolCollector(engine, name="main", registry=registry)
    with engine.connect():
        assert registry.get_sample_value("db_pool_checked_out", {"pool": "main"}) == 1
        assert registry.get_sample_value("db_pool_size", {"pool": "main"}) == 3
    assert registry.get_sample_value("db_pool_checked_out", {"pool": "main"}) == 0
    engine.dispose()
    cache = CacheMetrics(registry)
    cache.hit("users")
    cache.miss("users")
    cache.hit("users")
    assert (
        registry.get_sample_value("cache_requests_total", {"cache": "users", "result": "hit"}) == 2
    )
    assert registry.get_sample_value("process_cpu_seconds_total") is not None


def test_429s_503s_and_plain_routes_carry_their_route_in_metrics_and_access_log(
    capture_logs: Any,
) -> None:
    """429s, 503s and plain Starlette routes are labelled with their route template.

    Responses answered before routing (429, fail-closed 503) and plain Starlette routes
    (docs, schema, probes) used to be labelled ``<unmatched>`` (issue 12, D17).
    """
    from fastapi_enterprise import rate_limit

    logs = capture_logs(EnterpriseSettings(environment="test"))
    app = FastAPI()

    @app.get("/orders/{order_id}")
    @rate_limit("1/minute")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.get("/strict")
    @rate_limit("5/minute", fail="closed")
    async def strict() -> dict[str, str]:
        return {}

    async def legacy(request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok")

    app.add_route("/legacy/{name}", legacy)
    install(
        app,
        EnterpriseSettings(
            environment="test",
            # A Redis nobody listens on, behind an open breaker: /strict answers 503.
            rate_limit={"storage_url": "redis://127.0.0.1:1/0", "breaker_cooldown": 60},
            metrics={"exclude_paths": ["/metrics"]},
        ),
    )
    with TestClient(app) as client:
        for path, status in [
            ("/orders/1", 200),
            ("/orders/2", 200),  # fail open: the storage is down
            ("/strict", 503),
            ("/docs", 200),
            ("/redoc", 200),
            ("/openapi.json", 200),
            ("/docs/oauth2-redirect", 200),
            ("/legacy/x", 200),
            ("/health/ready", 200),
            ("/nowhere", 404),
        ]:
            assert client.get(path).status_code == status, path
        counts = samples(client.get("/metrics").text, "http_requests_total")
    labelled = {(dict(key)["route"], dict(key)["status"]) for key in counts}
    assert labelled == {
        ("/orders/{order_id}", "200"),
        ("/strict", "503"),
        ("/docs", "200"),
        ("/redoc", "200"),
        ("/openapi.json", "200"),
        ("/docs/oauth2-redirect", "200"),
        ("/legacy/{name}", "200"),
        ("/health/ready", "200"),
        ("<unmatched>", "404"),
    }
    access = {(line["route"], line["status"]) for line in logs.events("http.request")}
    assert ("/strict", 503) in access
    assert ("/docs", 200) in access
    assert ("<unmatched>", 404) in access
    assert not any(route == "<unmatched>" for route, status in access if status != 404)


def test_429s_are_labelled_with_their_route() -> None:
    from fastapi_enterprise import rate_limit

    app = FastAPI()

    @app.get("/orders/{order_id}")
    @rate_limit("1/minute")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    install(app, EnterpriseSettings(environment="test"))
    client = TestClient(app)
    assert [client.get(f"/orders/{n}").status_code for n in range(4)] == [200, 429, 429, 429]
    counts = samples(client.get("/metrics").text, "http_requests_total")
    key = (("method", "GET"), ("route", "/orders/{order_id}"), ("status", "429"))
    assert counts[key] == 3
    assert not any(dict(key)["route"] == "<unmatched>" for key in counts)


def test_stats_mirror_is_exact_at_every_scrape() -> None:
    """The documented example, on install()'s registry as the docs say.

    Plain integers, published; every label set from the start. (The example used the
    log-loss counters' names, which install() registers, and failed there.)
    """
    from examples.metrics.stats_mirror import WebhookStats, publish

    app = make_app()
    registry = installed_metrics_registry(app)
    stats = WebhookStats()
    publish(stats, registry)  # its names are free on the registry install() made
    assert registry.get_sample_value("webhooks_failed_total", {"reason": "refused"}) == 0
    stats.delivered += 3
    stats.refused += 1
    stats.pending = 7
    assert registry.get_sample_value("webhooks_delivered_total") == 3
    assert registry.get_sample_value("webhooks_failed_total", {"reason": "refused"}) == 1
    stats.delivered += 2
    text = TestClient(app).get("/metrics").text
    assert samples(text, "webhooks_delivered_total") == {(): 5}
    assert samples(text, "webhooks_pending") == {(): 7}


class FailingStream(io.StringIO):
    """A full disk: every write fails."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


class BlockedStream(io.StringIO):
    """A pipe nobody reads: writes block until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(timeout=10)
        return super().write(text)


def lost(text: str, name: str, output: str) -> float:
    return samples(text, name)[(("output", output),)]


def test_log_losses_are_process_totals_exact_at_every_scrape() -> None:
    """The counters count what the process lost, whenever and under whichever configuration.

    Losses before the metrics existed and those of a configuration since replaced are
    in the first scrape; a later loss is in the very next scrape. (The log pipeline used
    to push increments to observers from a thread: what happened before the observer was
    registered was never counted, and a scrape lagged.)
    """
    from fastapi_enterprise.log_config import configure_logging, log_losses

    before = log_losses()["stdout"]
    failing = configure_logging(EnterpriseSettings(environment="test"), stream=FailingStream())
    for n in range(5):
        structlog.get_logger("app").warning("lost to a full disk", n=n)
    assert failing.flush(timeout=10)
    failed = failing.outputs["stdout"].write_errors
    assert failed == 5
    blocked_stream = BlockedStream()
    settings = EnterpriseSettings(environment="test", logging={"queue_size": 5})
    blocked = configure_logging(settings, stream=blocked_stream)  # replaces the first
    try:
        log = structlog.get_logger("app")
        for n in range(50):
            log.info("lost to a blocked pipe", n=n)
        assert blocked.outputs["stdout"].dropped > 0
        client = TestClient(make_app())  # the metrics come after the losses
        # Read before each scrape: the test client logs each request once it is answered.
        dropped = before.dropped + blocked.outputs["stdout"].dropped
        text = client.get("/metrics").text
        assert lost(text, "log_lines_dropped_total", "stdout") == dropped
        assert lost(text, "log_write_errors_total", "stdout") == before.write_errors + failed
        for n in range(50):
            log.info("lost too", n=n)
        dropped = before.dropped + blocked.outputs["stdout"].dropped
        text = client.get("/metrics").text
        assert lost(text, "log_lines_dropped_total", "stdout") == dropped
        assert lost(text, "log_lines_dropped_total", "file") == log_losses()["file"].dropped
    finally:
        blocked_stream.release.set()
        blocked.stop()
        structlog.reset_defaults()
    # Stopping a pipeline takes nothing back: the totals only grow.
    assert log_losses()["stdout"].dropped >= dropped


def test_stats_mirror_keeps_metrics_current_from_its_thread_in_multiprocess_mode() -> None:
    """Under workers nobody scrapes the process that counts: its thread publishes."""
    from fastapi_enterprise.metrics import StatsMirror

    registry = CollectorRegistry()
    stats = {"seen": 0}
    mirror = StatsMirror(registry, interval=0.05, multiprocess=True)
    try:
        counter = mirror.counter("seen", "Seen.", lambda: {(): float(stats["seen"])})
        gauge = mirror.gauge("level", "Level.", lambda: {(): float(stats["seen"] * 2)})
        stats["seen"] = 4

        def published() -> tuple[float, float]:
            # collect() on the metrics themselves: no scrape hook runs.
            [counted], [level] = counter.collect(), gauge.collect()
            total = next(s.value for s in counted.samples if s.name == "seen_total")
            return total, level.samples[0].value

        deadline = time.monotonic() + 10
        while published() != (4, 8):
            assert time.monotonic() < deadline, published()
            time.sleep(0.02)
    finally:
        mirror.close()
    stats["seen"] = 6
    mirror.close()  # the last flush, as at exit
    assert published() == (6, 12)


def test_rate_limit_decisions_are_exported() -> None:
    app = make_app()
    client = TestClient(app)
    client.get("/items/1")
    text = client.get("/metrics").text
    assert samples(text, "ratelimit_decisions_total")[(("decision", "allowed"),)] >= 1
    assert "ratelimit_storage_errors_total" in text


def test_health_probes() -> None:
    app = make_app()
    checks = installed_health_checks(app)
    assert checks is not None
    client = TestClient(app)
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ok"
    assert list(ready["checks"]) == ["rate_limit"]  # install() checks its own storage
    assert ready["checks"]["rate_limit"]["status"] == "ok"

    async def slow() -> None:
        await asyncio.sleep(5)

    def broken() -> None:
        raise ConnectionError("postgresql://u:hunter2@db/x")

    checks.add("fast", lambda: True)
    checks.add("slow", slow, timeout=0.05)
    checks.add("broken", broken)
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["fast"]["status"] == "ok"
    assert body["checks"]["slow"]["status"] == "timeout"
    assert body["checks"]["broken"] == {
        "status": "fail",
        "error": "ConnectionError",
        "duration_ms": body["checks"]["broken"]["duration_ms"],
    }
    assert "hunter2" not in response.text


def test_health_checks_against_real_postgres_and_redis(redis_server: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    import redis.asyncio

    app = make_app()
    checks = installed_health_checks(app)
    assert checks is not None
    engine = sqlalchemy.create_engine(
        os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    checks.add_database(engine)
    client_redis = redis.asyncio.Redis.from_url(redis_server)
    checks.add_redis(client_redis)
    with TestClient(app) as client:
        response = client.get("/health/ready")
        assert client.portal is not None
        client.portal.call(client_redis.aclose)  # in the loop that opened the connection
    engine.dispose()
    if response.json()["checks"]["database"]["status"] != "ok" and os.environ.get("CI") != "true":
        pytest.skip("PostgreSQL not reachable")
    assert response.status_code == 200, response.json()


def test_dead_workers_live_gauges_are_cleaned(tmp_path: Path) -> None:
    (tmp_path / "gauge_livesum_999999.db").write_bytes(b"")
    (tmp_path / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"")
    (tmp_path / "counter_999999.db").write_bytes(b"")
    assert cleanup_dead_processes(tmp_path) == [999999]
    remaining = sorted(path.name for path in tmp_path.iterdir())
    assert remaining == ["counter_999999.db", f"gauge_livesum_{os.getpid()}.db"]


def test_two_real_workers_aggregate_and_a_killed_worker_does_not_linger(tmp_path: Path) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "FE_ENVIRONMENT": "test",
        "FE_LOGGING__ACCESS_LOG": "false",
        "FE_RATE_LIMIT__ENABLED": "false",
    }
    with UvicornProcess("tests.metrics_app:app", env=env, cwd=tmp_path, workers=2) as server:
        base = server.url
        deadline = time.monotonic() + 30
        pids: set[str] = set()
        while len(pids) < 2:
            with contextlib.suppress(httpx2.TransportError):
                # New connections spread over the workers; collect both PIDs.
                pids.add(httpx2.get(f"{base}/pid", timeout=2).text)
            if time.monotonic() > deadline:
                pytest.fail(f"did not reach two workers (saw {pids})")
        for _ in range(40):
            httpx2.get(f"{base}/work")
        text = httpx2.get(f"{base}/metrics").text
        total = samples(text, "http_requests_total")[
            (("method", "GET"), ("route", "/work"), ("status", "200"))
        ]
        assert total == 40  # the sum over both workers
        per_pid = {path.name for path in multiproc.glob("counter_*.db")}
        assert len(per_pid) >= 2
        # Kill one worker mid-request: its in-progress gauge must not linger.
        victim = int(sorted(pids)[0])
        os.kill(victim, signal.SIGKILL)
        # Scrape until the scrape is served (a worker may be restarting); the dead
        # worker's live gauge must be gone from the first successful scrape on.
        text = ""
        for _ in range(50):
            with contextlib.suppress(httpx2.TransportError):
                text = httpx2.get(f"{base}/metrics", timeout=2).text
                break
            time.sleep(0.1)
        in_progress = samples(text, "http_requests_in_progress")
        assert all(value <= 1 for value in in_progress.values())  # only the scrape itself
        assert not (multiproc / f"gauge_livesum_{victim}.db").exists()


def test_standalone_endpoint_on_the_global_registry() -> None:
    endpoint = MetricsEndpoint()
    from starlette.applications import Starlette
    from starlette.routing import Route

    client = TestClient(Starlette(routes=[Route("/m", endpoint)]))
    assert "python_info" in client.get("/m").text


def test_zombie_workers_count_as_dead(tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to tell a zombie from a live process")
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not yet reaped
    try:
        for _ in range(100):
            state = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0]
            if state == "Z":
                break
            time.sleep(0.05)
        (tmp_path / f"gauge_livesum_{child.pid}.db").write_bytes(b"")
        assert cleanup_dead_processes(tmp_path) == [child.pid]
    finally:
        child.wait()


def test_an_exception_answered_by_an_inner_layer_is_still_counted() -> None:
    """The answering layer measures what it sent; the outer metrics still see the failure."""
    from fastapi_enterprise import AccessLogMiddleware

    app = FastAPI()

    @app.get("/crash")
    async def crash() -> None:
        raise KeyError("boom")

    registry = CollectorRegistry()
    app.add_middleware(AccessLogMiddleware)  # inner: answers the exception
    app.add_middleware(PrometheusMiddleware, registry=registry)
    response = TestClient(app).get("/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    labels = {"method": "GET", "route": "/crash"}
    exception = {**labels, "exception": "KeyError"}
    assert registry.get_sample_value("http_unhandled_exceptions_total", exception) == 1
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "500"}) == 1
    sent = registry.get_sample_value("http_response_size_bytes_sum", labels)
    assert sent == len(response.content)


def scrape_until(url: str, done: Any, timeout: float = 20.0) -> str:
    """Scrape until ``done(text)`` (the workers publish every second); the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx2.get(url, timeout=5).text
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def value(text: str, name: str, **labels: str) -> float:
    return samples(text, name).get(tuple(sorted(labels.items())), -1.0)


def promtool_or_fail() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but promtool is not installed")
        pytest.skip("promtool (Debian package prometheus) is not installed")
    return promtool


def series(text: str, name: str) -> list[str]:
    """Every series of ``name`` in a scrape, written as PromQL selectors."""
    found = []
    for family in parse_text(text):
        for sample in family.samples:
            if sample.name == name:
                labels = ",".join(f'{key}="{val}"' for key, val in sorted(sample.labels.items()))
                found.append(f"{name}{{{labels}}}")
    assert found, f"{name} is not in the scrape"
    return found


def assert_alerts_fire_on(healthy: str, outage: str, tmp_path: Path) -> None:
    """Check each rate-limit alert fires on the series a real scrape has.

    The shipped rules get those series (names and labels as they are), with values that
    move as in an outage. A rule that names a metric or a label the library does not
    export never fires here.
    """
    promtool = promtool_or_fail()
    rejected = 'ratelimit_decisions_total{decision="rejected"}'
    overloaded = 'ratelimit_decisions_total{decision="overloaded"}'
    inputs = [
        *({"series": s, "values": "0 0 1x20"} for s in series(outage, "ratelimit_breaker_open")),
        *(
            {"series": s, "values": "0+30x22"}
            for s in series(outage, "ratelimit_storage_errors_total")
        ),
        *(
            {"series": s, "values": "0+1200x22" if s == rejected else "0+5x22"}
            if s in (rejected, overloaded)
            else {"series": s, "values": "0x22"}
            for s in series(healthy, "ratelimit_decisions_total")
        ),
    ]
    alerts = ["RateLimitStorageDown", "RateLimitStorageErrors", "RateLimitOverloaded"]
    alerts.append("RateLimitRejectionsSpike")
    tests = {
        "rule_files": [str(ROOT / "docs/metrics/alerts.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"}})',
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "{}", "value": 1}],
                    }
                    for alert in alerts
                ],
            }
        ],
    }
    path = tmp_path / "alerts.test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    result = subprocess.run(  # noqa: S603 - a fixed local binary
        [promtool, "test", "rules", str(path)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    lint = subprocess.run(  # noqa: S603
        [promtool, "check", "metrics"], input=outage.encode(), capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()


def test_log_loss_alerts_fire_on_the_exported_series(tmp_path: Path) -> None:
    """The shipped log-loss alerts, on the series a scrape has: each fires for its output.

    Lines dropped by stdout and failed writes to the file, from the third minute; until
    then nothing fires.
    """
    promtool = promtool_or_fail()
    scrape = TestClient(make_app()).get("/metrics").text
    losing = {
        'log_lines_dropped_total{output="stdout"}': "0 0 40+40x20",
        'log_write_errors_total{output="file"}': "0 0 1+1x20",
    }
    inputs = [
        {"series": series_, "values": losing.get(series_, "0x22")}
        for name in ("log_lines_dropped_total", "log_write_errors_total")
        for series_ in series(scrape, name)
    ]
    assert len(inputs) == 6, inputs  # stdout, file and syslog, each with its series

    def firing(alert: str, output: str | None, at: str) -> dict[str, Any]:
        expected = [{"labels": f'{{output="{output}"}}', "value": 1}] if output else []
        expr = f'count by (output) (ALERTS{{alertname="{alert}",alertstate="firing"}})'
        return {"expr": expr, "eval_time": at, "exp_samples": expected}

    tests = {
        "rule_files": [str(ROOT / "docs/metrics/alerts.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    firing("LogLinesDropped", None, "1m"),
                    firing("LogWriteErrors", None, "1m"),
                    firing("LogLinesDropped", "stdout", "10m"),
                    firing("LogWriteErrors", "file", "10m"),
                ],
            }
        ],
    }
    path = tmp_path / "log-alerts.test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    result = subprocess.run(  # noqa: S603 - a fixed local binary
        [promtool, "test", "rules", str(path)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@pytest.mark.redis
@pytest.mark.parametrize("preload", [False, True])
def test_rate_limit_metrics_reach_a_gunicorn_multiprocess_scrape(
    own_redis: RedisProcess, tmp_path: Path, preload: bool
) -> None:
    """Two gunicorn workers, PROMETHEUS_MULTIPROC_DIR: the rate-limit metrics are there.

    The scrape sums both workers' decisions, shows a Redis outage, and the shipped alerts
    fire on what it exports (the scrape-time collector used to vanish in this mode:
    issue 12, D18).
    """
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "FE_ENVIRONMENT": "test",
        "FE_LOGGING__ACCESS_LOG": "false",
        "FE_RATE_LIMIT__DEFAULT": "5/minute",
        "FE_RATE_LIMIT__STORAGE_URL": own_redis.url,
        "FE_RATE_LIMIT__TIMEOUT": "0.2",
        "FE_RATE_LIMIT__BREAKER_COOLDOWN": "60",
        "FE_RATE_LIMIT__EXEMPT_PATHS": "/health,/metrics,/pid",
    }
    with GunicornProcess(
        "tests.metrics_app:app", env=env, cwd=tmp_path, workers=2, preload=preload
    ) as server:
        server.wait_until_serving("/health/live")
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2:  # both workers serve
            with contextlib.suppress(httpx2.TransportError):
                pids.add(httpx2.get(f"{server.url}/pid", timeout=2).text)
            assert time.monotonic() < deadline, f"did not reach two workers (saw {pids})"
        codes = [
            httpx2.get(f"{server.url}/work", headers={"Connection": "close"}).status_code
            for _ in range(20)
        ]
        assert sorted(codes) == [200] * 5 + [429] * 15
        scrape = f"{server.url}/metrics"

        def decided(text: str) -> bool:
            return (
                value(text, "ratelimit_decisions_total", decision="allowed")
                + value(text, "ratelimit_decisions_total", decision="rejected")
                >= 20
            )

        healthy = scrape_until(scrape, decided)
        assert value(healthy, "ratelimit_decisions_total", decision="allowed") == 5
        assert value(healthy, "ratelimit_decisions_total", decision="rejected") == 15
        assert value(healthy, "ratelimit_storage_errors_total") == 0
        assert value(healthy, "ratelimit_breaker_open") == 0

        own_redis.stop()
        for _ in range(10):
            httpx2.get(f"{server.url}/work", headers={"Connection": "close"})
        outage = scrape_until(scrape, lambda text: value(text, "ratelimit_breaker_open") == 1)
        assert value(outage, "ratelimit_breaker_open") == 1
        assert value(outage, "ratelimit_storage_errors_total") >= 1
        assert value(outage, "ratelimit_decisions_total", decision="fail_open") >= 1
    assert_alerts_fire_on(healthy, outage, tmp_path)


def _measured_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, CollectorRegistry, CollectorRegistry]:
    """One app measured by two layers: the outer one tallies, the inner one observes.

    The inner layer is built as in multiprocess mode (each request written to its
    metrics at once), with its values still in memory. A request-ID layer outside both
    gives the exemplars.
    """
    import prometheus_client.values

    from fastapi_enterprise import RequestIDMiddleware

    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": item_id, "echo": body}

    @app.get("/big")
    async def big() -> dict[str, str]:
        return {"data": "x" * 150_000}

    tallied, direct = CollectorRegistry(), CollectorRegistry()
    with monkeypatch.context() as patched:
        patched.setattr(prometheus_client.values.MutexValue, "_multiprocess", True)
        inner = PrometheusMiddleware(app, registry=direct)
    outer = PrometheusMiddleware(inner, registry=tallied)
    assert inner._tallies is None
    assert outer._tallies is not None
    return RequestIDMiddleware(outer), tallied, direct


def _exposed(registry: CollectorRegistry) -> dict[tuple[str, tuple[Any, ...]], Any]:
    """Every HTTP sample's value and exemplar labels, but durations only by count.

    The outer layer's durations include the inner one's, so a request may fall in
    another duration bucket (and leave its exemplar there): those are compared by
    :func:`_duration_exemplars` instead.
    """
    from prometheus_client.openmetrics.exposition import generate_latest

    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if not sample.name.startswith("http_") or sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            exemplar = sample.exemplar.labels if sample.exemplar is not None else None
            if sample.name == "http_request_duration_seconds_sum":
                found[key] = sample.value > 0
            elif sample.name == "http_request_duration_seconds_bucket":
                if sample.labels["le"] == "+Inf":
                    found[key] = (sample.value, None)
            else:
                found[key] = (sample.value, exemplar)
    return found


def _duration_exemplars(registry: CollectorRegistry) -> dict[tuple[str, str], set[str]]:
    """The request IDs of the duration exemplars, by method and route."""
    from prometheus_client.openmetrics.exposition import generate_latest

    found: dict[tuple[str, str], set[str]] = {}
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if sample.name == "http_request_duration_seconds_bucket" and sample.exemplar:
                series = (sample.labels["method"], sample.labels["route"])
                found.setdefault(series, set()).add(sample.exemplar.labels["request_id"])
    return found


def test_tallied_requests_expose_what_observing_each_request_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same series, counts, buckets, sizes and exemplars as observing each request.

    Collected between rounds of requests, so that what one collection added is not
    added again by the next.
    """
    app, tallied, direct = _measured_twice(monkeypatch)
    client = TestClient(app)
    requests: list[tuple[str, str, Any]] = [
        ("POST", "/items/1", {"a": 1}),
        ("POST", "/items/2", {"b": "x" * 5_000}),
        ("POST", "/items/x", {}),
        ("GET", "/big", None),
        ("GET", "/nowhere", None),
        ("BREW", "/items/3", None),
    ]
    for round_ in range(3):
        for method, path, body in requests:
            headers = {"X-Request-ID": f"exemplar-{round_}-{path[-1]}"}
            client.request(method, path, json=body, headers=headers)
        exposed = _exposed(tallied)
        assert exposed == _exposed(direct)
        created = (("method", "POST"), ("route", "/items/{item_id}"), ("status", "200"))
        assert exposed["http_requests_total", created] == (2.0 * (round_ + 1), None)
        large = (("le", "1e+06"), ("method", "GET"), ("route", "/big"))
        assert exposed["http_response_size_bytes_bucket", large][0] == round_ + 1
        # The latest request of a series always leaves its exemplar in its bucket.
        for registry in (tallied, direct):
            assert f"exemplar-{round_}-g" in _duration_exemplars(registry)["GET", "/big"]
        assert exposed["http_requests_in_progress", (("method", "GET"),)] == (0.0, None)


def test_requests_from_a_second_thread_are_observed_at_once() -> None:
    """Only one thread tallies: another event loop's requests are counted all the same."""
    registry = CollectorRegistry()
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    measured = PrometheusMiddleware(app, registry=registry)

    def serve(requests: int) -> None:
        async def run() -> None:
            transport = httpx2.ASGITransport(app=measured)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(requests):
                    assert (await client.get("/ping")).status_code == 200

        asyncio.run(run())

    serve(3)  # this thread tallies from now on
    other = threading.Thread(target=serve, args=(4,))
    other.start()
    other.join()
    serve(2)
    labels = {"method": "GET", "route": "/ping", "status": "200"}
    assert registry.get_sample_value("http_requests_total", labels) == 9
    count = {"method": "GET", "route": "/ping"}
    assert registry.get_sample_value("http_request_duration_seconds_count", count) == 9
    assert registry.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0
    assert measured._owner == threading.get_ident()
