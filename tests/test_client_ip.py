"""The client IP resolver: trusted proxies only, right-most untrusted hop, bounded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_enterprise import ClientIPResolver, EnterpriseSettings, client_key, install
from fastapi_enterprise.client_ip import get_client_info
from fastapi_enterprise.middleware.proxy_headers import ProxyHeadersMiddleware

PROXY = "10.0.0.5"


def scope(peer: str | None, *headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 1234) if peer else None,
        "headers": [(name.lower().encode(), value.encode("latin-1")) for name, value in headers],
    }


RESOLVER = ClientIPResolver(["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("peer", "headers", "ip", "scheme"),
    [
        ("203.0.113.7", [("X-Forwarded-For", "1.1.1.1")], "203.0.113.7", "http"),
        ("203.0.113.7", [("X-Forwarded-Proto", "https")], "203.0.113.7", "http"),
        (PROXY, [("X-Forwarded-For", "198.51.100.1")], "198.51.100.1", "http"),
        (PROXY, [("X-Forwarded-For", "6.6.6.6, 198.51.100.1, 10.0.0.9")], "198.51.100.1", "http"),
        (
            PROXY,
            [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.2")],
            "198.51.100.2",
            "http",
        ),
        (PROXY, [("X-Forwarded-For", "10.1.1.1, 10.2.2.2")], "10.1.1.1", "http"),
        (
            PROXY,
            [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "https")],
            "198.51.100.1",
            "https",
        ),
        (
            PROXY,
            [("X-Forwarded-For", "198.51.100.1, 10.0.0.7"), ("X-Forwarded-Proto", "https, http")],
            "198.51.100.1",
            "https",
        ),
        (
            PROXY,
            [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "gopher")],
            "198.51.100.1",
            "http",
        ),
        (PROXY, [("X-Forwarded-For", "not-an-ip")], PROXY, "http"),
        (PROXY, [("X-Forwarded-For", "198.51.100.1, garbage, 10.0.0.7")], PROXY, "http"),
        (PROXY, [("X-Forwarded-For", "198.51.100.1:4711")], "198.51.100.1", "http"),
        (PROXY, [("X-Forwarded-For", "[2001:db8::1]:443")], "2001:db8::1", "http"),
        (PROXY, [("X-Forwarded-For", "::ffff:198.51.100.3")], "198.51.100.3", "http"),
        ("::ffff:10.0.0.5", [("X-Forwarded-For", "198.51.100.4")], "198.51.100.4", "http"),
        (
            PROXY,
            [("Forwarded", 'for=198.51.100.5;proto=https, for="[2001:db8:ffff::1]"')],
            "198.51.100.5",
            "https",
        ),
        (PROXY, [("Forwarded", "proto=https")], PROXY, "http"),
        (PROXY, [], PROXY, "http"),
        (None, [("X-Forwarded-For", "1.1.1.1")], None, "http"),
    ],
)
def test_resolution(
    peer: str | None, headers: list[tuple[str, str]], ip: str | None, scheme: str
) -> None:
    info = RESOLVER.resolve(scope(peer, *headers))
    assert (info.ip, info.scheme) == (ip, scheme)


def test_hostile_headers_fall_back_to_the_peer_with_bounded_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fastapi_enterprise.client_ip as module

    parsed: list[str] = []
    real_parse = module._parse

    def counting_parse(text: str) -> Any:
        parsed.append(text)
        return real_parse(text)

    monkeypatch.setattr(module, "_parse", counting_parse)
    hostile = [
        ", ".join(["1.2.3.4"] * 5000),
        "9" * 65_536,
        ", ".join(f"10.0.{n // 256}.{n % 256}" for n in range(5000)),
    ]
    for header in hostile:
        parsed.clear()
        info = RESOLVER.resolve(scope(PROXY, ("X-Forwarded-For", header)))
        assert info.ip == PROXY
        assert not info.via_proxy
        assert parsed in ([], [PROXY])  # at most the (cached) peer: no hop was looked at
    parsed.clear()
    twenty = ", ".join(f"10.0.1.{n}" for n in range(20))
    RESOLVER.resolve(scope(PROXY, ("X-Forwarded-For", twenty)))
    assert len([text for text in parsed if text != PROXY]) == 20  # at most max_hops


def test_trust_all_and_websocket_schemes() -> None:
    resolver = ClientIPResolver(["*"])
    info = resolver.resolve(
        scope(
            "192.0.2.1",
            ("X-Forwarded-For", "198.51.100.9"),
            ("X-Forwarded-Proto", "https"),
            scheme="ws",
        )
    )
    assert (info.ip, info.scheme) == ("198.51.100.9", "wss")


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        (None, "unknown"),
        ("garbage", "unknown"),
    ],
)
def test_client_key_groups_ipv6_by_64(ip: str | None, key: str) -> None:
    assert client_key(ip) == key


def make_app(**security: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    async def who(request: Request) -> dict[str, Any]:
        info = get_client_info(request.scope)
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "peer": info.peer if info else None,
        }

    install(app, EnterpriseSettings(environment="test", security=security))
    return app


def test_spoofed_headers_from_an_untrusted_peer_are_ignored_over_http() -> None:
    client = TestClient(make_app())
    body = client.get(
        "/who", headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
    ).json()
    assert body == {"client": "testclient", "scheme": "http", "peer": None}  # no proxy configured


def test_trusted_proxy_through_the_stack() -> None:
    client = TestClient(make_app(trusted_proxies=["127.0.0.0/8"]), client=("127.0.0.1", 9))
    body = client.get(
        "/who", headers={"X-Forwarded-For": "198.51.100.8", "X-Forwarded-Proto": "https"}
    ).json()
    assert body == {"client": "198.51.100.8", "scheme": "https", "peer": "127.0.0.1"}


def test_websocket_scope_is_rewritten_only_for_trusted_proxies() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["scheme"]))

    middleware = ProxyHeadersMiddleware(app, trusted_proxies=["10.0.0.0/8"])
    import asyncio

    async def run(peer: str) -> None:
        ws = scope(
            peer, ("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-Proto", "https"), scheme="ws"
        )
        ws["type"] = "websocket"
        await middleware(ws, None, None)  # type: ignore[arg-type]

    asyncio.run(run("10.1.1.1"))
    asyncio.run(run("192.0.2.1"))
    assert seen == [(("198.51.100.1", 1234), "wss"), (("192.0.2.1", 1234), "ws")]
