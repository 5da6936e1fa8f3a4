"""The fused pipeline answers, logs and measures exactly as the stack of its layers did.

One app, wrapped twice: by the five middleware classes stacked by hand (the order
``install()`` used) and by :class:`EnterprisePipeline` with the same options. The same
requests, with the same incoming request IDs, must give the same statuses, headers and
bodies, the same access lines (but for the timestamp and duration), the same logged
errors and the same metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from fastapi_enterprise import (
    AccessLogMiddleware,
    EnterpriseSettings,
    ProxyHeadersMiddleware,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    install,
    register_exception_handlers,
)
from fastapi_enterprise.metrics import PrometheusMiddleware
from fastapi_enterprise.middleware import EnterprisePipeline
from tests.conftest import LogCapture


def make_app() -> FastAPI:
    app = FastAPI()
    register_exception_handlers(app)

    @app.get("/ok/{item_id}")
    async def ok(item_id: int, q: str = "") -> dict[str, Any]:
        return {"id": item_id, "q": q}

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.get("/own-headers")
    async def own_headers() -> JSONResponse:
        # The app sets an ID of its own and a frame policy: the ID is replaced, the
        # app's frame policy kept.
        return JSONResponse(
            {"own": True},
            headers={"X-Request-ID": "app-chosen-id-1", "X-Frame-Options": "SAMEORIGIN"},
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom password=hunter2")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, "short and stout")

    @app.get("/late")
    async def late() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await asyncio.sleep(0)
            raise RuntimeError("after the start")

        return StreamingResponse(chunks())

    @app.get("/cancelled")
    async def cancelled() -> None:
        raise asyncio.CancelledError

    return app


def stacked(app: ASGIApp, registry: CollectorRegistry) -> ASGIApp:
    """The five layers as install() stacked them, outermost first."""
    return ProxyHeadersMiddleware(
        RequestIDMiddleware(
            SecurityHeadersMiddleware(
                AccessLogMiddleware(PrometheusMiddleware(app, registry=registry))
            )
        )
    )


def fused(app: ASGIApp, registry: CollectorRegistry) -> ASGIApp:
    return EnterprisePipeline(
        app,
        proxy_headers={},
        request_id={},
        security_headers={},
        access_log={},
        metrics={},
        metrics_registry=registry,
    )


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/ok/1?q=x&token=secret-token", {}),
    ("GET", "/ok/not-a-number", {}),
    ("POST", "/echo", {"json": {"a": [1, 2, 3], "b": "x" * 3000}}),
    ("POST", "/echo", {"content": b"{broken", "headers": {"content-type": "application/json"}}),
    ("GET", "/own-headers", {}),
    ("GET", "/boom", {}),
    ("GET", "/teapot", {}),
    ("GET", "/nowhere", {}),
    ("DELETE", "/ok/1", {}),
    ("BREW", "/ok/1", {}),
    ("GET", "/ok/2", {"headers": {"X-Request-ID": "bad id!"}}),
    ("GET", "/ok/3", {"headers": {"X-Forwarded-For": "203.0.113.9"}}),
    ("HEAD", "/ok/4", {}),
]


def exchange(app: ASGIApp) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    answers = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for number, (method, path, given) in enumerate(REQUESTS):
            options = dict(given)
            headers = {"X-Request-ID": f"pipeline-test-{number:04d}", **options.pop("headers", {})}
            response = client.request(method, path, headers=headers, **options)
            answers.append(
                (
                    response.status_code,
                    [(name, _known(value)) for name, value in response.headers.multi_items()],
                    response.content.replace(response.headers["x-request-id"].encode(), b"<id>"),
                )
            )
    return answers


def _known(value: Any) -> Any:
    """A request ID the test did not send (one the middleware generated) becomes ``<new>``."""
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return "<new>"
    return value


def metrics_of(registry: CollectorRegistry) -> dict[tuple[str, tuple[Any, ...]], Any]:
    found: dict[tuple[str, tuple[Any, ...]], Any] = {}
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            # Durations differ run to run: their buckets (and exemplars) are not compared.
            if sample.name.endswith("_created") or sample.name in (
                "http_request_duration_seconds_bucket",
                "http_request_duration_seconds_sum",
            ):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            exemplar = sample.exemplar.labels if sample.exemplar is not None else None
            if exemplar is not None:
                exemplar = {name: _known(value) for name, value in exemplar.items()}
            found[key] = (sample.value, exemplar)
    return found


def comparable(line: dict[str, Any]) -> dict[str, Any]:
    """A line without its time, and a traceback without its frames (the layers differ)."""
    if isinstance(line.get("exception"), list):
        line["exception"] = [
            {key: value for key, value in part.items() if key != "frames"}
            for part in line["exception"]
        ]
    return {
        key: _known(value) for key, value in line.items() if key not in ("timestamp", "duration_ms")
    }


def test_the_pipeline_answers_logs_and_measures_as_the_stack(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="production"))
    app = make_app()
    results = []
    for wrap in (stacked, fused):
        registry = CollectorRegistry()
        before = len(logs.lines())
        answers = exchange(wrap(app, registry))
        lines = [comparable(line) for line in logs.lines()[before:]]
        results.append((answers, lines, metrics_of(registry)))
    (stack_answers, stack_lines, stack_metrics), (answers, lines, metrics) = results
    assert answers == stack_answers
    assert lines == stack_lines
    assert metrics == stack_metrics

    # What the comparison covered, so that it cannot pass on two empty runs.
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 422, 200, 422, 200, 500, 418, 404, 405, 405, 200, 200, 405]
    own = dict(answers[4][1])
    assert own["x-request-id"] == "pipeline-test-0004"
    assert own["x-frame-options"] == "SAMEORIGIN"
    assert [name for name, _ in answers[4][1]].count("x-request-id") == 1
    crash = dict(answers[5][1])
    assert crash["x-request-id"] == "pipeline-test-0005"
    assert crash["x-content-type-options"] == "nosniff"
    access = [line for line in lines if line["event"] == "http.request"]
    assert len(access) == len(REQUESTS)
    assert access[0]["path"].startswith("/ok/1?q=x&token=")
    assert "secret-token" not in access[0]["path"]
    assert access[5]["status"] == 500
    assert sum("hunter2" in str(line) for line in lines) == 0
    requests = {key: value for key, value in metrics.items() if key[0] == "http_requests_total"}
    assert sum(value for value, _ in requests.values()) == len(REQUESTS)
    exceptions = {
        key: value for key, value in metrics.items() if key[0] == "http_unhandled_exceptions_total"
    }
    assert [value for value, _ in exceptions.values()] == [1.0]


@pytest.mark.parametrize("wrap", [stacked, fused], ids=["stack", "pipeline"])
def test_an_error_after_the_response_started_is_logged_once(wrap: Any, capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="production"))
    registry = CollectorRegistry()
    with TestClient(wrap(make_app(), registry), raise_server_exceptions=False) as client:
        response = client.get("/late", headers={"X-Request-ID": "pipeline-late-0001"})
    assert response.status_code == 200  # the status line was gone when it failed
    assert response.headers["x-request-id"] == "pipeline-late-0001"
    errors = [line for line in logs.lines() if line.get("exception")]
    assert len(errors) == 1
    (line,) = logs.events("http.request")
    assert (line["status"], line["error"]) == (500, "RuntimeError")
    labels = {"method": "GET", "route": "/late", "status": "500"}
    assert registry.get_sample_value("http_requests_total", labels) == 1


@pytest.mark.parametrize("wrap", [stacked, fused], ids=["stack", "pipeline"])
def test_a_cancelled_request_is_reported_and_not_answered(wrap: Any, capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="production"))
    registry = CollectorRegistry()
    app = wrap(make_app(), registry)
    # The test client's portal hands the cancellation over as concurrent.futures'.
    with TestClient(app) as client, pytest.raises(concurrent.futures.CancelledError):
        client.get("/cancelled")
    (line,) = logs.events("http.request")
    assert (line["status"], line["error"]) == (500, "CancelledError")
    labels = {"method": "GET", "route": "/cancelled", "exception": "CancelledError"}
    assert registry.get_sample_value("http_unhandled_exceptions_total", labels) == 1


def test_install_runs_the_pipeline_and_keeps_metrics_apart_behind_a_host_check() -> None:
    plain = FastAPI()
    install(plain, EnterpriseSettings(environment="test"))
    assert plain.user_middleware[0].cls.__name__ == "EnterprisePipeline"  # type: ignore[attr-defined]
    assert plain.user_middleware[0].kwargs["metrics"] is not None
    hosts = FastAPI()
    install(
        hosts, EnterpriseSettings(environment="test", security={"allowed_hosts": ["api.example"]})
    )
    names = [m.cls.__name__ for m in hosts.user_middleware]  # type: ignore[attr-defined]
    assert names[:3] == ["EnterprisePipeline", "TrustedHostMiddleware", "PrometheusMiddleware"]
    assert hosts.user_middleware[0].kwargs["metrics"] is None
    # The host check's 400 is logged, not measured, as before.
    client = TestClient(hosts)
    assert client.get("/nowhere", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/nowhere", headers={"host": "api.example"}).status_code == 404
