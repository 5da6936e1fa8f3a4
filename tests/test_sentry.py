"""init_sentry(): real sentry-sdk, an in-process transport, every event scrubbed."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

sentry_sdk = pytest.importorskip("sentry_sdk")

from fastapi import FastAPI  # noqa: E402 - after the importorskip above
from fastapi.testclient import TestClient  # noqa: E402
from sentry_sdk.envelope import Envelope  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

from fastapi_enterprise import EnterpriseSettings, install  # noqa: E402
from fastapi_enterprise.sentry import init_sentry  # noqa: E402

SECRET = "hunter2-Zq8-secret"
DSN = "https://publickey@o0.ingest.example.invalid/1"


class CaptureTransport(Transport):
    """Keeps envelopes in memory instead of sending them anywhere."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "event" and item.payload.json is not None
        ]


@pytest.fixture
def transport() -> Iterator[CaptureTransport]:
    capture = CaptureTransport()
    yield capture
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    # Breadcrumbs live on the scopes, not the client: the next test starts without them.
    for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        scope.clear()


def settings(**sentry: Any) -> EnterpriseSettings:
    return EnterpriseSettings(
        environment="test",
        app={"name": "shop", "version": "1.2"},
        sentry={"dsn": DSN, **sentry},
        logging={"redact_keys": ["pin"]},
    )


def make_app(config: EnterpriseSettings, transport: CaptureTransport) -> FastAPI:
    app = FastAPI()

    @app.get("/crash")
    async def crash(pin: str = "") -> None:
        password = SECRET  # a local that must not be sent
        sentry_sdk.add_breadcrumb(
            message=f"calling postgresql://app:{password}@db/x",
            data={"api_token": SECRET, "step": 1},
        )
        raise RuntimeError(f"cannot connect to redis://:{password}@cache:6379")

    init_sentry(config, transport=transport, auto_enabling_integrations=False)
    install(
        app, config.model_copy(update={"sentry": config.sentry.model_copy(update={"dsn": None})})
    )
    return app


def test_unhandled_error_is_one_scrubbed_event_tagged_with_the_request_id(
    transport: CaptureTransport,
) -> None:
    app = make_app(settings(), transport)
    response = TestClient(app).get(
        f"/crash?pin={SECRET}&page=1",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Cookie": f"session={SECRET}",
            "X-Request-ID": "sentry-req-0001",
        },
    )
    assert response.status_code == 500
    sentry_sdk.flush()
    events = transport.events()
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["request_id"] == "sentry-req-0001"
    assert event["environment"] == "test"
    assert event["release"] == "shop@1.2"
    text = repr(transport.envelopes) + str(events)
    assert SECRET not in text
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    assert "redis://:**********@cache:6379" in exception["value"]
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
    crumbs = event["breadcrumbs"]["values"]
    crumb = next(c for c in crumbs if "postgresql" in c.get("message", ""))
    assert crumb["data"] == {"api_token": "**********", "step": 1}


def test_scrub_event_masks_request_data() -> None:
    from fastapi_enterprise.redaction import Redactor
    from fastapi_enterprise.sentry import scrub_event

    event = {
        "request": {
            "headers": {"Authorization": f"Basic {SECRET}", "X-Api-Key": SECRET, "Accept": "*/*"},
            "cookies": {"session": SECRET},
            "query_string": f"token={SECRET}&q=shoes",
            "url": f"https://u:{SECRET}@shop/x",
            "data": {"user": {"password": SECRET, "name": "ann"}},
        },
        "extra": {"client_secret": SECRET},
        "contexts": {"db": {"dsn": SECRET}},
        "logentry": {"message": f"login with password={SECRET}", "params": [{"token": SECRET}]},
        "message": f"Bearer {SECRET}",
        "breadcrumbs": [{"message": "ok", "data": {"secret": SECRET}}],
    }
    scrubbed = scrub_event(event, Redactor())
    assert SECRET not in repr(scrubbed)
    assert scrubbed["request"]["headers"]["Accept"] == "*/*"
    assert scrubbed["request"]["query_string"] == "token=**********&q=shoes"
    assert scrubbed["request"]["data"]["user"]["name"] == "ann"
    assert "tags" not in scrubbed  # no request in flight: no request ID tag


def test_without_a_dsn_nothing_is_initialised() -> None:
    assert init_sentry(EnterpriseSettings()) is False
    assert not sentry_sdk.get_client().is_active()


def test_install_initialises_sentry_when_a_dsn_is_set(transport: CaptureTransport) -> None:
    app = FastAPI()
    install(app, settings())
    client = sentry_sdk.get_client()
    assert client.is_active()
    assert client.options["data_collection"]["user_info"] is False
    assert client.options["include_local_variables"] is False


def test_the_module_names_its_extra_when_sentry_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from fastapi_enterprise._extras import MissingExtraError

    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    monkeypatch.delitem(sys.modules, "fastapi_enterprise.sentry", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'fastapi-enterprise\[sentry\]'"):
        importlib.import_module("fastapi_enterprise.sentry")
