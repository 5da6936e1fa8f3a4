"""Shape checks for connection URLs, which may carry a password.

Settings, :func:`~fastapi_enterprise.ratelimit.limiter.create_storage` and
:func:`~fastapi_enterprise.redis.create_redis` ask :func:`url_problem` before a URL
reaches a client library, whose own errors tend to quote the URL, password included.
Messages say what is wrong (scheme, port, encoding), never the URL or any part of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["REDIS_SCHEMES", "STORAGE_SCHEMES", "storage_url_problem", "url_problem"]

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""Schemes of a Redis client URL (redis-py's ``from_url``)."""

STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+cluster", "redis+sentinel")
"""Schemes of a rate-limit storage URL (each may be prefixed ``async+``)."""

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*", re.IGNORECASE)
_AUTHORITY_END = re.compile(r"[/?#]")


def url_problem(
    url: str,
    *,
    schemes: Collection[str] | None = None,
    several_hosts: bool = False,
    require_user: bool = False,
    require_path: bool = False,
) -> str | None:
    """Return what is wrong with the shape of ``url``, or ``None`` if nothing is.

    Args:
        url: The URL to check.
        schemes: Accepted schemes (lower case); ``None`` accepts any well-formed one.
        several_hosts: Accept ``host1:port1,host2:port2`` (Redis Cluster, Sentinel).
        require_user: The user part must be present (a Sentry DSN's public key).
        require_path: The path must be present (a Sentinel service, a Sentry project).
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return "is not a URL of the form scheme://..."
    if schemes is not None and scheme.lower() not in schemes:
        return "has an unsupported scheme; use " + ", ".join(f"{s}://" for s in schemes)
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    after = rest[len(authority) :]
    if "@" in after:
        return (
            "has '@' after its host part: reserved characters in a user name or password "
            "(/ ? # @ :) must be percent-encoded"
        )
    userinfo, at, hostinfo = authority.rpartition("@")
    if require_user and (not at or not userinfo.partition(":")[0]):
        return "has no user part (key@host)"
    if require_path and not after.split("?", 1)[0].strip("/"):
        return "has no path (service or project name)"
    hosts = hostinfo.split(",") if several_hosts else [hostinfo]
    for host in hosts:
        problem = _host_problem(host)
        if problem is not None:
            return problem
    return None


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "has an unclosed '[' in its host"
        port = host[end + 1 :]
        if port and not port.startswith(":"):
            return "has characters after its IPv6 host"
        port = port[1:]
    else:
        if host.count(":") > 1:
            return "has an IPv6 host without [brackets], or a stray ':' in its host part"
        _name, _colon, port = host.partition(":")
    if port and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        return "has a port that is not a number from 1 to 65535"
    return None


def storage_url_problem(uri: str) -> str | None:
    """:func:`url_problem` for a rate-limit storage URL (``async+`` prefix allowed)."""
    scheme, separator, rest = uri.partition("://")
    bare = scheme.lower().removeprefix("async+")
    if not separator:
        return "is not a URL of the form scheme://..."
    return url_problem(
        f"{bare}://{rest}",
        schemes=STORAGE_SCHEMES,
        several_hosts=bare in ("redis+cluster", "redis+sentinel"),
        require_path=bare == "redis+sentinel",
    )
