"""One body-limit truth: settings, FastAPI's ``max_body_size`` and BodyLimitMiddleware agree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Body, FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_enterprise import (
    EnterpriseSettings,
    RequestIDMiddleware,
    SecurityHeadersMiddleware,
    body_limit,
    install,
)
from fastapi_enterprise.errors import register_exception_handlers
from tests.conftest import LiveServer
from tests.middleware.test_body_limit import raw_exchange

DEFAULT = 100


def make_app(**body: Any) -> FastAPI:
    settings = EnterpriseSettings(
        environment="test", body_limit={"max_bytes": DEFAULT, "read_timeout": 5, **body}
    )
    # --8<-- [start:routes]
    app = FastAPI(**settings.fastapi_kwargs())  # the app default: body_limit.max_bytes

    @app.post("/big", max_body_size=1000)
    async def big(payload: bytes = Body(media_type="application/octet-stream")) -> int:
        return len(payload)

    @app.post("/small", max_body_size=10)
    async def small(payload: bytes = Body(media_type="application/octet-stream")) -> int:
        return len(payload)

    @app.post("/marked")
    @body_limit(700)
    async def marked(request: Request) -> int:
        return len(await request.body())

    @app.post("/plain")
    async def plain(request: Request) -> int:
        return len(await request.body())

    router = APIRouter(max_body_size=500)

    @router.post("/inside")
    async def inside(request: Request) -> int:
        return len(await request.body())

    app.include_router(router, prefix="/r")
    install(app, settings)
    # --8<-- [end:routes]
    return app


def chunks(size: int) -> Iterator[bytes]:
    yield b"x" * size


@pytest.mark.parametrize(
    ("path", "limit"),
    [("/big", 1000), ("/small", 10), ("/r/inside", 500), ("/marked", 700), ("/plain", DEFAULT)],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_each_route_is_held_to_its_own_limit(path: str, limit: int, chunked: bool) -> None:
    client = TestClient(make_app())
    for size, status in ((limit, 200), (limit + 1, 413)):
        body = chunks(size) if chunked else b"x" * size
        response = client.post(path, content=body)
        assert response.status_code == status, (path, size, response.text)
        if status == 200:
            assert response.json() == size
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == f"The request body is larger than {limit} bytes."
            assert response.headers["x-request-id"]
            assert response.headers["x-content-type-options"] == "nosniff"


def test_settings_route_limit_larger_than_the_app_default_is_given_to_fastapi() -> None:
    client = TestClient(make_app(routes={"/plain": 5000}))
    assert client.post("/plain", content=chunks(5000)).json() == 5000
    assert client.post("/plain", content=b"x" * 5000).json() == 5000
    assert client.post("/plain", content=chunks(5001)).status_code == 413


def test_settings_route_limit_reaches_a_route_of_an_included_router() -> None:
    settings = EnterpriseSettings(
        environment="test", body_limit={"max_bytes": DEFAULT, "routes": {"/r/upload": 2000}}
    )
    app = FastAPI(**settings.fastapi_kwargs())
    router = APIRouter()

    @router.post("/upload")
    async def upload(request: Request) -> int:
        return len(await request.body())

    app.include_router(router, prefix="/r")
    # FastAPI gives the route the app default (100): without install() copying the
    # settings' limit onto it, FastAPI's own counter would refuse 101 bytes.
    install(app, settings)
    client = TestClient(app)
    assert client.post("/r/upload", content=chunks(2000)).json() == 2000
    assert client.post("/r/upload", content=b"x" * 2000).json() == 2000
    response = client.post("/r/upload", content=chunks(2001))
    assert response.json()["detail"] == "The request body is larger than 2000 bytes."


def test_a_router_limit_contradicting_the_settings_stops_install() -> None:
    app = FastAPI()
    router = APIRouter(max_body_size=500)

    @router.post("/inside")
    async def inside(request: Request) -> int:
        return len(await request.body())

    app.include_router(router, prefix="/r")
    settings = EnterpriseSettings(environment="test", body_limit={"routes": {"/r/inside": 9}})
    with pytest.raises(ValueError, match="declares max_body_size=500"):
        install(app, settings)


def test_openapi_documents_each_route_limit() -> None:
    schema = make_app().openapi()
    for path, limit in (("/big", 1000), ("/small", 10)):
        text = schema["paths"][path]["post"]["responses"]["413"]["description"]
        assert text == f"Content Too Large: the body is over {limit} bytes."


def test_the_app_default_stays_with_the_library() -> None:
    """FastAPI would copy an app-level limit onto routes declared after install()."""
    settings = EnterpriseSettings(body_limit={"max_bytes": 4321})
    assert "max_body_size" not in settings.fastapi_kwargs()
    assert FastAPI(**settings.fastapi_kwargs()).router.max_body_size is None


def hundreds(size: int) -> Iterator[bytes]:
    for _ in range(size // 100):
        yield b"x" * 100


def late_route_app(app_limit: int | None) -> FastAPI:
    settings = EnterpriseSettings(
        environment="test", body_limit={"max_bytes": DEFAULT, "routes": {"/late": 1000}}
    )
    app = FastAPI(**settings.fastapi_kwargs(), max_body_size=app_limit)
    install(app, settings)

    @app.post("/late")
    async def late(request: Request) -> int:
        return len(await request.body())

    return app


def test_a_settings_route_limit_holds_for_a_route_declared_after_install() -> None:
    """Routes usually come after install(); FastAPI's counter must not cut them short."""
    with TestClient(late_route_app(None)) as client:
        assert client.post("/late", content=b"x" * 1000).json() == 1000
        assert client.post("/late", content=hundreds(1000)).json() == 1000
        refused = client.post("/late", content=b"x" * 1001)
        assert refused.status_code == 413
        assert refused.headers["content-type"] == "application/problem+json"
        assert client.post("/late", content=hundreds(1100)).status_code == 413


def test_an_app_level_fastapi_limit_capping_a_later_route_stops_the_start() -> None:
    """FastAPI stamps its app-level limit on every route: /late would be cut at 100."""
    with (
        pytest.raises(ValueError, match=r"caps route /late below its body limit 1000"),
        TestClient(late_route_app(DEFAULT)),
    ):
        pass


def test_one_router_shared_by_two_apps_with_different_limits() -> None:
    """The check reads routes, never writes them: module-level routers are shared."""
    router = APIRouter()

    @router.post("/media")
    async def media(request: Request) -> int:
        return len(await request.body())

    def app_with(limit: int) -> FastAPI:
        settings = EnterpriseSettings(
            environment="test", body_limit={"max_bytes": DEFAULT, "routes": {"/media": limit}}
        )
        app = FastAPI(**settings.fastapi_kwargs())
        install(app, settings)
        app.include_router(router)
        return app

    with TestClient(app_with(5000)) as large, TestClient(app_with(300)) as small:
        assert large.post("/media", content=b"x" * 5000).json() == 5000
        assert small.post("/media", content=b"x" * 300).json() == 300
        assert small.post("/media", content=b"x" * 301).status_code == 413
        assert large.post("/media", content=hundreds(5000)).json() == 5000


def test_contradictions_stop_install() -> None:
    app = FastAPI(max_body_size=50)
    with pytest.raises(ValueError, match=r"body_limit\.max_bytes"):
        install(app, EnterpriseSettings(environment="test", body_limit={"max_bytes": 60}))

    app = FastAPI()

    @app.post("/upload", max_body_size=10)
    async def upload(request: Request) -> int:
        return len(await request.body())

    settings = EnterpriseSettings(environment="test", body_limit={"routes": {"/upload": 20}})
    with pytest.raises(ValueError, match="declares max_body_size=10"):
        install(app, settings)

    app = FastAPI()

    @app.post("/login", max_body_size=10)
    @body_limit(30)
    async def login(request: Request) -> int:
        return len(await request.body())

    with pytest.raises(ValueError, match=r"@body_limit is 30"):
        install(app, EnterpriseSettings(environment="test"))


def test_fastapi_own_413_is_problem_json() -> None:
    """When FastAPI's own counter trips, the library's handlers answer in problem+json."""
    app = FastAPI()

    @app.post("/tiny", max_body_size=5)
    async def tiny(request: Request) -> int:
        return len(await request.body())

    # Without the library's body limit layer, only FastAPI knows the limit.
    register_exception_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIDMiddleware)
    response = TestClient(app).post("/tiny", content=chunks(6))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Content Too Large"  # FastAPI's words, our shape
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_route_limits_over_real_http(live_server: type[LiveServer]) -> None:
    app = make_app()
    with live_server(app) as server:
        for path, limit in (("/big", 1000), ("/small", 10)):
            for size, status in ((limit, b"200"), (limit + 1, b"413")):
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                )
                declared = raw_exchange(
                    server.port,
                    (head + f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode(),
                    [b"x" * size],
                )
                chunked = raw_exchange(
                    server.port,
                    (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode(),
                    [f"{size:x}\r\n".encode() + b"x" * size + b"\r\n", b"0\r\n\r\n"],
                )
                for reply in (declared, chunked):
                    assert reply.startswith(b"HTTP/1.1 " + status), (path, size, reply[:200])
                    if status == b"413":
                        assert b"application/problem+json" in reply
