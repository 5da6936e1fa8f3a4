"""Redaction of secrets: the one module that decides what is secret and how it is masked.

Settings dumps use it today; log lines and error-tracker events ask the same functions,
so a value hidden in one place is hidden everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["MASK", "SECRET_KEY_PARTS", "is_secret_key", "mask_dsn"]

MASK = "**********"
"""What every redacted value is replaced with (the same mask pydantic's SecretStr shows)."""

SECRET_KEY_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "secret_key",
    "client_secret",
    "credential",
    "authorization",
    "cookie",
    "session",
    "dsn",
    "signature",
)
"""Substrings that make a mapping key or query parameter name secret (case-insensitive)."""


def is_secret_key(name: str, extra: Iterable[str] = ()) -> bool:
    """Return whether a field, header or parameter called ``name`` holds a secret.

    Matching is case-insensitive and by substring, with ``-`` treated like ``_``, so
    ``X-Api-Key``, ``DB_PASSWORD`` and ``clientSecret`` are all secret.

    Args:
        name: The key to test.
        extra: Additional substrings to treat as secret.
    """
    normalised = name.lower().replace("-", "_")
    squashed = normalised.replace("_", "")
    for part in (*SECRET_KEY_PARTS, *extra):
        part = part.lower().replace("-", "_")
        if part in normalised or part.replace("_", "") in squashed:
            return True
    return False


def mask_dsn(dsn: str) -> str:
    """Mask the password (and secret-looking query values) of a connection URL.

    ``postgresql://app:hunter2@db:5432/prod?sslpassword=x`` becomes
    ``postgresql://app:**********@db:5432/prod?sslpassword=**********``. A value that
    does not parse as a URL is masked whole rather than risk showing a secret.

    Args:
        dsn: A database, cache or error-tracker URL.
    """
    try:
        parts = urlsplit(dsn)
        # Accessing .port validates it; a malformed netloc raises ValueError here.
        _ = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or "://" not in dsn:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:{MASK}@{hostinfo}"
        elif not parts.password and parts.scheme.startswith(("http", "sentry")):
            # Sentry-style DSNs carry the key as the username.
            netloc = f"{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, MASK if is_secret_key(key) else value) for key, value in pairs], safe="*"
        )
    # Assembled by hand: urlunsplit() drops the empty authority of sqlite:///file.db.
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        masked += f"?{query}"
    if parts.fragment:
        masked += f"#{parts.fragment}"
    return masked
