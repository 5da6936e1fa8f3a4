"""OpenAPI customizers: functions that take the generated schema and return it improved.

``install()`` applies :func:`document_problem_errors`, so the documentation matches what
the app sends: errors as ``application/problem+json`` with the ``ErrorResponse`` schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from fastapi_enterprise.errors import PROBLEM_CONTENT_TYPE
from fastapi_enterprise.responses import ErrorResponse

__all__ = ["OpenAPICustomizer", "apply_customizers", "document_problem_errors"]

OpenAPICustomizer = Callable[[dict[str, Any]], dict[str, Any]]
"""A function that receives the OpenAPI schema (a dict) and returns the new schema."""

_REF_TEMPLATE = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": _REF_TEMPLATE.format(model="ErrorResponse")}
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def document_problem_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every error response as ``application/problem+json`` with ``ErrorResponse``.

    - FastAPI documents its 422 as ``application/json`` ``HTTPValidationError``; the app
      actually answers with a problem whose ``errors`` list carries no input values.
    - A status declared with :func:`~fastapi_enterprise.problem_responses` is also given
      a copy under the route's media type by FastAPI (``application/json``, or
      ``text/event-stream`` on a Server-Sent Events route); that copy is removed.

    The schemas FastAPI generated for its own 422 body are dropped when nothing else
    refers to them.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=_REF_TEMPLATE)
    components.update(error_schema.pop("$defs", {}))
    components.setdefault("ErrorResponse", error_schema)
    for operation in _operations(schema):
        for status, response in operation.get("responses", {}).items():
            content = response.get("content", {})
            if status == "422" and _refers_to(content.get("application/json"), _FASTAPI_422[0]):
                del content["application/json"]
                content[PROBLEM_CONTENT_TYPE] = {"schema": dict(_ERROR_REF)}
            elif PROBLEM_CONTENT_TYPE in content:
                # FastAPI files the copy under the route's media type: application/json,
                # or text/event-stream on an SSE route, text/html on an HTML one.
                for media_type in [
                    media_type
                    for media_type, media in content.items()
                    if media_type != PROBLEM_CONTENT_TYPE and _refers_to(media, "ErrorResponse")
                ]:
                    del content[media_type]
    remaining = json.dumps(schema)
    for name in _FASTAPI_422:
        if f'"{_REF_TEMPLATE.format(model=name)}"' not in remaining:
            components.pop(name, None)
            remaining = json.dumps(schema)
    return schema


def apply_customizers(app: FastAPI, *customizers: OpenAPICustomizer) -> None:
    """Run ``customizers`` over ``app``'s OpenAPI schema once, when it is first generated.

    Args:
        app: The FastAPI app whose ``openapi()`` is wrapped.
        *customizers: Applied in order; each receives the previous one's result.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for customize in customizers:
                schema = customize(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "query"}
    return [
        operation
        for path_item in schema.get("paths", {}).values()
        for method, operation in path_item.items()
        if method in methods and isinstance(operation, dict)
    ]


def _refers_to(media: Any, model: str) -> bool:
    return isinstance(media, dict) and media.get("schema") == {
        "$ref": _REF_TEMPLATE.format(model=model)
    }
