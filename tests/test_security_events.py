"""Security events: stable names, structured fields, flood control, emitted where they occur."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, SecurityEvent, install, security_event
from fastapi_enterprise.security_events import SECURITY_LOGGER, SecurityEventLogger
from tests.conftest import LogCapture


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/admin")
    async def admin() -> None:
        raise HTTPException(403, detail="Admins only.")

    @app.get("/")
    async def index() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="test"))
    return app


def security_lines(logs: LogCapture) -> list[dict[str, Any]]:
    return [line for line in logs.lines() if line["logger"] == SECURITY_LOGGER]


def test_auth_failure_is_recorded(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    TestClient(make_app()).get("/admin", headers={"X-Request-ID": "auth-fail-001"})
    (event,) = security_lines(logs)
    assert event["event"] == event["security_event"] == "auth.failure"
    assert event["status"] == 403
    assert event["route"] == "/admin"
    assert event["request_id"] == "auth-fail-001"
    assert event["level"] == "warning"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("X-Request-ID", "bad\x1b[31m-id-value")], "invalid"),
        ([("X-Request-ID", "x" * 500)], "too_long"),
        ([("X-Request-ID", "first-id-123"), ("X-Request-ID", "second-id-12")], "duplicated"),
    ],
)
def test_invalid_request_id_is_recorded_without_its_value(
    capture_logs: Any, headers: list[tuple[str, str]], reason: str
) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    TestClient(make_app()).get("/", headers=headers)
    (event,) = security_lines(logs)
    assert event["security_event"] == "request_id.invalid"
    assert event["reason"] == reason
    assert event["level"] == "info"
    text = logs.text()
    for _, value in headers:
        assert value not in text


def test_valid_or_absent_request_ids_record_nothing(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    client = TestClient(make_app())
    client.get("/")
    client.get("/", headers={"X-Request-ID": "fine-id-12345"})
    assert security_lines(logs) == []


def test_flood_of_one_event_is_suppressed_and_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([100.0] * 25 + [101.0])
    monkeypatch.setattr("fastapi_enterprise.security_events.time.monotonic", lambda: next(clock))
    events = SecurityEventLogger(logging.getLogger("test.security"), max_per_second=10)
    with caplog.at_level(logging.INFO, logger="test.security"):
        for n in range(25):
            events.emit(SecurityEvent.AUTH_FAILURE, attempt=n, name="clashing-field")
        events.emit("auth.failure", attempt=25)
    records = caplog.records
    assert len(records) == 11
    assert getattr(records[-1], "suppressed", None) == 15
    assert getattr(records[0], "name_", None) == "clashing-field"
    assert all(getattr(r, "security_event", None) == "auth.failure" for r in records)


def test_custom_event_names_and_disabled_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=SECURITY_LOGGER):
        security_event("account.locked", user_id=7)
        security_event("account.viewed", level=logging.DEBUG, user_id=7)
    (record,) = caplog.records
    assert record.getMessage() == "account.locked"
    assert record.user_id == 7  # type: ignore[attr-defined]


def test_deploy_check_warnings_are_security_events(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    install(FastAPI(), EnterpriseSettings(environment="staging"))
    found = {line["finding_id"] for line in security_lines(logs)}
    assert "security.secret_key_missing" in found
    assert all(line["security_event"] == "deploy_check.warning" for line in security_lines(logs))
