"""nginx in front of two instances: balancing, draining, client address, request IDs."""

from __future__ import annotations

import itertools
import re
import uuid

from conftest import CLIENT_ADDRESS, Deployment


def request_ids(prefix: str, count: int) -> list[str]:
    """``count`` distinct well-formed request IDs."""
    run = uuid.uuid4().hex[:12]
    return [f"{prefix}-{run}-{number}" for number in range(count)]


def upstreams_of(deployment: Deployment, prefix: str, count: int) -> list[str]:
    """Send ``count`` GETs through nginx; the instance address that served each."""
    ids = request_ids(prefix, count)
    with deployment.client() as client:
        for request_id in ids:
            response = client.get("/health/live", headers={"X-Request-ID": request_id})
            assert response.status_code == 200
    return [deployment.nginx_entry(request_id)["upstream"] for request_id in ids]


def test_requests_alternate_between_the_two_instances(deployment: Deployment) -> None:
    served = upstreams_of(deployment, "alternate", 8)
    assert set(served) == {deployment.upstream("app1"), deployment.upstream("app2")}
    assert all(first != second for first, second in itertools.pairwise(served)), served


def test_a_drained_instance_gets_no_request_until_undrained(deployment: Deployment) -> None:
    deployment.runtime.drain("app1")
    try:
        assert deployment.runtime.nginx_test() == 0
        drained = upstreams_of(deployment, "drained", 6)
    finally:
        deployment.runtime.undrain("app1")
    assert set(drained) == {deployment.upstream("app2")}
    assert set(upstreams_of(deployment, "undrained", 4)) == {
        deployment.upstream("app1"),
        deployment.upstream("app2"),
    }


def test_the_app_logs_the_real_client_not_nginx_nor_a_forged_one(deployment: Deployment) -> None:
    request_id = request_ids("client", 1)[0]
    with deployment.client() as client:
        response = client.get(
            "/projects",
            headers={"X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.9, 10.9.8.7"},
        )
    assert response.status_code == 401
    assert deployment.nginx_entry(request_id)["client"] == CLIENT_ADDRESS
    access = [
        line
        for _, line in deployment.app_entries(request_id)
        if line.get("logger") == "fastapi_enterprise.access"
    ]
    assert [line["client_ip"] for line in access] == [CLIENT_ADDRESS]


def test_a_given_request_id_is_in_nginx_and_app_lines_and_the_response(
    deployment: Deployment,
) -> None:
    request_id = request_ids("given", 1)[0]
    with deployment.client() as client:
        response = client.get("/projects", headers={"X-Request-ID": request_id})
    assert response.headers.get_list("x-request-id") == [request_id]
    assert response.json()["request_id"] == request_id
    entry = deployment.nginx_entry(request_id)
    served = [service for service, _ in deployment.app_entries(request_id)]
    assert {deployment.upstream(service) for service in served} == {entry["upstream"]}


def test_nginx_generates_the_id_when_none_or_a_malformed_one_is_sent(
    deployment: Deployment,
) -> None:
    with deployment.client() as client:
        plain = client.get("/projects")
        malformed = client.get("/projects", headers={"X-Request-ID": "bad id\twith <tags>"})
    for response in (plain, malformed):
        (request_id,) = response.headers.get_list("x-request-id")
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id
        assert response.json()["request_id"] == request_id
        assert deployment.nginx_entry(request_id)["status"] == 401
        assert deployment.app_entries(request_id)
    assert plain.headers["x-request-id"] != malformed.headers["x-request-id"]


def test_json_responses_are_compressed(deployment: Deployment) -> None:
    with deployment.client() as client:
        response = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["info"]["title"] == "TecnoCursos"


def test_a_body_over_the_default_limit_gets_nginx_problem_413(deployment: Deployment) -> None:
    with deployment.client() as client:
        response = client.post(
            "/projects", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["instance"]) == (413, "/projects")
    assert body["request_id"] == response.headers["x-request-id"]
    assert deployment.nginx_entry(body["request_id"])["upstream"] == ""


def test_with_every_instance_drained_nginx_answers_a_problem_503(deployment: Deployment) -> None:
    deployment.runtime.drain("app1")
    try:
        deployment.runtime.drain("app2")
        try:
            with deployment.client() as client:
                response = client.get("/projects")
        finally:
            deployment.runtime.undrain("app2")
    finally:
        deployment.runtime.undrain("app1")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["title"] == "Service Unavailable"
    with deployment.client() as client:
        assert client.get("/health/live").status_code == 200
