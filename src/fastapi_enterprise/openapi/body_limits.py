"""Document what the body limits answer: 400 everywhere, 413 and 408 where a body is read."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from fastapi_enterprise.middleware.body_limit import BodyLimitMiddleware, declared_limit
from fastapi_enterprise.openapi.customizers import Customizer, problem, route_operations

__all__ = ["document_body_limits"]

_BAD_REQUEST = (
    "Bad Request: a malformed request, such as an invalid or conflicting Content-Length, "
    "a Host that is not allowed, or a body that cannot be parsed."
)


def document_body_limits(app: FastAPI, limits: BodyLimitMiddleware) -> Customizer:
    """Return a customizer that documents the body-limit answers of every operation.

    - 400 on every operation: the ``Content-Length`` of any request is checked before the
      app runs (and the trusted-host check answers 400 too);
    - 413 on every operation with a request body, stating its limit (a
      :func:`~fastapi_enterprise.middleware.body_limit.body_limit` on the endpoint,
      ``route_limits``, the route's FastAPI ``max_body_size`` or the default);
    - 408 on the same operations when a ``read_timeout`` applies.

    Statuses the app documents itself are kept.
    """

    def customize(schema: dict[str, Any]) -> dict[str, Any]:
        declared = _declared_limits(app)
        for template, endpoint, operation in route_operations(app, schema):
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", problem(_BAD_REQUEST))
            if "requestBody" not in operation:
                continue
            limit = limits.limit_for_route(
                template, endpoint, declared.get((template, id(endpoint)))
            )
            responses.setdefault(
                "413", problem(f"Content Too Large: the body is over {limit} bytes.")
            )
            if limits.read_timeout is not None:
                seconds = f"{limits.read_timeout:g}"
                responses.setdefault(
                    "408",
                    problem(f"Request Timeout: the body did not arrive within {seconds} s."),
                )
        return schema

    return customize


def _declared_limits(app: FastAPI) -> dict[tuple[str, int], int]:
    """FastAPI's effective ``max_body_size`` of each route, by template and endpoint."""
    from fastapi.routing import iter_route_contexts

    found: dict[tuple[str, int], int] = {}
    for context in iter_route_contexts(app.router.routes):
        template = getattr(context, "path_format", None)
        limit = declared_limit({}, context)
        if isinstance(template, str) and limit is not None:
            found[(template, id(getattr(context, "endpoint", None)))] = limit
    return found
