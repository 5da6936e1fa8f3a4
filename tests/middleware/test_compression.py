"""CompressionMiddleware: Starlette's gzip, honouring q=0, exclusions and opt-outs."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from fastapi.testclient import TestClient

from fastapi_enterprise import CompressionMiddleware, EnterpriseSettings, install, no_compression
from fastapi_enterprise.middleware.compression import _declares_small_body, accepts_gzip

BODY = "lorem ipsum dolor sit amet " * 200


def make_app(**compression: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    @app.get("/secret")
    @no_compression
    async def secret() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "data: " + BODY + "\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.get("/encoded")
    async def encoded() -> Response:
        return Response(
            gzip.compress(BODY.encode()),
            headers={"Content-Encoding": "gzip"},
            media_type="text/plain",
        )

    @app.get("/small")
    async def small() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/streamed")
    async def streamed() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield BODY[:100]
            yield BODY[100:]

        return StreamingResponse(stream(), media_type="text/plain")

    install(app, EnterpriseSettings(environment="test", compression=compression))
    return app


def get(path: str, accept: str, app: FastAPI | None = None) -> Any:
    client = TestClient(app or make_app())
    return client.get(path, headers={"Accept-Encoding": accept})


def test_gzip_when_accepted() -> None:
    response = get("/text", "gzip, deflate")
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert response.text == BODY


@pytest.mark.parametrize("accept", ["gzip;q=0", "identity", "br", "gzip;q=0, *;q=1", "*;q=0", ""])
def test_not_compressed_when_refused(accept: str) -> None:
    response = get("/text", accept)
    assert "content-encoding" not in response.headers
    assert response.text == BODY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True),
        ("GZIP;Q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=abc", False),
        ("br, *;q=0", False),
        ("deflate, gzip;q=0, *", False),
        ("identity", False),
    ],
)
def test_accept_encoding_parsing(value: str, expected: bool) -> None:
    assert accepts_gzip(value) is expected


@pytest.mark.parametrize("path", ["/secret", "/metrics", "/events"])
def test_opt_outs_exclusions_and_event_streams(path: str) -> None:
    response = get(path, "gzip")
    assert "content-encoding" not in response.headers
    assert BODY in response.text


def test_excluded_prefixes_end_at_a_path_segment() -> None:
    app = make_app()  # "/metrics" is excluded by default

    @app.get("/metrics/history")
    async def history() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    @app.get("/metricsx")
    async def lookalike() -> PlainTextResponse:
        return PlainTextResponse(BODY)

    assert "content-encoding" not in get("/metrics/history", "gzip", app).headers
    assert get("/metricsx", "gzip", app).headers["content-encoding"] == "gzip"


def test_already_encoded_bodies_are_left_alone() -> None:
    response = TestClient(make_app()).get("/encoded", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == BODY  # decoded once by the client: not double-compressed


def test_can_be_disabled_and_validates_options() -> None:
    response = get("/text", "gzip", make_app(enabled=False))
    assert "content-encoding" not in response.headers
    with pytest.raises(ValueError, match="compresslevel"):
        CompressionMiddleware(FastAPI(), compresslevel=10)
    with pytest.raises(ValueError, match="minimum_size"):
        CompressionMiddleware(FastAPI(), minimum_size=-1)


def test_small_declared_bodies_pass_untouched_and_streams_are_still_compressed() -> None:
    small = get("/small", "gzip")
    assert small.json() == {"status": "ok"}
    assert "content-encoding" not in small.headers
    assert small.headers["content-length"] == str(len(small.content))
    assert "vary" not in small.headers  # as Starlette does for bodies under the threshold
    # No Content-Length declared: the decision waits for the body, and 5 KB is compressed.
    streamed = get("/streamed", "gzip")
    assert streamed.headers["content-encoding"] == "gzip"
    assert streamed.text == BODY


def test_small_body_check_is_strict_about_the_declared_length() -> None:
    assert _declares_small_body([(b"content-length", b"15")], 500)
    assert _declares_small_body([(b"Content-Length", b"499")], 500)
    assert not _declares_small_body([(b"content-length", b"500")], 500)
    assert not _declares_small_body([], 500)  # no length: the responder decides
    assert not _declares_small_body([(b"content-length", b"1"), (b"content-length", b"1")], 500)
    assert not _declares_small_body([(b"content-length", b"-1")], 500)
    assert not _declares_small_body([(b"content-length", b"1" * 40)], 500)


WHOLE = b'{"course": "' + b"FastAPI in production " * 40 + b'"}'


@pytest.mark.parametrize(
    ("status", "headers", "body", "compressed"),
    [
        (200, [(b"content-type", b"application/json")], WHOLE, True),
        (200, [(b"content-type", b"application/json"), (b"vary", b"Origin")], WHOLE, True),
        (
            200,
            [(b"vary", b"Origin"), (b"vary", b"Cookie"), (b"content-type", b"text/html")],
            WHOLE,
            True,
        ),
        (200, [(b"content-length", b"1"), (b"content-length", b"2")], WHOLE, True),
        (200, [(b"content-type", b"")], WHOLE, True),
        (404, [], WHOLE, True),
        (200, [(b"content-type", b"image/png")], WHOLE, False),
        (200, [(b"content-type", b"application/grpc+proto")], WHOLE, False),
        (200, [(b"content-type", b"text/plain"), (b"content-encoding", b"br")], WHOLE, False),
        (206, [(b"content-type", b"text/plain")], WHOLE, False),
        (200, [(b"content-type", b"text/plain")], WHOLE[:499], False),
        (200, [(b"content-type", b"text/plain")], b"", False),
    ],
)
def test_whole_bodies_are_sent_as_starlettes_responder_sends_them(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, compressed: bool
) -> None:
    """The one-message path: the same headers, in the same order, and the same bytes."""
    import asyncio

    from starlette.middleware.gzip import GZipMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        declared = [*headers]
        if not any(name == b"content-length" for name, _ in declared):
            declared.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": declared})
        await send({"type": "http.response.body", "body": body})

    async def run(middleware: Any) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            sent.append({**message, "headers": list(message.get("headers", []))})

        scope = {"type": "http", "path": "/", "headers": [(b"accept-encoding", b"gzip")]}
        await middleware(scope, receive, send)
        return sent

    ours = asyncio.run(run(CompressionMiddleware(app)))
    theirs = asyncio.run(run(GZipMiddleware(app, minimum_size=500, compresslevel=6)))
    assert ours == theirs
    assert any((b"content-encoding", b"gzip") in message["headers"] for message in ours) is (
        compressed
    )
