"""Trusted hosts and HTTPS redirects from settings, proxy-aware, with problem bodies."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, TrustedHostMiddleware, install


def make_app(**security: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"ok": "yes"}

    install(app, EnterpriseSettings(environment="test", security=security))
    return app


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.com", 200),
        ("api.example.com:8443", 200),
        ("tenant.example.org", 200),
        ("evil.example", 400),
        ("api.example.com.evil.example", 400),
        ("", 400),
        ("x" * 300, 400),
    ],
)
def test_hosts(host: str, status: int) -> None:
    app = make_app(allowed_hosts=["api.example.com", "*.example.org"])
    response = TestClient(app).get("/", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["x-request-id"]
        assert response.headers["x-content-type-options"] == "nosniff"


def test_www_redirect_is_starlettes() -> None:
    app = make_app(allowed_hosts=["www.example.com"])
    response = TestClient(app, follow_redirects=False).get("/", headers={"Host": "example.com"})
    assert response.status_code == 307
    assert response.headers["location"] == "http://www.example.com/"


def test_bad_patterns_fail_at_startup() -> None:
    with pytest.raises(ValueError, match=r"\*\.example\.com"):
        TrustedHostMiddleware(FastAPI(), allowed_hosts=["api.*.com"])


def test_https_redirect_is_proxy_aware() -> None:
    app = make_app(https_redirect=True, trusted_proxies=["127.0.0.1"])
    direct = TestClient(app, follow_redirects=False)
    redirected = direct.get("/")
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "https://testserver/"
    spoofed = direct.get("/", headers={"X-Forwarded-Proto": "https"})
    assert spoofed.status_code == 307  # the test client's peer is not a trusted proxy
    proxied = TestClient(app, follow_redirects=False, client=("127.0.0.1", 1))
    assert proxied.get("/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
