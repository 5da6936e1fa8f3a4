"""The client IP resolver: trusted proxies only, right-most untrusted hop, bounded."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_enterprise import ClientIPResolver, EnterpriseSettings, client_key, install
from fastapi_enterprise.client_ip import TrustedProxies, get_client_info
from fastapi_enterprise.middleware.proxy_headers import ProxyHeadersMiddleware
from tests.conftest import IN_CI

PROXY = "10.0.0.5"
STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


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


def test_trusted_proxies_normalise_mapped_networks_and_name_bad_entries_by_position() -> None:
    proxies = TrustedProxies(["::ffff:10.0.0.0/104", " 192.0.2.1 ", "fd00::/8"])
    assert [str(network) for network in proxies.networks] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "fd00::/8",
    ]
    resolver = ClientIPResolver(["::ffff:10.0.0.0/104"])
    info = resolver.resolve(scope("::ffff:10.1.2.3", ("X-Forwarded-For", "198.51.100.1")))
    assert (info.ip, info.via_proxy) == ("198.51.100.1", True)
    with pytest.raises(ValueError, match="entry 2 ") as caught:
        TrustedProxies(["10.0.0.0/8", "hunter2-not-a-network"])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("entries", "universal", "public", "wide"),
    [
        (["*"], True, [], []),
        (["0.0.0.0/0"], True, [], []),
        (["::/0"], True, [], []),
        (["0.0.0.0/1"], False, ["0.0.0.0/1"], []),
        (["10.0.0.0/7"], False, ["10.0.0.0/7"], []),  # 11.0.0.0/8 is public
        (["203.0.113.0/24", "2001:db8::/32"], False, ["203.0.113.0/24", "2001:db8::/32"], []),
        (
            ["10.0.0.0/8", "172.16.0.0/12", "fd00::/8"],
            False,
            [],
            ["10.0.0.0/8", "172.16.0.0/12", "fd00::/8"],
        ),
        (
            ["10.1.0.0/16", "192.168.0.0/16", "127.0.0.0/8", "::1", "fd12:3456:789a::/48"],
            False,
            [],
            [],
        ),
        (["100.64.0.0/10"], False, [], ["100.64.0.0/10"]),
    ],
)
def test_trusted_proxies_classify_their_reach(
    entries: list[str], universal: bool, public: list[str], wide: list[str]
) -> None:
    proxies = TrustedProxies(entries)
    assert proxies.universal is universal
    assert [str(network) for network in proxies.public_networks()] == public
    assert [str(network) for network in proxies.wide_networks()] == wide


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("::ffff:c633:6407", "198.51.100.7"),
        ("::FFFF:198.51.100.8", "198.51.100.8"),
    ],
)
def test_client_key_unmaps_ipv4_mapped_addresses(ip: str, key: str) -> None:
    assert client_key(ip) == key


@pytest.mark.parametrize("trusted_proxies", [[], ["10.0.0.0/8"]])
def test_mapped_peers_are_ipv4_everywhere_with_or_without_proxies(
    trusted_proxies: list[str],
) -> None:
    app = make_app(trusted_proxies=trusted_proxies)
    body = TestClient(app, client=("::ffff:198.51.100.7", 9)).get("/who").json()
    assert body["client"] == "198.51.100.7"


def limited_app(limit: str = "2/minute") -> FastAPI:
    app = FastAPI()

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="test", rate_limit={"default": limit}))
    return app


def test_mapped_ipv4_clients_get_a_budget_each() -> None:
    """Before: every ::ffff:a.b.c.d peer was keyed as ::/64, one budget for all IPv4."""
    app = limited_app()
    first = TestClient(app, client=("::ffff:198.51.100.1", 9))
    second = TestClient(app, client=("::ffff:198.51.100.2", 9))
    assert [first.get("/limited").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/limited").status_code == 200


def test_dual_stack_listener_keys_each_ipv4_client_by_its_own_address() -> None:
    """A real uvicorn on a dual-stack '::' socket sees IPv4 clients as ::ffff:127.0.0.x."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # what asyncio turns on
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", 0))
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"CI=true but no dual-stack IPv6 socket: {exc}")
        pytest.skip(f"no dual-stack IPv6 socket here: {exc}")
    port = sock.getsockname()[1]
    config = uvicorn.Config(limited_app(), log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn exited"
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            time.sleep(0.01)
        statuses: dict[str, list[int]] = {}
        for source in ("127.0.0.1", "127.0.0.2"):
            transport = httpx2.HTTPTransport(local_address=source)
            with httpx2.Client(transport=transport, timeout=10) as client:
                url = f"http://127.0.0.1:{port}/limited"
                statuses[source] = [client.get(url).status_code for _ in range(3)]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert statuses == {"127.0.0.1": [200, 200, 429], "127.0.0.2": [200, 200, 429]}


def test_metrics_loopback_rule_sees_a_mapped_loopback_peer() -> None:
    pytest.importorskip("prometheus_client")
    app = FastAPI()
    install(
        app,
        EnterpriseSettings(
            environment="production",
            security={"secret_key": STRONG_KEY, "allowed_hosts": ["testserver"]},
        ),
    )
    assert TestClient(app, client=("::ffff:127.0.0.1", 9)).get("/metrics").status_code == 200
    assert TestClient(app, client=("::ffff:192.0.2.9", 9)).get("/metrics").status_code == 403


def forwarded_events(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [
        record
        for record in caplog.records
        if getattr(record, "security_event", None) == "proxy.untrusted_forwarded_headers"
    ]


@pytest.mark.parametrize(
    ("trusted_proxies", "peer"),
    [([], "198.51.100.20"), (["10.0.0.0/8"], "198.51.100.20")],
)
def test_forwarding_headers_from_an_untrusted_peer_are_reported_once_per_interval(
    caplog: pytest.LogCaptureFixture, trusted_proxies: list[str], peer: str
) -> None:
    client = TestClient(make_app(trusted_proxies=trusted_proxies), client=(peer, 9))
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        assert client.get("/who").status_code == 200  # no forwarding header: nothing
        for _ in range(5):
            body = client.get(
                "/who", headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
            ).json()
            assert body["client"] == peer  # and the header is still ignored
    (event,) = forwarded_events(caplog)
    assert event.peer == peer
    assert event.headers == "x-forwarded-for,x-forwarded-proto"
    assert event.requests == 1
    assert event.trusted_proxies_configured is bool(trusted_proxies)


def test_forwarding_headers_from_a_trusted_proxy_are_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(make_app(trusted_proxies=["10.0.0.0/8"]), client=(PROXY, 9))
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        assert client.get("/who", headers={"X-Forwarded-For": "1.2.3.4"}).json()["client"] == (
            "1.2.3.4"
        )
    assert forwarded_events(caplog) == []


def test_the_next_report_counts_the_requests_since_the_last_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {}

    interval = 0.2
    client = TestClient(ProxyHeadersMiddleware(app, report_interval=interval))
    headers = {"Forwarded": "for=1.2.3.4"}
    with caplog.at_level(logging.WARNING, logger="fastapi_enterprise.security"):
        for _ in range(4):
            client.get("/", headers=headers)
        time.sleep(interval * 1.5)  # the next request is due for a report, however slow
        client.get("/", headers=headers)
    counts = [event.requests for event in forwarded_events(caplog)]
    # The first request is reported at once; every later one is counted in a report (on
    # a fast machine [1, 4]; under load a report may fall between the first four).
    assert counts[0] == 1
    assert len(counts) >= 2
    assert sum(counts) == 5
