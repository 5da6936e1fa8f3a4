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
