"""lib.sh's helpers against a real local HTTP server: webhook notifications, readiness, smoke.

The server stands for a webhook receiver and for an app instance (``/health/*``,
``/projects``); the helpers run in bash exactly as deploy.sh calls them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

LIB = Path(__file__).resolve().parents[1] / "scripts" / "lib.sh"
HOOK_USER, HOOK_SECRET, QUERY_SECRET = "hook", "s3cr3t-basic-pw", "s3cr3t-query-token"


@dataclass
class Receiver:
    """What the server received, and how it answers."""

    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    ready_status: int = 200
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, *, credentials: bool = False) -> str:
        userinfo = f"{HOOK_USER}:{HOOK_SECRET}@" if credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            statuses = {
                "/health/live": 200,
                "/health/ready": receiver.ready_status,
                "/projects": 401,
            }
            self._answer(statuses.get(self.path, 404))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length),
                }
            )
            if self.path.startswith("/hang"):
                # Never answer in time: the notification must give up on its own.
                receiver.release.wait(30)
            self._answer(500 if self.path.startswith("/fail") else 204)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server on a free port, stopped after the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Receiver(port=server.server_address[1])
    server.RequestHandlerClass = _handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def lib(*call: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one lib.sh function in bash, as the scripts do."""
    if shutil.which("curl") is None:
        pytest.fail("curl is needed by the deploy scripts")
    return subprocess.run(
        ["bash", "-c", 'source "$0"; "$@"', str(LIB), *call],
        env={**os.environ, "TC_SCRIPT_NAME": "test", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_notify_posts_the_event_as_json_without_printing_credentials(
    receiver: Receiver, tmp_path: Path
) -> None:
    """The webhook gets one JSON POST; the URL's password and token appear nowhere else."""
    message = 'app1 did not come up: "ready" \\ answered 503\nrolled back to r1 ✓'
    url = receiver.url(f"/hooks/deploy?token={QUERY_SECRET}", credentials=True)
    # A curl that records its command line: the URL must not be there (`ps` shows argv).
    argv_log = tmp_path / "curl.argv"
    spy = tmp_path / "bin" / "curl"
    spy.parent.mkdir()
    spy.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\nexec "{shutil.which("curl")}" "$@"\n'
    )
    spy.chmod(0o755)

    result = lib(
        "notify",
        "deploy",
        "failed",
        message,
        "r2",
        TC_DEPLOY_WEBHOOK_URL=url,
        PATH=f"{spy.parent}{os.pathsep}{os.environ['PATH']}",
    )

    assert result.returncode == 0, result.stderr
    assert "notified the webhook: deploy failed" in result.stderr
    [request] = receiver.requests
    assert request["path"] == f"/hooks/deploy?token={QUERY_SECRET}"
    assert request["headers"]["Content-Type"] == "application/json"
    credentials = base64.b64encode(f"{HOOK_USER}:{HOOK_SECRET}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {credentials}"
    body = json.loads(request["body"])
    assert body["event"] == "deploy"
    assert body["status"] == "failed"
    assert body["message"] == message
    assert body["release"] == "r2"
    assert body["time"].endswith("Z")
    for secret in (HOOK_SECRET, QUERY_SECRET):
        assert secret not in result.stdout + result.stderr
        assert secret not in argv_log.read_text()


@pytest.mark.parametrize("path", ["/fail", "/hang", None])
def test_a_failing_webhook_never_fails_the_caller(receiver: Receiver, path: str | None) -> None:
    """A 500, a hung webhook or a closed port cost a warning line, never the exit status.

    The hung one is bounded by TC_NOTIFY_TIMEOUT.
    """
    if path is None:
        closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        url = f"http://{HOOK_USER}:{HOOK_SECRET}@127.0.0.1:{closed.server_address[1]}/x"
        closed.server_close()
    else:
        url = receiver.url(path, credentials=True)

    result = lib(
        "notify", "deploy", "failed", "m", TC_DEPLOY_WEBHOOK_URL=url, TC_NOTIFY_TIMEOUT="1"
    )

    assert result.returncode == 0
    assert "warning: the webhook notification failed" in result.stderr
    assert HOOK_SECRET not in result.stdout + result.stderr
    assert len(receiver.requests) == (0 if path is None else 1)


def test_notify_without_a_url_does_nothing(receiver: Receiver) -> None:
    result = lib("notify", "deploy", "started", "m", TC_DEPLOY_WEBHOOK_URL="")
    assert result.returncode == 0
    assert result.stderr == ""
    assert receiver.requests == []


def test_readiness_and_smoke_tests_gate_on_status(receiver: Receiver) -> None:
    """wait_ready and smoke_test pass on a healthy instance and fail on a 503 readiness."""
    base = receiver.url("")
    assert lib("wait_ready", base).returncode == 0
    smoke = lib("smoke_test", base)
    assert smoke.returncode == 0, smoke.stderr
    assert "smoke tests passed" in smoke.stderr

    receiver.ready_status = 503
    not_ready = lib("wait_ready", base, TC_READY_TIMEOUT="2")
    assert not_ready.returncode == 1
    assert "last answered 503" in not_ready.stderr
    failed = lib("smoke_test", base)
    assert failed.returncode == 1
    assert f"GET {base}/health/ready answered 503, expected 200" in failed.stderr
    custom = lib("smoke_test", base, TC_SMOKE_CHECKS="200 /health/live 404 /nowhere")
    assert custom.returncode == 0, custom.stderr
