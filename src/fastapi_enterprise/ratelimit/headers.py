"""The rate-limit response fields of draft-ietf-httpapi-ratelimit-headers, and the legacy trio.

``RateLimit-Policy`` lists every limit of the route as a named policy with its quota
``q`` and window ``w`` (seconds), on a 429 as on a success; ``RateLimit`` reports the
policy closest to exhaustion with its remaining quota ``r`` and seconds to reset ``t``::

    RateLimit-Policy: "auth-5-per-1-minute";q=5;w=60, "auth-20-per-1-hour";q=20;w=3600
    RateLimit: "auth-5-per-1-minute";r=0;t=42
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from limits import RateLimitItem

__all__ = ["legacy_headers", "policy_field", "policy_name", "ratelimit_headers"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_T = TypeVar("_T")


def policy_name(base: str, item: RateLimitItem) -> str:
    """A stable sf-string name for one limit, e.g. ``default-100-per-1-minute``."""
    return _remembered(_NAMES, base, item, _name_of)


def _name_of(base: str, item: RateLimitItem) -> str:
    return _UNSAFE.sub("-", f"{base}-{item.amount}-per-{item.multiples}-{item.GRANULARITY.name}")


# Names and policy fields come from the configured policies (a few per app) and go on
# every response of a limited route: each is built once, and found again by the identity
# of its limit (or tuple of limits), which the table keeps alive so that no other object
# can take its id. A table that fills up (policies made on the fly) starts over.
_TABLE_SIZE = 1024
_NAMES: dict[tuple[str, int], tuple[object, Any]] = {}
_FIELDS: dict[tuple[str, int], tuple[object, Any]] = {}


def _remembered(
    table: dict[tuple[str, int], tuple[object, Any]],
    base: str,
    source: Any,
    build: Callable[[str, Any], _T],
) -> _T:
    key = (base, id(source))
    found = table.get(key)
    if found is not None and found[0] is source:
        value: _T = found[1]
        return value
    value = build(base, source)
    if len(table) >= _TABLE_SIZE:
        table.clear()
    table[key] = (source, value)
    return value


def ratelimit_headers(
    base: str,
    windows: Sequence[tuple[RateLimitItem, int, float]],
    limits: Sequence[RateLimitItem] = (),
) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Policy`` and ``RateLimit`` for the windows of one decision.

    Args:
        base: The budget's name (``route``, ``default``, a shared scope).
        windows: ``(limit, remaining, reset_after_seconds)`` of the limits that were read.
        limits: Every limit of the route, listed in ``RateLimit-Policy`` even when only
            some were read (a rejection reads only the one that was exceeded); the
            windows' limits by default.
    """
    if not windows:
        return []
    policies = policy_field(base, limits or [item for item, _, _ in windows])
    if len(windows) == 1:
        item, remaining, reset = windows[0]
    else:
        item, remaining, reset = min(windows, key=lambda window: (window[1], -window[2]))
    current = f'"{policy_name(base, item)}";r={remaining};t={math.ceil(reset)}'
    return [(b"ratelimit-policy", policies), (b"ratelimit", current.encode("latin-1"))]


def policy_field(base: str, limits: Sequence[RateLimitItem]) -> bytes:
    """The ``RateLimit-Policy`` value listing ``limits``."""
    if isinstance(limits, tuple):  # a policy's own (lists are not kept: they may change)
        return _remembered(_FIELDS, base, limits, _field_of)
    return _field_of(base, limits)


def _field_of(base: str, limits: Sequence[RateLimitItem]) -> bytes:
    return ", ".join(
        f'"{policy_name(base, item)}";q={item.amount};w={item.get_expiry()}' for item in limits
    ).encode("latin-1")


def legacy_headers(
    windows: Sequence[tuple[RateLimitItem, int, float]],
) -> list[tuple[bytes, bytes]]:
    """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (seconds) of the tightest limit."""
    if not windows:
        return []
    item, remaining, reset = min(windows, key=lambda window: (window[1], -window[2]))
    return [
        (b"x-ratelimit-limit", str(item.amount).encode()),
        (b"x-ratelimit-remaining", str(remaining).encode()),
        (b"x-ratelimit-reset", str(math.ceil(reset)).encode()),
    ]
