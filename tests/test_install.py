"""install(): wires everything once, in order, and the result works over real HTTP."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp

from fastapi_enterprise import (
    AccessLogMiddleware,
    CORSPolicyMiddleware,
    EnterpriseSettings,
    RequestIDMiddleware,
    get_request_id,
    install,
    installed_settings,
)
from fastapi_enterprise.install import UnknownRouteTemplateError
from tests.conftest import LiveServer, UvicornProcess

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


def test_a_middleware_option_refused_at_build_fails_install_not_the_first_request() -> None:
    """Staging sends HSTS: an invalid preload used to pass install() and 500 every request."""
    settings = EnterpriseSettings(
        environment="staging",
        security={"secret_key": STRONG_KEY, "hsts_preload": True, "hsts_max_age": 3600},
    )
    with pytest.raises(ValueError, match="preload"):
        install(FastAPI(), settings)


def test_the_trial_build_leaves_the_metrics_registry_alone() -> None:
    pytest.importorskip("prometheus_client")
    app = FastAPI()
    install(app, EnterpriseSettings(environment="test"))
    response = TestClient(app).get("/metrics")  # the real middleware registers once, fine
    assert response.status_code == 200
    assert response.text.count("# TYPE http_requests_total counter") <= 1


class CrossSiteEverything(CORSPolicyMiddleware):
    """An app's own CORS layer with '*' and credentials: refused when it is built."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, allow_origins=["*"], allow_credentials=True)


def broken_stack_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="test"))
    app.add_middleware(CrossSiteEverything)  # the app's own, after install()
    return app


def test_a_stack_that_fails_to_build_answers_a_problem_500_with_a_request_id() -> None:
    response = TestClient(broken_stack_app(), raise_server_exceptions=False).get("/hello")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


BROKEN_MODULE = textwrap.dedent(
    """
    from fastapi import FastAPI
    from fastapi_enterprise import CORSPolicyMiddleware, EnterpriseSettings, install

    app = FastAPI()
    install(app, EnterpriseSettings(environment="test"))
    app.add_middleware(CORSPolicyMiddleware, allow_origins=["*"], allow_credentials=True)
    """
)


def test_a_real_server_refuses_to_start_a_stack_that_fails_to_build(tmp_path: Path) -> None:
    """With lifespan 'auto', uvicorn used to serve plain-text 500s for ever."""
    (tmp_path / "broken.py").write_text(BROKEN_MODULE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with UvicornProcess("broken:app", env=env, cwd=tmp_path, capture_stderr=True) as server:
        code = server.wait(timeout=60)
    stderr = server.stderr.decode(errors="replace")
    assert code != 0
    assert "the middleware stack could not be built" in stderr
    assert "credentialed" in stderr


def routed_app(**settings: Any) -> FastAPI:
    app = FastAPI()
    install(app, EnterpriseSettings(environment="test", **settings))
    # Routes declared after install(), as usual: they exist when the app starts.
    router = APIRouter(prefix="/auth")

    @router.post("/login")
    async def login() -> dict[str, str]:
        return {}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(router)
    tenant = FastAPI()

    @tenant.get("/report")
    async def report() -> dict[str, str]:
        return {}

    app.mount("/tenants/{tenant_id}", tenant)
    return app


@pytest.mark.parametrize(
    ("settings", "setting", "template", "hint"),
    [
        (
            {"rate_limit": {"routes": {"/auth/logn": "5/minute"}}},
            "rate_limit.routes",
            "/auth/logn",
            "/auth/login",
        ),
        (
            {"body_limit": {"routes": {"/items/{id}": 10}}},
            "body_limit.routes",
            "/items/{id}",
            "/items/{item_id}",
        ),
        (
            {"logging": {"access_sample_routes": {"/login": 0.1}}},
            "logging.access_sample_routes",
            "/login",
            None,
        ),
    ],
)
def test_a_route_template_the_app_lacks_stops_the_start(
    settings: dict[str, Any], setting: str, template: str, hint: str | None
) -> None:
    app = routed_app(**settings)
    with pytest.raises(UnknownRouteTemplateError) as caught, TestClient(app):
        pass
    assert caught.value.unknown == {setting: [template]}
    message = str(caught.value)
    assert f"{setting}: {template!r}" in message
    if hint is not None:
        assert f"did you mean {hint!r}" in message


def test_route_templates_of_routers_mounts_and_later_routes_are_known() -> None:
    app = routed_app(
        rate_limit={
            "routes": {"/auth/login": "5/minute", "/tenants/{tenant_id}/report": "1/second"}
        },
        body_limit={"routes": {"/items/{item_id}": 10}},
        logging={"access_sample_routes": {"/tenants/{tenant_id}/{path}": 0.5}},
    )
    with TestClient(app) as client:
        assert client.post("/auth/login").status_code == 200


def test_a_real_server_names_the_unknown_template_and_exits(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        textwrap.dedent(
            """
            from fastapi import FastAPI
            from fastapi_enterprise import EnterpriseSettings, install

            app = FastAPI()
            install(app, EnterpriseSettings())

            @app.post("/login")
            async def login() -> dict[str, str]:
                return {}
            """
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "FE_ENVIRONMENT": "test",
        "FE_RATE_LIMIT__ROUTES": '{"/logn": "5/minute"}',
    }
    with UvicornProcess("typo:app", env=env, cwd=tmp_path, capture_stderr=True) as server:
        code = server.wait(timeout=60)
    stderr = server.stderr.decode(errors="replace")
    assert code != 0
    assert "rate_limit.routes: '/logn' (did you mean '/login'?)" in stderr
