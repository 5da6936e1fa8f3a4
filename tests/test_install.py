"""install(): wires everything once, in order, and the result works over real HTTP."""

from __future__ import annotations

import importlib.util

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_enterprise import (
    AccessLogMiddleware,
    EnterpriseSettings,
    RequestIDMiddleware,
    get_request_id,
    install,
    installed_settings,
)
from tests.conftest import LiveServer

STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


def test_install_wires_request_ids_and_problem_errors() -> None:
    app = FastAPI()
    settings = EnterpriseSettings(request_id={"header_name": "X-Trace"})
    install(app, settings)
    assert installed_settings(app) is settings
    expected = [
        "ProxyHeadersMiddleware",
        RequestIDMiddleware.__name__,
        "SecurityHeadersMiddleware",
        AccessLogMiddleware.__name__,
        "PrometheusMiddleware",
        "BodyLimitMiddleware",
        "RateLimitMiddleware",
        "CompressionMiddleware",
    ]
    if importlib.util.find_spec("prometheus_client") is None:
        expected.remove("PrometheusMiddleware")  # the metrics extra is not installed
    assert [getattr(m.cls, "__name__", None) for m in app.user_middleware] == expected
    response = TestClient(app).get("/nowhere")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-trace"]


def test_install_reads_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_REQUEST_ID__HEADER_NAME", "X-From-Env")
    app = FastAPI()
    install(app)
    assert "x-from-env" in TestClient(app).get("/").headers


def test_installing_twice_is_an_error() -> None:
    app = FastAPI()
    install(app, EnterpriseSettings())
    with pytest.raises(RuntimeError, match="already called"):
        install(app, EnterpriseSettings())


def test_installing_after_start_is_an_error() -> None:
    app = FastAPI()
    TestClient(app).get("/")
    with pytest.raises(RuntimeError, match="before the app starts"):
        install(app, EnterpriseSettings())


def test_not_installed_app_has_no_settings() -> None:
    assert installed_settings(FastAPI()) is None


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_docs_are_removed_when_off(path: str) -> None:
    app = FastAPI()

    @app.get("/kept")
    async def kept() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="production", security={"secret_key": STRONG_KEY}))
    client = TestClient(app)
    assert client.get(path).status_code == 404
    assert client.get("/kept").status_code == 200
    assert app.openapi_url is None


def test_docs_stay_in_development() -> None:
    app = FastAPI()
    install(app, EnterpriseSettings())
    assert TestClient(app).get("/docs").status_code == 200


def test_full_stack_over_real_http(live_server: type[LiveServer]) -> None:
    settings = EnterpriseSettings(environment="test", app={"name": "Live"})
    app = FastAPI(**settings.fastapi_kwargs())

    @app.get("/hello")
    def hello() -> dict[str, str | None]:
        return {"id": get_request_id()}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    install(app, settings)
    with live_server(app) as server, httpx2.Client(base_url=server.url) as client:
        ok = client.get("/hello")
        assert ok.json() == {"id": ok.headers["x-request-id"]}
        failed = client.get("/crash")
        assert failed.status_code == 500
        assert failed.json()["request_id"] == failed.headers["x-request-id"]
        assert client.get("/openapi.json").json()["info"]["title"] == "Live"
