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
from collections.abc import Sequence

from limits import RateLimitItem

__all__ = ["legacy_headers", "policy_field", "policy_name", "ratelimit_headers"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def policy_name(base: str, item: RateLimitItem) -> str:
    """A stable sf-string name for one limit, e.g. ``default-100-per-1-minute``."""
    text = f"{base}-{item.amount}-per-{item.multiples}-{item.GRANULARITY.name}"
    return _UNSAFE.sub("-", text)


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
    item, remaining, reset = min(windows, key=lambda window: (window[1], -window[2]))
    current = f'"{policy_name(base, item)}";r={remaining};t={math.ceil(reset)}'
    return [(b"ratelimit-policy", policies), (b"ratelimit", current.encode("latin-1"))]


def policy_field(base: str, limits: Sequence[RateLimitItem]) -> bytes:
    """The ``RateLimit-Policy`` value listing ``limits``."""
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
