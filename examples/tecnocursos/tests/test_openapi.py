"""The OpenAPI document: every route, the password flow, problem responses."""

from __future__ import annotations

import httpx2
import pytest


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
