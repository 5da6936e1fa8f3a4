"""OpenAPI customizers: small functions over the schema, composed by one call.

```python
from fastapi_enterprise.openapi import apply_customizers
from fastapi_enterprise.openapi.customizers import (
    info,
    readable_operation_ids,
    servers,
    standard_errors,
    tags,
)

apply_customizers(
    app,
    info(description="Course videos", contact={"email": "api@example.com"}, logo_url="/logo.png"),
    servers([{"url": "https://api.example.com"}]),
    tags([{"name": "courses", "description": "The catalogue"}]),
    standard_errors(app),
    readable_operation_ids(app),
)
```

Errors a dependency can raise are declared once, on the dependency, with
:func:`declare_errors`; :func:`standard_errors` documents them on every operation that
uses it (FastAPI cannot see errors raised inside dependencies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI

from fastapi_enterprise.errors import PROBLEM_CONTENT_TYPE

__all__ = [
    "declare_errors",
    "generated_examples",
    "info",
    "problem",
    "readable_operation_ids",
    "route_method_operations",
    "route_operations",
    "servers",
    "standard_errors",
    "tags",
]

Schema = dict[str, Any]
Customizer = Callable[[Schema], Schema]
F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__fastapi_enterprise_errors__"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def declare_errors(*status_codes: int) -> Callable[[F], F]:
    """Declare the error statuses a dependency can raise, to document them everywhere.

    Example:
        ```python
        @declare_errors(401, 403)
        async def current_admin(token: Annotated[str, Depends(bearer)]) -> User: ...
        ```
    """
    for code in status_codes:
        if not 400 <= code <= 599:
            raise ValueError(f"{code} is not an error status")

    def mark(dependency: F) -> F:
        setattr(dependency, _ATTRIBUTE, tuple(status_codes))
        return dependency

    return mark


def info(
    *,
    title: str | None = None,
    version: str | None = None,
    description: str | None = None,
    contact: dict[str, str] | None = None,
    license: dict[str, str] | None = None,
    terms_of_service: str | None = None,
    logo_url: str | None = None,
) -> Customizer:
    """Fill the ``info`` object; ``logo_url`` becomes ReDoc's ``x-logo``."""

    def customize(schema: Schema) -> Schema:
        section = schema.setdefault("info", {})
        for key, value in (
            ("title", title),
            ("version", version),
            ("description", description),
            ("contact", contact),
            ("license", license),
            ("termsOfService", terms_of_service),
        ):
            if value is not None:
                section[key] = value
        if logo_url is not None:
            section["x-logo"] = {"url": logo_url}
        return schema

    return customize


def servers(entries: list[dict[str, str]]) -> Customizer:
    """Set the ``servers`` list (``[{"url": ..., "description": ...}]``)."""

    def customize(schema: Schema) -> Schema:
        schema["servers"] = list(entries)
        return schema

    return customize


def tags(metadata: list[dict[str, Any]], *, order_unknown_last: bool = True) -> Customizer:
    """Describe tags in the given order; tags used but not described follow, sorted."""

    def customize(schema: Schema) -> Schema:
        known = [entry["name"] for entry in metadata]
        used = sorted(
            {tag for _, _, op in _operations(schema) for tag in op.get("tags", [])} - set(known)
        )
        extra = [{"name": name} for name in used] if order_unknown_last else []
        schema["tags"] = [*metadata, *extra]
        return schema

    return customize


def readable_operation_ids(app: FastAPI) -> Customizer:
    """Use the endpoint function's name as ``operationId`` (``read_course``), when unique."""

    def customize(schema: Schema) -> Schema:
        names: dict[tuple[str, str], str] = {}
        for path, methods, context in _routes(app):
            endpoint = getattr(context, "endpoint", None)
            for method in methods:
                names[(path, method.lower())] = getattr(endpoint, "__name__", "")
        counts: dict[str, int] = {}
        for function_name in names.values():
            counts[function_name] = counts.get(function_name, 0) + 1
        for path, method, operation in _operations(schema):
            name = names.get((path, method))
            if name and counts[name] == 1 and name.isidentifier():
                operation["operationId"] = name
        return schema

    return customize


def standard_errors(app: FastAPI) -> Customizer:
    """Document the problem+json errors each operation can answer with.

    500 everywhere; 400 where there is a body; 404 where the path has parameters; 401 and
    403 where a security scheme applies; every status a dependency declared with
    :func:`declare_errors`. Existing entries are kept.
    """

    def customize(schema: Schema) -> Schema:
        declared: dict[tuple[str, str], set[int]] = {}
        for path, methods, context in _routes(app):
            codes = set(_declared_codes(context))
            for method in methods:
                declared[(path, method.lower())] = codes
        secured_globally = bool(schema.get("security"))
        for path, method, operation in _operations(schema):
            codes = {500} | declared.get((path, method), set())
            if "requestBody" in operation:
                codes.add(400)
            if "{" in path:
                codes.add(404)
            if operation.get("security", schema.get("security")) or secured_globally:
                codes |= {401, 403}
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(str(code), problem(HTTPStatus(code).phrase))
        return schema

    return customize


def generated_examples(schema: Schema) -> Schema:
    """Give every JSON request and response body an ``example`` when it has none.

    Values come from the schema: declared examples and defaults first, then types,
    formats, enums and constraints (see
    :func:`~fastapi_enterprise.openapi.postman.example_from_schema`); recursive schemas
    terminate. Problem responses are left to the ``ErrorResponse`` schema's own example.
    """
    from fastapi_enterprise.openapi.postman import example_from_schema

    components = schema.get("components", {})
    for _path, _method, operation in _operations(schema):
        bodies = [operation.get("requestBody", {})]
        bodies += [
            response
            for status, response in operation.get("responses", {}).items()
            if str(status).startswith("2")
        ]
        for body in bodies:
            media = body.get("content", {}).get("application/json")
            if isinstance(media, dict) and "schema" in media and "example" not in media:
                if "examples" in media:
                    continue
                example = example_from_schema(media["schema"], components)
                if example is not None:
                    media["example"] = example
    return schema


def problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response object: ``application/problem+json`` with ``ErrorResponse``.

    Args:
        description: What the status means on this operation.
        headers: OpenAPI header objects by name (``Retry-After``...).
    """
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = headers
    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": dict(_ERROR_REF)}}
    return response


def route_operations(app: FastAPI, schema: Schema) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Yield ``(route template, endpoint, operation)`` for every operation of ``app``.

    Routes of included routers come with their full template; routes left out of the
    schema are skipped.
    """
    for template, _method, endpoint, operation in route_method_operations(app, schema):
        yield template, endpoint, operation


def route_method_operations(
    app: FastAPI, schema: Schema
) -> Iterator[tuple[str, str, Any, dict[str, Any]]]:
    """As :func:`route_operations`, with each operation's method (``GET``, ``POST``...)."""
    paths = schema.get("paths", {})
    for template, methods, context in _routes(app):
        path_item = paths.get(template)
        if not isinstance(path_item, dict):
            continue
        endpoint = getattr(context, "endpoint", None)
        for method in methods:
            operation = path_item.get(method.lower())
            if isinstance(operation, dict):
                yield template, method.upper(), endpoint, operation


def _operations(schema: Schema) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                yield path, method, operation


def _routes(app: FastAPI) -> Iterator[tuple[str, Iterable[str], Any]]:
    from fastapi.routing import iter_route_contexts

    for context in iter_route_contexts(app.router.routes):
        path = getattr(context, "path_format", None)
        methods = getattr(context, "methods", None)
        if isinstance(path, str) and methods:
            yield path, methods, context


def _declared_codes(context: Any) -> Iterator[int]:
    dependant = getattr(getattr(context, "original_route", context), "dependant", None)
    stack = [dependant] if dependant is not None else []
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield from getattr(current.call, _ATTRIBUTE, ()) if current.call is not None else ()
        stack.extend(current.dependencies)
