"""install(): wires everything once, in order, and the result works over real HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message

from fastapi_enterprise import (
    CORSPolicyMiddleware,
    EnterpriseSettings,
    RateLimiter,
    UnknownRouteTemplateError,
    get_request_id,
    install,
    installed_rate_limiter,
    installed_settings,
)
from tests.conftest import LiveServer, LogCapture, UvicornProcess, free_port

STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


def test_install_wires_request_ids_and_problem_errors() -> None:
    app = FastAPI()
    settings = EnterpriseSettings(request_id={"header_name": "X-Trace"})
    install(app, settings)
    assert installed_settings(app) is settings
    # Proxy headers, request ID, security headers, access log and metrics are stages of
    # one layer (docs/how-to/middleware-order.md).
    expected = [
        "EnterprisePipeline",
        "BodyLimitMiddleware",
        "RateLimitMiddleware",
        "CompressionMiddleware",
    ]
    assert [getattr(m.cls, "__name__", None) for m in app.user_middleware] == expected
    pipeline = app.user_middleware[0]
    assert pipeline.kwargs["access_log"] is not None
    metrics_installed = importlib.util.find_spec("prometheus_client") is not None
    assert (pipeline.kwargs["metrics"] is not None) is metrics_installed
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


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("PUT /auth/login", "(the route answers POST)"),
        ("POST /auth/logn", "(did you mean '/auth/login'?)"),
    ],
)
def test_a_method_the_route_does_not_answer_stops_the_start(key: str, hint: str) -> None:
    app = routed_app(rate_limit={"routes": {key: "5/minute"}})
    with pytest.raises(UnknownRouteTemplateError) as caught, TestClient(app):
        pass
    assert caught.value.unknown == {"rate_limit.routes": [key]}
    assert f"rate_limit.routes: {key!r} {hint}" in str(caught.value)


def test_route_templates_of_routers_mounts_and_later_routes_are_known() -> None:
    app = routed_app(
        rate_limit={
            "routes": {
                "/auth/login": "5/minute",
                "post /auth/login": "4/minute",
                "GET /items/{item_id}": "4/minute",
                # Inside a mount: any method may be served there.
                "DELETE /tenants/{tenant_id}/report": "1/second",
                "/tenants/{tenant_id}/report": "1/second",
            }
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


def test_the_unknown_template_error_is_public_where_install_is() -> None:
    from fastapi_enterprise.install import UnknownRouteTemplateError as FromInstall

    assert FromInstall is UnknownRouteTemplateError


# --- one lifespan wrapper: startup checks, the app's lifespan, shutdown work, in order ---


def dead_storage_url() -> str:
    """A Redis URL where nothing listens: every check fails fast with a refused connection."""
    pytest.importorskip("redis")
    return f"redis://127.0.0.1:{free_port()}/0"


def lifespan_app(events: list[str], **settings: Any) -> FastAPI:
    """An app whose own lifespan records its startup and shutdown in ``events``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append("app shutdown")

    app = FastAPI(lifespan=lifespan)
    install(app, EnterpriseSettings(**{"environment": "test", **settings}))
    return app


def record_closing(limiter: RateLimiter | None, events: list[str], logs: LogCapture) -> None:
    """Record each close of the storage, and whether the logs were written through by then."""
    assert limiter is not None
    close = limiter.aclose

    async def aclose() -> None:
        events.append(f"storage closed, logs written through: {logs.handle._write_through}")
        await close()

    limiter.aclose = aclose  # type: ignore[method-assign]


def test_shutdown_closes_the_storage_after_the_app_and_then_writes_the_logs_through(
    capture_logs: Any,
) -> None:
    """The order docs/how-to/middleware-order.md gives, each step once.

    The storage used to be closed after the log pipeline had switched to writing
    through: what closing it logged depended on the writer's schedule.
    """
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    events: list[str] = []
    app = lifespan_app(events)
    record_closing(installed_rate_limiter(app), events, logs)
    with TestClient(app) as client:
        assert client.get("/nowhere").status_code == 404
        assert not logs.handle._write_through
    assert events == [
        "app startup",
        "app shutdown",
        "storage closed, logs written through: False",
    ]
    assert logs.handle._write_through


def test_route_templates_are_checked_before_the_storage_is_asked(capture_logs: Any) -> None:
    """A typo stops the start at once: no wait on the network, nothing of the app run."""
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    events: list[str] = []
    app = lifespan_app(
        events,
        rate_limit={"storage_url": dead_storage_url(), "routes": {"/logn": "5/minute"}},
    )
    limiter = installed_rate_limiter(app)
    record_closing(limiter, events, logs)
    with pytest.raises(UnknownRouteTemplateError), TestClient(app):
        pass
    assert limiter is not None
    assert limiter.stats.storage_errors == 0  # never asked
    assert events == ["storage closed, logs written through: False"]
    assert logs.handle._write_through


async def start_and_stop(app: ASGIApp) -> tuple[list[Message], BaseException | None]:
    """Run the lifespan as a server does (bounded): what the app sent, and what it raised."""
    sent: list[Message] = []
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    incoming.put_nowait({"type": "lifespan.startup"})

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            incoming.put_nowait({"type": "lifespan.shutdown"})

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    try:
        await asyncio.wait_for(app(scope, incoming.get, send), timeout=30)
    except Exception as exc:  # noqa: BLE001 - what the server would see
        return sent, exc
    return sent, None


def test_a_storage_production_cannot_run_without_stops_the_start_before_the_app_starts(
    capture_logs: Any,
) -> None:
    """Fail mode closed in production: the start fails with the reason, then shuts down.

    The limiter used to answer the lifespan itself with a failed startup, outside the
    app's lifespan: the storage was left open, the logs were not written through, and
    an in-process client (``TestClient``) waited for ever.
    """
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    events: list[str] = []
    app = lifespan_app(
        events,
        environment="production",
        security={"secret_key": STRONG_KEY, "allowed_hosts": ["api.example.com"]},
        rate_limit={"storage_url": dead_storage_url(), "fail_mode": "closed", "timeout": 0.2},
    )
    limiter = installed_rate_limiter(app)
    record_closing(limiter, events, logs)
    sent, error = asyncio.run(start_and_stop(app))
    assert [message["type"] for message in sent] == ["lifespan.startup.failed"]
    reason = "did not answer at startup (ConnectionError)"
    assert reason in sent[0]["message"]
    assert isinstance(error, RuntimeError)
    assert reason in str(error)
    assert limiter is not None
    assert limiter.stats.storage_errors == 1  # asked once, not once per layer
    assert events == ["storage closed, logs written through: False"]  # the app never started
    assert logs.handle._write_through
