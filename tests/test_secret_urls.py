"""Connection URLs never show their password: settings, storages, clients, Sentry (B9)."""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.ratelimit.limiter import RateLimiter, create_storage
from fastapi_enterprise.redaction import DEFAULT_REDACTOR, MASK, mask_dsn, mask_dsn_in_text
from fastapi_enterprise.settings import RedisSettings, SentrySettings

PASSWORD = "pw-Zq8!hunter2-Very-Secret"
NEEDS_REDIS = pytest.mark.skipif(
    importlib.util.find_spec("redis") is None, reason="redis-py refuses it: needs the extra"
)

STORAGE_URLS: list[Any] = [
    f"redis://:{PASSWORD}@cache:63a79/0",  # malformed port
    f"rediss+tls://:{PASSWORD}@cache/0",  # unknown scheme
    f"async+memoryx://:{PASSWORD}@cache",
    f"redis+sentinel://:{PASSWORD}@s1:26379",  # no service name
    f"redis+cluster://:{PASSWORD}@n1:7000,n2:70x1",
    f"redis://:{PASSWORD}/with/slashes@cache:6379/0",  # unencoded '/' in the password
    f"{PASSWORD}",  # not a URL at all
    # Well formed, refused by redis-py itself (so only with the redis extra installed).
    pytest.param(f"redis://:{PASSWORD}@cache:6379/0?socket_timeout=abc", marks=NEEDS_REDIS),
    pytest.param(f"redis+cluster://:{PASSWORD}@", marks=NEEDS_REDIS),  # no node
]


def shown(error: BaseException) -> str:
    """Everything a traceback, a log line or a repr would show of ``error``."""
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


def assert_masked(error: BaseException) -> None:
    assert PASSWORD not in shown(error)
    assert "hunter2" not in shown(error)
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize("url", STORAGE_URLS)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(create_storage, id="create_storage"),
        pytest.param(RateLimiter, id="RateLimiter"),
    ],
)
def test_storage_errors_never_show_the_password(build: Callable[[str], Any], url: str) -> None:
    with pytest.raises(ValueError, match="rate-limit storage URL") as caught:
        build(url)
    assert_masked(caught.value)


@pytest.mark.parametrize("url", STORAGE_URLS)
def test_settings_and_install_refuse_them_without_the_password(url: str) -> None:
    """The settings refuse what they can check; install() fails on what only redis-py can."""
    with pytest.raises(
        ValueError, match=r"rate_limit\.storage_url|rate-limit storage URL"
    ) as caught:
        install(FastAPI(), EnterpriseSettings(rate_limit={"storage_url": url}))
    assert_masked(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@cache:6379x/0",
        f"http://:{PASSWORD}@cache",
        f"redis://:{PASSWORD}@cache:6379/0?socket_timeout=abc",
        f"redis://:{PASSWORD}#frag@cache:6379/0",
    ],
)
def test_create_redis_never_shows_the_password(url: str) -> None:
    pytest.importorskip("redis")
    from fastapi_enterprise.redis import create_redis

    with pytest.raises(ValueError, match=r"redis\.url") as caught:
        create_redis(RedisSettings.model_construct(url=SecretStr(url)))  # bypass validation
    assert_masked(caught.value)


@pytest.mark.parametrize(
    "dsn",
    [
        f"https://{PASSWORD}@o1.ingest.sentry.io/",  # no project
        f"https://{PASSWORD}@o1.ingest.sentry.io:99x/1",
        f"gopher://{PASSWORD}@o1.ingest.sentry.io/1",
    ],
)
def test_init_sentry_never_shows_the_key(dsn: str) -> None:
    pytest.importorskip("sentry_sdk")
    from fastapi_enterprise.sentry import init_sentry

    settings = EnterpriseSettings()
    settings.__dict__["sentry"] = SentrySettings.model_construct(
        **{**SentrySettings().__dict__, "dsn": SecretStr(dsn)}
    )
    with pytest.raises(ValueError, match=r"sentry\.dsn") as caught:
        init_sentry(settings)
    assert_masked(caught.value)


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (f"redis://:{PASSWORD}@cache:6379/0", "redis://:**********@cache:6379/0"),
        (f"redis://:{PASSWORD}#x@cache:6379/0", MASK),
        (f"redis://:{PASSWORD}/x@cache:6379/0", MASK),
        (f"redis://:{PASSWORD}?x@cache:6379/0", MASK),
        (f"postgresql://app:{PASSWORD}@db:5432x/app", MASK),
    ],
)
def test_mask_dsn_masks_whole_urls_it_cannot_split_safely(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


def test_mask_dsn_in_text_cleans_a_library_message() -> None:
    url = f"redis://user:{PASSWORD.replace('!', '%21')}@cache:6379/0"
    message = (
        f"Unable to parse storage uri {url}; password {PASSWORD.replace('!', '%21')} "
        f"(decoded {PASSWORD}) rejected"
    )
    cleaned = mask_dsn_in_text(message, url)
    assert "hunter2" not in cleaned
    assert "redis://user:**********@cache:6379/0" in cleaned


@pytest.mark.parametrize("name", ["key", "sig", "code", "auth", "X-Amz-Signature", "api_key"])
def test_a_dsn_query_masks_what_a_logged_query_masks(name: str) -> None:
    """One rule for query parameters: a connection URL's and a request URL's.

    ``?key=``, ``?sig=`` and ``?code=`` were masked in an access log's query string but
    shown in a settings dump of a DSN.
    """
    dsn = f"redis://cache:6379/0?{name}={PASSWORD}&db=3"
    settings = EnterpriseSettings(redis=RedisSettings(url=SecretStr(dsn)))
    dumped = settings.safe_dump()["redis"]["url"]
    assert PASSWORD not in dumped
    assert dumped == mask_dsn(dsn)
    assert f"{name}={MASK}" in dumped
    assert dumped.endswith("&db=3")  # ordinary parameters stay readable
    logged = DEFAULT_REDACTOR.query_string(f"{name}={PASSWORD}&db=3")
    assert logged == f"{name}={MASK}&db=3"
