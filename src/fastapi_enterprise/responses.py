"""Response models for OpenAPI: the problem body every error uses.

``responses=problem_responses(404, 409)`` documents those statuses on an operation with
the :class:`ErrorResponse` schema under ``application/problem+json``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fastapi_enterprise.errors import PROBLEM_CONTENT_TYPE

__all__ = ["ErrorResponse", "ValidationErrorItem", "problem_responses"]


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
