"""The deploy check finds each unsafe production setting; install() refuses errors."""

from __future__ import annotations

import logging
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic_settings import SettingsConfigDict

from fastapi_enterprise import DeployCheckError, EnterpriseSettings, install
from fastapi_enterprise.deploy_check import (
    DEPLOY_CHECKS,
    estimate_entropy_bits,
    worker_processes,
)
from tests.conftest import GunicornProcess

STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"
SAFE_SECURITY: dict[str, object] = {
    "secret_key": STRONG_KEY,
    "allowed_hosts": ["api.example.com"],
    "trusted_proxies": ["10.0.1.0/24"],
}
SAFE_RATE_LIMIT: dict[str, object] = {"storage_url": "redis://cache.internal:6379/0"}
DOCS = Path(__file__).parent.parent / "docs" / "how-to" / "settings.md"


def safe_values(**overrides: Any) -> dict[str, Any]:
    """The values of :func:`safe`."""
    values: dict[str, object] = {
        "environment": "production",
        "security": SAFE_SECURITY,
        "rate_limit": SAFE_RATE_LIMIT,
    }
    values.update(overrides)
    return values


def safe(**overrides: Any) -> EnterpriseSettings:
    """Production settings with no finding; each section given replaces the safe one."""
    return EnterpriseSettings(**safe_values(**overrides))


def unsafe(section: str, **fields: object) -> EnterpriseSettings:
    """Safe production settings with ``fields`` changed in ``section``."""
    base = {"security": SAFE_SECURITY, "rate_limit": SAFE_RATE_LIMIT}.get(section, {})
    return safe(**{section: {**base, **fields}})


def ids(settings: EnterpriseSettings) -> list[str]:
    return [finding.id for finding in settings.deploy_check()]


def test_safe_production_settings_have_no_findings() -> None:
    assert safe().deploy_check() == []


UNSAFE_CONFIGURATIONS: list[tuple[str, dict[str, object], str, str]] = [
    # The configurations of issue 12, item 7.
    ("rate_limit", {"enabled": False}, "rate_limit.disabled", "warning"),
    ("security", {"csp": ""}, "security.csp_missing", "warning"),
    ("security", {"csp_report_only": True}, "security.csp_report_only", "warning"),
    (
        "security",
        {"csp": "script-src * 'unsafe-inline' 'unsafe-eval'"},
        "security.csp_unsafe_scripts",
        "error",
    ),
    ("security", {"referrer_policy": "unsafe-url"}, "security.referrer_policy_unsafe", "error"),
    ("security", {"secret_key": "0123456789" * 4}, "security.secret_key_weak", "error"),
    (
        "security",
        {"cors_origins": ["http://app.example.com"], "cors_allow_credentials": True},
        "security.cors_insecure_origin",
        "error",
    ),
    # Item 3: proxy trust covering public address space.
    ("security", {"trusted_proxies": ["0.0.0.0/0"]}, "security.proxy_trust_all", "error"),
    ("security", {"trusted_proxies": ["::/0"]}, "security.proxy_trust_all", "error"),
    ("security", {"trusted_proxies": ["*"]}, "security.proxy_trust_all", "error"),
    ("security", {"trusted_proxies": ["0.0.0.0/1"]}, "security.proxy_trust_public", "error"),
    (
        "security",
        {"trusted_proxies": ["10.0.0.0/8", "173.245.48.0/20"]},
        "security.proxy_trust_public",
        "error",
    ),
    ("security", {"trusted_proxies": ["2000::/3"]}, "security.proxy_trust_public", "error"),
    ("security", {"trusted_proxies": ["10.0.0.0/8"]}, "security.proxy_trust_wide", "warning"),
    ("security", {"trusted_proxies": ["fd00::/8"]}, "security.proxy_trust_wide", "warning"),
    # Item 6: limits keyed on the IP with no proxy trusted.
    ("security", {"trusted_proxies": []}, "rate_limit.ip_key_without_proxies", "warning"),
    # The rest of the settings, one by one.
    ("security", {"secret_key": None}, "security.secret_key_missing", "error"),
    ("security", {"secret_key": ""}, "security.secret_key_missing", "error"),
    ("security", {"secret_key": "short"}, "security.secret_key_weak", "error"),
    ("security", {"secret_key": "a" * 64}, "security.secret_key_weak", "error"),
    ("security", {"secret_key": "abc" * 16}, "security.secret_key_weak", "error"),
    (
        "security",
        {"secret_key": "qwertyuiopasdfghjklzxcvbnm1234567890"},
        "security.secret_key_weak",
        "error",
    ),
    (
        "security",
        {"secret_key": "changeme-changeme-changeme-0123456789"},
        "security.secret_key_weak",
        "error",
    ),
    (
        "security",
        {
            "cors_origin_regex": r"^https?://[a-z0-9-]+\.example\.com$",
            "cors_allow_credentials": True,
        },
        "security.cors_insecure_origin",
        "error",
    ),
    ("security", {"hsts_enabled": False}, "security.hsts_disabled", "error"),
    ("security", {"hsts_max_age": 3600}, "security.hsts_too_short", "error"),
    ("security", {"hsts_max_age": 0}, "security.hsts_too_short", "error"),
    (
        "security",
        {"hsts_preload": True, "hsts_include_subdomains": False},
        "security.hsts_preload_invalid",
        "error",
    ),
    (
        "security",
        {"hsts_include_subdomains": False},
        "security.hsts_no_subdomains",
        "warning",
    ),
    ("security", {"allowed_hosts": ["*"]}, "security.allowed_hosts_any", "warning"),
    ("security", {"csp": "default-src https:"}, "security.csp_unsafe_scripts", "error"),
    (
        "security",
        {"csp": "default-src 'self'; script-src 'self' 'unsafe-inline'"},
        "security.csp_unsafe_scripts",
        "error",
    ),
    (
        "security",
        {"csp": "default-src 'self'; script-src-elem data:"},
        "security.csp_unsafe_scripts",
        "error",
    ),
    (
        "security",
        {"csp": "frame-ancestors 'none'"},
        "security.csp_scripts_unrestricted",
        "warning",
    ),
    (
        "security",
        {"frame_options": "", "csp": "default-src 'none'"},
        "security.framing_allowed",
        "warning",
    ),
    (
        "security",
        {"frame_options": "", "csp": "default-src 'none'; frame-ancestors *"},
        "security.framing_allowed",
        "warning",
    ),
    (
        "security",
        {"referrer_policy": "no-referrer-when-downgrade"},
        "security.referrer_policy_full_url",
        "warning",
    ),
    (
        "security",
        {"referrer_policy": "no-referrer, unsafe-url"},
        "security.referrer_policy_unsafe",
        "error",
    ),
    ("rate_limit", {"storage_url": "memory://"}, "rate_limit.memory_storage", "warning"),
    ("rate_limit", {"default": ""}, "rate_limit.no_default", "warning"),
    ("rate_limit", {"shadow": True}, "rate_limit.shadow", "warning"),
    ("app", {"debug": True}, "app.debug_enabled", "error"),
    ("app", {"docs": True}, "app.docs_public", "warning"),
    ("metrics", {"allow_ips": ["0.0.0.0/0"]}, "metrics.allow_ips_public", "warning"),
    (
        "metrics",
        {"allow_ips": ["10.0.0.0/8", "198.51.100.0/24"]},
        "metrics.allow_ips_public",
        "warning",
    ),
    ("metrics", {"bearer_token": "scrape"}, "metrics.bearer_token_weak", "warning"),
    (
        "metrics",
        {"bearer_token": "changeme-prometheus-token"},
        "metrics.bearer_token_weak",
        "warning",
    ),
    ("database", {"echo": True}, "database.echo", "warning"),
    ("database", {"url": "sqlite:///./prod.db"}, "database.sqlite_in_production", "warning"),
    (
        "database",
        {"url": "mysql://app@db/app", "pool_recycle": -1},
        "database.recycle_above_idle_timeout",
        "warning",
    ),
    (
        "database",
        {"url": "postgresql://app@db/app", "server_idle_timeout": 600},
        "database.recycle_above_idle_timeout",
        "warning",
    ),
    ("body_limit", {"read_timeout": None}, "body_limit.no_read_timeout", "warning"),
    ("logging", {"level": "debug"}, "logging.debug_level", "warning"),
    (
        "sentry",
        {"dsn": "https://publickey@o1.ingest.sentry.io/42", "include_local_variables": True},
        "sentry.local_variables",
        "warning",
    ),
    (
        "otel",
        {
            "enabled": True,
            "endpoint": "http://collector.example:4318",
            "headers": {"x-api-key": "collector-key-0001"},
        },
        "otel.headers_in_clear",
        "error",
    ),
]
"""``(section, fields, finding ID, level)``: one unsafe production configuration per row."""


@pytest.mark.parametrize(("section", "fields", "finding", "level"), UNSAFE_CONFIGURATIONS)
def test_each_unsafe_setting_is_found(
    section: str, fields: dict[str, object], finding: str, level: str
) -> None:
    findings = unsafe(section, **fields).deploy_check()
    assert finding in [f.id for f in findings]
    found = next(f for f in findings if f.id == finding)
    assert found.level == level
    assert found.fix


def test_every_check_is_exercised_by_the_table_above() -> None:
    exercised = {finding for _section, _fields, finding, _level in UNSAFE_CONFIGURATIONS}
    exercised.add("rate_limit.memory_storage_multi_worker")  # needs a worker count: below
    exercised.add("database.password_in_url")  # needs a secrets directory: below
    assert exercised == {check.id for check in DEPLOY_CHECKS}


def test_the_documented_table_lists_exactly_the_checks() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The deploy check", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, re.MULTILINE)
    assert sorted(documented) == sorted(check.id for check in DEPLOY_CHECKS)
    assert len(documented) == len(set(documented))
    assert documented == [check.id for check in DEPLOY_CHECKS]  # in the order they run


def test_the_deploy_check_package_keeps_its_public_names() -> None:
    """One module became a package (registry, entropy, workers, checks by area)."""
    import fastapi_enterprise.deploy_check as package

    names = {
        "DEPLOY_CHECKS",
        "DeployCheck",
        "DeployCheckError",
        "Finding",
        "estimate_entropy_bits",
        "run_deploy_check",
        "worker_processes",
    }
    assert names <= set(package.__all__)
    assert package.run_deploy_check(safe()) == []
    assert {"Level", "Outcome"} <= set(vars(package))


@pytest.mark.parametrize(
    ("value", "weak"),
    [
        ("0123456789" * 4, True),
        ("abcdefghijklmnopqrstuvwxyz0123456789", True),
        ("9876543210" * 4, True),
        ("Password1234" * 3, True),
        (STRONG_KEY, False),
        ("4dd15995e1cf638c18cc299ee4e753a6", False),  # secrets.token_hex(16)
        ("xK338A5_Gyjg2BlH3ZCuJipMNf_89NqCPPkEHd5CiJg", False),  # secrets.token_urlsafe(32)
    ],
)
def test_entropy_estimate_sees_through_repeats_and_runs(value: str, weak: bool) -> None:
    assert (estimate_entropy_bits(value) < 128) is weak


def test_memory_storage_with_several_workers_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    findings = unsafe("rate_limit", storage_url="memory://").deploy_check()
    assert [(f.id, f.level) for f in findings] == [
        ("rate_limit.memory_storage_multi_worker", "error")
    ]
    assert "2 times" in findings[0].message


@pytest.mark.parametrize(
    ("environ", "argv", "workers"),
    [
        ({}, ["app.py"], None),
        ({"WEB_CONCURRENCY": "4"}, ["app.py"], 4),
        ({}, ["/usr/bin/gunicorn", "app:app", "-w", "3"], 3),
        ({}, ["/venv/lib/gunicorn/__main__.py", "app:app", "--workers=5"], 5),
        ({}, ["/venv/bin/uvicorn", "app:app", "--workers", "2"], 2),
        ({"GUNICORN_CMD_ARGS": "--bind :80 -w2"}, ["gunicorn", "app:app"], 2),
        ({}, ["/usr/bin/gunicorn", "app:app"], None),
        ({}, ["myscript", "-w", "9"], None),  # not a server: its -w means something else
        ({"PROMETHEUS_MULTIPROC_DIR": "/tmp/prom"}, ["app.py"], 2),
    ],
)
def test_worker_processes_read_from_the_environment(
    environ: dict[str, str], argv: list[str], workers: int | None
) -> None:
    assert worker_processes(environ, argv) == workers


APP_MODULE = textwrap.dedent(
    """
    from fastapi import FastAPI
    from fastapi_enterprise import EnterpriseSettings, install

    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    install(app, EnterpriseSettings())
    """
)


@pytest.mark.parametrize(("workers", "starts"), [(2, False), (1, True)])
def test_gunicorn_refuses_memory_storage_with_two_workers(
    tmp_path: Path, workers: int, starts: bool
) -> None:
    """Real gunicorn: with 2 workers each would count alone (twice the limit)."""
    (tmp_path / "deployed.py").write_text(APP_MODULE, encoding="utf-8")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "FE_ENVIRONMENT": "production",
        "FE_SECURITY__SECRET_KEY": STRONG_KEY,
        "FE_SECURITY__ALLOWED_HOSTS": "127.0.0.1",
        "FE_SECURITY__TRUSTED_PROXIES": "10.0.1.0/24",
    }
    with GunicornProcess(
        "deployed:app", env=env, cwd=tmp_path, workers=workers, capture_stderr=True
    ) as server:
        if starts:
            assert server.wait_until_serving("/ping").status_code == 200
        else:
            assert server.wait(timeout=60) != 0
    stderr = server.stderr.decode(errors="replace")
    assert ("rate_limit.memory_storage_multi_worker" in stderr) is not starts
    assert STRONG_KEY not in stderr


def test_well_formed_regex_and_origins_pass() -> None:
    settings = safe(
        security={
            "secret_key": STRONG_KEY,
            "cors_origins": ["*"],
            "cors_origin_regex": r"^https://[a-z0-9-]+\.example\.com$",
            "trusted_proxies": ["10.0.0.0/16", "192.168.1.1", "::1", "fd12:3456:789a::/48"],
            "hsts_preload": True,
            "allowed_hosts": ["api.example.com", "*.example.com"],
        }
    )
    assert settings.deploy_check() == []


def test_acknowledged_public_proxies_are_a_warning() -> None:
    """A CDN's public ranges, with the origin reachable only through the CDN."""
    settings = unsafe(
        "security",
        trusted_proxies=["173.245.48.0/20", "2400:cb00::/32"],
        trust_all_proxies_acknowledged=True,
    )
    assert [(f.id, f.level) for f in settings.deploy_check()] == [
        ("security.proxy_trust_public", "warning")
    ]


def test_acknowledged_proxy_trust_and_any_host_are_warnings() -> None:
    settings = unsafe(
        "security", trusted_proxies=["*"], trust_all_proxies_acknowledged=True, allowed_hosts=["*"]
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
        security={
            **SAFE_SECURITY,
            "secret_key": weak,
            "trusted_proxies": ["*"],
            "hsts_max_age": 60,
        },
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
                security={**SAFE_SECURITY, "allowed_hosts": ["testserver"]},
                rate_limit={"storage_url": "memory://"},  # runs without the redis extra
            ),
        )
    assert [r.finding_id for r in caplog.records] == [  # type: ignore[attr-defined]
        "app.docs_public",
        "rate_limit.memory_storage",
    ]
    assert TestClient(app).get("/docs").status_code == 200


def test_staging_logs_errors_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        install(FastAPI(), EnterpriseSettings(environment="staging"))
    assert "security.secret_key_missing" in [r.finding_id for r in caplog.records]  # type: ignore[attr-defined]


def test_development_runs_no_check(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="fastapi_enterprise.security"):
        install(FastAPI(), EnterpriseSettings())
    assert caplog.records == []


def test_a_password_in_the_url_beside_a_secrets_directory(tmp_path: Path) -> None:
    class Settings(EnterpriseSettings):
        model_config = SettingsConfigDict(secrets_dir=tmp_path)  # merged with the parent's

    url = "postgresql://app:pw-S3CRET@db/app"
    findings = Settings(**{**safe_values(), "database": {"url": url}}).deploy_check()
    found = [finding for finding in findings if finding.id == "database.password_in_url"]
    assert len(found) == 1
    assert "pw-S3CRET" not in str(found[0])
    # The password from the secrets file instead: nothing to say.
    moved = Settings(**{**safe_values(), "database": {"url": "postgresql://app@db/app"}})
    assert "database.password_in_url" not in ids(moved)
    # The whole URL from the secrets file: nothing to say either.
    (tmp_path / "database__url").write_text(url)
    assert "database.password_in_url" not in ids(Settings(**safe_values()))


def test_database_checks_ignore_an_app_without_a_database() -> None:
    """The default SQLite URL of an app with no database is not a finding."""
    assert not [f for f in ids(safe()) if f.startswith("database.")]


def test_database_install_checks_the_settings_it_uses(
    capture_logs: Any,
) -> None:
    """install() saw no database section; Database.install() checks its own settings."""
    pytest.importorskip("aiosqlite")
    from fastapi import FastAPI

    from fastapi_enterprise import install
    from fastapi_enterprise.database import Database
    from fastapi_enterprise.settings import DatabaseSettings

    logs = capture_logs(EnterpriseSettings(environment="test"))
    app = FastAPI()
    # Memory storage: the suite also runs without the redis extra (a warning, no error).
    install(app, safe(rate_limit={"storage_url": "memory://"}))
    Database(DatabaseSettings(url="mysql://app@db/app", pool_recycle=-1)).install(app)
    warnings = [line.get("finding_id") for line in logs.events("deploy_check.warning")]
    assert "database.recycle_above_idle_timeout" in warnings


@pytest.mark.parametrize(
    "endpoint", ["https://collector.example:4318", "http://127.0.0.1:4318", "http://localhost:4318"]
)
def test_otel_headers_over_tls_or_to_this_host_are_fine(endpoint: str) -> None:
    settings = unsafe(
        "otel", enabled=True, endpoint=endpoint, headers={"x-api-key": "collector-key-0001"}
    )
    assert "otel.headers_in_clear" not in ids(settings)
    assert "collector-key-0001" not in str(settings.deploy_check())
