"""BodyLimitMiddleware: 400 for lying lengths, 413 before too much is read, 408 for slow bodies."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from fastapi_enterprise import BodyLimitMiddleware, EnterpriseSettings, body_limit, install
from tests.conftest import LiveServer

LIMIT = 1024


def make_app(**body: Any) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    read: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        data = await request.body()
        read.append(len(data))
        return {"bytes": len(data)}

    @app.post("/upload")
    @body_limit(10 * LIMIT)
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"bytes": len(await file.read())}

    @app.post("/login")
    async def login(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.05)
                yield b"x"

        return StreamingResponse(chunks())

    options = {"max_bytes": LIMIT, "routes": {"/login": 64}, "read_timeout": 0.5, **body}
    install(app, EnterpriseSettings(environment="test", body_limit=options))
    return app, read


def test_small_body_passes() -> None:
    app, read = make_app()
    response = TestClient(app).post("/echo", content=b"x" * LIMIT)
    assert response.json() == {"bytes": LIMIT}
    assert read == [LIMIT]


def test_declared_length_over_the_limit_is_413_before_any_byte_is_read() -> None:
    app, read = make_app()
    response = TestClient(app).post("/echo", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"The request body is larger than {LIMIT} bytes."
    assert read == []


def test_chunked_body_crossing_the_limit_stops_reading() -> None:
    app, read = make_app()

    def chunks() -> Any:
        for _ in range(100):
            yield b"y" * 512

    response = TestClient(app).post("/echo", content=chunks())
    assert response.status_code == 413
    assert read == []


def test_per_route_limits_from_settings_and_decorator() -> None:
    app, _ = make_app()
    client = TestClient(app)
    assert client.post("/login", content=b"x" * 65).status_code == 413
    assert client.post("/login", content=b"x" * 64).status_code == 200
    big_file = {"file": ("a.bin", b"z" * (5 * LIMIT), "application/octet-stream")}
    assert client.post("/upload", files=big_file).json() == {"bytes": 5 * LIMIT}
    huge = {"file": ("a.bin", b"z" * (11 * LIMIT), "application/octet-stream")}
    assert client.post("/upload", files=huge).status_code == 413


async def call_raw(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/echo",
            "raw_path": b"/echo",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"t"), *headers],
            "client": ("1.2.3.4", 5),
            "server": ("t", 80),
        },
        receive,
        send,
    )
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        ([b"-1"], 400),
        ([b"abc"], 400),
        ([b"1e3"], 400),
        ([b"+5"], 400),
        ([b"99999999999999999999999"], 400),
        ([b"5", b"6"], 400),
        ([b"5", b"5"], 200),
        ([b"10737418240"], 413),
    ],
)
def test_content_length_validation(lengths: list[bytes], status: int) -> None:
    app, read = make_app()
    headers = [(b"content-length", value) for value in lengths]
    code, body = asyncio.run(call_raw(app, headers, b"x" * 5))
    assert code == status
    if status != 200:
        assert read == []
        assert b'"status":' in body


def raw_exchange(port: int, head: bytes, body_parts: list[bytes], pause: float = 0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for part in body_parts:
            if pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:
                break
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def test_huge_declared_length_over_real_http(live_server: type[LiveServer]) -> None:
    app, read = make_app()
    with live_server(app) as server:
        reply = raw_exchange(
            server.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n",
            [b"x" * 100],
        )
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert read == []


def test_chunked_oversize_over_real_http(live_server: type[LiveServer]) -> None:
    app, read = make_app()
    chunk = b"400\r\n" + b"z" * 1024 + b"\r\n"
    with live_server(app) as server:
        reply = raw_exchange(
            server.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            [chunk] * 8 + [b"0\r\n\r\n"],
        )
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert read == []


def test_slow_body_gets_408(live_server: type[LiveServer]) -> None:
    app, read = make_app()
    with live_server(app) as server:
        reply = raw_exchange(
            server.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
            [b"a", b"b", b"c"],
            pause=0.4,
        )
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert read == []


def test_streaming_responses_are_not_cut_by_the_read_timeout() -> None:
    app, _ = make_app(read_timeout=0.01)
    response = TestClient(app).get("/stream")
    assert response.text == "xxx"


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        BodyLimitMiddleware(FastAPI(), max_bytes=-1)
    with pytest.raises(ValueError, match="positive"):
        BodyLimitMiddleware(FastAPI(), read_timeout=0)
    with pytest.raises(ValueError, match=">= 0"):
        body_limit(-5)
