"""Entity tags and conditional requests (RFC 9110 sections 8.8.3 and 13).

```python
from fastapi_enterprise.conditional import check_if_match, entity_tag, not_modified, set_etag


@app.get("/courses/{course_id}")
async def read(course_id: int, request: Request, response: Response) -> Course | Response:
    course = await load(course_id)
    etag = entity_tag("course", course.id, course.version)
    if (unchanged := not_modified(request, etag)) is not None:
        return unchanged  # 304, no body
    set_etag(response, etag)
    return course


@app.patch("/courses/{course_id}")
async def change(course_id: int, body: CoursePatch, request: Request) -> Course:
    course = await load(course_id)
    check_if_match(request, entity_tag("course", course.id, course.version))  # else 412
    ...
```

``If-None-Match`` uses the weak comparison (``W/"a"`` matches ``"a"``), ``If-Match`` the
strong one (a weak tag never matches); both accept ``*`` and comma-separated lists, and
commas inside a quoted tag are part of the tag.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "PreconditionFailedError",
    "body_entity_tag",
    "check_if_match",
    "check_if_none_match",
    "entity_tag",
    "is_weak",
    "not_modified",
    "set_etag",
    "strong_match",
    "weak_match",
]

# entity-tag = [ weak ] opaque-tag ; opaque-tag = DQUOTE *etagc DQUOTE
# etagc = %x21 / %x23-7E / obs-text (RFC 9110 section 8.8.3)
_ETAGC = r"[\x21\x23-\x7e\x80-\xff]"
_ENTITY_TAG = re.compile(rf'(W/)?"{_ETAGC}*"')
_PART = re.compile(rf"{_ETAGC}+")
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class PreconditionFailedError(HTTPException):
    """412 Precondition Failed; the library's error handlers render it as problem+json."""

    def __init__(self, detail: str = "The resource has changed since you last read it.") -> None:
        """Build the 412 with ``detail`` as the problem's explanation."""
        super().__init__(412, detail)


def entity_tag(*parts: str | int, weak: bool = False) -> str:
    """Build an entity tag from the parts that identify one version of a representation.

    ``entity_tag("scene", 7, 3)`` is ``"scene-7-3"`` (quotes included). Use a version
    number that changes whenever what the client sees changes.

    Args:
        *parts: Kind, ID, version: anything that together names this representation.
        weak: Prefix ``W/`` (semantically equivalent, not byte-identical representations).

    Returns:
        The quoted entity tag, ready for the ``ETag`` header.

    Raises:
        ValueError: No parts, or a part with a character an entity tag cannot hold
            (space, ``"``, control characters).
    """
    if not parts:
        raise ValueError("entity_tag() needs at least one part")
    texts = [str(part) for part in parts]
    for text in texts:
        if not _PART.fullmatch(text):
            raise ValueError(f"entity tag part {text!r} has characters an ETag cannot hold")
    opaque = '"' + "-".join(texts) + '"'
    return f"W/{opaque}" if weak else opaque


def body_entity_tag(body: bytes | str) -> str:
    """Build a strong entity tag from a hash of the representation's bytes.

    Args:
        body: The exact bytes sent (``str`` is encoded as UTF-8).

    Returns:
        ``"<32 hex digits of SHA-256>"``, quoted.
    """
    data = body.encode() if isinstance(body, str) else body
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def is_weak(etag: str) -> bool:
    """Whether ``etag`` is a weak entity tag (``W/"..."``)."""
    return etag.startswith("W/")


def _opaque(etag: str) -> str:
    return etag[2:] if is_weak(etag) else etag


def weak_match(a: str, b: str) -> bool:
    """Weak comparison: the opaque tags are equal, either or both may be weak."""
    return _opaque(a) == _opaque(b)


def strong_match(a: str, b: str) -> bool:
    """Strong comparison: neither tag is weak and they are equal."""
    return not is_weak(a) and not is_weak(b) and a == b


def _parse(value: str) -> list[str] | None:
    """The entity tags of an ``If-Match``/``If-None-Match`` value; ``None`` for ``*``.

    Malformed members are dropped, so they never match: a garbled ``If-Match`` fails
    (412, the safe answer for a write) and a garbled ``If-None-Match`` gets a full 200.
    """
    if value.strip() == "*":
        return None
    tags = []
    position = 0
    while position < len(value):
        if value[position] in " \t,":
            position += 1
            continue
        found = _ENTITY_TAG.match(value, position)
        if found is None:
            # Skip the malformed member up to the next comma.
            comma = value.find(",", position)
            position = len(value) if comma == -1 else comma + 1
            continue
        tags.append(found.group())
        position = found.end()
    return tags


def not_modified(
    request: Request, etag: str, *, headers: Mapping[str, str] | None = None
) -> Response | None:
    """Answer 304 when a GET/HEAD's ``If-None-Match`` names ``etag`` (weak comparison).

    ``*`` matches any current representation. Other methods, and requests without the
    header, get ``None``: answer normally.

    Args:
        request: The request.
        etag: The current entity tag of the representation.
        headers: Headers the 200 would have carried that a 304 must repeat
            (``Cache-Control``, ``Vary``, ``Expires``, ``Content-Location``).

    Returns:
        An empty 304 response carrying the ``ETag``, or ``None``.
    """
    value = request.headers.get("if-none-match")
    if value is None or request.method not in _SAFE_METHODS:
        return None
    tags = _parse(value)
    if tags is not None and not any(weak_match(tag, etag) for tag in tags):
        return None
    return Response(status_code=304, headers={**(headers or {}), "ETag": etag})


def check_if_match(request: Request, etag: str | None) -> None:
    """Refuse with 412 when ``If-Match`` is present and does not name ``etag``.

    The comparison is strong: a weak tag in the header never matches, and a weak
    ``etag`` matches nothing. ``*`` matches when the resource exists.

    Args:
        request: The (usually unsafe) request.
        etag: The current entity tag, or ``None`` when the resource does not exist.

    Raises:
        PreconditionFailedError: 412 Precondition Failed.
    """
    value = request.headers.get("if-match")
    if value is None:
        return
    tags = _parse(value)
    if etag is None:
        raise PreconditionFailedError("The resource does not exist.")
    if tags is None or any(strong_match(tag, etag) for tag in tags):
        return
    raise PreconditionFailedError()


def check_if_none_match(request: Request, etag: str | None) -> None:
    """Refuse an unsafe request with 412 when its ``If-None-Match`` names ``etag``.

    ``If-None-Match: *`` on a ``PUT`` means "only if it does not exist yet": it fails
    when the resource exists. The comparison is weak. ``GET`` and ``HEAD`` are left to
    :func:`not_modified`, which answers 304 instead.

    Args:
        request: The request.
        etag: The current entity tag, or ``None`` when the resource does not exist.

    Raises:
        PreconditionFailedError: 412 Precondition Failed.
    """
    value = request.headers.get("if-none-match")
    if value is None or etag is None or request.method in _SAFE_METHODS:
        return
    tags = _parse(value)
    if tags is None:
        raise PreconditionFailedError("The resource already exists.")
    if any(weak_match(tag, etag) for tag in tags):
        raise PreconditionFailedError("The resource has not changed from the version named.")


def set_etag(response: Response, etag: str) -> None:
    """Put ``etag`` in ``response``'s ``ETag`` header.

    Raises:
        ValueError: ``etag`` is not a well-formed entity tag (quotes missing, say).
    """
    if not _ENTITY_TAG.fullmatch(etag):
        raise ValueError(f"{etag!r} is not an entity tag; build one with entity_tag()")
    response.headers["ETag"] = etag
