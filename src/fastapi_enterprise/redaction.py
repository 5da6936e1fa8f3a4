"""Redaction of secrets: the one module that decides what is secret and how it is masked.

Settings dumps, log lines (the access log and every event through
:func:`~fastapi_enterprise.log_config.configure_logging`) and Sentry events all ask the
same :class:`Redactor`, so a value hidden in one place is hidden everywhere.

What counts as secret:

- header values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``,
  ``X-Api-Key``, ``X-Auth-Token`` (and any configured others);
- query parameters, mapping keys and field names containing a secret word
  (``password``, ``secret``, ``token``, ``api_key``, ...), case-insensitively, with ``-``
  and ``_`` treated alike (``clientSecret``, ``X-Api-Key``, ``DB_PASSWORD``);
- passwords in URLs (``postgresql://app:pw@db``) and bearer tokens inside free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

__all__ = [
    "DEFAULT_REDACTOR",
    "MASK",
    "SECRET_HEADERS",
    "SECRET_KEY_PARTS",
    "Redactor",
    "is_secret_key",
    "mask_dsn",
    "mask_dsn_in_text",
]

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

SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
    }
)
"""Header names whose values are always masked (lower case)."""

# A query parameter inside free text ("GET /x?token=abc HTTP/1.1"): the name is tested
# against the secret words, the value masked.
_TEXT_QUERY_PARAM = re.compile(r"([?&;])([^=&\s#\"'?]{1,64})=([^&\s#\"']*)")
_ASSIGNMENT = re.compile(r"([A-Za-z0-9_.\-]{1,64})(\s*[=:]\s*)([^\s&,;\"']+)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)")
# Credentials of the Bearer and Basic schemes quoted in text (an error message that
# repeats an Authorization header); short words after "basic" are left alone.
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/\-]{8,}=*)")
_MAX_QUERY_PARAMS = 100
_MAX_CACHED_NAMES = 4096
_DEPTH_MARKER = "[depth limit]"


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_")


def is_secret_key(name: str, extra: Iterable[str] = ()) -> bool:
    """Return whether a field, header or parameter called ``name`` holds a secret.

    Matching is case-insensitive and by substring, with ``-`` treated like ``_``, so
    ``X-Api-Key``, ``DB_PASSWORD`` and ``clientSecret`` are all secret.

    Args:
        name: The key to test.
        extra: Additional substrings to treat as secret.
    """
    redactor = Redactor(keys=extra) if extra else DEFAULT_REDACTOR
    return redactor.is_secret(name)


def mask_dsn(dsn: str) -> str:
    """Mask the password (and secret-looking query values) of a connection URL.

    ``postgresql://app:hunter2@db:5432/prod?sslpassword=x`` becomes
    ``postgresql://app:**********@db:5432/prod?sslpassword=**********``. A value that
    does not parse as a URL is masked whole rather than risk showing a secret, and so
    is one with an ``@`` after its host part (an unencoded ``/``, ``?`` or ``#`` in the
    password would otherwise leave part of it in the path).

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
    if "@" in dsn.split("://", 1)[1][len(parts.netloc) :]:
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


def mask_dsn_in_text(text: str, dsn: str) -> str:
    """Mask ``dsn``, and its password, wherever they occur in ``text``.

    For the message of an error a client library raised about a connection URL: the
    URL becomes its :func:`mask_dsn` form, and the password quoted on its own, raw or
    percent-decoded, becomes ``**********``; so does a user part without a password
    (a Sentry DSN's key, a token used as the user name).

    Args:
        text: The message to clean.
        dsn: The URL the message may quote.
    """
    if not dsn:
        return text
    cleaned = text.replace(dsn, mask_dsn(dsn))
    _scheme, _, rest = dsn.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, _hostinfo = authority.rpartition("@")
    if not at:
        return cleaned
    user, has_password, password = userinfo.partition(":")
    secrets = [password] if has_password else [user]
    for secret in secrets:
        for form in {secret, unquote_plus(secret)}:
            if form:
                cleaned = cleaned.replace(form, MASK)
    return cleaned


class Redactor:
    """Masks secrets in headers, query strings, free text and nested data.

    Args:
        keys: Extra substrings that make a key or parameter name secret.
        headers: Extra header names whose values are always masked.
        max_depth: Nested data deeper than this is replaced by a marker (bounds the
            work on hostile or cyclic structures).
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        headers: Iterable[str] = (),
        max_depth: int = 8,
    ) -> None:
        self.key_parts = tuple(_normalise(part) for part in (*SECRET_KEY_PARTS, *keys))
        squashed = {part.replace("_", "") for part in self.key_parts}
        # One alternation over both spellings: "api_key" and "apikey" (for "apiKey").
        self._secret_name = re.compile(
            "|".join(
                sorted({re.escape(p) for p in (*self.key_parts, *squashed)}, key=len, reverse=True)
            )
        )
        # Names repeat (log fields, header names); the answer is cached, boundedly, since
        # nested data can bring names from clients.
        self._verdicts: dict[str, bool] = {}
        self.secret_headers = SECRET_HEADERS | {name.lower() for name in headers}
        # "password=hunter2" or "api_key: abc" inside free text (exception messages). The
        # pattern only finds name-separator-value triples, linearly; whether the name is
        # secret is decided by is_secret(), the one rule (and its cache).
        self._assignment = _ASSIGNMENT
        self.max_depth = max_depth

    def is_secret(self, name: str) -> bool:
        """Whether a key, field or parameter called ``name`` holds a secret."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            normalised = _normalise(name)
            verdict = bool(
                self._secret_name.search(normalised)
                or self._secret_name.search(normalised.replace("_", ""))
            )
            if len(self._verdicts) < _MAX_CACHED_NAMES:
                self._verdicts[name] = verdict
        return verdict

    def header(self, name: str, value: str) -> str:
        """Return the value of header ``name``, masked if the header carries secrets."""
        if name.lower() in self.secret_headers or self.is_secret(name):
            return MASK
        return self.text(value)

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return ``(name, value)`` pairs with secret values masked, order kept."""
        return [(name, self.header(name, value)) for name, value in headers]

    def query_string(self, query: str) -> str:
        """Mask the values of secret query parameters; keeps the raw encoding of the rest.

        At most 100 parameters are kept; a marker replaces the remainder.
        """
        if not query:
            return query
        parts = query.split("&")
        kept: list[str] = []
        for part in parts[:_MAX_QUERY_PARAMS]:
            name, has_value, _value = part.partition("=")
            if has_value and self.is_secret(unquote_plus(name)):
                kept.append(f"{name}={MASK}")
            else:
                kept.append(self.text(part))
        if len(parts) > _MAX_QUERY_PARAMS:
            kept.append(f"[{len(parts) - _MAX_QUERY_PARAMS} more parameters]")
        return "&".join(kept)

    def text(self, text: str) -> str:
        """Mask URL passwords, secret query parameters and Bearer/Basic credentials in text."""
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
        if "=" in text and ("?" in text or "&" in text):
            text = _TEXT_QUERY_PARAM.sub(self._mask_param, text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered:
            text = _BEARER.sub(rf"\g<1>\g<2>{MASK}", text)
        if "=" in text or ":" in text:
            text = self._assignment.sub(self._mask_assignment, text)
        return text

    def _mask_assignment(self, match: re.Match[str]) -> str:
        name, separator, value = match.groups()
        # Not a secret name, already masked, a URL scheme ("token://"), or an auth scheme
        # whose credential the Bearer/Basic rule has masked.
        if (
            not self.is_secret(name)
            or value == MASK
            or value.startswith("//")
            or value.lower() in ("bearer", "basic")
        ):
            return match.group()
        return f"{name}{separator}{MASK}"

    def _mask_param(self, match: re.Match[str]) -> str:
        separator, name, value = match.groups()
        if value and value != MASK and self.is_secret(unquote_plus(name)):
            return f"{separator}{name}={MASK}"
        return match.group()

    def value(self, value: Any, depth: int = 0) -> Any:
        """Redact nested data: secret keys masked, strings scanned, depth bounded."""
        if isinstance(value, str):
            return self.text(value)
        if depth >= self.max_depth:
            return _DEPTH_MARKER if isinstance(value, (Mapping, list, tuple, set)) else value
        if isinstance(value, Mapping):
            return {
                key: (
                    MASK
                    if isinstance(key, str) and self.is_secret(key)
                    else self.value(item, depth + 1)
                )
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(item, depth + 1) for item in value]
        return value


DEFAULT_REDACTOR = Redactor()
"""A redactor with the built-in rules only."""
