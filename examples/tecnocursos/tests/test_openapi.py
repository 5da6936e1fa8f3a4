"""The OpenAPI document: every route, the password flow, problem responses."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI

from fastapi_enterprise.openapi.postman import openapi_to_postman


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
