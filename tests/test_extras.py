"""Extra-only modules: a clear ImportError without the extra, real behaviour with it."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from fastapi_enterprise._extras import MissingExtraError

# module -> (extra, the distribution it needs)
EXTRA_MODULES = {
    "fastapi_enterprise.redis": ("redis", "redis"),
    "fastapi_enterprise.sentry": ("sentry", "sentry_sdk"),
    "fastapi_enterprise.metrics": ("metrics", "prometheus_client"),
    "fastapi_enterprise.telemetry": ("otel", "opentelemetry.sdk"),
}


@pytest.mark.parametrize("module", sorted(EXTRA_MODULES))
def test_module_without_its_extra_names_the_install_command(module: str) -> None:
    extra, dependency = EXTRA_MODULES[module]
    if importlib.util.find_spec(dependency) is not None:
        pytest.skip(f"{dependency} is installed; the tests_minimal session covers this")
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module(module)
    assert isinstance(caught.value, ImportError)
    assert f"pip install 'fastapi-enterprise[{extra}]'" in str(caught.value)


def test_missing_extra_error_message() -> None:
    error = MissingExtraError(
        "metrics", module="fastapi_enterprise.metrics", missing="prometheus_client"
    )
    assert error.name == "prometheus_client"
    assert str(error) == (
        "fastapi_enterprise.metrics needs the 'prometheus_client' package, which is not "
        "installed. Install it with: pip install 'fastapi-enterprise[metrics]'"
    )


def test_core_imports_without_any_extra() -> None:
    import fastapi_enterprise

    assert fastapi_enterprise.install is not None


def test_redis_rate_limit_storage_without_the_extra_names_the_install_command() -> None:
    if importlib.util.find_spec("redis") is not None:
        pytest.skip("redis is installed; the tests_minimal session covers this")
    from fastapi_enterprise.ratelimit import RateLimiter

    with pytest.raises(MissingExtraError, match=r"pip install 'fastapi-enterprise\[redis\]'"):
        RateLimiter("redis://127.0.0.1:6379/0")


def test_install_without_the_metrics_extra() -> None:
    if importlib.util.find_spec("prometheus_client") is not None:
        pytest.skip("prometheus_client is installed; the tests_minimal session covers this")
    from fastapi import FastAPI

    from fastapi_enterprise import EnterpriseSettings, install

    install(FastAPI(), EnterpriseSettings())  # metrics default to off without the extra
    with pytest.raises(MissingExtraError, match=r"fastapi-enterprise\[metrics\]"):
        install(FastAPI(), EnterpriseSettings(metrics={"enabled": True}))


def test_offline_docs_without_the_extra_name_the_install_command() -> None:
    if importlib.util.find_spec("fastapi_offline") is not None:
        pytest.skip("fastapi-offline is installed; the tests_minimal session covers this")
    from fastapi import FastAPI

    from fastapi_enterprise import EnterpriseSettings, install

    with pytest.raises(MissingExtraError, match=r"fastapi-enterprise\[docs-offline\]"):
        install(FastAPI(), EnterpriseSettings(app={"docs_offline": True}))


@pytest.mark.parametrize("dependency", ["sqlalchemy", "greenlet"])
def test_database_without_its_extra_names_the_install_command(
    dependency: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are test dependencies: hide one from the import system, as if not installed."""
    import sys

    find_spec = importlib.util.find_spec

    def hidden(name: str, *args: object, **kwargs: object) -> object:
        return None if name == dependency else find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    for name in [name for name in sys.modules if name.startswith("fastapi_enterprise.database")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("fastapi_enterprise.database")
    assert caught.value.name == dependency
    assert "pip install 'fastapi-enterprise[database]'" in str(caught.value)
