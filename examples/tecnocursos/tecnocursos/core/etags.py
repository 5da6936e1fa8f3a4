"""Entity tags and conditional requests (RFC 9110 sections 8.8.3 and 13).

The library has no ETag helper yet; this module is the app-side stand-in (a library gap).
A row's ETag is strong and derived from its kind, id and ``version`` (bumped on every
change to what the client sees), so it changes exactly when the representation does.
"""

from __future__ import annotations

from fastapi import HTTPException, Response
from starlette.requests import Request

__all__ = ["check_if_match", "entity_tag", "not_modified", "set_etag"]


def entity_tag(kind: str, row_id: int, version: int) -> str:
    """The strong ETag of one row's representation, quoted: ``"scene-7-v3"``."""
    return f'"{kind}-{row_id}-v{version}"'


def _tags(header: str) -> list[str]:
    """The entity tags of an ``If-Match``/``If-None-Match`` value, weakness dropped."""
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 answer when ``If-None-Match`` names ``etag`` (weak comparison), else ``None``.

    Args:
        request: The GET request.
        etag: The current ETag of the representation.

    Returns:
        An empty 304 response carrying the ETag, or ``None`` to answer normally.
    """
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    if header.strip() == "*" or etag in _tags(header):
        return Response(status_code=304, headers={"ETag": etag})
    return None


def check_if_match(request: Request, etag: str) -> None:
    """Refuse a write with 412 when ``If-Match`` is present and does not name ``etag``.

    ``If-Match`` uses the strong comparison: a weak tag never matches.

    Raises:
        HTTPException: 412 Precondition Failed.
    """
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return
    strong = [part.strip() for part in header.split(",") if not part.strip().startswith("W/")]
    if etag not in strong:
        raise HTTPException(412, "The resource has changed since you last read it.")


def set_etag(response: Response, etag: str) -> None:
    """Put ``etag`` on ``response`` (the representation it describes)."""
    response.headers["ETag"] = etag
