"""A 405's ``Allow`` names every method the path serves, not the first route's.

FastAPI's usual style declares ``GET /notes`` and ``POST /notes`` as two routes; the
router answers a ``DELETE /notes`` with the methods of the first route whose path
matched (``Allow: GET``), which contract testers such as schemathesis report as a lie.
"""

from __future__ import annotations

import httpx2
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router

from fastapi_enterprise import EnterpriseSettings, install, register_exception_handlers
from fastapi_enterprise.routing import RouteMatcher, allowed_methods
from tests.conftest import LiveServer


async def plain(request: Request) -> Response:
    return PlainTextResponse("plain")


class Labels(HTTPEndpoint):
    """A class endpoint: its route takes any method, the class answers 405 itself."""

    async def get(self, request: Request) -> Response:
        return PlainTextResponse("labels")

    async def put(self, request: Request) -> Response:
        return PlainTextResponse("put")


def notes_app() -> FastAPI:
    app = FastAPI()

    @app.get("/notes")
    async def list_notes() -> list[str]:
        return []

    @app.post("/notes")
    async def add_note() -> dict[str, str]:
        return {}

    @app.put("/notes/{note_id}")
    async def replace_note(note_id: int) -> dict[str, int]:
        return {"id": note_id}

    @app.delete("/notes/{note_id}")
    async def delete_note(note_id: int) -> None:
        return None

    @app.post("/notes/{note_id}/archive")
    async def archive(note_id: int) -> None:
        # The route serves POST; the resource refuses it for now: the app's own 405.
        raise HTTPException(405, detail="Archived notes stay archived.", headers={"Allow": ""})

    @app.get("/tags")
    async def tags() -> list[str]:
        return []

    @app.api_route("/tags", methods=["HEAD"])
    async def tags_head() -> None:
        return None

    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @router.patch("/items/{item_id}")
    async def patch_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.include_router(router)
    app.add_route("/plain", plain, methods=["GET"])
    app.router.routes.append(Route("/labels", Labels))
    app.mount(
        "/files",
        Router(
            routes=[
                Route("/{name}", plain, methods=["GET"]),
                Route("/{name}", plain, methods=["PUT"]),
            ]
        ),
    )
    install(app, EnterpriseSettings(environment="test"))
    return app


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/notes", "GET, POST"),
        ("PATCH", "/notes", "GET, POST"),
        ("HEAD", "/notes", "GET, POST"),  # FastAPI's GET routes do not serve HEAD
        ("OPTIONS", "/notes", "GET, POST"),
        ("GET", "/notes/7", "PUT, DELETE"),
        ("HEAD", "/notes/7", "PUT, DELETE"),
        ("DELETE", "/tags", "GET, HEAD"),  # HEAD declared as a route of its own
        ("POST", "/v1/items/a1", "GET, PATCH"),  # an included router's prefix
        ("OPTIONS", "/v1/items/a1", "GET, PATCH"),
        ("POST", "/plain", "GET, HEAD"),  # a Starlette route serves HEAD where GET is
        ("POST", "/health/live", "GET, HEAD"),
        ("DELETE", "/files/report.pdf", "GET, HEAD, PUT"),  # a mounted router
    ],
)
def test_a_405_allows_every_method_of_the_path(method: str, path: str, allow: str) -> None:
    response = TestClient(notes_app()).request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["instance"] == path


@pytest.mark.parametrize(
    ("method", "path"), [("HEAD", "/plain"), ("HEAD", "/tags"), ("HEAD", "/health/live")]
)
def test_what_allow_names_is_served(method: str, path: str) -> None:
    assert TestClient(notes_app()).request(method, path).status_code == 200


def test_a_405_the_app_raises_itself_keeps_its_headers() -> None:
    """Its route serves the method: the refusal is the resource's, not the router's."""
    response = TestClient(notes_app()).post("/notes/7/archive")
    assert response.status_code == 405
    assert response.headers["allow"] == ""
    assert response.json()["detail"] == "Archived notes stay archived."


def test_a_mounted_app_with_its_own_handlers_allows_its_own_methods() -> None:
    app = FastAPI()

    @app.get("/report")
    async def top() -> dict[str, str]:
        return {}

    tenant = FastAPI()

    @tenant.get("/report")
    async def report() -> dict[str, str]:
        return {}

    @tenant.post("/report")
    async def post_report() -> dict[str, str]:
        return {}

    register_exception_handlers(tenant)
    app.mount("/tenants/{tenant_id}", tenant)
    install(app, EnterpriseSettings(environment="test"))
    client = TestClient(app)
    assert client.delete("/tenants/3/report").headers["allow"] == "GET, POST"
    assert client.delete("/report").headers["allow"] == "GET"


def test_over_a_real_server(live_server: type[LiveServer]) -> None:
    with live_server(notes_app()) as server, httpx2.Client(base_url=server.url) as client:
        deleted = client.delete("/notes")
        assert deleted.status_code == 405
        assert deleted.headers["allow"] == "GET, POST"
        assert deleted.headers["content-type"] == "application/problem+json"
        assert deleted.json()["request_id"] == deleted.headers["x-request-id"]
        head = client.head("/v1/items/a1")
        assert (head.status_code, head.headers["allow"], head.content) == (405, "GET, PATCH", b"")
        options = client.options("/v1/items/a1")
        assert (options.status_code, options.headers["allow"]) == (405, "GET, PATCH")


def test_a_route_that_takes_any_method_answers_for_itself() -> None:
    response = TestClient(notes_app()).delete("/labels")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, PUT"  # the class's own list, kept
    assert response.headers["content-type"] == "application/problem+json"


def test_the_matcher_says_when_it_cannot_know() -> None:
    router = Router(routes=[Route("/any", Labels), Route("/get", plain, methods=["GET"])])
    matcher = RouteMatcher(router)
    scope = {"type": "http", "method": "POST", "root_path": "", "headers": []}
    assert matcher.allowed_methods({**scope, "path": "/any"}) is None
    assert matcher.allowed_methods({**scope, "path": "/get"}) == ("GET", "HEAD")
    assert matcher.allowed_methods({**scope, "path": "/nowhere"}) == ()
    assert allowed_methods({**scope, "path": "/get"}) is None  # never routed
