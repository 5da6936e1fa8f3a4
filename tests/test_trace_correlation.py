"""Log lines, the access line, exemplars and the request ID agree with the exported trace.

FastAPI's telemetry is enabled the way its docs show: an SDK ``TracerProvider`` passed
as ``FastAPI(telemetry={"tracer_provider": ...})``, here with the SDK's in-memory
exporter; the OTLP path is covered in tests/test_telemetry.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("prometheus_client")

from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from fastapi_enterprise import EnterpriseSettings, install
from tests.conftest import LogCapture

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{INCOMING_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    yield exported
    exported.shutdown()


def settings(**sections: Any) -> EnterpriseSettings:
    return EnterpriseSettings(environment="test", metrics={"enabled": True}, **sections)


def traced_app(
    exporter: InMemorySpanExporter, options: EnterpriseSettings, **provider: Any
) -> FastAPI:
    tracer_provider = TracerProvider(**provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={"tracer_provider": tracer_provider, "metrics": False})
    install(app, options)

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        structlog.get_logger("app").info("looking up")
        logging.getLogger("app.stdlib").info("stdlib too")
        return {"id": order_id}

    return app


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [span for span in exporter.get_finished_spans() if span.name.startswith("GET")]
    return span


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_every_line_of_a_traced_request_carries_the_exported_ids(
    capture_logs: Any, exporter: InMemorySpanExporter
) -> None:
    options = settings(logging={"trace_url": "https://grafana.example/explore?traceId={trace_id}"})
    logs: LogCapture = capture_logs(options)
    response = TestClient(traced_app(exporter, options)).get("/orders/5")
    assert response.status_code == 200
    trace_id, span_id = ids(server_span(exporter))
    lines = [
        line
        for line in logs.lines()
        if line["event"] in {"looking up", "stdlib too", "http.request"}
    ]
    assert len(lines) == 3
    assert {line["trace_id"] for line in lines} == {trace_id}
    (access,) = [line for line in lines if line["event"] == "http.request"]
    assert access["span_id"] == span_id
    # FastAPI's operation spans are on here: the endpoint logs inside its own span.
    spans = {ids(span)[1]: span.name for span in exporter.get_finished_spans()}
    assert {spans[line["span_id"]] for line in lines if line is not access} == {"fastapi.endpoint"}
    assert access["trace_url"] == f"https://grafana.example/explore?traceId={trace_id}"
    assert all("trace_url" not in line for line in lines if line is not access)
    # Beside, by default: the request ID is its own value.
    assert response.headers["x-request-id"] != trace_id
    assert access["request_id"] == response.headers["x-request-id"]
    structlog.get_logger("app").info("after the request")
    assert "trace_id" not in logs.lines()[-1]


def test_an_incoming_traceparent_is_continued_and_logged(
    capture_logs: Any, exporter: InMemorySpanExporter
) -> None:
    logs: LogCapture = capture_logs(settings())
    app = traced_app(exporter, settings())
    assert TestClient(app).get("/orders/1", headers={"traceparent": TRACEPARENT}).is_success
    trace_id, _ = ids(server_span(exporter))
    assert trace_id == INCOMING_TRACE
    assert {line.get("trace_id") for line in logs.events("looking up")} == {INCOMING_TRACE}


@pytest.mark.parametrize("incoming", [None, TRACEPARENT])
def test_the_request_id_is_the_trace_id_when_asked(
    exporter: InMemorySpanExporter, incoming: str | None
) -> None:
    """A new trace, or one continued from the client: the response names it."""
    options = settings(request_id={"use_traceparent": True})
    headers = {"traceparent": incoming} if incoming else {}
    response = TestClient(traced_app(exporter, options)).get("/orders/2", headers=headers)
    trace_id, _ = ids(server_span(exporter))
    assert response.headers["x-request-id"] == trace_id
    if incoming:
        assert trace_id == INCOMING_TRACE


def test_without_trusting_incoming_ids_a_client_trace_is_not_the_request_id(
    exporter: InMemorySpanExporter,
) -> None:
    options = settings(request_id={"use_traceparent": True, "trust_incoming": False})
    client = TestClient(traced_app(exporter, options))
    continued = client.get("/orders/3", headers={"traceparent": TRACEPARENT})
    assert continued.headers["x-request-id"] != INCOMING_TRACE
    fresh = client.get("/orders/4")
    trace_ids = {ids(span)[0] for span in exporter.get_finished_spans()}
    assert fresh.headers["x-request-id"] in trace_ids


def duration_exemplars(client: TestClient) -> list[dict[str, str]]:
    response = client.get("/metrics", headers={"Accept": OPENMETRICS})
    return [
        sample.exemplar.labels
        for family in text_string_to_metric_families(response.text)  # type: ignore[no-untyped-call]
        if family.name == "http_request_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    ]


def test_exemplars_carry_the_trace_when_one_is_active(exporter: InMemorySpanExporter) -> None:
    client = TestClient(traced_app(exporter, settings()))
    assert client.get("/orders/9").is_success
    trace_id, span_id = ids(server_span(exporter))
    assert {"trace_id": trace_id, "span_id": span_id} in duration_exemplars(client)


def test_a_dropped_trace_leaves_the_request_id_in_exemplars_and_no_ids_in_logs(
    capture_logs: Any, exporter: InMemorySpanExporter
) -> None:
    """IDs of a trace the sampler dropped would point at nothing."""
    logs: LogCapture = capture_logs(settings())
    client = TestClient(traced_app(exporter, settings(), sampler=ALWAYS_OFF))
    response = client.get("/orders/9", headers={"X-Request-ID": "sampled-out-0001"})
    assert response.is_success
    assert exporter.get_finished_spans() == ()
    assert {"request_id": "sampled-out-0001"} in duration_exemplars(client)
    assert all("trace_id" not in line for line in logs.lines())


def test_without_telemetry_no_trace_field_appears(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    app = FastAPI()
    install(app, settings())

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        structlog.get_logger("app").info("looking up")
        return {"id": order_id}

    client = TestClient(app)
    assert client.get("/orders/1", headers={"X-Request-ID": "no-trace-0001"}).is_success
    assert logs.lines()
    assert all("trace_id" not in line and "span_id" not in line for line in logs.lines())
    assert {"request_id": "no-trace-0001"} in duration_exemplars(client)


@pytest.mark.parametrize(
    "template",
    ["https://t.example/{trace}", "https://t.example/none", "https://t.example/{trace_id", "{0}"],
)
def test_a_bad_trace_url_template_is_refused_at_startup(template: str) -> None:
    with pytest.raises(ValueError, match="trace_id"):
        EnterpriseSettings(logging={"trace_url": template})
