"""RequestIDMiddleware: one valid ID per request, on every response, never a bad echo."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import threading
import uuid

import httpx2
import pytest
import structlog
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise import (
    EnterpriseSettings,
    RequestIDMiddleware,
    generate_request_id,
    get_request_id,
    install,
)
from fastapi_enterprise.middleware.request_id import parse_traceparent
from tests.conftest import LiveServer

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def make_app(**options: object) -> FastAPI:
    app = FastAPI()

    @app.get("/id")
    async def read_id() -> dict[str, str | None]:
        return {"request_id": get_request_id()}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_middleware(RequestIDMiddleware, **options)  # type: ignore[arg-type]
    return app


def test_generated_ids_are_uuid7_and_sort_by_time() -> None:
    ids = [generate_request_id() for _ in range(1000)]
    assert all(UUID7.fullmatch(value) for value in ids)
    assert all(uuid.UUID(value).version == 7 for value in ids[:10])
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def _random_part(request_id: str) -> str:
    # The last 62 bits of a UUIDv7 here are random; compare the last 15 hex digits.
    return request_id.replace("-", "")[-15:]


def test_random_bits_are_unique_across_threads_and_pool_refills() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def generate(bucket: list[str]) -> None:
        bucket.extend(generate_request_id() for _ in range(3000))  # ~6 pool refills each

    threads = [threading.Thread(target=generate, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parts = [_random_part(value) for bucket in results for value in bucket]
    assert len(set(parts)) == len(parts) == 12_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_does_not_reuse_its_parents_random_bytes() -> None:
    generate_request_id()  # the parent's pool now holds unused bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and exits
        os.close(read_end)
        os.write(write_end, ",".join(generate_request_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [generate_request_id() for _ in range(5)]
    assert len(child) == 5
    assert all(UUID7.fullmatch(value) for value in child)
    assert not {_random_part(value) for value in child} & {_random_part(v) for v in parent}


def test_response_carries_the_id_the_handler_saw() -> None:
    client = TestClient(make_app())
    response = client.get("/id")
    request_id = response.headers["x-request-id"]
    assert UUID7.fullmatch(request_id)
    assert response.json() == {"request_id": request_id}


def test_valid_incoming_id_is_reused() -> None:
    client = TestClient(make_app())
    response = client.get("/id", headers={"X-Request-ID": "abc-123_DEF.456:789"})
    assert response.headers["x-request-id"] == "abc-123_DEF.456:789"
    assert response.json() == {"request_id": "abc-123_DEF.456:789"}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"a" * 10_240, id="10KB"),
        pytest.param(b"abcdefgh\r\nX-Evil: 1", id="CRLF"),
        pytest.param(b"abcdefgh\x00zz", id="NUL"),
        pytest.param(b"\x1b[31mabcdefgh\x1b[0m", id="ANSI"),
        pytest.param("abcdefgh-\u00e9t\u00e9".encode(), id="non-ASCII-utf8"),
        pytest.param(b"abcdefgh\xff\xfe", id="non-ASCII-latin1"),
        pytest.param(b"short", id="too-short"),
        pytest.param(b'abcdefgh"}{"forged":1', id="json-fragment"),
        pytest.param(b"", id="empty"),
    ],
)
def test_invalid_incoming_id_is_replaced_never_echoed(bad: bytes) -> None:
    app = make_app()
    received: list[bytes] = []

    async def raw_client(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    # Bypass the HTTP client's own header validation: send the raw bytes in the scope.
    async def run() -> tuple[int, list[tuple[bytes, bytes]]]:
        messages: list[dict[str, object]] = []
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/id",
            "raw_path": b"/id",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"x-request-id", bad)],
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            messages.append(message)

        await raw_client(scope, receive, send)  # type: ignore[arg-type]
        start = messages[0]
        received.append(messages[1]["body"])  # type: ignore[arg-type]
        return start["status"], start["headers"]  # type: ignore[return-value]

    status, headers = asyncio.run(run())
    assert status == 200
    values = [value for name, value in headers if name.lower() == b"x-request-id"]
    assert len(values) == 1
    assert values[0] != bad
    assert UUID7.fullmatch(values[0].decode())
    assert bad not in received[0] or bad == b""


@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize(
    "bad", ["x" * 10_240, "\x1b[2J\x1b[Hforged-log-line", "abcdefgh\tzz", "abc\x7fdefghij"]
)
def test_invalid_id_through_real_http_is_never_echoed(
    live_server: type[LiveServer], http: str, bad: str
) -> None:
    pytest.importorskip(http)
    with (
        live_server(make_app(), http=http) as server,
        httpx2.Client(base_url=server.url) as client,
    ):
        response = client.get("/id", headers={"X-Request-ID": bad})
    # Either the server refuses the header outright (httptools rejects control
    # characters with a 400 before the app runs) or the middleware replaces it.
    assert response.status_code in {200, 400}
    assert bad not in response.text
    assert response.headers.get("x-request-id") != bad
    if response.status_code == 200:
        assert UUID7.fullmatch(response.headers["x-request-id"])


def test_duplicated_header_is_replaced() -> None:
    client = TestClient(make_app())
    response = client.get(
        "/id", headers=[("X-Request-ID", "first-id-12345"), ("X-Request-ID", "second-id-1234")]
    )
    request_id = response.headers["x-request-id"]
    assert request_id not in {"first-id-12345", "second-id-1234"}
    assert UUID7.fullmatch(request_id)


def test_trust_incoming_false_always_generates() -> None:
    client = TestClient(make_app(trust_incoming=False))
    response = client.get("/id", headers={"X-Request-ID": "perfectly-valid-id"})
    assert response.headers["x-request-id"] != "perfectly-valid-id"


def test_custom_header_validator_and_generator() -> None:
    counter = iter(range(1, 100))
    client = TestClient(
        make_app(
            header_name="X-Correlation-ID",
            validator=lambda value: value.startswith("ok-"),
            generator=lambda: f"gen-{next(counter)}",
        )
    )
    assert client.get("/id", headers={"X-Correlation-ID": "ok-1"}).json() == {"request_id": "ok-1"}
    response = client.get("/id", headers={"X-Correlation-ID": "bad"})
    assert response.headers["x-correlation-id"] == "gen-1"
    assert "x-request-id" not in response.headers


def test_max_length_is_checked_before_the_validator() -> None:
    seen: list[str] = []

    def validator(value: str) -> bool:
        seen.append(value)
        return True

    client = TestClient(make_app(validator=validator, max_length=16))
    client.get("/id", headers={"X-Request-ID": "y" * 17})
    assert seen == []


@pytest.mark.parametrize("header_name", ["", "X Request", "X-Request-ID\r\n", "x" * 65])
def test_invalid_header_name_fails_at_startup(header_name: str) -> None:
    with pytest.raises(ValueError, match="header"):
        RequestIDMiddleware(make_app(), header_name=header_name)


def test_traceparent_trace_id_is_used_when_enabled() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client = TestClient(make_app(use_traceparent=True))
    response = client.get("/id", headers={"traceparent": traceparent})
    assert response.headers["x-request-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    # An explicit, valid request ID still wins over the trace ID.
    response = client.get("/id", headers={"traceparent": traceparent, "X-Request-ID": "mine-12345"})
    assert response.headers["x-request-id"] == "mine-12345"
    # Off by default.
    response = TestClient(make_app()).get("/id", headers={"traceparent": traceparent})
    assert UUID7.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize(
    "value",
    [
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + "-x" * 100,
        "garbage",
    ],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_future_traceparent_version_with_extra_fields_is_accepted() -> None:
    value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
    assert parse_traceparent(value) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_exactly_one_header_even_when_the_endpoint_sets_its_own() -> None:
    app = FastAPI()

    @app.get("/own")
    async def own() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-ID": "endpoint-made-this"})

    app.add_middleware(RequestIDMiddleware)
    response = TestClient(app).get("/own")
    assert response.headers.get_list("x-request-id") != ["endpoint-made-this"]
    assert len(response.headers.get_list("x-request-id")) == 1


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/nope", 404), ("POST", "/id", 405)]
)
def test_routing_errors_carry_the_id(method: str, path: str, status: int) -> None:
    response = TestClient(make_app()).request(method, path)
    assert response.status_code == status
    assert len(response.headers.get_list("x-request-id")) == 1


def test_unhandled_exception_gets_a_500_with_the_id(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(make_app(), raise_server_exceptions=True)
    with caplog.at_level(logging.ERROR, logger="fastapi_enterprise.errors"):
        response = client.get("/boom", headers={"X-Request-ID": "trace-me-please"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me-please"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == "trace-me-please"
    assert "kaboom" not in response.text
    records = [r for r in caplog.records if r.name == "fastapi_enterprise.errors"]
    assert len(records) == 1
    assert records[0].request_id == "trace-me-please"  # type: ignore[attr-defined]
    assert records[0].exc_info is not None


class FailingMiddleware:
    """A middleware inside the request-ID layer that raises or answers by itself."""

    def __init__(self, app: ASGIApp, *, mode: str) -> None:
        self.app = app
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.mode == "raise":
            raise ValueError("middleware bug")
        elif self.mode == "http":
            raise HTTPException(413, detail="Too big", headers={"Connection": "close"})
        else:
            await PlainTextResponse("teapot", status_code=418)(scope, receive, send)


@pytest.mark.parametrize(("mode", "status"), [("raise", 500), ("http", 413), ("answer", 418)])
def test_errors_raised_by_other_middleware_carry_the_id(mode: str, status: int) -> None:
    app = make_app()
    app.user_middleware.insert(1, Middleware(FailingMiddleware, mode=mode))
    response = TestClient(app).get("/id")
    assert response.status_code == status
    assert len(response.headers.get_list("x-request-id")) == 1
    if mode != "answer":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["request_id"] == response.headers["x-request-id"]


def test_exception_after_response_started_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-stream")

    app = RequestIDMiddleware(streaming)
    with caplog.at_level(logging.ERROR):
        response = TestClient(app).get("/")
    assert response.status_code == 200
    assert response.text == "partial"
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_the_app_500_handler_is_used_when_registered() -> None:
    app = make_app()

    async def custom(request: object, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"custom {type(exc).__name__}", status_code=503)

    app.add_exception_handler(Exception, custom)
    response = TestClient(app).get("/boom")
    assert response.status_code == 503
    assert response.text == "custom RuntimeError"
    assert "x-request-id" in response.headers


def test_a_sync_500_handler_and_a_broken_one(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    def broken(request: object, exc: Exception) -> PlainTextResponse:
        raise LookupError("the handler itself fails")

    app.add_exception_handler(500, broken)
    with caplog.at_level(logging.ERROR):
        response = TestClient(app).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "the handler itself fails" not in response.text

    app = make_app()
    # Deliberately wrong: a handler that returns no Response still yields a clean 500.
    app.add_exception_handler(500, lambda request, exc: "not a response")  # type: ignore[arg-type]
    assert TestClient(app).get("/boom").status_code == 500


def test_id_is_bound_into_structlog_contextvars_for_the_request_only() -> None:
    app = FastAPI()

    @app.get("/ctx")
    def sync_endpoint() -> dict[str, object]:
        return dict(structlog.contextvars.get_contextvars())

    app.add_middleware(RequestIDMiddleware)
    client = TestClient(app)
    response = client.get("/ctx", headers={"X-Request-ID": "bound-to-logs"})
    assert response.json() == {"request_id": "bound-to-logs"}
    assert structlog.contextvars.get_contextvars() == {}
    assert get_request_id() is None


def test_hundreds_of_concurrent_requests_never_mix_ids(live_server: type[LiveServer]) -> None:
    app = FastAPI()

    @app.get("/async/{n}")
    async def async_endpoint(n: int) -> dict[str, object]:
        before = get_request_id()
        await asyncio.sleep(random.random() / 50)
        return {"n": n, "before": before, "after": get_request_id()}

    @app.get("/sync/{n}")
    def sync_endpoint(n: int) -> dict[str, object]:
        return {"n": n, "before": get_request_id(), "after": get_request_id()}

    install(app, EnterpriseSettings(environment="test", rate_limit={"enabled": False}))

    async def fire(base_url: str) -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=100)
        # 400 requests queue for 100 connections: on a busy machine the last ones wait
        # longer than the client's default 5 s for a free one. What is tested is the IDs.
        timeout = httpx2.Timeout(60)
        async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
            requests = []
            for n in range(400):
                kind = "async" if n % 2 else "sync"
                headers = {"X-Request-ID": f"client-id-{n:05d}"} if n % 3 == 0 else {}
                requests.append(client.get(f"/{kind}/{n}", headers=headers))
            responses: list[httpx2.Response] = await asyncio.gather(*requests)
            return responses

    with live_server(app) as server:
        responses = asyncio.run(fire(server.url))
    ids = set()
    for response in responses:
        body = response.json()
        request_id = response.headers["x-request-id"]
        assert body["before"] == body["after"] == request_id
        if body["n"] % 3 == 0:
            assert request_id == f"client-id-{body['n']:05d}"
        ids.add(request_id)
    assert len(ids) == 400
