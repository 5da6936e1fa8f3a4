"""Rate limiting through HTTP: exact under concurrency, keyed on templates, alive without Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.install import installed_rate_limiter
from fastapi_enterprise.middleware.rate_limit import QUOTA_EXCEEDED_TYPE, RateLimitMiddleware
from fastapi_enterprise.ratelimit import (
    BoundedMemoryStorage,
    RateLimiter,
    RateLimitPolicy,
    api_key_header,
    composite,
    create_storage,
    rate_limit,
    rate_limit_exempt,
    user,
)
from fastapi_enterprise.ratelimit.limiter import Strategy
from tests.conftest import LogCapture, RedisProcess, UvicornProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["sliding-window-counter", "moving-window", "fixed-window"]


def make_app(**rate: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    @rate_limit("3/minute")
    async def login() -> dict[str, str]:
        return {"ok": "login"}

    @app.get("/login")
    async def login_page() -> dict[str, str]:
        return {"ok": "page"}

    @app.get("/items/{item_id}")
    @rate_limit("4/minute")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/search")
    @rate_limit("5/minute", scope="expensive", cost=2)
    async def search() -> dict[str, str]:
        return {"ok": "search"}

    @app.get("/export")
    @rate_limit("5/minute", scope="expensive", cost=3)
    async def export() -> dict[str, str]:
        return {"ok": "export"}

    @app.get("/webhook")
    @rate_limit_exempt
    async def webhook() -> dict[str, str]:
        return {"ok": "hook"}

    @app.get("/critical")
    @rate_limit("100/minute", fail="closed")
    async def critical() -> dict[str, str]:
        return {"ok": "critical"}

    @app.get("/free")
    async def free() -> dict[str, str]:
        return {"ok": "free"}

    options = {"default": "6/minute", **rate}
    install(
        app,
        EnterpriseSettings(
            environment="test",
            rate_limit=options,
            security={"cors_origins": ["https://app.example.com"]},
        ),
    )
    return app


def statuses(client: TestClient, method: str, paths: list[str], **kwargs: Any) -> list[int]:
    return [client.request(method, path, **kwargs).status_code for path in paths]


def test_429_is_a_quota_problem_with_ietf_headers() -> None:
    client = TestClient(make_app())
    assert statuses(client, "POST", ["/login"] * 3) == [200] * 3
    response = client.post("/login", headers={"Origin": "https://app.example.com"})
    assert response.status_code == 429
    body = response.json()
    assert body["type"] == QUOTA_EXCEEDED_TYPE
    assert body["status"] == 429
    assert body["request_id"] == response.headers["x-request-id"]
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-policy"] == '"route-3-per-1-minute";q=3;w=60'
    assert response.headers["ratelimit"].startswith('"route-3-per-1-minute";r=0;t=')
    # A 429 is a response like any other: security headers, CORS, request ID.
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


@pytest.mark.parametrize("headers", [False, True])
def test_a_429_lists_every_policy_of_the_route(headers: bool) -> None:
    """A 429's RateLimit-Policy names all of the route's limits.

    As on a success with headers on and as the docs show; RateLimit names the one that
    ran out.
    """
    app = FastAPI()

    @app.post("/login")
    @rate_limit("2/minute;20/hour", scope="auth")
    async def login() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="test", rate_limit={"headers": headers}))
    client = TestClient(app)
    responses = [client.post("/login") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    both = '"auth-2-per-1-minute";q=2;w=60, "auth-20-per-1-hour";q=20;w=3600'
    assert responses[2].headers["ratelimit-policy"] == both
    assert responses[2].headers["ratelimit"].startswith('"auth-2-per-1-minute";r=0;t=')
    if headers:
        assert responses[0].headers["ratelimit-policy"] == both


def test_path_tricks_share_one_budget() -> None:
    client = TestClient(make_app(), follow_redirects=False)
    assert statuses(client, "GET", ["/items/1", "/items/2", "/items/3", "/items/999"]) == [200] * 4
    assert statuses(client, "GET", ["/items/5", "/items/0007"]) == [429, 429]
    # /login (POST) has 3; HEAD /login and GET /login/ variants cannot open a new budget.
    tricks = client.post("/login").status_code, client.post("/log%69n").status_code
    assert tricks == (200, 200)
    assert client.post("/login").status_code == 200
    assert client.post("/log%69n").status_code == 429
    assert client.post("/login/").status_code in (307, 429)  # unmatched: the app-wide budget


def raw_request(port: int, head: bytes) -> int:
    """Send exactly these request bytes (no client normalises them); return the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head + b"\r\nHost: test\r\nConnection: close\r\n\r\n")
        return read_status(connection)


def read_status(connection: socket.socket) -> int:
    """The status code of the response arriving on ``connection`` (its status line)."""
    reply = b""
    while b"\r\n" not in reply:
        chunk = connection.recv(64)
        if not chunk:
            break
        reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_raw_path_tricks_over_a_real_server_share_the_routes_budget(tmp_path: Path) -> None:
    """The bytes a scanner sends, as uvicorn decodes them, cannot open a fresh budget.

    However the path is spelled, the handler of /ping runs at most as often as /ping's
    own budget allows.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "FE_ENVIRONMENT": "test",
        "FE_LOGGING__ACCESS_LOG": "false",
        "FE_RATE_LIMIT__ROUTES": '{"/ping": "3/minute"}',
        "FE_RATE_LIMIT__DEFAULT": "1000/minute",
    }
    tricks = [
        b"GET /ping HTTP/1.1",
        b"GET /p%69ng HTTP/1.1",
        b"GET /%70%69%6e%67 HTTP/1.1",
        b"GET /ping?fresh=1 HTTP/1.1",
        b"GET /ping?fresh=2&x HTTP/1.1",
        b"HEAD /ping HTTP/1.1",
        b"GET http://test/ping HTTP/1.1",
        b"GET /ping/ HTTP/1.1",
        b"GET //ping HTTP/1.1",
        b"GET /./ping HTTP/1.1",
        b"GET /ping%2F HTTP/1.1",
    ]
    with UvicornProcess("tests.ratelimit_app:app", env=env, cwd=tmp_path) as server:
        server.wait_until_serving("/health/live")
        codes = [raw_request(server.port, trick) for trick in tricks * 2]
    assert codes.count(200) == 3, list(zip(tricks * 2, codes, strict=True))
    assert codes[:3] == [200, 200, 200]
    assert set(codes) <= {200, 307, 404, 405, 429}, codes


def test_unmatched_requests_count_against_the_default() -> None:
    client = TestClient(make_app(), follow_redirects=False)
    codes = statuses(client, "GET", [f"/scan/{n}" for n in range(8)])
    assert codes == [404] * 6 + [429] * 2
    # The app-wide budget is per client across routes without their own policy.
    assert client.get("/free").status_code == 429


def test_shared_scope_and_cost() -> None:
    client = TestClient(make_app())
    assert client.get("/search").status_code == 200  # 2 of 5
    assert client.get("/export").status_code == 200  # 5 of 5
    assert client.get("/search").status_code == 429
    assert client.get("/export").status_code == 429


def test_exemptions() -> None:
    client = TestClient(make_app(exempt_paths=["/free"]))
    assert statuses(client, "GET", ["/webhook"] * 20) == [200] * 20
    assert statuses(client, "GET", ["/free"] * 20) == [200] * 20
    assert statuses(client, "GET", ["/free/below"] * 20) == [404] * 20  # under the prefix
    # A lookalike is not under "/free": it spends the app-wide budget of 6.
    assert statuses(client, "GET", ["/freebie"] * 8) == [404] * 6 + [429] * 2


def test_spoofed_forwarded_for_does_not_escape() -> None:
    client = TestClient(make_app())
    codes = [
        client.post("/login", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(6)
    ]
    assert codes == [200, 200, 200, 429, 429, 429]


def test_clients_behind_a_trusted_proxy_get_their_own_budgets() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        return {}

    install(
        app,
        EnterpriseSettings(
            environment="test",
            rate_limit={"default": "2/minute"},
            security={"trusted_proxies": ["127.0.0.1"]},
        ),
    )
    client = TestClient(app, client=("127.0.0.1", 1))
    a = [
        client.get("/x", headers={"X-Forwarded-For": "198.51.100.1"}).status_code for _ in range(3)
    ]
    b = [
        client.get("/x", headers={"X-Forwarded-For": "198.51.100.2"}).status_code for _ in range(3)
    ]
    v6 = [
        client.get("/x", headers={"X-Forwarded-For": f"2001:db8:1:2::{n}"}).status_code
        for n in range(3)
    ]
    assert a == b == v6 == [200, 200, 429]


def test_success_headers_and_legacy_trio() -> None:
    client = TestClient(make_app(headers=True, legacy_headers=True))
    response = client.get("/items/1")
    assert response.headers["ratelimit-policy"] == '"route-4-per-1-minute";q=4;w=60'
    assert response.headers["ratelimit"].startswith('"route-4-per-1-minute";r=3;t=')
    assert response.headers["x-ratelimit-limit"] == "4"
    assert response.headers["x-ratelimit-remaining"] == "3"


def test_shadow_mode_reports_but_serves(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(EnterpriseSettings(environment="test"))
    # The moving window counts exactly: with the default sliding-window counter, a run
    # that crosses a minute boundary weighs the previous minute and allowed a fourth
    # request (seen in CI as (4, 1, 0)).
    app = make_app(shadow=True, strategy="moving-window")
    client = TestClient(app)
    assert statuses(client, "POST", ["/login"] * 5) == [200] * 5
    limiter = installed_rate_limiter(app)
    assert limiter is not None
    assert (limiter.stats.allowed, limiter.stats.shadow_rejected, limiter.stats.rejected) == (
        3,
        2,
        0,
    )
    events = [line for line in logs.lines() if line.get("security_event") == "rate_limit.rejected"]
    assert [event["shadow"] for event in events] == [True, True]


def test_openapi_documents_429_with_limits() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    login = schema["paths"]["/login"]["post"]["responses"]["429"]
    assert "3 per 1 minute" in login["description"]
    assert set(login["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    assert "application/problem+json" in login["content"]
    assert "429" not in schema["paths"]["/webhook"]["get"]["responses"]
    assert (
        "shared budget 'expensive'"
        in schema["paths"]["/search"]["get"]["responses"]["429"]["description"]
    )


async def burst(app: FastAPI, path: str, count: int) -> Counter[int]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(path) for _ in range(count)))
    await close_limiter(app)
    return Counter(response.status_code for response in responses)


async def close_limiter(app: FastAPI) -> None:
    """The ASGI transport runs no lifespan: close the storage in the loop that opened it."""
    limiter = installed_rate_limiter(app)
    if limiter is not None:
        await limiter.aclose()


def tiny_app(storage_url: str, strategy: str, limit: str = "5/minute", **rate: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/hit")
    async def hit() -> dict[str, str]:
        await asyncio.sleep(0)
        return {}

    options = {"default": limit, "storage_url": storage_url, "strategy": strategy, **rate}
    install(app, EnterpriseSettings(environment="test", rate_limit=options))
    return app


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exactly_five_of_a_hundred_concurrent_pass_in_memory(strategy: str) -> None:
    assert asyncio.run(burst(tiny_app("memory://", strategy), "/hit", 100)) == {200: 5, 429: 95}


@pytest.mark.redis
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exactly_five_of_a_hundred_concurrent_pass_on_redis(
    redis_namespace: tuple[str, str], strategy: str
) -> None:
    url, prefix = redis_namespace
    app = tiny_app(url, strategy, storage_prefix=prefix.rstrip(":"))  # the default timeout
    assert asyncio.run(burst(app, "/hit", 100)) == {200: 5, 429: 95}


@pytest.mark.redis
def test_two_processes_sharing_redis_enforce_one_budget(
    redis_namespace: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = redis_namespace
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FE_ENVIRONMENT": "test",
        "FE_RATE_LIMIT__DEFAULT": "5/minute",
        "FE_RATE_LIMIT__STORAGE_URL": url,
        "FE_RATE_LIMIT__STORAGE_PREFIX": prefix.rstrip(":"),
        "FE_LOGGING__ACCESS_LOG": "false",
    }
    with (
        UvicornProcess("tests.ratelimit_app:app", env=env, cwd=tmp_path) as first,
        UvicornProcess("tests.ratelimit_app:app", env=env, cwd=tmp_path) as second,
    ):
        for server in (first, second):
            server.wait_until_serving("/ping")
        codes: Counter[int] = Counter()
        for _ in range(6):
            for server in (first, second):
                codes[httpx2.get(f"{server.url}/ping").status_code] += 1
        # The two readiness probes above already used 2 of the 5.
        assert codes == {200: 3, 429: 9}


def fault_app(url: str, **rate: Any) -> tuple[FastAPI, RateLimiter]:
    app = tiny_app(url, "fixed-window", "3/minute", breaker_cooldown=0.3, timeout=0.2, **rate)

    @app.get("/strict")
    @rate_limit("100/minute", fail="closed")
    async def strict() -> dict[str, str]:
        return {}

    limiter = installed_rate_limiter(app)
    assert limiter is not None
    return app, limiter


@pytest.mark.redis
def test_redis_stopped_mid_traffic_then_back(own_redis: RedisProcess) -> None:
    app, limiter = fault_app(own_redis.url)
    with TestClient(app) as client:
        assert statuses(client, "GET", ["/hit"] * 4) == [200, 200, 200, 429]
        own_redis.stop()
        assert statuses(client, "GET", ["/hit"] * 5) == [200] * 5  # fail open
        # Three failures in a row open the breaker; it skipped the other two.
        assert limiter.stats.storage_errors == 3
        assert limiter.stats.fail_open == 5
        strict = client.get("/strict")
        assert strict.status_code == 503
        assert int(strict.headers["retry-after"]) >= 1
        assert strict.headers["content-type"] == "application/problem+json"
        own_redis.start()  # an empty server: the budget starts over
        time.sleep(0.35)  # let the breaker's cooldown pass (not a speed assertion)
        assert statuses(client, "GET", ["/hit"] * 4) == [200, 200, 200, 429]


@pytest.mark.redis
def test_redis_down_at_startup(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    app, limiter = fault_app(f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(app) as client:
        assert statuses(client, "GET", ["/hit"] * 10) == [200] * 10
    assert limiter.stats.storage_errors >= 1
    assert limiter.stats.fail_open == 10


@pytest.mark.redis
def test_fallback_to_memory_keeps_enforcing(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    app, limiter = fault_app(f"redis://127.0.0.1:{free_port()}/0", fallback_memory=True)
    with TestClient(app) as client:
        assert statuses(client, "GET", ["/hit"] * 5) == [200, 200, 200, 429, 429]
    assert limiter.stats.fallback == 5


@pytest.mark.redis
def test_hung_redis_delays_a_few_requests_and_never_blocks_the_loop(
    own_redis: RedisProcess,
) -> None:
    import redis

    app, limiter = fault_app(own_redis.url)
    admin = redis.Redis.from_url(own_redis.url)

    async def scenario() -> tuple[list[int], list[int]]:
        ticks = 0
        stop = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(heartbeat())
        transport = httpx2.ASGITransport(app=app)
        codes, during = [], []
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/hit")  # connect while healthy
            admin.client_pause(3000, all=True)
            for _ in range(5):
                before = ticks
                codes.append((await client.get("/hit")).status_code)
                during.append(ticks - before)
        admin.client_unpause()
        await close_limiter(app)
        stop.set()
        await beat
        return codes, during

    try:
        codes, during = asyncio.run(scenario())
    finally:
        admin.client_unpause()
        admin.close()
    assert codes == [200] * 5
    assert limiter.stats.storage_errors == 3  # three timeouts in a row, then the breaker
    # While each of the three waited on the hung Redis, the event loop kept running.
    assert all(count > 0 for count in during[:3]), during
    assert limiter.stats.fail_open == 5


@pytest.mark.redis
def test_api_keys_are_stored_hashed(redis_namespace: tuple[str, str]) -> None:
    import redis

    url, prefix = redis_namespace
    app = tiny_app(
        url, "fixed-window", "5/minute", key="api_key", storage_prefix=prefix.rstrip(":")
    )
    with TestClient(app) as test_client:
        test_client.get("/hit", headers={"X-Api-Key": "sk-live-supersecret"})
    client = redis.Redis.from_url(url)
    try:
        keys = [key.decode() for key in client.scan_iter(match=prefix.rstrip(":") + "*")]
    finally:
        client.close()
    assert keys
    assert not any("supersecret" in key for key in keys)


def test_key_functions() -> None:
    api = api_key_header()
    scope = {"headers": [(b"x-api-key", b"abc")], "client": ("198.51.100.1", 1)}
    assert api(scope) is not None
    assert "abc" not in str(api(scope))
    assert api({"headers": []}) is None
    by_user = user(lambda scope: scope.get("user_id"))
    assert by_user({"user_id": 7}) == "user:7"
    both = composite(by_user, api)
    assert both({**scope, "user_id": 7}) == f"user:7+{api(scope)}"
    assert both({"headers": [], "user_id": 7}) is None


async def hit_distinct_clients(limiter: RateLimiter, policy: RateLimitPolicy, count: int) -> None:
    for n in range(count):
        await limiter.check(policy, "default", f"ip:{n}")


def test_the_memory_storage_is_importable_where_it_always_was() -> None:
    from fastapi_enterprise.ratelimit import limiter, memory

    assert limiter.BoundedMemoryStorage is memory.BoundedMemoryStorage is BoundedMemoryStorage
    assert isinstance(create_storage("memory://"), BoundedMemoryStorage)
    assert isinstance(RateLimiter().storage, BoundedMemoryStorage)


def test_bounded_memory_under_a_flood_of_distinct_keys() -> None:
    storage = BoundedMemoryStorage(max_keys=1000)
    limiter = RateLimiter(storage=storage, strategy="fixed-window")
    asyncio.run(hit_distinct_clients(limiter, RateLimitPolicy.from_string("5/minute"), 5000))
    assert len(storage.storage) <= 1000


async def wait_for_window_fraction(low: float) -> None:
    """Sleep until the clock is ``low`` of a second past a whole second (or already is)."""
    fraction = time.time() % 1
    if not low <= fraction < low + 0.25:
        await asyncio.sleep((low - fraction) % 1)


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window"])
def test_memory_counters_decide_as_limits_reference_storage(strategy: Strategy) -> None:
    """The lean memory counters give the decisions and windows of limits' own storage.

    Both are hit side by side across a window boundary, where the sliding window
    weighs the previous window's count by how much of it is left.
    """
    from limits.aio.storage import MemoryStorage

    policy = RateLimitPolicy.from_string("3/second")
    ours = RateLimiter(storage=BoundedMemoryStorage(), strategy=strategy)
    reference = RateLimiter(storage=MemoryStorage(), strategy=strategy)

    async def both() -> tuple[bool, bool]:
        mine = await ours.check(policy, "default", "ip:1", with_stats=True)
        theirs = await reference.check(policy, "default", "ip:1", with_stats=True)
        # The same windows: the remaining count, and the reset to within the time
        # between the two reads.
        assert [remaining for _, remaining, _ in mine.windows] == [
            remaining for _, remaining, _ in theirs.windows
        ]
        for (_, _, reset), (_, _, expected) in zip(mine.windows, theirs.windows, strict=True):
            assert reset == pytest.approx(expected, abs=0.05)
        # limits' own strategy reads the counters under the keys they were charged to.
        (item,) = policy.limits
        stats = await ours.strategy.get_window_stats(item, "default", "ip:1")
        assert stats.remaining == mine.windows[0][1]
        return mine.allowed, theirs.allowed

    async def scenario() -> list[tuple[bool, bool]]:
        await wait_for_window_fraction(0.05)
        decisions = [await both() for _ in range(5)]  # 3 pass, 2 refused
        await asyncio.sleep(1 - time.time() % 1 + 0.5)  # the middle of the next window
        decisions += [await both() for _ in range(4)]
        return decisions

    decisions = asyncio.run(scenario())
    assert [mine for mine, _ in decisions] == [theirs for _, theirs in decisions]
    assert [mine for mine, _ in decisions][:5] == [True, True, True, False, False]
    # Half the previous window still counts (floor(1.5) = 1) for the sliding window:
    # two more pass; the fixed window starts afresh: three more pass.
    expected = 2 if strategy == "sliding-window-counter" else 3
    assert sum(mine for mine, _ in decisions[5:]) == expected


def test_memory_counters_are_swept_once_expired() -> None:
    storage = BoundedMemoryStorage(sweep_interval=0.0)
    limiter = RateLimiter(storage=storage, strategy="fixed-window")
    policy = RateLimitPolicy.from_string("5/second")

    async def hits() -> None:
        await hit_distinct_clients(limiter, policy, 50)
        assert len(storage.storage) == 50
        await asyncio.sleep(1.05)  # every counter has expired; none is read again
        await limiter.check(policy, "default", "ip:fresh")

    asyncio.run(hits())
    assert len(storage.storage) == len(storage.expirations) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "leaky-bucket"}, "unknown strategy"),
        ({"timeout": 0}, "timeout"),
        ({"storage_uri": "memcached://x"}, "unsupported"),
    ],
)
def test_bad_limiter_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(**kwargs)


@pytest.mark.parametrize("value", ["10/fortnight", "", "ten per minute"])
def test_bad_limit_strings_fail_at_startup(value: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        rate_limit(value)


def test_bad_settings_fail_at_startup() -> None:
    from fastapi_enterprise import SettingsValidationError

    with pytest.raises(SettingsValidationError, match=r"rate_limit\.routes"):
        EnterpriseSettings(rate_limit={"routes": {"/login": "5/eon"}})
    with pytest.raises(SettingsValidationError, match="storage_url"):
        EnterpriseSettings(rate_limit={"storage_url": "memcached://x"})
    with pytest.raises(ValueError, match="cost"):
        rate_limit("5/minute", cost=0)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("HEAD /media", "HEAD requests count as GET"),
        ("FETCH /media", "method is one of DELETE, GET, OPTIONS, PATCH, POST, PUT"),
        ("media", "'/template' or 'METHOD /template'"),
        ("POST media", "'/template' or 'METHOD /template'"),
    ],
)
def test_a_malformed_route_key_is_refused(key: str, message: str) -> None:
    from fastapi_enterprise import SettingsValidationError

    with pytest.raises(SettingsValidationError, match=r"rate_limit\.routes") as caught:
        EnterpriseSettings(rate_limit={"routes": {key: "5/minute"}})
    assert message in str(caught.value)


def test_route_keys_are_normalised_and_may_not_repeat() -> None:
    from fastapi_enterprise import SettingsValidationError

    settings = EnterpriseSettings(rate_limit={"routes": {"post  /media": "2/second"}})
    assert settings.rate_limit.routes == {"POST /media": "2/second"}
    with pytest.raises(SettingsValidationError, match="repeats a route key"):
        EnterpriseSettings(
            rate_limit={"routes": {"post /media": "1/second", "POST /media": "2/second"}}
        )


def media_app(routes: dict[str, str]) -> FastAPI:
    """``GET`` and ``POST /media``, limited by ``rate_limit.routes`` only."""
    app = FastAPI()
    install(
        app, EnterpriseSettings(environment="test", rate_limit={"default": "", "routes": routes})
    )

    @app.get("/media")
    async def listing() -> list[int]:
        return []

    @app.post("/media")
    async def upload() -> dict[str, str]:
        return {"ok": "stored"}

    @app.delete("/media")
    async def purge() -> None:
        return None

    return app


def test_two_endpoints_of_one_template_each_have_their_own_budget() -> None:
    app = FastAPI()
    install(app, EnterpriseSettings(environment="test", rate_limit={"default": ""}))

    @app.get("/x")
    @rate_limit("2/minute")
    async def read() -> dict[str, str]:
        return {}

    @app.post("/x")
    @rate_limit("2/minute")
    async def write() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        assert statuses(client, "GET", ["/x"] * 3) == [200, 200, 429]
        assert statuses(client, "POST", ["/x"] * 3) == [200, 200, 429]
        # A method no endpoint answers is charged to the endpoint the router finds (405).
        assert statuses(client, "PUT", ["/x"]) == [429]


def test_a_method_key_limits_that_method_only_with_its_own_budget() -> None:
    app = media_app({"POST /media": "2/minute", "/media": "3/minute"})
    with TestClient(app) as client:
        assert statuses(client, "POST", ["/media"] * 3) == [200, 200, 429]
        # GET and DELETE share the template's budget; the POSTs did not spend it.
        assert statuses(client, "GET", ["/media"] * 2) == [200, 200]
        assert statuses(client, "DELETE", ["/media"] * 2) == [200, 429]
        limited = client.post("/media")
        assert limited.status_code == 429
        assert "2 per 1 minute" in limited.json()["detail"]


def test_head_counts_as_get_and_other_methods_are_not_limited() -> None:
    app = media_app({"GET /media": "2/minute"})
    with TestClient(app) as client:
        # FastAPI answers HEAD with a 405 here; it still spends GET's budget.
        assert statuses(client, "HEAD", ["/media"]) == [405]
        assert statuses(client, "GET", ["/media"] * 2) == [200, 429]
        # No bare template and no default: POST has no limit at all.
        assert statuses(client, "POST", ["/media"] * 5) == [200] * 5


def test_openapi_documents_each_methods_own_limit() -> None:
    app = media_app({"POST /media": "2/minute", "/media": "3/minute"})
    with TestClient(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    post = paths["/media"]["post"]["responses"]["429"]["description"]
    get = paths["/media"]["get"]["responses"]["429"]["description"]
    assert "2 per 1 minute (per client on POST of this route)" in post
    assert "3 per 1 minute (per client on this route)" in get


def test_standalone_middleware_with_a_custom_key(capture_logs: Any) -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(request: Request) -> dict[str, str]:
        return {}

    app.add_middleware(
        RateLimitMiddleware, default="2/minute", key=lambda scope: "everyone", routes={}
    )
    client = TestClient(app)
    assert statuses(client, "GET", ["/x"] * 3) == [200, 200, 429]


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window", "moving-window"])
def test_check_now_decides_as_check_or_leaves_it_to_check(strategy: Strategy) -> None:
    """The middleware's synchronous path gives check()'s decisions, where it applies.

    On the default engine (sliding window counter in bounded memory) two twin limiters,
    one asked with check_now() and one with check(), agree request by request, windows
    included; on any other engine check_now() answers None and the middleware awaits
    check().
    """
    from limits.aio.storage import MemoryStorage

    policy = RateLimitPolicy.from_string("3/minute;5/hour")
    synchronous = RateLimiter(storage=BoundedMemoryStorage(), strategy=strategy)
    awaited = RateLimiter(storage=BoundedMemoryStorage(), strategy=strategy)
    plain = RateLimiter(storage=MemoryStorage(), strategy="sliding-window-counter")
    assert plain.check_now(policy, "default", "ip:1") is None
    if strategy != "sliding-window-counter":
        assert synchronous.check_now(policy, "default", "ip:1") is None
        return

    async def pairs() -> list[tuple[Any, Any]]:
        found = []
        for with_stats in (True, False, True, True, False):
            mine = synchronous.check_now(policy, "default", "ip:1", with_stats=with_stats)
            theirs = await awaited.check(policy, "default", "ip:1", with_stats=with_stats)
            found.append((mine, theirs))
        return found

    found = asyncio.run(pairs())
    for mine, theirs in found:
        assert mine is not None
        assert (mine.allowed, mine.retry_after) == (theirs.allowed, theirs.retry_after)
        assert [(item, left) for item, left, _ in mine.windows] == [
            (item, left) for item, left, _ in theirs.windows
        ]
    assert [mine.allowed for mine, _ in found] == [True, True, True, False, False]


def test_policy_fields_are_built_once_and_stay_right() -> None:
    """RateLimit-Policy values are remembered by their limits, never confused or unbounded.

    The same tuple of limits gives the very same value (built once); an equal tuple, a
    list and another base give the right text; past the table's size the table starts
    over and the answers stay right.
    """
    from fastapi_enterprise.ratelimit import headers

    limits = RateLimitPolicy.from_string("5/minute;20/hour").limits
    expected = b'"auth-5-per-1-minute";q=5;w=60, "auth-20-per-1-hour";q=20;w=3600'
    first = headers.policy_field("auth", limits)
    assert first == expected
    assert headers.policy_field("auth", limits) is first
    assert headers.policy_field("auth", tuple(limits)) == expected
    assert headers.policy_field("auth", list(limits)) == expected
    assert headers.policy_field("login", limits).startswith(b'"login-5-per-1-minute";q=5;')
    many = [RateLimitPolicy.from_string(f"{n}/minute").limits for n in range(1, 1500)]
    for n, own in enumerate(many, start=1):
        assert headers.policy_field("p", own) == f'"p-{n}-per-1-minute";q={n};w=60'.encode()
        assert headers.policy_name("p", own[0]) == f"p-{n}-per-1-minute"
    assert len(headers._FIELDS) <= headers._TABLE_SIZE
    assert len(headers._NAMES) <= headers._TABLE_SIZE
    assert headers.policy_field("auth", limits) == expected
