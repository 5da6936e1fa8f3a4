"""SecurityHeadersMiddleware through the full install() stack: every response, once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, get_csp_nonce, install
from fastapi_enterprise.csp import NONCE, ContentSecurityPolicy
from fastapi_enterprise.middleware.security_headers import SecurityHeadersMiddleware, hsts_value
from fastapi_enterprise.openapi.docs_pages import REDOC_VERSION, SWAGGER_UI_VERSION
from tests.conftest import LiveServer
from tests.observatory import grade

KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"
PROTECTIVE = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "cache-control",
)


def make_app(environment: str = "production", **security: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create(payload: dict[str, int]) -> dict[str, int]:
        return payload

    @app.get("/own-csp")
    async def own_csp() -> PlainTextResponse:
        return PlainTextResponse(
            "x",
            headers={
                "Content-Security-Policy": "default-src 'self'",
                "Cache-Control": "max-age=60",
            },
        )

    @app.get("/cookies")
    async def cookies() -> JSONResponse:
        response = JSONResponse({})
        response.set_cookie("a", "1", secure=True, httponly=True)
        response.set_cookie("b", "2", secure=True, httponly=True)
        return response

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/limited")
    async def limited() -> None:
        raise HTTPException(429, headers={"Retry-After": "3"})

    options = {"secret_key": KEY, "allowed_hosts": ["testserver", "127.0.0.1"], **security}
    install(
        app,
        EnterpriseSettings(environment=environment, security=options, body_limit={"max_bytes": 64}),
    )
    return app


def https_client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/items/1", {}, 200),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/items/1", {}, 405),
        ("POST", "/items", {"json": {"k": 1, "padding": 10**70}}, 413),
        ("GET", "/limited", {}, 429),
        ("GET", "/crash", {}, 500),
        ("GET", "/items/x", {}, 422),
    ],
)
def test_every_response_carries_each_header_exactly_once(
    method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = https_client(make_app()).request(method, path, **kwargs)
    assert response.status_code == status
    for name in (*PROTECTIVE, "strict-transport-security", "x-request-id"):
        assert len(response.headers.get_list(name)) == 1, name


def test_default_set_over_https_scores_a_plus() -> None:
    response = https_client(make_app()).get("/items/1")
    result = grade(response.headers)
    assert result.grade == "A+", result.results
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert response.headers["cache-control"] == "no-store"


def test_grader_punishes_what_it_should() -> None:
    assert grade({}).grade == "D"  # 100 - 25 - 20 - 20 - 5
    weak = grade(
        {
            "Content-Security-Policy": "script-src 'unsafe-inline'",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Strict-Transport-Security": "max-age=60",
        }
    )
    assert weak.results["content-security-policy"][1] == -20
    assert (weak.score, weak.grade) == (70, "B")  # 100 - 20 (unsafe-inline) - 10 (short HSTS)


def test_no_hsts_over_plain_http_even_when_spoofed() -> None:
    client = TestClient(make_app(), raise_server_exceptions=False)  # http://testserver
    response = client.get("/items/1", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in response.headers


def test_hsts_from_a_trusted_proxy_scheme() -> None:
    app = make_app(trusted_proxies=["127.0.0.0/8"])
    client = TestClient(app, client=("127.0.0.1", 5000))
    response = client.get(
        "/items/1", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    )
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


def test_development_never_pins_hsts() -> None:
    response = https_client(make_app(environment="development")).get("/items/1")
    assert "strict-transport-security" not in response.headers
    assert "content-security-policy" in response.headers


def test_endpoint_values_win_and_stay_single() -> None:
    response = https_client(make_app()).get("/own-csp")
    assert response.headers.get_list("content-security-policy") == ["default-src 'self'"]
    assert response.headers.get_list("cache-control") == ["max-age=60"]


def test_override_replaces_endpoint_values() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("x", headers={"X-Frame-Options": "ALLOWALL"})(scope, receive, send)

    app = SecurityHeadersMiddleware(endpoint, override=True)
    response = TestClient(app).get("/")
    assert response.headers.get_list("x-frame-options") == ["DENY"]


def test_two_cookies_both_arrive() -> None:
    response = https_client(make_app()).get("/cookies")
    assert len(response.headers.get_list("set-cookie")) == 2


def test_cors_preflight_gets_the_headers_too() -> None:
    app = make_app(cors_origins=["https://app.example.com"])
    response = https_client(app).options(
        "/items/1",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 200
    for name in PROTECTIVE:
        assert len(response.headers.get_list(name)) == 1


def test_nonces_are_fresh_per_request_and_isolated(live_server: type[LiveServer]) -> None:
    policy = ContentSecurityPolicy({"default-src": ["'none'"], "script-src": [NONCE]})
    app = FastAPI()

    @app.get("/page")
    async def page() -> HTMLResponse:
        nonce = get_csp_nonce()
        await asyncio.sleep(0.005)
        assert nonce == get_csp_nonce()
        return HTMLResponse(f'<script nonce="{nonce}">1</script>')

    app.add_middleware(SecurityHeadersMiddleware, csp=policy)

    async def fire(url: str) -> list[httpx2.Response]:
        async with httpx2.AsyncClient(base_url=url) as client:
            responses: list[httpx2.Response] = await asyncio.gather(
                *(client.get("/page") for _ in range(200))
            )
            return responses

    with live_server(app) as server:
        responses = asyncio.run(fire(server.url))
    nonces = []
    for response in responses:
        header_nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"])
        body_nonce = re.search(r'nonce="([^"]+)"', response.text)
        assert header_nonce
        assert body_nonce
        assert header_nonce.group(1) == body_nonce.group(1)
        nonces.append(header_nonce.group(1))
    assert len(set(nonces)) == 200
    assert get_csp_nonce() is None


def test_per_path_policies_longest_prefix_wins() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("x")(scope, receive, send)

    docs = ContentSecurityPolicy({"default-src": ["'self'"]})
    deep = ContentSecurityPolicy({"default-src": ["'none'"], "img-src": ["'self'"]})
    app = SecurityHeadersMiddleware(
        endpoint, path_policies={"/docs": docs, "/docs/deep": deep, "/raw": None}
    )
    client = TestClient(app)
    assert client.get("/docs").headers["content-security-policy"] == "default-src 'self'"
    assert client.get("/docs/x").headers["content-security-policy"] == "default-src 'self'"
    assert "img-src" in client.get("/docs/deep/1").headers["content-security-policy"]
    assert client.get("/docsx").headers["content-security-policy"].startswith("default-src 'none'")
    assert "content-security-policy" not in client.get("/raw").headers


def test_report_only_mode_and_report_uri() -> None:
    app = make_app(csp_report_only=True, csp_report_uri="https://reports.example.com/csp")
    response = https_client(app).get("/items/1")
    assert "content-security-policy" not in response.headers
    value = response.headers["content-security-policy-report-only"]
    assert value.endswith("; report-uri https://reports.example.com/csp")


def test_docs_pages_get_hash_based_policies_matching_the_served_html() -> None:
    client = https_client(make_app(environment="development"))
    response = client.get("/docs")
    policy = response.headers["content-security-policy"]
    for script in re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    cdn = "https://cdn.jsdelivr.net/npm"
    assert f"{cdn}/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui-bundle.js" in policy
    assert "'unsafe-eval'" not in policy
    assert not re.search(r"script-src[^;]*(https://cdn\.jsdelivr\.net)( |;|$)", policy)
    redoc = client.get("/redoc").headers["content-security-policy"]
    assert f"{cdn}/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js" in redoc
    assert (
        client.get("/openapi.json")
        .headers["content-security-policy"]
        .startswith("default-src 'none'")
    )


def test_no_relaxed_policy_exists_when_docs_are_off() -> None:
    client = https_client(make_app())  # production: docs off
    for path in ("/docs", "/redoc"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hsts_max_age": -1}, "negative"),
        ({"hsts_max_age": 3600, "hsts_preload": True}, "preload"),
        ({"extra_headers": {"X-Evil": "a\r\nSet-Cookie: x=1"}}, "control character"),
        ({"frame_options": "ALLOWALL"}, "DENY or SAMEORIGIN"),
        ({"frame_options": "ALLOW-FROM https://a.example"}, "DENY or SAMEORIGIN"),
        ({"referrer_policy": "no-referrer, everything"}, "token 2 "),
    ],
)
def test_invalid_configuration_fails_at_startup(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SecurityHeadersMiddleware(FastAPI(), **kwargs)


def test_invalid_csp_setting_fails_at_startup() -> None:
    from fastapi_enterprise import SettingsValidationError

    with pytest.raises(SettingsValidationError, match="must be quoted"):
        EnterpriseSettings(security={"csp": "default-src self"})


def test_hsts_value() -> None:
    assert hsts_value(63072000, preload=True) == "max-age=63072000; includeSubDomains; preload"
    assert hsts_value(0, include_subdomains=False) == "max-age=0"
