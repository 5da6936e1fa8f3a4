"""Registration: 201 for a new account, 409 for a taken email, 422 problems for bad input."""

from __future__ import annotations

import httpx2
import pytest

from conftest import PASSWORD


@pytest.mark.asyncio
async def test_register_creates_a_student(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": "Ana@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ana@example.com"
    assert body["role"] == "student"
    assert "password" not in response.text
    assert "argon2" not in response.text


@pytest.mark.asyncio
async def test_a_taken_email_is_a_409_problem_without_the_value(
    client: httpx2.AsyncClient,
) -> None:
    first = await client.post(
        "/auth/register", json={"email": "ana@example.com", "password": PASSWORD}
    )
    assert first.status_code == 201
    again = await client.post(
        "/auth/register", json={"email": "ANA@example.com", "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "ana@example.com" not in again.text.lower()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, ["body", "email"]),
        ({"email": "ana@example.com", "password": "shrt-pw"}, ["body", "password"]),
        # Over the schema's minimum (8) but under the policy's (12).
        ({"email": "ana@example.com", "password": "secret-pw1"}, ["body", "password"]),
        ({"email": "ana@example.com", "password": "ana@example.com"}, ["body", "password"]),
        ({"email": "ana@example.com", "password": "x" * 129}, ["body", "password"]),
        ({"email": "ana@example.com"}, ["body", "password"]),
        ({"email": "ana@example.com", "password": PASSWORD, "role": "admin"}, ["body", "role"]),
    ],
)
async def test_invalid_registrations_are_422_problems_with_locations_never_values(
    client: httpx2.AsyncClient, body: dict[str, str], location: list[str]
) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [error["loc"] for error in problem["errors"]] == [location]
    for value in body.values():
        assert value not in response.text
