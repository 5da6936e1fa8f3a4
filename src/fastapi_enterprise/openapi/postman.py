"""Export an OpenAPI 3.x document as a Postman Collection v2.1, in pure Python.

The output is deterministic (no ``_postman_id``, no generated ids), so an exported
collection can be committed and diffed. Requests are grouped in one folder per first tag,
use a ``{{baseUrl}}`` collection variable, and carry request bodies and saved example
responses generated from the schemas by :func:`example_from_schema`. Each request carries
its own operation's auth (API key in a header, query or cookie; bearer; basic; none for
public operations), with one collection variable per security scheme; the login request
of an OAuth2 password flow stores the access token it gets in that variable.

Format reference: https://schema.postman.com/collection/json/v2.1.0/draft-07/docs/index.html
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from typing import Any

from fastapi_enterprise.openapi._postman_auth import PostmanAuth

__all__ = ["POSTMAN_SCHEMA_URL", "example_from_schema", "openapi_to_postman"]

POSTMAN_SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
"""The ``info.schema`` value that marks a collection as format v2.1.0."""

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")
_MAX_DEPTH = 8  # nesting of generated objects and arrays
_BUDGET = 5_000  # schema nodes visited per example: wide schemas fan out exponentially
_MAX_REPEAT = 256  # cap on minItems / minLength, so a huge bound cannot exhaust memory
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_TEMPLATE = re.compile(r"\{([^}/]+)\}")
# A pattern that matches one literal string, such as OAuth2's grant_type "^password$".
_LITERAL_PATTERN = re.compile(r"\^([A-Za-z0-9_\- ]+)\$")
_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "uri": "https://example.com",
    "ipv4": "192.0.2.1",
    "byte": "c3RyaW5n",
    "binary": "",
}


def example_from_schema(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """Generate an example value that satisfies ``schema``.

    Documented values win: ``const``, ``example``, the first of ``examples``, a non-null
    ``default``, the first of ``enum``. Otherwise the value follows ``type`` and ``format``,
    numeric bounds, ``minLength``/``maxLength`` and ``minItems``/``maxItems``; ``pattern``
    only when it allows one literal string (OAuth2's ``grant_type``: ``^password$``).
    ``anyOf``/``oneOf`` take the first non-null option, tagged with its ``discriminator``
    value; ``allOf`` merges its parts.

    Generation always terminates: a ``$ref`` already being expanded, nesting deeper than
    8 levels, or a schema too large to walk yields ``None`` at that point.

    Args:
        schema: A JSON Schema object, as found in an OpenAPI document.
        components: The document's ``components`` object; ``$ref`` values of the form
            ``#/components/schemas/Name`` are resolved in it.

    Returns:
        A JSON-serialisable value.
    """
    return _Examples(components).value(schema, 0, ())


def openapi_to_postman(
    spec: dict[str, Any], *, name: str | None = None, base_url: str = "http://127.0.0.1:8000"
) -> dict[str, Any]:
    """Convert an OpenAPI 3.x document to a Postman Collection v2.1.

    Args:
        spec: The OpenAPI document, for example ``app.openapi()``.
        name: The collection name; defaults to the document's ``info.title``.
        base_url: The value of the ``baseUrl`` collection variable. A relative first
            ``servers`` URL (FastAPI's ``root_path``) is appended to it.

    Returns:
        The collection as a JSON-serialisable dict.
    """
    components = spec.get("components") or {}
    info = spec.get("info") or {}
    server = ((spec.get("servers") or [{}])[0]).get("url", "")
    if isinstance(server, str) and server.startswith("/"):
        base_url = base_url.rstrip("/") + server.rstrip("/")
    schemes = components.get("securitySchemes") or {}
    auth = PostmanAuth(
        spec, {name: _resolve(scheme, components) for name, scheme in schemes.items()}
    )
    folders: dict[str, list[dict[str, Any]]] = {}
    posts: dict[str, dict[str, Any]] = {}
    for path, path_item in (spec.get("paths") or {}).items():
        path_item = _resolve(path_item, components)
        for method in _METHODS:
            operation = path_item.get(method)
            if isinstance(operation, dict):
                tag = (operation.get("tags") or ["default"])[0]
                item = _request_item(path, method, operation, path_item, components, auth)
                folders.setdefault(tag, []).append(item)
                if method == "post":
                    posts[path] = item
    relative = server if isinstance(server, str) and server.startswith("/") else ""
    for token_path, event in auth.token_requests(relative):
        if token_path in posts:
            posts[token_path]["event"] = [event]
    tag_docs = {tag.get("name"): tag.get("description") for tag in spec.get("tags") or []}
    details = {"name": name or info.get("title") or "API", "schema": POSTMAN_SCHEMA_URL}
    collection: dict[str, Any] = {
        "info": {**details, **_optional("description", info.get("description"))},
        "item": [
            {"name": tag, **_optional("description", tag_docs.get(tag)), "item": items}
            for tag, items in folders.items()
        ],
        "variable": [{"key": "baseUrl", "value": base_url, "type": "string"}],
    }
    collection["variable"].extend(auth.variables())
    return collection


class _Examples:
    """One example generation: the components to resolve in, and the remaining budget."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components
        self.budget = _BUDGET

    def value(self, schema: Any, depth: int, refs: tuple[str, ...]) -> Any:
        self.budget -= 1
        if not isinstance(schema, dict) or depth > _MAX_DEPTH or self.budget < 0:
            return None
        documented = _documented(schema)
        if documented is not None:
            return documented[0]
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in refs:  # recursion: cut here
                return None
            return self.value(_resolve(schema, self.components), depth, (*refs, ref))
        if isinstance(schema.get("allOf"), list):
            return self._all_of(schema, depth, refs)
        for key in ("oneOf", "anyOf"):
            if isinstance(schema.get(key), list):
                return self._one_of(schema, schema[key], depth, refs)
        kind = _type(schema)
        if kind == "object":
            return self._object(schema, depth, refs)
        if kind == "array":
            item = self.value(schema.get("items", {}), depth + 1, refs)
            count = max(1, min(schema.get("minItems", 1), _MAX_REPEAT))
            count = min(count, schema.get("maxItems", count))
            return [] if item is None else [item] * count
        if kind in {"integer", "number"}:
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "string":
            literal = _LITERAL_PATTERN.fullmatch(str(schema.get("pattern", "")))
            if literal is not None:
                return literal.group(1)
            text = _STRING_FORMATS.get(schema.get("format", ""), "string")
            text = text.ljust(min(schema.get("minLength", 0), _MAX_REPEAT), "x")
            return text[: schema.get("maxLength", len(text))]
        return None

    def _object(self, schema: dict[str, Any], depth: int, refs: tuple[str, ...]) -> Any:
        result = {
            key: self.value(sub, depth + 1, refs)
            for key, sub in (schema.get("properties") or {}).items()
        }
        extra = schema.get("additionalProperties")
        if not result and isinstance(extra, dict):
            result["key"] = self.value(extra, depth + 1, refs)
        return result

    def _all_of(self, schema: dict[str, Any], depth: int, refs: tuple[str, ...]) -> Any:
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        parts = [self.value(part, depth, refs) for part in [*schema["allOf"], rest]]
        values = [part for part in parts if part is not None]
        if values and all(isinstance(part, dict) for part in values):
            return {key: value for part in values for key, value in part.items()}
        return values[0] if values else None

    def _one_of(
        self, schema: dict[str, Any], options: list[Any], depth: int, refs: tuple[str, ...]
    ) -> Any:
        for option in options:
            if _type(_resolve(option, self.components)) == "null":
                continue
            value = self.value(option, depth, refs)
            if value is None:  # a recursive option: try the next one
                continue
            discriminator = schema.get("discriminator")
            ref = option.get("$ref") if isinstance(option, dict) else None
            if isinstance(discriminator, dict) and isinstance(value, dict) and isinstance(ref, str):
                # Without a mapping entry, the tag value is the schema's name (OpenAPI 3.x).
                mapping = discriminator.get("mapping") or {}
                tag = next((t for t, target in mapping.items() if target == ref), None)
                value[discriminator["propertyName"]] = tag or ref.rsplit("/")[-1]
            return value
        return None


def _documented(schema: dict[str, Any]) -> tuple[Any] | None:
    for key in ("const", "example"):
        if key in schema:
            return (schema[key],)
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return (examples[0],)
    if schema.get("default") is not None:
        return (schema["default"],)
    choices = [choice for choice in schema.get("enum") or [] if choice is not None]
    return (choices[0],) if choices else None


def _type(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    return kind if isinstance(kind, str) else None


def _number(schema: dict[str, Any], *, integer: bool) -> float:
    def bound(key: str, exclusive_key: str, sign: int) -> float | None:
        limit: float | None = schema.get(key)
        exclusive = schema.get(exclusive_key)
        if isinstance(exclusive, (int, float)) and not isinstance(exclusive, bool):
            limit, exclusive = exclusive, True  # OpenAPI 3.1 numeric exclusive bound
        if limit is None:
            return None
        if integer:
            rounded = math.ceil(limit) if sign > 0 else math.floor(limit)
            return rounded + sign if exclusive and rounded == limit else rounded
        return float(limit + sign if exclusive else limit)

    low = bound("minimum", "exclusiveMinimum", 1)
    high = bound("maximum", "exclusiveMaximum", -1)
    value: float = low if low is not None else min(0, high) if high is not None else 0
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step > 0:
        value = math.ceil(value / step) * step
    if high is not None and value > high:
        value = high if integer else (value + high) / 2
    return int(value) if integer else float(value)


def _resolve(node: Any, components: dict[str, Any]) -> Any:
    """Follow ``$ref`` chains into ``components`` (bounded, so a ref cycle cannot hang)."""
    for _ in range(16):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/components/"):
            return node
        target: Any = components
        for part in ref.removeprefix("#/components/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node = target
    return None


def _unwrap(schema: Any, components: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``schema`` and take the first non-null option of ``anyOf``/``oneOf``."""
    for _ in range(16):
        schema = _resolve(schema, components)
        options = schema.get("anyOf") or schema.get("oneOf") if isinstance(schema, dict) else None
        if not options:
            break
        schema = next((o for o in options if _type(_resolve(o, components)) != "null"), {})
    return schema if isinstance(schema, dict) else {}


def _optional(key: str, value: Any) -> dict[str, Any]:
    return {key: value} if value else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _request_item(
    path: str,
    method: str,
    operation: dict[str, Any],
    path_item: dict[str, Any],
    components: dict[str, Any],
    auth: PostmanAuth,
) -> dict[str, Any]:
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        param = _resolve(param, components)  # operation-level ones override path-level ones
        params[(param.get("in", ""), param.get("name", ""))] = param
    segments = [_TEMPLATE.sub(r":\1", part) for part in path.split("/") if part]
    url: dict[str, Any] = {"raw": "", "host": ["{{baseUrl}}"], "path": segments}
    url["query"], url["variable"], header = [], [], []
    for (place, key), param in params.items():
        value = _example(param, components)
        entry = {"key": key, **_optional("description", param.get("description"))}
        optional = {} if param.get("required") else {"disabled": True}
        if place == "path":
            url["variable"].append({**entry, "value": _text(value) or f"<{key}>"})
        elif place == "query":
            values = value if isinstance(value, list) else [value]
            url["query"].extend({**entry, "value": _text(one), **optional} for one in values)
        elif place == "header":
            header.append({**entry, "value": _text(value), **optional})
    credentials = auth.for_operation(operation, header, url["query"])
    enabled = [f"{q['key']}={q['value']}" for q in url["query"] if not q.get("disabled")]
    url["raw"] = "{{baseUrl}}/" + "/".join(segments) + ("?" if enabled else "") + "&".join(enabled)
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": header,
        "url": url,
        "auth": credentials,
    }
    request.update(_optional("description", operation.get("description")))
    body = _resolve(operation.get("requestBody"), components)
    if isinstance(body, dict) and body.get("content"):
        request["body"] = _body(body["content"], header, components)
    responses = [
        _response(status, _resolve(response, components), components)
        for status, response in (operation.get("responses") or {}).items()
        if re.fullmatch(r"[1-5][0-9X]{2}", str(status).upper())  # not "default"
    ]
    name = operation.get("summary") or operation.get("operationId") or f"{method.upper()} {path}"
    return {"name": name, "request": request, "response": responses}


def _example(declared: dict[str, Any], components: dict[str, Any]) -> Any:
    """The example of a parameter, header or media type object, else one from its schema."""
    if "example" in declared:
        return declared["example"]
    for example in (declared.get("examples") or {}).values():
        example = _resolve(example, components)
        if isinstance(example, dict) and "value" in example:
            return example["value"]
    return example_from_schema(declared.get("schema") or {}, components)


def _rank(media_type: str) -> int:
    """Which media type to use when several are offered: JSON (0), then forms (1)."""
    if media_type.split(";")[0].strip().endswith(("/json", "+json")):
        return 0
    return 1 if media_type in _FORMS else 2


def _body(
    content: dict[str, Any], header: list[dict[str, Any]], components: dict[str, Any]
) -> dict[str, Any]:
    media_type = min(content, key=_rank)
    media = content[media_type] or {}
    if media_type in _FORMS:
        files = media_type == "multipart/form-data"
        mode = "formdata" if files else "urlencoded"
        return {"mode": mode, mode: _form_fields(media, components, files=files)}
    header.append({"key": "Content-Type", "value": media_type})
    raw, language = _raw(media_type, _example(media, components))
    return {"mode": "raw", "raw": raw, "options": {"raw": {"language": language}}}


def _raw(media_type: str, example: Any) -> tuple[str, str]:
    if _rank(media_type) == 0:
        return json.dumps(example, indent=2), "json"
    return _text(example), "text"


def _form_fields(
    media: dict[str, Any], components: dict[str, Any], *, files: bool
) -> list[dict[str, Any]]:
    schema = _unwrap(media.get("schema"), components)
    required = set(schema.get("required") or [])
    fields: list[dict[str, Any]] = []
    for key, prop in (schema.get("properties") or {}).items():
        described = _resolve(prop, components) or {}
        entry = {"key": key, **_optional("description", described.get("description"))}
        entry.update({} if key in required else {"disabled": True})
        field = _unwrap(prop, components)
        many = _type(field) == "array"
        field = _unwrap(field.get("items"), components) if many else field
        if files and (field.get("format") == "binary" or "contentMediaType" in field):
            fields.append({**entry, "type": "file", "src": [] if many else None})
            continue
        value = example_from_schema(prop, components)
        kind = {"type": "text"} if files else {}
        values = value if isinstance(value, list) else [value]
        fields.extend({**entry, "value": _text(one), **kind} for one in values)
    return fields


def _response(status: str, response: Any, components: dict[str, Any]) -> dict[str, Any]:
    code = int(status.upper().replace("X", "0"))
    phrase = _PHRASES.get(code, "")
    response = response if isinstance(response, dict) else {}
    header: list[dict[str, Any]] = []
    body, language = "", "text"
    content = response.get("content") or {}
    if content:
        media_type = min(content, key=_rank)
        header.append({"key": "Content-Type", "value": media_type})
        body, language = _raw(media_type, _example(content[media_type] or {}, components))
    return {
        "name": response.get("description") or f"{code} {phrase}".strip(),
        "status": phrase or response.get("description", ""),
        "code": code,
        "_postman_previewlanguage": language,
        "header": header,
        "body": body,
    }
