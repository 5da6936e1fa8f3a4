"""The OpenAPI document: every route, the password flow, problem responses, ids, ETags."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI

from conftest import make_settings, started
from fastapi_enterprise.openapi.postman import openapi_to_postman
from tecnocursos.core.app import create_app


@pytest.mark.asyncio
async def test_openapi_documents_the_routes_and_the_password_flow(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert {"/auth/register", "/auth/token", "/auth/refresh", "/auth/logout"} <= set(
        document["paths"]
    )
    assert {"/users", "/users/me"} <= set(document["paths"])
    (scheme,) = document["components"]["securitySchemes"].values()
    assert scheme["flows"]["password"]["tokenUrl"] == "/auth/token"
    login = document["paths"]["/auth/token"]["post"]
    assert "application/x-www-form-urlencoded" in login["requestBody"]["content"]
    assert "application/problem+json" in login["responses"]["429"]["content"]


# --8<-- [start:postman]
def test_a_postman_collection_of_the_api(app: FastAPI, tmp_path: Path) -> None:
    """The schema the app serves, as a Postman collection: one folder per tag."""
    collection = openapi_to_postman(app.openapi(), base_url="http://127.0.0.1:8000")
    (tmp_path / "tecnocursos.postman.json").write_text(json.dumps(collection))
    assert collection["info"]["name"] == "TecnoCursos"
    folders = {folder["name"]: folder["item"] for folder in collection["item"]}
    assert {"auth", "users", "projects", "scenes", "media"} <= set(folders)
    login = next(
        item for item in folders["auth"] if item["name"] == "Log in (OAuth2 password flow)"
    )
    assert login["request"]["method"] == "POST"


# --8<-- [end:postman]
PUBLIC = {"/auth/register", "/auth/token", "/auth/refresh", "/auth/logout"}


@pytest.mark.asyncio
async def test_every_operation_documents_its_problems_security_and_tag(
    client: httpx2.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    tags = [operation["tags"] for item in document["paths"].values() for operation in item.values()]
    assert list(dict.fromkeys(tag for (tag,) in tags)) == [
        "auth",
        "users",
        "projects",
        "scenes",
        "media",
        "videos",
    ]
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            secured = operation.get("security") == [{"OAuth2PasswordBearer": []}]
            assert secured is (path not in PUBLIC), where
            errors = {
                status: response
                for status, response in operation["responses"].items()
                if status.startswith(("4", "5"))
            }
            assert {"400", "500"} <= set(errors), where  # 429 too, when limits are on
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in errors, where
            if secured:
                assert "401" in errors, where
            for status, response in errors.items():
                # One error shape for everything: RFC 9457 problem+json, never plain JSON.
                assert list(response["content"]) == ["application/problem+json"], (where, status)
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
            if "{" in path:
                assert "404" in errors, where
                ids = [p for p in operation["parameters"] if p["in"] == "path"]
                assert all(p["schema"]["minimum"] == 1 for p in ids), where
                assert all(p["schema"]["maximum"] == 2**31 - 1 for p in ids), where
            if path.startswith("/projects/") and path.endswith("_id}"):  # ETags
                if method == "get":
                    assert "304" in operation["responses"], where  # If-None-Match
                else:
                    assert "412" in errors, where  # If-Match
    assert len(operation_ids) == len(set(operation_ids)) == 27
    assert "upload_media" in operation_ids  # readable ids, not FastAPI's generated ones
    download = document["paths"]["/media/{media_id}/content"]["get"]["responses"]["200"]
    assert set(download["content"]) == {"image/*", "audio/*"}


@pytest.mark.asyncio
async def test_the_app_section_sets_description_and_servers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_logging: None
) -> None:
    monkeypatch.setenv("TC_APP__DESCRIPTION", "Courses, scenes and media.")
    monkeypatch.setenv("TC_APP__SERVERS", '["https://api.tecnocursos.example"]')
    app = create_app(make_settings(tmp_path))
    try:
        async with started(app) as client:
            document = (await client.get("/openapi.json")).json()
    finally:
        app.state.logging.stop()
    assert document["info"]["title"] == "TecnoCursos"
    assert document["info"]["description"] == "Courses, scenes and media."
    assert document["servers"] == [{"url": "https://api.tecnocursos.example"}]
