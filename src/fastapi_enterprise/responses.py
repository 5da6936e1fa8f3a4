"""Response models: the success envelope, pages, and the problem body every error uses.

``responses=problem_responses(404, 409)`` documents those statuses on an operation with
the :class:`ErrorResponse` schema under ``application/problem+json``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from fastapi_enterprise.context import get_request_id
from fastapi_enterprise.errors import PROBLEM_CONTENT_TYPE

__all__ = [
    "ErrorResponse",
    "PageLinks",
    "PaginatedResponse",
    "ResponseMeta",
    "StandardResponse",
    "ValidationErrorItem",
    "problem_responses",
]

T = TypeVar("T")


class ValidationErrorItem(BaseModel):
    """One validation failure: where, what, and its machine-readable type."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    loc: list[str | int]
    """Path to the failing value, e.g. ``["body", "email"]``."""

    msg: str
    """Human-readable message."""

    type: str
    """Pydantic error type, e.g. ``string_too_short``."""


class ErrorResponse(BaseModel):
    """An RFC 9457 problem details body, as every error of the app is rendered."""

    model_config = ConfigDict(
        extra="allow",
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "No course with this ID.",
                    "instance": "/courses/42",
                    "request_id": "0193b5f4-6c1e-7a3b-9f0e-2d4c8a1b7e55",
                }
            ]
        },
    )

    type: str = "about:blank"
    """URI identifying the problem type; ``about:blank`` means the status says it all."""

    title: str
    """Short, human-readable summary of the problem type."""

    status: int = Field(ge=100, le=599)
    """The HTTP status code."""

    detail: str | None = None
    """Explanation specific to this occurrence."""

    instance: str | None = None
    """URI reference of this occurrence (the request path)."""

    request_id: str | None = None
    """The request's ID, also sent as the ``X-Request-ID`` header; quote it in reports."""

    errors: list[ValidationErrorItem] | None = None
    """For 422: every validation failure (never the submitted values)."""


def problem_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """Build a ``responses=`` mapping documenting ``status_codes`` as problem+json.

    Args:
        *status_codes: The statuses the operation can answer with, e.g. ``404, 409``.
    """
    return {
        code: {
            "model": ErrorResponse,
            "description": HTTPStatus(code).phrase,
            "content": {
                PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
        for code in status_codes
    }


class ResponseMeta(BaseModel):
    """Metadata of a successful response."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    request_id: str | None = None
    """The request's ID (also in the ``X-Request-ID`` header)."""


class StandardResponse(BaseModel, Generic[T]):
    """The success envelope: ``{"data": ..., "meta": {"request_id": ...}}``.

    Example:
        ```python
        @app.get("/courses/{course_id}")
        async def read(course_id: int) -> StandardResponse[Course]:
            return StandardResponse.of(await load(course_id))
        ```
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    data: T
    """The payload."""

    meta: ResponseMeta = Field(default_factory=lambda: ResponseMeta(request_id=get_request_id()))
    """Request ID and other metadata, filled in automatically."""

    @classmethod
    def of(cls, data: T) -> StandardResponse[T]:
        """Wrap ``data`` with the current request's metadata."""
        return cls(data=data)


class PageLinks(BaseModel):
    """Links to the other pages, built from the request URL (other query parameters kept)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    first: str
    """The first page."""

    prev: str | None
    """The previous page, or ``None`` on the first."""

    next: str | None
    """The next page, or ``None`` on the last."""

    last: str
    """The last page."""


class PaginatedResponse(BaseModel, Generic[T]):
    """One page of results with its position and links."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    items: list[T]
    """The items of this page."""

    total: int = Field(ge=0)
    """Items across all pages."""

    page: int = Field(ge=1)
    """This page's number, from 1."""

    size: int = Field(ge=1)
    """Items per page."""

    pages: int = Field(ge=0)
    """Number of pages (0 when there are no items)."""

    links: PageLinks
    """First, previous, next and last page URLs."""
