"""Document each rate-limited operation's 429 (and 503 when it fails closed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
from fastapi_enterprise.openapi.customizers import problem, route_method_operations
from fastapi_enterprise.ratelimit.policy import describe, policy_of

__all__ = ["document_rate_limits"]

_HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Policy": {
        "description": "The limits (draft-ietf-httpapi-ratelimit-headers).",
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "Remaining quota and seconds to reset of the closest limit.",
        "schema": {"type": "string"},
    },
}


def document_rate_limits(
    app: FastAPI, limiter: RateLimitMiddleware
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Return a customizer that documents the rate-limit answers of every limited operation.

    - 429 with ``Retry-After`` and the ``RateLimit`` fields; its description states the
      limits that apply, so they read in ``/docs``;
    - 503 with ``Retry-After`` where the policy fails closed (the storage is down).
    """

    def customize(schema: dict[str, Any]) -> dict[str, Any]:
        for template, method, endpoint, operation in route_method_operations(app, schema):
            if limiter.is_exempt(template):
                continue
            declared = policy_of(endpoint)
            if declared == "exempt":
                continue
            policy, storage_budget, name = limiter.policy_for(declared, template, method, endpoint)
            if policy is None:
                continue
            if name == "default":
                budget = "per client across the app"
            elif policy.scope:
                budget = f"shared budget '{name}'"
            elif storage_budget.startswith(f"route:{method} "):  # a "METHOD /template" key
                budget = f"per client on {method} of this route"
            else:
                budget = "per client on this route"
            responses = operation.setdefault("responses", {})
            limits = describe(policy.limits)
            responses["429"] = problem(
                f"Too Many Requests. Limits: {limits} ({budget}).", headers=_HEADERS
            )
            if (policy.fail or limiter.fail_mode) == "closed":
                responses.setdefault(
                    "503",
                    problem(
                        "Service Unavailable: the rate-limit storage is down and this "
                        "operation does not run without it.",
                        headers={"Retry-After": _HEADERS["Retry-After"]},
                    ),
                )
        return schema

    return customize
