"""Document each rate-limited operation's 429: problem body, headers and its limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from fastapi_enterprise.errors import PROBLEM_CONTENT_TYPE
from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
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
    """Return a customizer that adds a 429 response to every rate-limited operation.

    The 429's description states the limits that apply, so they read in ``/docs``.
    """

    def customize(schema: dict[str, Any]) -> dict[str, Any]:
        from fastapi.routing import iter_route_contexts

        paths = schema.get("paths", {})
        for context in iter_route_contexts(app.router.routes):
            template = getattr(context, "path_format", None)
            if not isinstance(template, str) or template not in paths:
                continue
            if limiter.is_exempt(template):
                continue
            declared = policy_of(getattr(context, "endpoint", None))
            if declared == "exempt":
                continue
            policy, _budget, name = limiter.policy_for(declared, template)
            if policy is None:
                continue
            budget = (
                "per client across the app"
                if name == "default"
                else (f"shared budget '{name}'" if policy.scope else "per client on this route")
            )
            for method in getattr(context, "methods", None) or ():
                operation = paths[template].get(method.lower())
                if not isinstance(operation, dict):
                    continue
                limits = describe(policy.limits)
                operation.setdefault("responses", {})["429"] = {
                    "description": f"Too Many Requests. Limits: {limits} ({budget}).",
                    "headers": _HEADERS,
                    "content": {
                        PROBLEM_CONTENT_TYPE: {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                }
        return schema

    return customize
