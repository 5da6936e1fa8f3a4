"""CORS through install(): allowed origins only, nothing for look-alikes, problem on reject."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from fastapi_enterprise import CORSPolicyMiddleware, EnterpriseSettings, install
from tests.conftest import LogCapture

ALLOWED = "https://app.example.com"


def make_app(**security: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/data")
    async def data() -> dict[str, int]:
        return {"n": 1}

    @app.get("/busy")
    async def busy() -> None:
        raise HTTPException(429, headers={"Retry-After": "1"})

    options = {"cors_origins": [ALLOWED], "cors_allow_credentials": True, **security}
    install(app, EnterpriseSettings(environment="test", security=options))
    return app


def cors_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_allowed_origin_gets_explicit_headers() -> None:
    response = TestClient(make_app()).get("/data", headers={"Origin": ALLOWED})
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert headers["access-control-allow-credentials"] == "true"
    assert "X-Request-ID" in headers["access-control-expose-headers"]
    assert "Origin" in response.headers["vary"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.example",
        "https://app-example.com",
        "http://app.example.com",
        "https://APP.example.com\x00",
    ],
)
def test_disallowed_origins_get_no_cors_headers(capture_logs: Any, origin: str) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    response = TestClient(make_app()).get("/data", headers={"Origin": origin})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert "Origin" in response.headers["vary"]
    events = [line for line in logs.lines() if line.get("security_event") == "cors.rejected"]
    assert len(events) == 1


def test_rejected_preflight_is_a_problem_without_cors_headers() -> None:
    response = TestClient(make_app()).options(
        "/data", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "origin" in response.json()["detail"]
    assert cors_headers(response) == {}
    assert response.headers["x-request-id"]


def test_allowed_preflight() -> None:
    response = TestClient(make_app()).options(
        "/data",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_errors_from_inner_layers_still_carry_cors_headers() -> None:
    response = TestClient(make_app()).get("/busy", headers={"Origin": ALLOWED})
    assert response.status_code == 429
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_regex_origins() -> None:
    app = make_app(cors_origins=[], cors_origin_regex=r"^https://[a-z0-9-]+\.example\.com$")
    client = TestClient(app)
    ok = client.get("/data", headers={"Origin": "https://tenant-1.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://tenant-1.example.com"
    bad = client.get("/data", headers={"Origin": "https://tenant-1.example.com.evil.io"})
    assert cors_headers(bad) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, "credentialed"),
        ({"allow_origins": ["null"]}, "null"),
        ({"allow_origins": ["https://app.example.com/"]}, "no path"),
        ({"allow_origin_regex": r"https://[a-z]+\.example\.com"}, "anchored"),
        ({"allow_origin_regex": r"^https://.*example\.com$"}, "look-alike"),
        ({"allow_origin_regex": r"^https://app.example.com$"}, "look-alike"),
        ({"allow_origin_regex": "^https://.*$", "allow_credentials": True}, "anyone can register"),
        ({"allow_origin_regex": "^.*$", "allow_credentials": True}, "anyone can register"),
        ({"allow_origin_regex": r"^https://\w+\.\w+$", "allow_credentials": True}, "anyone"),
        ({"allow_origins": ["https://a.example", "ftp:/x"]}, "origin 2 is not"),
    ],
)
def test_unsafe_policies_fail_at_startup(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CORSPolicyMiddleware(FastAPI(), **kwargs)


def test_an_any_host_regex_without_credentials_is_a_public_api() -> None:
    """Issue 12 A4: with credentials it reflected any origin with Allow-Credentials."""
    app = make_app(cors_origins=[], cors_origin_regex="^https://.*$", cors_allow_credentials=False)
    response = TestClient(app).get("/data", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "https://anyone.example"
    assert "access-control-allow-credentials" not in response.headers


def test_public_api_with_wildcard_and_no_credentials() -> None:
    app = make_app(cors_origins=["*"], cors_allow_credentials=False)
    response = TestClient(app).get("/data", headers={"Origin": "https://anyone.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    null = TestClient(app).get("/data", headers={"Origin": "null"})
    assert cors_headers(null) == {}
