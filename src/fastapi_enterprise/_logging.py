"""Helpers for passing structured fields through the stdlib logging ``extra`` argument."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["RECORD_ATTRIBUTES", "safe_extra"]

RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
"""Attributes every LogRecord has: logging raises KeyError when ``extra`` repeats one."""


def safe_extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``fields`` usable as ``extra=``: reserved names get a trailing underscore."""
    return {f"{key}_" if key in RECORD_ATTRIBUTES else key: value for key, value in fields.items()}
