"""The redaction module: which names are secret, and how connection URLs are masked."""

from __future__ import annotations

import pytest

from fastapi_enterprise.redaction import MASK, is_secret_key, mask_dsn


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "DB_PASSWORD",
        "X-Api-Key",
        "apiKey",
        "clientSecret",
        "access_token",
        "Authorization",
        "Set-Cookie",
        "sentry_dsn",
        "PRIVATE-KEY",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["username", "page", "host", "content-type", "user_agent"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_key(name)


def test_extra_secret_names() -> None:
    assert is_secret_key("X-Tenant-Pin", extra=["tenant-pin"])


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://app:hunter2@db:5432/prod", f"postgresql://app:{MASK}@db:5432/prod"),
        ("redis://:hunter2@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("mysql://app:p%40ss:word@db/x", f"mysql://app:{MASK}@db/x"),
        (
            "postgresql://app@db/x?sslpassword=hunter2&application_name=api",
            f"postgresql://app@db/x?sslpassword={MASK}&application_name=api",
        ),
        ("https://publickey@o1.ingest.sentry.io/42", f"https://{MASK}@o1.ingest.sentry.io/42"),
        ("sqlite:///./app.db", "sqlite:///./app.db"),
        ("not a url with hunter2", MASK),
        ("redis://host:notaport/0", MASK),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
    assert "hunter2" not in mask_dsn(dsn)


def test_text_masks_secret_query_parameters_and_credentials() -> None:
    from fastapi_enterprise.redaction import Redactor

    redactor = Redactor(keys=["pin"])
    text = (
        'HTTP Request: GET http://api/items?api_key=s3cr3t&page=2&user_pin=1234 "HTTP/1.1 200"'
        " retry with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc and basic usage"
    )
    assert redactor.text(text) == (
        "HTTP Request: GET http://api/items?api_key=**********&page=2&user_pin=********** "
        '"HTTP/1.1 200" retry with Authorization: Bearer ********** and basic usage'
    )


def test_nested_values_and_depth_limit() -> None:
    from fastapi_enterprise.redaction import Redactor

    redactor = Redactor(max_depth=4)
    data = {
        "user": {"Password": "x", "tags": ["a", {"token": "y"}]},
        "deep": {"a": {"b": {"c": {"d": 1}}}},
    }
    assert redactor.value(data) == {
        "user": {"Password": MASK, "tags": ["a", {"token": MASK}]},
        "deep": {"a": {"b": {"c": "[depth limit]"}}},
    }
    assert redactor.value(("postgresql://u:pw@h/db",)) == [f"postgresql://u:{MASK}@h/db"]


def test_headers_and_query_strings() -> None:
    from fastapi_enterprise.redaction import Redactor

    redactor = Redactor(headers=["X-Tenant-Secret-Header"])
    assert redactor.headers(
        [
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("Accept", "*/*"),
            ("x-tenant-secret-header", "v"),
            ("X-Session-Id", "s"),
        ]
    ) == [
        ("Authorization", MASK),
        ("Accept", "*/*"),
        ("x-tenant-secret-header", MASK),
        ("X-Session-Id", MASK),
    ]
    assert (
        redactor.query_string("a=1&access%5Ftoken=x&flag&b=")
        == "a=1&access%5Ftoken=**********&flag&b="
    )
    many = "&".join(f"p{n}=1" for n in range(150))
    assert redactor.query_string(many).endswith("&[50 more parameters]")
    assert redactor.query_string("") == ""
