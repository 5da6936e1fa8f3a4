"""Streaming responses (``fastapi.sse``) pass the whole ``install()`` stack untouched.

Over a real uvicorn process: the first event arrives while the endpoint is still waiting
(no layer buffers), ``text/event-stream`` is never gzipped, and the access line is
written once, when the stream ends, with every byte counted.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import UvicornProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> UvicornProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src"), *sys.path]),
    }
    return UvicornProcess("tests.sse_app:app", env=env, cwd=ROOT, capture_stdout=True)


def access_lines(output: bytes, path: str) -> list[dict[str, Any]]:
    lines = []
    for raw in output.decode().splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("path") == path and "status" in record:
            lines.append(record)
    return lines


def test_events_stream_unbuffered_uncompressed_and_logged_at_the_end(
    server: UvicornProcess,
) -> None:
    with server:
        server.wait_until_serving("/health/live")
        headers = {"Accept-Encoding": "gzip"}
        with (
            httpx2.Client(base_url=server.url, timeout=10) as client,
            client.stream("GET", "/events", headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers
            assert response.headers["x-request-id"]
            lines = response.iter_lines()
            received = []
            for line in lines:
                received.append(line)
                if line == "":
                    break  # the first event is complete; the endpoint is still waiting
            assert received[0] == "event: first"
            # Only now may the endpoint go on: had a layer buffered, we would never be here.
            assert httpx2.post(server.url + "/release", timeout=10).status_code == 200
            rest = list(lines)
        assert "event: second" in rest
        total = len("\n".join([*received, *rest]))
    logged = access_lines(server.stdout, "/events")
    assert len(logged) == 1, logged
    line = logged[0]
    assert line["status"] == 200
    assert "error" not in line
    # Every byte of both events, counted when the stream ended (not at the first byte).
    assert line["response_bytes"] >= total > 2 * 4096


def test_client_gone_mid_stream_writes_one_line(server: UvicornProcess) -> None:
    with server:
        server.wait_until_serving("/health/live")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            seen = b""
            while seen.count(b"event: tick") < 2:
                chunk = sock.recv(65536)
                assert chunk, "the stream ended early"
                seen += chunk
            assert b"content-encoding" not in seen.split(b"\r\n\r\n", 1)[0].lower()
        # The client hung up; a later request proves the server is done with it.
        server.wait_until_serving("/health/live")
    logged = access_lines(server.stdout, "/forever")
    assert len(logged) == 1, logged
    # The library's convention: a response the client did not wait for is 499 (it was
    # sent with status 200), marked error="disconnected".
    assert logged[0]["status"] == 499
    assert logged[0]["error"] == "disconnected"
    assert logged[0]["response_bytes"] > 2 * 4096
