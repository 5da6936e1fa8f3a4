"""The OpenTelemetry example exports as docs/how-to/opentelemetry.md says."""

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("opentelemetry.sdk")

from tests.otlp_receiver import OTLPReceiver


@pytest.fixture
def example(receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("FE_OTEL__ENABLED", "true")
    monkeypatch.setenv("FE_OTEL__ENDPOINT", receiver.url)
    sys.modules.pop("examples.otel.app", None)
    module = importlib.import_module("examples.otel.app")
    yield module
    sys.modules.pop("examples.otel.app", None)


def test_the_request_span_reaches_the_collector_when_the_app_stops(
    example: ModuleType, receiver: OTLPReceiver
) -> None:
    with TestClient(example.app) as client:
        assert client.get("/courses/sql?token=abc123secret").status_code == 200
    (span,) = receiver.spans()
    assert span.name == "GET /courses/{slug}"
    assert b"abc123secret" not in receiver.raw()
