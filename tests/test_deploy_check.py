"""The deploy check finds each unsafe production setting; install() refuses errors."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_enterprise import DeployCheckError, EnterpriseSettings, install

STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


def safe(**overrides: object) -> EnterpriseSettings:
    values: dict[str, object] = {
        "environment": "production",
        "security": {"secret_key": STRONG_KEY, "allowed_hosts": ["api.example.com"]},
    }
    values.update(overrides)
    return EnterpriseSettings(**values)


def ids(settings: EnterpriseSettings) -> list[str]:
    return [finding.id for finding in settings.deploy_check()]


def test_safe_production_settings_have_no_findings() -> None:
    assert safe().deploy_check() == []


@pytest.mark.parametrize(
    ("security", "finding"),
    [
        ({}, "security.secret_key_missing"),
        ({"secret_key": ""}, "security.secret_key_missing"),
        ({"secret_key": "short"}, "security.secret_key_weak"),
        ({"secret_key": "a" * 64}, "security.secret_key_weak"),
        ({"secret_key": "changeme-changeme-changeme-0123456789"}, "security.secret_key_weak"),
        ({"secret_key": STRONG_KEY, "trusted_proxies": ["*"]}, "security.proxy_trust_all"),
        ({"secret_key": STRONG_KEY, "hsts_max_age": 3600}, "security.hsts_too_short"),
        ({"secret_key": STRONG_KEY, "hsts_max_age": 0}, "security.hsts_too_short"),
        (
            {"secret_key": STRONG_KEY, "hsts_preload": True, "hsts_include_subdomains": False},
            "security.hsts_preload_invalid",
        ),
    ],
)
def test_each_error_is_found(security: dict[str, object], finding: str) -> None:
    settings = safe(security={"allowed_hosts": ["api.example.com"], **security})
    findings = settings.deploy_check()
    assert finding in [f.id for f in findings]
    found = next(f for f in findings if f.id == finding)
    assert found.level == "error"
    assert found.fix


def test_well_formed_regex_and_origins_pass() -> None:
    settings = safe(
        security={
            "secret_key": STRONG_KEY,
            "cors_origins": ["*"],
            "cors_origin_regex": r"^https://[a-z0-9-]+\.example\.com$",
            "trusted_proxies": ["10.0.0.0/8", "192.168.1.1", "::1"],
            "hsts_preload": True,
            "allowed_hosts": ["api.example.com", "*.example.com"],
        }
    )
    assert settings.deploy_check() == []


def test_acknowledged_proxy_trust_and_any_host_are_warnings() -> None:
    settings = safe(
        security={
            "secret_key": STRONG_KEY,
            "trusted_proxies": ["*"],
            "trust_all_proxies_acknowledged": True,
            "allowed_hosts": ["*"],
        }
    )
    assert [(f.id, f.level) for f in settings.deploy_check()] == [
        ("security.proxy_trust_all", "warning"),
        ("security.allowed_hosts_any", "warning"),
    ]


def test_debug_is_an_error_and_public_docs_a_warning() -> None:
    findings = safe(app={"debug": True, "docs": True}).deploy_check()
    assert [(f.id, f.level) for f in findings] == [
        ("app.debug_enabled", "error"),
        ("app.docs_public", "warning"),
    ]


def test_install_refuses_production_with_every_error_named_and_no_secret() -> None:
    weak = "weak-but-secret-value"
    settings = safe(
        app={"debug": True},
        security={"secret_key": weak, "trusted_proxies": ["*"], "hsts_max_age": 60},
    )
    with pytest.raises(DeployCheckError) as caught:
        install(FastAPI(), settings)
    message = str(caught.value)
    for finding in (
        "app.debug_enabled",
        "security.secret_key_weak",
        "security.proxy_trust_all",
        "security.hsts_too_short",
    ):
        assert finding in message
    assert weak not in message
    assert len(caught.value.findings) == 4


def test_production_warnings_are_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        install(
            app,
            safe(
                app={"docs": True},
                security={"secret_key": STRONG_KEY, "allowed_hosts": ["testserver"]},
            ),
        )
    assert [r.finding_id for r in caplog.records] == ["app.docs_public"]  # type: ignore[attr-defined]
    assert TestClient(app).get("/docs").status_code == 200


def test_staging_logs_errors_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        install(FastAPI(), EnterpriseSettings(environment="staging"))
    assert "security.secret_key_missing" in [r.finding_id for r in caplog.records]  # type: ignore[attr-defined]


def test_development_runs_no_check(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="fastapi_enterprise.security"):
        install(FastAPI(), EnterpriseSettings())
    assert caplog.records == []
