"""Rate limits: nginx's four zones, and the app's own budgets shared by both instances.

Each test spends budgets from a loopback address of its own, so no other test (all
from 127.0.0.2) loses its budget.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import httpx2
import pytest

from conftest import APP_LIMIT, APP_LIMITED_ROUTE, Deployment

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


def burst(client: httpx2.Client, count: int, method: str, path: str) -> tuple[list[Any], float]:
    """Send ``count`` requests one after another: the responses and the seconds spent."""
    started = time.monotonic()
    responses = [
        client.request(method, path, headers={"X-Request-ID": f"zone-{uuid.uuid4().hex}"})
        for _ in range(count)
    ]
    return responses, time.monotonic() - started


@pytest.mark.parametrize(
    ("zone", "source", "method", "path", "rate", "burst_size"),
    [
        ("api", "127.0.0.11", "GET", "/projects", 10, 20),
        ("auth", "127.0.0.12", "POST", "/auth/token", 5, 5),
        ("uploads", "127.0.0.13", "POST", "/media", 2, 2),
        ("videos", "127.0.0.14", "POST", "/projects/1/videos", 1, 1),
    ],
)
def test_each_nginx_zone_answers_429_at_its_rate_with_the_problem_body(
    deployment: Deployment,
    zone: str,
    source: str,
    method: str,
    path: str,
    rate: int,
    burst_size: int,
) -> None:
    with deployment.client(source=source) as client:
        responses, seconds = burst(client, burst_size + 15, method, path)
    by_nginx = [
        response
        for response in responses
        if deployment.nginx_entry(response.headers["x-request-id"])["upstream"] == ""
    ]
    passed = len(responses) - len(by_nginx)
    # nodelay: the burst passes at once, then one request per 1/rate seconds.
    assert passed <= burst_size + 1 + math.ceil(rate * seconds) + 1, (zone, passed, seconds)
    assert by_nginx, f"nginx refused nothing in the {zone} zone"
    for response in by_nginx:
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "type": QUOTA_EXCEEDED,
            "title": "Request cannot be satisfied as assigned quota has been exceeded",
            "status": 429,
            "detail": "Rate limit exceeded at the proxy. Retry in 1 s.",
            "instance": path,
            "request_id": response.headers["x-request-id"],
        }


def test_a_get_is_not_counted_by_the_post_zones(deployment: Deployment) -> None:
    with deployment.client(source="127.0.0.16") as client:
        responses, _ = burst(client, 12, "GET", "/auth/token")
    # More than the auth zone's burst, all passed on (whatever the app answers).
    entries = [deployment.nginx_entry(r.headers["x-request-id"]) for r in responses]
    assert all(entry["upstream"] != "" for entry in entries), entries


def test_the_app_budget_is_shared_by_both_instances(deployment: Deployment) -> None:
    with deployment.client(source="127.0.0.15") as client:
        headers = deployment.account(client)
        answers = []
        for _ in range(APP_LIMIT * 2):
            request_id = f"shared-{uuid.uuid4().hex}"
            response = client.get(
                APP_LIMITED_ROUTE, headers={**headers, "X-Request-ID": request_id}
            )
            answers.append((response, deployment.nginx_entry(request_id)))
    statuses = [response.status_code for response, _ in answers]
    assert statuses == [200] * APP_LIMIT + [429] * APP_LIMIT
    served_ok = {entry["upstream"] for response, entry in answers if response.status_code == 200}
    assert served_ok == {deployment.upstream("app1"), deployment.upstream("app2")}
    for response, entry in answers[APP_LIMIT:]:
        # The app refused (nginx passed it on), with the same body shape as nginx.
        assert entry["upstream_status"] == "429"
        body = response.json()
        assert body["type"] == QUOTA_EXCEEDED
        assert body["instance"] == APP_LIMITED_ROUTE
        assert int(response.headers["retry-after"]) >= 1
