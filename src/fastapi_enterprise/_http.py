"""Small HTTP syntax helpers shared by settings validation and middleware."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["PathPrefixes", "is_header_name", "under_prefix"]

# RFC 9110 section 5.6.2 token, bounded: header names are short in practice.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")


def is_header_name(name: str) -> bool:
    """Return whether ``name`` is a valid HTTP field name of at most 64 characters."""
    return _TOKEN.fullmatch(name) is not None


def under_prefix(prefix: str) -> str:
    """What a path below ``prefix`` starts with: ``/docs`` and ``/docs/`` give ``/docs/``."""
    return prefix.rstrip("/") + "/"


class PathPrefixes:
    """Path prefixes matched at segment boundaries, worked out once.

    ``/docs`` covers ``/docs`` and ``/docs/oauth2-redirect``, never ``/docsx``. A check is
    one set lookup and one ``startswith``.
    """

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.prefixes = tuple(prefixes)
        self._exact = frozenset(self.prefixes)
        self._under = tuple(under_prefix(prefix) for prefix in self.prefixes)

    def covers(self, path: str) -> bool:
        """Whether ``path`` is one of the prefixes or below one."""
        return path in self._exact or path.startswith(self._under)
