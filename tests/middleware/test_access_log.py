"""AccessLogMiddleware: exactly one truthful, bounded, redacted line per request."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from starlette.middleware import Middleware

from fastapi_enterprise import (
    AccessLogMiddleware,
    EnterpriseSettings,
    bind_request,
    get_request_id,
    install,
)
from tests.conftest import LiveServer, LogCapture

SECRET = "hunter2-Zq8-secret"

# "Slow" for these tests: far above what a request takes on a loaded machine (a crash's
# traceback, formatted while other suites run, took over 20 ms), and /slow sleeps past it.
SLOW_MS = 500


def settings(**logging_options: Any) -> EnterpriseSettings:
    return EnterpriseSettings(
        environment="test", logging=logging_options, rate_limit={"enabled": False}
    )


def current_user(user: str = "anonymous") -> str:
    bind_request(user_id=user)  # a sync dependency: runs in a worker thread
    return user


User = Annotated[str, Depends(current_user)]


def make_app(config: EnterpriseSettings | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/echo-size")
    async def echo_size(payload: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.get("/sync-user")
    def sync_user(user: User) -> dict[str, str | None]:
        time.sleep(0.001)
        return {"user": user, "request_id": get_request_id()}

    @app.get("/async-user")
    async def async_user(user: str) -> dict[str, str | None]:
        bind_request(user_id=user, name="clash-with-logrecord")
        await asyncio.sleep(0.001)
        return {"user": user, "request_id": get_request_id()}

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(SLOW_MS / 1000 + 0.1)
        return {"slow": True}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/private")
    async def private() -> None:
        raise HTTPException(401, headers={"WWW-Authenticate": "Bearer"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                await asyncio.sleep(0.01)
                yield b"x" * 1000

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    install(app, config or settings())
    return app


def test_one_line_with_every_field(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    client = TestClient(make_app())
    response = client.post(
        "/echo-size?page=2&token=abc123",
        json={"a": 1, "b": 2},
        headers={"User-Agent": "tests/1.0", "X-Request-ID": "access-0000-01"},
    )
    assert response.status_code == 200
    (line,) = logs.events("http.request")
    assert line == {
        "event": "http.request",
        "level": "info",
        "logger": "fastapi_enterprise.access",
        "timestamp": line["timestamp"],
        "request_id": "access-0000-01",
        "method": "POST",
        "route": "/echo-size",
        "path": "/echo-size?page=2&token=**********",
        "status": 200,
        "duration_ms": line["duration_ms"],
        "request_bytes": len(b'{"a":1,"b":2}'),
        "response_bytes": len(response.content),
        "client_ip": "testclient",
        "user_agent": "tests/1.0",
        "http_version": "1.1",
    }
    assert line["duration_ms"] > 0


@pytest.mark.parametrize(
    ("path", "status", "level", "extra"),
    [
        ("/items/1", 200, "info", {}),
        ("/items/nope", 422, "warning", {}),
        ("/nothing-here", 404, "warning", {}),
        ("/private", 401, "warning", {}),
        ("/crash", 500, "error", {"error": "RuntimeError"}),
        ("/slow", 200, "warning", {"slow": True}),
    ],
)
def test_level_by_outcome(
    capture_logs: Any, path: str, status: int, level: str, extra: dict[str, Any]
) -> None:
    config = settings(slow_request_ms=SLOW_MS)
    logs: LogCapture = capture_logs(config)
    response = TestClient(make_app(config)).get(path)
    assert response.status_code == status
    (line,) = logs.events("http.request")
    assert (line["status"], line["level"]) == (status, level)
    for key, value in extra.items():
        assert line[key] == value
    assert ("slow" in line) == ("slow" in extra)


def test_unhandled_exception_logs_once_and_the_shield_answers(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    response = TestClient(make_app()).get("/crash", headers={"X-Request-ID": "crash-000001"})
    assert response.status_code == 500
    assert response.json()["request_id"] == "crash-000001"
    lines = logs.lines()
    access = [line for line in lines if line["event"] == "http.request"]
    tracebacks = [line for line in lines if "exception" in line]
    assert len(access) == 1
    assert len(tracebacks) == 1
    assert tracebacks[0]["request_id"] == "crash-000001"
    assert tracebacks[0]["route"] == "/crash"


def test_streaming_response_is_timed_to_its_last_chunk(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    response = TestClient(make_app()).get("/stream", headers={"Accept-Encoding": "identity"})
    assert len(response.content) == 5000
    (line,) = logs.events("http.request")
    assert line["response_bytes"] == 5000
    assert line["duration_ms"] >= 40


class TooLarge:
    """An inner layer that answers 413 by itself, as the body limit will."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/upload":
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": b"too large"})
            return
        await self.app(scope, receive, send)


def test_statuses_from_inner_layers_are_logged(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    app = make_app()
    app.user_middleware.append(Middleware(TooLarge))  # innermost
    assert TestClient(app).post("/upload", content=b"x").status_code == 413
    (line,) = logs.events("http.request")
    assert (line["status"], line["level"], line["route"]) == (413, "warning", "<unmatched>")


def test_excluded_paths_are_not_logged(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    client = TestClient(make_app())
    assert client.get("/health/live").status_code == 200
    assert logs.events("http.request") == []


def test_sampling_drops_only_successful_fast_requests(capture_logs: Any) -> None:
    config = settings(access_sample_rate=0.0, slow_request_ms=SLOW_MS)
    logs: LogCapture = capture_logs(config)
    client = TestClient(make_app(config))
    for path in ["/items/1", "/items/2", "/nothing", "/crash", "/slow"]:
        client.get(path)
    assert [line["route"] for line in logs.events("http.request")] == [
        "<unmatched>",
        "/crash",
        "/slow",
    ]


def test_per_route_sample_rates(capture_logs: Any) -> None:
    config = settings(access_sample_rate=1.0, access_sample_routes={"/items/{item_id}": 0.0})
    logs: LogCapture = capture_logs(config)
    client = TestClient(make_app(config))
    client.get("/items/1")
    client.get("/sync-user")
    assert [line["route"] for line in logs.events("http.request")] == ["/sync-user"]


def test_access_log_can_be_switched_off(capture_logs: Any) -> None:
    config = settings(access_log=False)
    logs: LogCapture = capture_logs(config)
    TestClient(make_app(config)).get("/items/1")
    assert logs.events("http.request") == []


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /items/1%0d%0a%7b%22level%22%3a%22critical%22%7d HTTP/1.1",
        b"GET /items/%1b%5b31m%00forged HTTP/1.1",
        b"GET /items/1?q=%0a%22%7d%7b%22forged%22%3a1 HTTP/1.1",
    ],
)
def test_hostile_paths_and_headers_give_one_parseable_line(
    capture_logs: Any, live_server: type[LiveServer], request_line: bytes
) -> None:
    logs: LogCapture = capture_logs(settings())
    app = make_app()
    hostile_agent = b'evil\x1b[2J"}\t{"forged":true} ' + b"A" * 60_000
    with live_server(app, http="h11", h11_max_incomplete_event_size=200_000) as server:
        raw = raw_request(
            server.port,
            request_line
            + b"\r\nHost: x\r\nUser-Agent: "
            + hostile_agent
            + b"\r\nConnection: close\r\n\r\n",
        )
    assert raw.startswith(b"HTTP/1.1 ")
    text = logs.text()
    access_lines = [line for line in text.splitlines() if '"http.request"' in line]
    assert len(access_lines) == 1
    line = json.loads(access_lines[0])
    assert "forged" not in line
    assert len(line["user_agent"]) == 256
    assert len(access_lines[0]) < 4096


def test_64kb_header_gives_a_bounded_line(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    TestClient(make_app()).get(
        "/items/1?" + "q=" + "z" * 30_000,
        headers={"User-Agent": "u" * 65_536, "X-Request-ID": "r" * 65_536},
    )
    (line,) = logs.events("http.request")
    assert len(json.dumps(line)) < 3000
    assert line["path"].endswith("more characters]")


def test_secrets_never_reach_the_access_line(capture_logs: Any) -> None:
    logs: LogCapture = capture_logs(settings())
    TestClient(make_app()).get(
        f"/items/1?api_key={SECRET}&password={SECRET}&x=1",
        headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"},
    )
    text = logs.text()
    assert SECRET not in text
    (line,) = logs.events("http.request")
    assert line["path"] == "/items/1?api_key=**********&password=**********&x=1"


def test_500_concurrent_requests_each_carry_their_own_id_and_user(
    capture_logs: Any, live_server: type[LiveServer]
) -> None:
    logs: LogCapture = capture_logs(settings())
    app = make_app()

    async def fire(base_url: str) -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=100)
        async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            requests = [
                client.get(f"/{'sync' if n % 2 else 'async'}-user", params={"user": f"u{n}"})
                for n in range(500)
            ]
            responses: list[httpx2.Response] = await asyncio.gather(*requests)
            return responses

    with live_server(app) as server:
        responses = asyncio.run(fire(server.url))
    expected = {r.headers["x-request-id"]: r.json()["user"] for r in responses}
    assert len(expected) == 500
    lines = logs.events("http.request")
    assert len(lines) == 500
    assert {line["request_id"]: line["user_id"] for line in lines} == expected
    assert all(
        line["name_"] == "clash-with-logrecord" for line in lines if line["route"] == "/async-user"
    )


def test_fractional_sample_rates_use_the_chance_source(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/a")
    async def a() -> dict[str, str]:
        return {}

    draws = iter([0.1, 0.6, 0.39, 0.4])
    app.add_middleware(AccessLogMiddleware, sample_routes={"/a": 0.4}, chance=lambda: next(draws))
    client = TestClient(app)
    with caplog.at_level(logging.INFO, logger="fastapi_enterprise.access"):
        for _ in range(4):
            client.get("/a")
    kept = [r for r in caplog.records if r.name == "fastapi_enterprise.access"]
    assert len(kept) == 2  # 0.1 and 0.39 are under the rate; 0.6 and 0.4 are not


def test_standalone_middleware_validates_its_options() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        AccessLogMiddleware(make_app(), sample_rate=2)
    with pytest.raises(ValueError, match="slow_request_ms"):
        AccessLogMiddleware(make_app(), slow_request_ms=-1)


def test_standalone_middleware_with_its_own_logger(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {}

    app.add_middleware(AccessLogMiddleware, logger=logging.getLogger("custom.access"))
    with caplog.at_level(logging.INFO, logger="custom.access"):
        TestClient(app).get("/")
    (record,) = [r for r in caplog.records if r.name == "custom.access"]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.route == "/"  # type: ignore[attr-defined]


def test_app_that_never_answers_is_logged_as_incomplete(caplog: pytest.LogCaptureFixture) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    app = AccessLogMiddleware(silent)

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            return None

        await app(
            {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""},
            receive,
            send,
        )

    with caplog.at_level(logging.INFO, logger="fastapi_enterprise.access"):
        asyncio.run(run())
    (record,) = caplog.records
    assert record.status == 500  # type: ignore[attr-defined]
    assert record.error == "incomplete"  # type: ignore[attr-defined]


def outcome_app(config: EnterpriseSettings) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/broken-stream")
    async def broken_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            await asyncio.sleep(0.01)
            raise RuntimeError("the stream broke")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/endless-stream")
    async def endless_stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(500):  # bounded: 10 s at most
                yield b"y" * 1000
                await asyncio.sleep(0.02)

        return StreamingResponse(chunks(), media_type="text/plain")

    install(app, config)
    return app


def fetch(url: str, *, hang_up: bool) -> tuple[int, int]:
    """GET ``url``; return the status line and the body bytes received.

    A hang-up reads one chunk and closes the connection.
    """
    received = 0
    with httpx2.Client(timeout=10) as client, client.stream("GET", url) as response:
        try:
            for chunk in response.iter_raw():
                received += len(chunk)
                if hang_up:
                    break
        except httpx2.RemoteProtocolError:
            pass  # the server ended a broken response early
        return response.status_code, received


@pytest.mark.parametrize(
    ("path", "hang_up", "status", "level", "error"),
    [
        ("/ok", False, 200, "info", None),
        ("/crash", False, 500, "error", "RuntimeError"),
        ("/broken-stream", False, 500, "error", "RuntimeError"),
        ("/endless-stream", True, 499, "warning", "disconnected"),
    ],
)
def test_one_status_for_the_access_log_and_the_metrics(
    capture_logs: Any,
    live_server: type[LiveServer],
    path: str,
    hang_up: bool,
    status: int,
    level: str,
    error: str | None,
) -> None:
    """What a request is reported as: one status in the log and the metrics.

    Errors are never sampled away, and the bytes reported are the bytes sent.
    """
    pytest.importorskip("prometheus_client")
    from fastapi_enterprise import installed_metrics_registry

    config = settings(access_sample_rate=0.0)  # only successful, fast lines may be dropped
    logs: LogCapture = capture_logs(config)
    app = outcome_app(config)
    with live_server(app) as server:
        sent_status, received = fetch(server.url + path, hang_up=hang_up)
        registry = installed_metrics_registry(app)

        def counted() -> float | None:
            labels = {"method": "GET", "route": path, "status": str(status)}
            value: float | None = registry.get_sample_value("http_requests_total", labels)
            return value

        assert wait_until(lambda: counted() == 1.0)
        sent_bytes = registry.get_sample_value(
            "http_response_size_bytes_sum", {"method": "GET", "route": path}
        )
    lines = logs.events("http.request")
    if status == 200:
        assert lines == []  # sampled away: the only kind of line that may be
        return
    (line,) = lines
    assert (line["status"], line["level"]) == (status, level)
    assert line.get("error") == error
    assert line["response_bytes"] == sent_bytes
    if status == 500:
        assert sent_bytes > 0
        assert received == sent_bytes
        # A broken stream's status line said 200; the client got a truncated body.
        assert sent_status == (500 if path == "/crash" else 200)


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
