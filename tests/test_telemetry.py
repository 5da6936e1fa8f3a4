"""OpenTelemetry through FastAPI's own telemetry, exported to a real OTLP/HTTP receiver.

The receiver (tests/otlp_receiver.py) decodes what the SDK's OTLP exporter sends with
opentelemetry-proto; the redaction tests search the raw exported bytes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("prometheus_client")

from fastapi import FastAPI, Header
from fastapi.testclient import TestClient
from opentelemetry import trace
from pydantic import BaseModel

from fastapi_enterprise import EnterpriseSettings, install
from tests.conftest import UvicornProcess
from tests.otlp_receiver import OTLPReceiver

SECRETS = {
    "query token": "qtok-7f3a91c2",
    "query password": "qpass-55e0d1",
    "query api_key": "qkey-0a9b8c7d",
    "query sig": "qsig-c0ffee11",
    "authorization header": "hdr-bearer-2b7e1516",
    "cookie header": "hdr-cookie-28aed2a6",
    "api key header": "hdr-apikey-abf71588",
    "body password": "body-pass-09cf4f3c",
    "validation input": "val-secret-4f3c762e",
    "exception password": "exc-pass-a8b3e9d1",
    "exception dsn password": "exc-dsn-5c1f0b7e",
}


class Login(BaseModel):
    username: str
    password: str
    attempts: int


def otel_settings(receiver: OTLPReceiver, **otel: Any) -> EnterpriseSettings:
    return EnterpriseSettings(
        environment="test",
        app={"name": "shop"},
        metrics={"enabled": True},
        otel={"enabled": True, "endpoint": receiver.url, "timeout": 2, **otel},
    )


def traced_app(settings: EnterpriseSettings) -> FastAPI:
    app = FastAPI(**settings.fastapi_kwargs())
    install(app, settings)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/search")
    async def search(
        authorization: str = Header(""), cookie: str = Header(""), x_api_key: str = Header("")
    ) -> dict[str, bool]:
        # What an instrumentation capturing request headers records on the span.
        span = trace.get_current_span()
        span.set_attribute("http.request.header.authorization", [authorization])
        span.set_attribute("http.request.header.cookie", [cookie])
        span.set_attribute("http.request.header.x-api-key", [x_api_key])
        return {"found": True}

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        return {"user": body.username}

    @app.get("/crash")
    async def crash() -> None:
        password = SECRETS["exception password"]
        dsn = f"postgresql://app:{SECRETS['exception dsn password']}@db:5432/shop"
        raise RuntimeError(f"could not connect: password={password} url={dsn}")

    return app


def run(app: FastAPI, *paths: str) -> None:
    with TestClient(app) as client:  # the lifespan's end flushes the exporters
        for path in paths:
            assert client.get(path).status_code == 200


def test_a_span_named_by_its_route_template_reaches_the_collector(
    receiver: OTLPReceiver,
) -> None:
    run(traced_app(otel_settings(receiver)), "/items/7")
    spans = receiver.spans()
    assert [span.name for span in spans] == ["GET /items/{item_id}"]
    attributes = {kv.key: kv.value.string_value for kv in spans[0].attributes}
    assert attributes["http.route"] == "/items/{item_id}"
    resource = receiver.signal("/v1/traces")[0].message.resource_spans[0].resource
    service = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert service["service.name"] == "shop"
    assert service["deployment.environment.name"] == "test"


def test_probes_scrapes_and_docs_are_not_traced(receiver: OTLPReceiver) -> None:
    run(traced_app(otel_settings(receiver)), "/health/live", "/metrics", "/items/1")
    assert [span.name for span in receiver.spans()] == ["GET /items/{item_id}"]


def test_a_sample_ratio_of_zero_exports_no_span(receiver: OTLPReceiver) -> None:
    run(traced_app(otel_settings(receiver, sample_ratio=0)), "/items/1", "/items/2")
    assert receiver.spans() == []


def test_without_the_otel_section_nothing_changes_and_nothing_is_exported(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    settings = EnterpriseSettings(environment="test")
    assert "telemetry" not in settings.fastapi_kwargs()
    app = FastAPI(**settings.fastapi_kwargs())
    install(app, settings)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    run(app, "/items/1")
    assert receiver.received == []


def test_the_endpoint_comes_from_the_standard_variable_when_not_set(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("FE_OTEL__ENABLED", "true")
    monkeypatch.setenv("FE_OTEL__HEADERS", '{"x-collector-key": "collector-secret"}')
    settings = EnterpriseSettings(environment="test")
    assert "collector-secret" not in repr(settings)
    assert "collector-secret" not in str(settings.safe_dump())
    run(traced_app(settings), "/items/3")
    assert len(receiver.spans()) == 1
    assert receiver.signal("/v1/traces")[0].headers["x-collector-key"] == "collector-secret"


def test_no_planted_secret_leaves_through_traces_or_logs(receiver: OTLPReceiver) -> None:
    app = traced_app(otel_settings(receiver))
    query = (
        f"token={SECRETS['query token']}&password={SECRETS['query password']}"
        f"&api_key={SECRETS['query api_key']}&sig={SECRETS['query sig']}&page=2"
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        searched = client.get(
            f"/search?{query}",
            headers={
                "Authorization": f"Bearer {SECRETS['authorization header']}",
                "Cookie": f"session={SECRETS['cookie header']}",
                "X-API-Key": SECRETS["api key header"],
            },
        )
        assert searched.status_code == 200
        logged_in = client.post(
            "/login", json={"username": "ana", "password": SECRETS["body password"], "attempts": 1}
        )
        assert logged_in.status_code == 200
        refused = client.post(
            "/login",
            json={"username": "ana", "password": "x", "attempts": SECRETS["validation input"]},
        )
        assert refused.status_code == 422
        assert client.get("/crash").status_code == 500

    raw = receiver.raw()
    leaked = {name: value for name, value in SECRETS.items() if value.encode() in raw}
    assert leaked == {}
    # The export did happen, with the non-secret parts intact.
    names = sorted(span.name for span in receiver.spans())
    assert names == ["GET /crash", "GET /search", "POST /login", "POST /login"]
    search = next(span for span in receiver.spans() if span.name == "GET /search")
    attributes = {kv.key: kv.value for kv in search.attributes}
    assert "page=2" in attributes["url.query"].string_value
    assert "token=" in attributes["url.query"].string_value
    events = {record.event_name for record in receiver.log_records()}
    assert "fastapi.validation.failed" in events
    # The library answers the unhandled error inside FastAPI's span: it records it there.
    crash = next(span for span in receiver.spans() if span.name == "GET /crash")
    assert crash.status.code == crash.status.STATUS_CODE_ERROR
    (event,) = [event for event in crash.events if event.name == "exception"]
    exception = {kv.key: kv.value.string_value for kv in event.attributes}
    assert exception["exception.type"] == "RuntimeError"
    assert exception["exception.message"].startswith("could not connect: password=")
    assert "postgresql://app:" in exception["exception.message"]
    assert "raise RuntimeError" in exception["exception.stacktrace"]


def prometheus_count(client: TestClient, route: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == route:
                total += sample.value
    return total


def otlp_request_count(receiver: OTLPReceiver, route: str) -> int:
    count = 0
    for metric in receiver.metrics():
        if metric.name != "http.server.request.duration":
            continue
        for point in metric.histogram.data_points:
            labels = {kv.key: kv.value.string_value for kv in point.attributes}
            if labels.get("http.route") == route:
                count += point.count
    return count


@pytest.mark.parametrize("otel_metrics", [False, True])
def test_each_backend_counts_a_request_once(receiver: OTLPReceiver, otel_metrics: bool) -> None:
    app = traced_app(otel_settings(receiver, metrics=otel_metrics))
    with TestClient(app) as client:
        for item in range(3):
            assert client.get(f"/items/{item}").status_code == 200
        assert prometheus_count(client, "/items/{item_id}") == 3
    assert otlp_request_count(receiver, "/items/{item_id}") == (3 if otel_metrics else 0)
    if not otel_metrics:
        assert receiver.signal("/v1/metrics") == []


def test_a_stalled_collector_fails_no_request(receiver: OTLPReceiver) -> None:
    """Exports are batched in the SDK's thread; the request path never waits on them."""
    app = traced_app(otel_settings(receiver, timeout=1))
    receiver.stall()
    with TestClient(app) as client:
        statuses = [client.get(f"/items/{item}").status_code for item in range(50)]
        receiver.release()
    assert statuses == [200] * 50


def test_a_dead_collector_fails_no_request() -> None:
    settings = EnterpriseSettings(
        environment="test",
        # Port 9 (discard) on loopback: nothing listens, connections are refused.
        otel={"enabled": True, "endpoint": "http://127.0.0.1:9", "timeout": 1},
    )
    app = traced_app(settings)
    with TestClient(app) as client:
        statuses = [client.get(f"/items/{item}").status_code for item in range(50)]
    assert statuses == [200] * 50


def test_install_refuses_an_app_not_built_from_the_settings(receiver: OTLPReceiver) -> None:
    with pytest.raises(RuntimeError, match=r"FastAPI\(\*\*settings.fastapi_kwargs\(\)\)"):
        install(FastAPI(), otel_settings(receiver))


def test_the_settings_build_their_providers_once(receiver: OTLPReceiver) -> None:
    settings = otel_settings(receiver)
    first = settings.fastapi_kwargs()["telemetry"]
    second = settings.fastapi_kwargs()["telemetry"]
    assert first["tracer_provider"] is second["tracer_provider"]
    assert first["auto_configure"] is False  # FastAPI adds no unredacted exporter
    assert first["metrics"] is False
    assert first["operation_spans"] is False


def test_an_endpoint_with_credentials_is_masked_in_dumps_and_errors() -> None:
    settings = EnterpriseSettings(otel={"endpoint": "https://user:hunter2pw@collector:4318"})
    assert "hunter2pw" not in str(settings.safe_dump())
    assert "hunter2pw" not in repr(settings)
    with pytest.raises(ValueError, match="otel") as caught:
        EnterpriseSettings(otel={"endpoint": "ftp://user:hunter2pw@collector"})
    assert "hunter2pw" not in str(caught.value)


SERVER_APP = """
from fastapi import FastAPI
from fastapi_enterprise import EnterpriseSettings, install

settings = EnterpriseSettings()
app = FastAPI(**settings.fastapi_kwargs())
install(app, settings)


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}
"""


def serve(tmp_path: Path, env: dict[str, str]) -> UvicornProcess:
    (tmp_path / "traced.py").write_text(SERVER_APP, encoding="utf-8")
    root = str(Path(__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), root, os.environ.get("PYTHONPATH")]))
    full = {**os.environ, "PYTHONPATH": pythonpath, "FE_ENVIRONMENT": "test", **env}
    return UvicornProcess("traced:app", env=full, cwd=tmp_path, capture_stderr=True)


def test_sigterm_flushes_the_spans_still_in_the_batch(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    """The batch processor waits up to 5 s; a graceful stop must not drop its spans."""
    env = {"FE_OTEL__ENABLED": "true", "FE_OTEL__ENDPOINT": receiver.url}
    with serve(tmp_path, env) as server:
        server.wait_until_serving("/health/live")
        for item in range(5):
            assert httpx2.get(f"{server.url}/items/{item}", timeout=5).status_code == 200
        assert receiver.spans() == []  # still in the batch
        server.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown.
        assert server.wait(timeout=30) == -signal.SIGTERM, server.stderr.decode(errors="replace")
    assert b"Traceback" not in server.stderr, server.stderr.decode(errors="replace")
    assert len(receiver.spans()) == 5


def test_fastapis_environment_route_is_redacted_too(receiver: OTLPReceiver, tmp_path: Path) -> None:
    """FASTAPI_OTEL_AUTO_CONFIGURE: FastAPI attaches its exporter to our global provider."""
    env = {"FASTAPI_OTEL_AUTO_CONFIGURE": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    secret = SECRETS["query token"]
    with serve(tmp_path, env) as server:
        server.wait_until_serving("/health/live")
        answer = httpx2.get(f"{server.url}/items/1?token={secret}&page=3", timeout=5)
        assert answer.status_code == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == -signal.SIGTERM, server.stderr.decode(errors="replace")
    spans = receiver.spans()
    assert [span.name for span in spans if span.name.startswith("GET /items")] == [
        "GET /items/{item_id}"
    ]
    assert secret.encode() not in receiver.raw()
    query = next(
        kv.value.string_value for span in spans for kv in span.attributes if kv.key == "url.query"
    )
    assert "page=3" in query


def test_a_processor_the_app_adds_sees_only_redacted_spans(receiver: OTLPReceiver) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    settings = otel_settings(receiver)
    app = traced_app(settings)
    own = InMemorySpanExporter()
    provider = settings.telemetry().tracer_provider
    assert provider is not None
    provider.add_span_processor(SimpleSpanProcessor(own))
    secret = SECRETS["query token"]
    with TestClient(app) as client:
        assert client.get(f"/items/1?token={secret}").status_code == 200
    (span,) = own.get_finished_spans()
    assert span.attributes is not None
    assert secret not in str(span.attributes["url.query"])
    assert str(span.attributes["url.query"]).startswith("token=")


def test_a_log_record_the_app_emits_is_redacted_before_export(receiver: OTLPReceiver) -> None:
    settings = otel_settings(receiver)
    app = traced_app(settings)
    provider = settings.telemetry().logger_provider
    assert provider is not None
    password = SECRETS["exception password"]
    with TestClient(app):
        provider.get_logger("shop").emit(
            body={"event": "login failed", "password": password, "user": "ana"},
            attributes={"detail": f"retry with password={password}", "api_key": password},
        )
    raw = receiver.raw()
    assert password.encode() not in raw
    assert b"login failed" in raw
    assert b"ana" in raw
