"""Access tokens: expired, tampered, unsigned, wrongly signed or incomplete ones get 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from conftest import TEST_SECRET, add_user, bearer
from tecnocursos.auth.models import utcnow


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "type": "access",
        "iss": "tecnocursos",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "0" * 32,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


async def _me(client: httpx2.AsyncClient, token: str) -> httpx2.Response:
    return await client.get("/users/me", headers=bearer(token))


@pytest.mark.asyncio
async def test_a_token_signed_with_the_key_works(app: FastAPI, client: httpx2.AsyncClient) -> None:
    """The control for every refusal below: the same claims, correctly signed, pass."""
    user_id = await add_user(app, "ana@example.com")
    token = jwt.encode(_claims(user_id), TEST_SECRET, algorithm="HS256")
    assert (await _me(client, token)).status_code == 200


@pytest.mark.asyncio
async def test_no_token_is_401_with_a_bearer_challenge(client: httpx2.AsyncClient) -> None:
    response = await client.get("/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.asyncio
async def test_an_expired_token_is_refused(app: FastAPI, client: httpx2.AsyncClient) -> None:
    user_id = await add_user(app, "ana@example.com")
    token = app.state.tokens.create_access_token(user_id, now=utcnow() - timedelta(minutes=16))
    response = await _me(client, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.asyncio
async def test_a_tampered_token_is_refused(app: FastAPI, client: httpx2.AsyncClient) -> None:
    victim = await add_user(app, "ana@example.com")
    attacker = await add_user(app, "eve@example.com")
    token = app.state.tokens.create_access_token(attacker)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(victim)
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert (await _me(client, forged)).status_code == 401


@pytest.mark.asyncio
async def test_an_unsigned_alg_none_token_is_refused(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    user_id = await add_user(app, "ana@example.com")
    token = jwt.encode(_claims(user_id), "", algorithm="none")
    assert (await _me(client, token)).status_code == 401


@pytest.mark.asyncio
async def test_rs256_and_hs256_signed_with_a_public_key_are_refused(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    """Algorithm confusion: only HS256 with the server's secret is accepted."""
    user_id = await add_user(app, "ana@example.com")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(_claims(user_id), private_key, algorithm="RS256")
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT refuses to HMAC with a PEM key, so build the classic confusion token by hand.
    signing_input = ".".join(
        [
            _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
            _b64(json.dumps(_claims(user_id, iat=0, exp=2**31 - 1)).encode()),
        ]
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{_b64(mac)}"
    for token in (rs256, confused):
        assert (await _me(client, token)).status_code == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "changes",
    [
        {"jti": None},
        {"exp": None},
        {"iat": None},
        {"type": None},
        {"type": "refresh"},
        {"iss": "someone-else"},
        {"sub": "not-a-number"},
    ],
    ids=["no-jti", "no-exp", "no-iat", "no-type", "wrong-type", "wrong-issuer", "bad-sub"],
)
async def test_tokens_missing_or_with_wrong_claims_are_refused(
    app: FastAPI, client: httpx2.AsyncClient, changes: dict[str, Any]
) -> None:
    user_id = await add_user(app, "ana@example.com")
    token = jwt.encode(_claims(user_id, **changes), TEST_SECRET, algorithm="HS256")
    assert (await _me(client, token)).status_code == 401


@pytest.mark.asyncio
async def test_a_token_for_a_deleted_user_is_refused(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    token = app.state.tokens.create_access_token(4242)
    assert (await _me(client, token)).status_code == 401
