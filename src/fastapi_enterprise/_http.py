"""Small HTTP syntax helpers shared by settings validation and middleware."""

from __future__ import annotations

import re

__all__ = ["is_header_name"]

# RFC 9110 section 5.6.2 token, bounded: header names are short in practice.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")


def is_header_name(name: str) -> bool:
    """Return whether ``name`` is a valid HTTP field name of at most 64 characters."""
    return _TOKEN.fullmatch(name) is not None
