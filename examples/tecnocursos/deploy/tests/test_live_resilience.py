"""Failures nginx absorbs: an instance killed under load, slow and oversized clients."""

from __future__ import annotations

import socket
import ssl
import time
import uuid

from conftest import Deployment

LOOP_REQUESTS = 40
KILL_AT = 10


def test_an_instance_killed_under_load_fails_no_idempotent_request(
    deployment: Deployment,
) -> None:
    failures: list[str] = []
    served: list[str] = []
    try:
        with deployment.client(source="127.0.0.18", timeout=15) as client:
            headers = deployment.account(client)
            for number in range(LOOP_REQUESTS):
                if number == KILL_AT:
                    deployment.runtime.kill("app2")
                request_id = f"kill-{uuid.uuid4().hex}"
                response = client.get("/projects", headers={**headers, "X-Request-ID": request_id})
                if response.status_code != 200:
                    failures.append(f"{number}: {response.status_code} {response.text[:200]}")
                served.append(request_id)
                # Under the api zone's 10 r/s: the loop measures failover, not the limit.
                time.sleep(0.12)
    finally:
        deployment.restart("app2")
    assert failures == []
    upstreams = [deployment.nginx_entry(request_id)["upstream"] for request_id in served]
    # Before the kill both served; after it some request was retried on app1 (nginx logs
    # both attempts), and app1 alone answered.
    assert {u.split(", ")[-1] for u in upstreams[:KILL_AT]} == {
        deployment.upstream("app1"),
        deployment.upstream("app2"),
    }
    assert {u.split(", ")[-1] for u in upstreams[KILL_AT:]} == {deployment.upstream("app1")}
    assert any(", " in u for u in upstreams[KILL_AT:]), upstreams[KILL_AT:]
    wait_until_both_serve(deployment)


def wait_until_both_serve(deployment: Deployment) -> None:
    """Wait until nginx sends requests to both instances again (after fail_timeout)."""

    def both() -> bool:
        request_id = f"back-{uuid.uuid4().hex}"
        with deployment.client() as client:
            client.get("/health/live", headers={"X-Request-ID": request_id})
        upstream: str = deployment.nginx_entry(request_id)["upstream"]
        return upstream == deployment.upstream("app2")

    deployment.wait_for(both, timeout=30, what="app2 back in rotation")


def tls_socket(deployment: Deployment, source: str) -> ssl.SSLSocket:
    """A TLS connection to nginx from ``source``."""
    port = int(deployment.https_url.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return deployment.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_slowloris_client_is_closed_by_nginx_before_reaching_the_app(
    deployment: Deployment,
) -> None:
    path = f"/slowloris-{uuid.uuid4().hex}"
    with tls_socket(deployment, "127.0.0.19") as connection:
        # Headers that never end: the last line is never finished.
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Slow: a".encode())
        received = connection.recv(1024)  # nginx closes at client_header_timeout
    assert received == b""
    entry = deployment.wait_for(
        lambda: next((e for e in deployment.access_log() if path in e["uri"]), None),
        what="nginx's line of the slow request",
    )
    assert entry["status"] == 408
    assert entry["upstream"] == ""
    for service in ("app1", "app2"):
        assert path not in deployment.runtime.log_file(service).read_text()


def test_an_oversized_header_line_is_refused_by_nginx(deployment: Deployment) -> None:
    request_id = f"big-{uuid.uuid4().hex}"
    with deployment.client(source="127.0.0.20") as client:
        response = client.get(
            "/projects", headers={"X-Request-ID": request_id, "X-Big": "a" * 20_000}
        )
    assert response.status_code in (400, 431, 494)
    refused = deployment.wait_for(
        lambda: [e for e in deployment.access_log() if e["client"] == "127.0.0.20"],
        what="nginx's line of the refusal",
    )
    assert {e["upstream"] for e in refused} == {""}
    for service in ("app1", "app2"):
        assert request_id not in deployment.runtime.log_file(service).read_text()
