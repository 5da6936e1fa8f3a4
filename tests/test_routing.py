"""route_template(): the template that handled a request, never the raw path."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise import UNMATCHED_ROUTE, route_template
from fastapi_enterprise.routing import RouteMatcher


class RecordTemplate:
    """Records route_template(scope) after the app handled each request."""

    def __init__(self, app: ASGIApp, *, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        before = route_template(scope)
        assert before == UNMATCHED_ROUTE
        try:
            await self.app(scope, receive, send)
        finally:
            self.seen.append(route_template(scope))


def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def build_app(tmp_path: Path) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    inner = APIRouter(prefix="/inner")

    @inner.get("/x/{xid}")
    async def x(xid: int) -> dict[str, int]:
        return {"x": xid}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)

    @outer.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.include_router(outer, prefix="/v1")

    sub = FastAPI()

    @sub.get("/s/{sid}")
    async def s(sid: str) -> dict[str, str]:
        return {"s": sid}

    sub.include_router(inner, prefix="/k")
    app.mount("/sub", sub)
    app.mount("/tenants/{tenant}", sub)
    app.mount("/star", Router(routes=[Mount("/m", routes=[Route("/r/{a}", plain)])]))
    (tmp_path / "a.txt").write_text("hi")
    app.mount("/static", StaticFiles(directory=tmp_path))

    @app.get("/plain")
    async def plain_route() -> dict[str, str]:
        return {}

    app.add_route("/legacy/{name}", plain)

    @app.websocket("/ws/{room}")
    async def ws(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.close()

    seen: list[str] = []
    app.add_middleware(RecordTemplate, seen=seen)
    return app, seen


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/v1/outer/items/1", "/v1/outer/items/{item_id}"),
        ("HEAD", "/v1/outer/items/2", "/v1/outer/items/{item_id}"),
        ("DELETE", "/v1/outer/items/3", "/v1/outer/items/{item_id}"),
        ("GET", "/v1/outer/inner/x/5", "/v1/outer/inner/x/{xid}"),
        ("GET", "/sub/s/abc", "/sub/s/{sid}"),
        ("GET", "/sub/k/inner/x/3", "/sub/k/inner/x/{xid}"),
        ("GET", "/tenants/acme/s/q", "/tenants/{tenant}/s/{sid}"),
        ("GET", "/tenants/other/k/inner/x/9", "/tenants/{tenant}/k/inner/x/{xid}"),
        ("GET", "/star/m/r/1", "/star/m/r/{a}"),
        ("GET", "/static/a.txt", "/static/{path}"),
        ("GET", "/static/missing.txt", "/static/{path}"),
        ("GET", "/plain", "/plain"),
        # Plain Starlette routes: FastAPI's router runs them without naming them.
        ("GET", "/docs", "/docs"),
        ("GET", "/openapi.json", "/openapi.json"),
        ("GET", "/legacy/abc", "/legacy/{name}"),
        ("POST", "/legacy/abc", "/legacy/{name}"),
        ("GET", "/nope", UNMATCHED_ROUTE),
        ("GET", "/plain/", UNMATCHED_ROUTE),
        ("GET", "/v1/outer/items/not-an-int", "/v1/outer/items/{item_id}"),
    ],
)
def test_template_through_http(tmp_path: Path, method: str, path: str, template: str) -> None:
    app, seen = build_app(tmp_path)
    TestClient(app, follow_redirects=False).request(method, path)
    assert seen == [template]


def test_websocket_template(tmp_path: Path) -> None:
    app, seen = build_app(tmp_path)
    with TestClient(app).websocket_connect("/ws/lobby"):
        pass
    assert seen == ["/ws/{room}"]


def test_ten_thousand_unknown_paths_give_one_value(tmp_path: Path) -> None:
    app, seen = build_app(tmp_path)
    client = TestClient(app)
    for n in range(300):
        client.get(f"/scan/{n}/wp-login.php")
    assert set(seen) == {UNMATCHED_ROUTE}


def test_scope_without_routing_information() -> None:
    assert route_template({"type": "http", "path": "/x"}) == UNMATCHED_ROUTE
    weird = {"type": "http", "path": "/x", "root_path": "/m", "app_root_path": "/other"}
    assert route_template(weird) == UNMATCHED_ROUTE
    assert route_template({"type": "http", "route": object(), "path": "/x"}) == UNMATCHED_ROUTE


def test_answer_follows_the_route_when_routing_moves_on() -> None:
    """The template is remembered per scope, but only for the route it was worked out for."""
    outer, inner = Route("/a/{x}", plain), Route("/b/{y}", plain)
    scope: dict[str, object] = {"type": "http", "path": "/a/1", "route": outer}
    assert route_template(scope) == "/a/{x}"
    assert route_template(scope) == "/a/{x}"
    scope["route"] = inner
    assert route_template(scope) == "/b/{y}"
    del scope["route"]
    assert route_template(scope) == UNMATCHED_ROUTE


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/v1/outer/items/7", "/v1/outer/items/{item_id}"),
        ("PATCH", "/v1/outer/items/7", "/v1/outer/items/{item_id}"),  # a 405 counts
        ("GET", "/docs", "/docs"),
        ("GET", "/legacy/x", "/legacy/{name}"),
        ("GET", "/nope", UNMATCHED_ROUTE),
    ],
)
def test_a_match_before_routing_is_the_template_of_a_request_never_routed(
    tmp_path: Path, method: str, path: str, template: str
) -> None:
    """A match before routing is what every layer reports for a request never routed.

    That is what the rate limiter finds for a request it answers itself (a 429, a 503).
    """
    app, _ = build_app(tmp_path)
    scope: dict[str, object] = {"type": "http", "method": method, "path": path, "app": app}
    matched, _endpoint = RouteMatcher().match(scope)
    assert matched == template
    assert route_template(scope) == template
