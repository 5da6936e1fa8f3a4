"""EnterpriseSettings: sources, per-environment defaults, and no secret ever leaks."""

from __future__ import annotations

import io
import json
import logging
import traceback
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from fastapi_enterprise import EnterpriseSettings, Environment, SettingsValidationError

PASSWORD = "pw-Zq8!hunter2-Very-Secret"
SECRET_KEY = "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZYXW"


def leaks(settings_or_error: object) -> list[str]:
    """Every way a value could be shown, searched for the secrets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("leak-check")
    logger.addHandler(handler)
    try:
        logger.warning("settings: %s %r", settings_or_error, settings_or_error)
    finally:
        logger.removeHandler(handler)
    texts = [str(settings_or_error), repr(settings_or_error), stream.getvalue()]
    if isinstance(settings_or_error, EnterpriseSettings):
        texts += [settings_or_error.model_dump_json(), json.dumps(settings_or_error.safe_dump())]
    if isinstance(settings_or_error, BaseException):
        texts.append("".join(traceback.format_exception(settings_or_error)))
        errors = getattr(settings_or_error, "errors", None)
        if errors is not None:
            texts.append(repr(errors()))
    return [text for text in texts if PASSWORD in text or SECRET_KEY in text]


def test_defaults_are_development() -> None:
    settings = EnterpriseSettings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.app.docs is True
    assert settings.request_id.header_name == "X-Request-ID"


@pytest.mark.parametrize(
    ("environment", "docs"),
    [("development", True), ("test", True), ("staging", False), ("PRODUCTION ", False)],
)
def test_per_environment_defaults(environment: str, docs: bool) -> None:
    assert EnterpriseSettings(environment=environment).app.docs is docs


def test_explicit_value_beats_the_environment_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_ENVIRONMENT", "production")
    monkeypatch.setenv("FE_APP__DOCS", "true")
    assert EnterpriseSettings().app.docs is True


def test_nested_environment_variables_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_SECURITY__CORS_ORIGINS", "https://a.example.com, https://b.example.com")
    monkeypatch.setenv("FE_SECURITY__TRUSTED_PROXIES", '["10.0.0.0/8", "::1"]')
    monkeypatch.setenv("FE_DATABASE__POOL_SIZE", "20")
    monkeypatch.setenv("fe_request_id__header_name", "X-Correlation-ID")
    settings = EnterpriseSettings()
    assert settings.security.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.security.trusted_proxies == ["10.0.0.0/8", "::1"]
    assert settings.database.pool_size == 20
    assert settings.request_id.header_name == "X-Correlation-ID"


def test_dotenv_file_and_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "FE_APP__NAME=From dotenv\nFE_APP__VERSION=9.9\nUNRELATED=1\n", encoding="utf-8"
    )
    monkeypatch.setenv("FE_APP__VERSION", "1.2.3")
    settings = EnterpriseSettings()
    assert settings.app.name == "From dotenv"
    assert settings.app.version == "1.2.3"  # environment beats .env
    assert EnterpriseSettings(app={"version": "kw"}).app.version == "kw"  # kwargs beat both


def test_nested_secrets_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "fe_security__secret_key").write_text(SECRET_KEY)
    (secrets / "fe_database__url").write_text(f"postgresql://app:{PASSWORD}@db/app")
    settings = EnterpriseSettings(_secrets_dir=secrets)
    assert settings.security.secret_key is not None
    assert settings.security.secret_key.get_secret_value() == SECRET_KEY
    assert PASSWORD in settings.database.url.get_secret_value()
    assert leaks(settings) == []


def test_secrets_never_appear_in_any_rendering() -> None:
    settings = EnterpriseSettings(
        security={"secret_key": SECRET_KEY},
        database={"url": f"postgresql+psycopg://app:{PASSWORD}@db.internal:5432/prod"},
        redis={"url": f"redis://:{PASSWORD}@cache:6379/2"},
    )
    assert leaks(settings) == []
    dump = settings.safe_dump()
    assert dump["database"]["url"] == "postgresql+psycopg://app:**********@db.internal:5432/prod"
    assert dump["redis"]["url"] == "redis://:**********@cache:6379/2"
    assert dump["security"]["secret_key"] == "**********"
    assert dump["environment"] == "development"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"security": {"secret_key": SECRET_KEY, "hsts_max_age": "nope"}},
        {"database": {"url": f"postgresql://u:{PASSWORD}@h/db", "pool_size": -1}},
        {"redis": {"url": f"http://:{PASSWORD}@cache"}},
        {"security": {"secret_key": 12345, "nope": SECRET_KEY}},
        {"app": {"name": PASSWORD * 20}},
    ],
)
def test_validation_errors_never_contain_the_secret(kwargs: dict[str, object]) -> None:
    with pytest.raises(SettingsValidationError) as caught:
        EnterpriseSettings(**kwargs)
    error = caught.value
    assert leaks(error) == []
    assert error.__cause__ is None
    assert error.__context__ is None
    assert all(set(item) == {"loc", "msg", "type"} for item in error.errors())


def test_malformed_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_DATABASE__POOL_SIZE", "twenty")
    with pytest.raises(SettingsValidationError, match=r"database\.pool_size") as caught:
        EnterpriseSettings()
    assert caught.value.errors()[0]["loc"] == ("database", "pool_size")


def test_malformed_json_environment_value_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_DATABASE", '{"url": "postgresql://u:' + PASSWORD + '@h/db", ')
    with pytest.raises(SettingsValidationError, match="database") as caught:
        EnterpriseSettings()
    assert leaks(caught.value) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"environment": "prod"}, "environment"),
        ({"security": {"cors_origins": ["https://a.example.com/"]}}, "no path"),
        ({"security": {"cors_origins": ["null"]}}, "null"),
        ({"security": {"cors_origins": "[not json"}}, "JSON"),
        ({"security": {"cors_origin_regex": "^(https://"}}, "regular expression"),
        ({"security": {"trusted_proxies": ["10.0.0.0/33"]}}, "CIDR"),
        ({"request_id": {"header_name": "X Bad"}}, "header name"),
        ({"request_id": {"pattern": "[a-"}}, "regular expression"),
        ({"request_id": {"max_length": 10**6}}, "max_length"),
        ({"app": {"unknown": 1}}, "app.unknown"),
        ({"typo_section": {}}, "typo_section"),
    ],
)
def test_bad_values_fail_with_the_field_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsValidationError, match=message):
        EnterpriseSettings(**kwargs)


def test_fastapi_kwargs_follow_the_docs_setting() -> None:
    on = EnterpriseSettings(app={"name": "Demo", "version": "2.0"}).fastapi_kwargs()
    assert on == {
        "title": "Demo",
        "version": "2.0",
        "debug": False,
        "docs_url": "/docs",
        "redoc_url": "/redoc",
        "openapi_url": "/openapi.json",
        "form_limits": {"max_files": 10, "max_fields": 100, "max_part_size": 1_048_576},
    }
    off = EnterpriseSettings(environment="production").fastapi_kwargs()
    assert off["docs_url"] is off["redoc_url"] is off["openapi_url"] is None


SECRET_WORDS = ("password", "secret", "token", "key", "dsn")


def _fields(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, object]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", annotation


def _is_secret_type(annotation: object) -> bool:
    args = typing.get_args(annotation)
    if args:
        return all(arg is SecretStr or arg is type(None) for arg in args)
    return annotation is SecretStr


def _is_plain_str(annotation: object) -> bool:
    if annotation is str:
        return True
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and str in typing.get_args(annotation)


def test_every_secret_looking_field_is_a_secretstr() -> None:
    fields = dict(_fields(EnterpriseSettings))
    assert fields, "the walk found no fields"
    for name, annotation in fields.items():
        leaf = name.rsplit(".", 1)[-1]
        dsn = leaf == "url" and name.split(".")[0] in {"database", "redis"}
        if (dsn or any(word in leaf for word in SECRET_WORDS)) and _is_plain_str(annotation):
            raise AssertionError(f"{name} holds a secret but is declared as {annotation}")
        if dsn:
            assert _is_secret_type(annotation), name


def test_the_secret_field_check_catches_a_plain_str() -> None:
    class Leaky(BaseModel):
        api_token: str = ""

    class Wrapper(EnterpriseSettings):
        extra_section: Leaky = Leaky()

    fields = dict(_fields(Wrapper))
    assert _is_plain_str(fields["extra_section.api_token"])
    assert not _is_plain_str(fields["security.secret_key"])
    assert not _is_plain_str(fields["logging.redact_keys"])


MARKER = "hunter2-Mk7Qz"
# Planted values meant to reach every validator: plain, inside a list or a mapping, in a
# URL's password (with a malformed port and an unknown scheme), and in broken syntax.
ENV_PLANTS = (
    MARKER,
    f"10.0.0.0/8,{MARKER}",
    f'["{MARKER}"]',
    f'{{"{MARKER}": "{MARKER}"}}',
    f'{{"/a": "{MARKER}"}}',
    f"redis://u:{MARKER}@h:6x/0",
    f"{MARKER}+tls://u:{MARKER}@h/0",
    f"^{MARKER}(",
    f"a*{MARKER}",
)
KWARG_PLANTS: tuple[object, ...] = (
    *ENV_PLANTS,
    [MARKER],
    {MARKER: MARKER},
    {"/a": MARKER},
    {MARKER: 2},
)
# Fields that take any text: nothing planted is rejected, so nothing can leak. A new
# field that lands here must be free text on purpose.
FREE_TEXT_FIELDS = {
    "app.description",
    "database.password",
    "app.favicon_url",
    "app.logo_url",
    "app.name",
    "app.servers",
    "app.version",
    "compression.exclude_content_types",
    "compression.exclude_paths",
    "logging.access_exclude_paths",
    "logging.file_path",
    "logging.redact_headers",
    "logging.redact_keys",
    "logging.syslog_address",
    "metrics.bearer_token",
    "metrics.exclude_paths",
    "metrics.path",
    "otel.exclude_paths",
    "otel.service_name",
    "rate_limit.exempt_paths",
    "rate_limit.identity_header",
    "rate_limit.storage_prefix",
    "security.cors_expose_headers",
    "security.cors_headers",
    "security.cors_methods",
    "security.secret_key",
    "sentry.environment",
    "sentry.release",
}


def _leaf_fields() -> list[str]:
    return [name for name, _annotation in _fields(EnterpriseSettings)]


def _assert_no_marker(error: SettingsValidationError) -> None:
    texts = [
        str(error),
        repr(error),
        repr(error.errors()),
        "".join(traceback.format_exception(error)),
    ]
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in texts:
        assert MARKER not in text, text


def test_no_validation_error_of_any_field_carries_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12 B8: plant a marker in every field, by environment and by keyword."""
    rejected_text: set[str] = set()  # fields that refused a planted string from the environment
    for dotted in _leaf_fields():
        section, _, name = dotted.rpartition(".")
        env_name = "FE_" + dotted.replace(".", "__").upper()
        for plant in ENV_PLANTS:
            monkeypatch.setenv(env_name, plant)
            try:
                EnterpriseSettings()
            except SettingsValidationError as error:
                _assert_no_marker(error)
                rejected_text.add(dotted)
            monkeypatch.delenv(env_name)
        for value in KWARG_PLANTS:
            kwargs: dict[str, object] = {section: {name: value}} if section else {name: value}
            try:
                EnterpriseSettings(**kwargs)
            except SettingsValidationError as error:
                _assert_no_marker(error)
    # Every field but the free-text ones refused some planted text, so its validator's
    # message was checked above.
    assert set(_leaf_fields()) - rejected_text == FREE_TEXT_FIELDS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security": {"trusted_proxies": ["10.0.0.0/8", MARKER]}}, "entry 2 "),
        ({"security": {"cors_origins": [MARKER]}}, "origin 1 "),
        ({"security": {"allowed_hosts": [f"a*{MARKER}"]}}, "entry 1 "),
        ({"metrics": {"allow_ips": [MARKER]}}, "entry 1 "),
        ({"rate_limit": {"default": MARKER}}, "10/second"),
        ({"rate_limit": {"routes": {"/a": MARKER}}}, "entry 1 "),
        ({"logging": {"syslog_facility": MARKER}}, "local0"),
        ({"security": {"csp": MARKER}}, "directive 1"),
        (
            {"security": {"csp": f"default-src 'self'; img-src 'x{MARKER}'"}},
            "source 1 of 'img-src'",
        ),
        ({"body_limit": {"routes": {MARKER: "many"}}}, r"body_limit\.routes\.<key>"),
    ],
)
def test_the_issue_fields_name_the_position_not_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsValidationError, match=message) as caught:
        EnterpriseSettings(**kwargs)
    _assert_no_marker(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("FE_LOGGING__LEVEL", "info", ("logging", "level"), "INFO"),
        ("FE_LOGGING__LEVEL", " Warning ", ("logging", "level"), "WARNING"),
        ("FE_LOGGING__FORMAT", "JSON", ("logging", "format"), "json"),
        ("FE_RATE_LIMIT__FAIL_MODE", "Closed", ("rate_limit", "fail_mode"), "closed"),
        ("FE_RATE_LIMIT__STRATEGY", "Fixed-Window", ("rate_limit", "strategy"), "fixed-window"),
        ("FE_RATE_LIMIT__KEY", "API_KEY", ("rate_limit", "key"), "api_key"),
        ("FE_SENTRY__EVENT_LEVEL", "critical", ("sentry", "event_level"), "CRITICAL"),
        ("FE_SENTRY__BREADCRUMB_LEVEL", "debug", ("sentry", "breadcrumb_level"), "DEBUG"),
        ("FE_SECURITY__FRAME_OPTIONS", "sameorigin", ("security", "frame_options"), "SAMEORIGIN"),
        (
            "FE_SECURITY__REFERRER_POLICY",
            "Same-Origin",
            ("security", "referrer_policy"),
            "same-origin",
        ),
    ],
)
def test_enumerated_values_are_accepted_in_any_case(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    field: tuple[str, str],
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    section, name = field
    assert getattr(getattr(EnterpriseSettings(), section), name) == expected


@pytest.mark.parametrize("environment", ["development", "test", "staging", "production"])
@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "credentialed"),
        ({"cors_origin_regex": "^.*$", "cors_allow_credentials": True}, "anyone can register"),
        ({"cors_origin_regex": "^https://.*$", "cors_allow_credentials": True}, "anyone"),
        ({"cors_origin_regex": "^https://[^/]+$", "cors_allow_credentials": True}, "anyone"),
        ({"cors_origin_regex": r"^https?://\S+$", "cors_allow_credentials": True}, "anyone"),
        ({"cors_origin_regex": r"^https://[a-z]+\.com$", "cors_allow_credentials": True}, "anyone"),
        ({"cors_origin_regex": r"https://[a-z]+\.example\.com"}, "anchored"),
        ({"cors_origin_regex": r"^https://.*example\.com$"}, "look-alike"),
        ({"cors_origin_regex": r"^https://app.example.com$"}, "look-alike"),
        ({"cors_origin_regex": "^(https://"}, "regular expression"),
        ({"cors_origins": ["null"]}, "null"),
        ({"cors_origins": ["https://app.example.com/"]}, "no path"),
        ({"frame_options": "ALLOWALL"}, "DENY or SAMEORIGIN"),
        ({"frame_options": "ALLOW-FROM https://a.example.com"}, "DENY or SAMEORIGIN"),
        ({"referrer_policy": "unsafe"}, "token 1 "),
    ],
)
def test_policies_unsafe_everywhere_are_refused_in_every_environment(
    environment: str, security: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsValidationError, match=message):
        EnterpriseSettings(environment=environment, security=security)


@pytest.mark.parametrize(
    "security",
    [
        {"cors_origin_regex": "^https://.*$"},  # any origin without credentials, like '*'
        {"cors_origins": ["*"]},
        {
            "cors_origin_regex": r"^https://[a-z0-9-]+\.example\.com$",
            "cors_allow_credentials": True,
        },
        {"cors_origin_regex": r"^https://(.*\.)?example\.com$", "cors_allow_credentials": True},
        {"cors_origin_regex": r"^http://localhost(:\d+)?$", "cors_allow_credentials": True},
        {"frame_options": ""},
        {"referrer_policy": "no-referrer, strict-origin-when-cross-origin"},
    ],
)
def test_safe_policies_are_accepted(security: dict[str, object]) -> None:
    EnterpriseSettings(security=security)


@pytest.mark.parametrize(
    ("section", "field", "url"),
    [
        ("rate_limit", "storage_url", f"redis://:{PASSWORD}@cache:63a79/0"),
        ("rate_limit", "storage_url", f"rediss+tls://:{PASSWORD}@cache/0"),
        ("rate_limit", "storage_url", f"redis+sentinel://:{PASSWORD}@s1:26379,s2:2637x/main"),
        ("rate_limit", "storage_url", f"redis+sentinel://:{PASSWORD}@s1:26379"),
        ("rate_limit", "storage_url", f"redis://:{PASSWORD}/x@cache:6379/0"),
        ("redis", "url", f"redis://:{PASSWORD}@cache:6379x/0"),
        ("redis", "url", f"http://:{PASSWORD}@cache"),
        ("database", "url", f"postgresql://app:{PASSWORD}@db:5432x/app"),
        ("database", "url", f"postgresql://app:{PASSWORD}#@db/app"),
        ("database", "url", f"app:{PASSWORD}@db/app"),
        ("sentry", "dsn", f"https://{PASSWORD}@o1.ingest.sentry.io:99999/1"),
        ("sentry", "dsn", f"ftp://{PASSWORD}@o1.ingest.sentry.io/1"),
        ("sentry", "dsn", "https://o1.ingest.sentry.io/1"),
    ],
)
def test_malformed_connection_urls_are_refused_without_their_password(
    section: str, field: str, url: str
) -> None:
    with pytest.raises(SettingsValidationError, match=rf"{section}\.{field}: .*the URL") as caught:
        EnterpriseSettings(**{section: {field: url}})
    assert leaks(caught.value) == []


def test_the_security_section_is_importable_where_it_always_was() -> None:
    """The security section has a module of its own; the old import paths still work."""
    import fastapi_enterprise
    from fastapi_enterprise.settings import SecuritySettings, sections, security

    assert sections.SecuritySettings is security.SecuritySettings is SecuritySettings
    assert fastapi_enterprise.SecuritySettings is SecuritySettings
    assert EnterpriseSettings().security.__class__ is SecuritySettings
