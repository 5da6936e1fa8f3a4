"""TLS at nginx: the generated CA, the HTTP redirect, HSTS only over HTTPS."""

from __future__ import annotations

import socket
import ssl
import warnings

import httpx2
import pytest

from conftest import CLIENT_ADDRESS, Deployment


def test_https_verifies_with_the_generated_ca(deployment: Deployment) -> None:
    with deployment.client() as client:
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_a_client_without_the_ca_is_refused(deployment: Deployment) -> None:
    with (
        deployment.client(verify=ssl.create_default_context()) as client,
        pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get("/health/live")


def handshake(deployment: Deployment, context: ssl.SSLContext) -> str | None:
    """Connect to nginx's HTTPS port with ``context``; the negotiated TLS version."""
    port = int(deployment.https_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(CLIENT_ADDRESS, 0)
        ) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_accepted(deployment: Deployment, version: ssl.TLSVersion) -> None:
    context = deployment.ssl_context()
    context.minimum_version = context.maximum_version = version
    expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}
    assert handshake(deployment, context) == expected[version]


def test_tls_1_1_is_refused_by_the_server(deployment: Deployment) -> None:
    context = deployment.ssl_context()
    # Let this client offer TLS 1.1 (OpenSSL's default security level forbids it), so
    # the refusal seen is the server's protocol_version alert, not the client's own.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):
        handshake(deployment, context)


def test_http_redirects_to_https_keeping_path_and_query(deployment: Deployment) -> None:
    transport = httpx2.HTTPTransport(local_address=CLIENT_ADDRESS)
    with httpx2.Client(transport=transport) as client:
        response = client.get(f"{deployment.http_url}/projects/7/scenes?q=python&page=2")
    assert response.status_code == 301
    assert (
        response.headers["location"] == f"{deployment.https_url}/projects/7/scenes?q=python&page=2"
    )
    assert "strict-transport-security" not in response.headers


def test_hsts_only_over_https_once(deployment: Deployment) -> None:
    with deployment.client() as client:
        response = client.get("/health/live")
    assert response.headers.get_list("strict-transport-security") == [
        "max-age=31536000; includeSubDomains"
    ]
