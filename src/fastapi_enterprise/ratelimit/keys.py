"""Key functions: whose budget a request is charged to.

Every key function takes the ASGI scope and returns a string, or ``None`` to fall back to
the client IP. Keys never contain raw secrets: API keys are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from starlette.types import Scope

from fastapi_enterprise.client_ip import client_address, client_key
from fastapi_enterprise.ratelimit.policy import KeyFunction

__all__ = ["api_key_header", "client_ip", "composite", "composite_or_ip", "user"]


def client_ip(scope: Scope) -> str:
    """The client IP resolved by the proxy layer; IPv6 grouped by /64."""
    return "ip:" + client_key(client_address(scope))


def api_key_header(name: str = "X-Api-Key") -> KeyFunction:
    """Key on an API key header, stored as a SHA-256 digest, never raw.

    Requests without the header return ``None`` (charged to their IP instead).
    """
    header = name.lower().encode("latin-1")

    def key(scope: Scope) -> str | None:
        for field, value in scope.get("headers", ()):
            if field.lower() == header and value:
                return "key:" + hashlib.sha256(value).hexdigest()[:32]
        return None

    return key


def user(get_user_id: Callable[[Scope], object | None]) -> KeyFunction:
    """Key on the authenticated user, from a function of the scope (``None``: anonymous).

    Authentication usually runs in a dependency, after the limiter; read a token the
    middleware can verify cheaply, or a session set by an earlier middleware.
    """

    def key(scope: Scope) -> str | None:
        user_id = get_user_id(scope)
        return None if user_id is None else f"user:{user_id}"

    return key


def composite(*functions: KeyFunction) -> KeyFunction:
    """Combine keys (user and IP, say): all parts must be known, else ``None``."""

    def key(scope: Scope) -> str | None:
        parts = [function(scope) for function in functions]
        if any(part is None for part in parts):
            return None
        return "+".join(part for part in parts if part is not None)

    return key


def composite_or_ip(function: KeyFunction) -> KeyFunction:
    """Use ``function``'s key, or the client IP when it has none."""

    def key(scope: Scope) -> str:
        return function(scope) or client_ip(scope)

    return key
