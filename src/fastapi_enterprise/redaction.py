"""Redaction of secrets: the one module that decides what is secret and how it is masked.

Settings dumps, log lines (the access log and every event through
:func:`~fastapi_enterprise.log_config.configure_logging`) and Sentry events all ask the
same :class:`Redactor`, so a value hidden in one place is hidden everywhere.

What counts as secret:

- header values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``,
  ``X-Api-Key``, ``X-Auth-Token`` (and any configured others);
- mapping keys, field names and query parameters whose name holds a secret word
  (``password``, ``secret``, ``token``, ``api_key``, ``session``, ...) or is one
  (``auth``, ``otp``, ``pin``), case-insensitively, in any spelling (``clientSecret``,
  ``X-Api-Key``, ``DB_PASSWORD``), unless the name describes the secret rather than
  holding it (``token_type``, ``password_length``, ``allow_credentials``,
  ``prompt_tokens``);
- query parameters named ``code`` (OAuth), ``sig``, ``key`` or ``auth`` as well;
- in free text: ``name=value`` and ``name: value`` pairs with a secret name (a ``:``
  followed by prose such as ``token: expired`` is left alone), passwords in URLs
  (``postgresql://app:pw@db``), Bearer/Basic credentials, cookies, and tokens whose shape
  gives them away wherever they appear (JWTs, GitHub, Slack, Stripe, AWS, Google and
  OpenAI keys, PEM private keys).
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
    "SECRET_KEY_WORDS",
    "SECRET_PARAMETERS",
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
    "passphrase",
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
    "jwt",
    "verifier",
)
"""Substrings that make a mapping key or query parameter name secret (case-insensitive)."""

SECRET_KEY_WORDS: frozenset[str] = frozenset({"auth", "pass", "pin", "otp", "cvv", "cvc"})
"""Words that make a name secret when they stand alone in it (``basic_auth``, ``pin``),
but not inside other words (``author``, ``passenger``, ``shipping``)."""

SECRET_PARAMETERS: frozenset[str] = frozenset({"code", "sig", "key", "auth"})
"""Query parameter names that are secret there (an OAuth ``code``, a URL ``sig``nature,
an API ``key``), though as log field names they usually are not (``code=404``)."""

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

# Names that describe a secret rather than hold it: a qualifier before the secret word
# (a flag, a count) or a last word saying what the value is about it.
_DESCRIBED_BEFORE = frozenset(
    {
        "allow", "allowed", "require", "required", "has", "is", "use", "with", "include",
        "enable", "enabled", "disable", "no", "max", "min", "num", "total", "count",
        "prompt", "completion", "input", "output", "cached", "reasoning",
    }
)  # fmt: skip
_DESCRIBED_AFTER = frozenset(
    {
        "count", "length", "len", "size", "type", "kind", "url", "uri", "endpoint", "path",
        "file", "dir", "header", "name", "names", "expires", "expiry", "expiration", "exp",
        "ttl", "age", "lifetime", "at", "in", "enabled", "required", "set", "present",
        "valid", "invalid", "weak", "missing", "changed", "reset", "policy", "algorithm",
        "alg", "version", "format", "scheme", "prefix", "hint", "field", "fields", "param",
        "location", "source", "env", "backend", "store", "provider", "method", "mode",
        "timeout", "seconds", "ms", "limit", "rotation", "strength", "secure", "domain",
        "samesite", "httponly",
    }
)  # fmt: skip
# A name followed by "=" or ":" in free text, quotes allowed around both ("password":
# "x", password='x', user[password]=x). Found from each separator backwards (in the
# reversed text), so a pair after a non-secret one ("login failed: password=hunter2") is
# found too, and text without a separator costs one scan for it.
_SEPARATOR = re.compile(r"[=:]")
_REVERSED_NAME = re.compile(r"\s*(?:[\"'\]]\\?)?([\w.\-]{1,64})")
_AFTER_SEPARATOR = re.compile(r"\s*(\\?[\"'])?")
# A value ends at whitespace, a quote, "&", ";" or a comma that prose follows with a space
# ("password=x, user=ann"); "t=1,v1=abc" (a signature header) is one value.
_VALUE = re.compile(r"[^\s&,;\"']+(?:,[^\s&,;\"']+)*")
_COOKIE_VALUE = re.compile(r"[^\s;,\"']+(?:;[ \t]*[^\s;,\"']+)*")
_CREDENTIAL = re.compile(r"([ \t]+)([^\s,;\"']+)")
_QUOTED_VALUE_LIMIT = 4096
# What a ":" may be followed by in prose ("token: expired", "password: too short"):
# such a word is not the secret.
_PROSE = frozenset(
    {
        "a", "an", "the", "any", "all", "some", "no", "not", "none", "null", "nil", "empty",
        "blank", "missing", "invalid", "incorrect", "wrong", "expired", "revoked",
        "required", "rejected", "accepted", "denied", "ok", "is", "are", "was", "were",
        "be", "been", "has", "have", "had", "must", "should", "may", "can", "cannot",
        "could", "would", "will", "too", "it", "its", "this", "that", "these", "those",
        "for", "of", "to", "in", "on", "at", "by", "with", "without", "from", "and", "or",
        "but", "if", "when", "then", "set", "unset", "changed", "reset", "updated",
        "created", "deleted", "found", "valid", "mismatch", "malformed", "unknown", "see",
        "use", "please", "check", "true", "false", "yes", "off", "enabled", "disabled",
        "present", "absent", "needed", "failed", "succeeded", "ignored", "skipped",
        "unchanged", "refreshed", "rotated", "issued", "granted", "n/a", "-", "<redacted>",
    }
)  # fmt: skip
# A query parameter inside free text ("GET /x?token=abc HTTP/1.1"): the name is tested
# against the secret parameter rule, the value masked.
_TEXT_QUERY_PARAM = re.compile(r"([?&;])([^=&\s#\"'?]{1,64})=([^&\s#\"']*)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://[^\s:/@]*:)([^\s@/]+)(@)")
# Credentials of the Bearer and Basic schemes quoted in text (an error message that
# repeats an Authorization header); short words after "basic" are left alone.
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/\-]{8,}=*)(?![\w=:])")
# Tokens whose shape gives them away, with or without a name: JWTs, GitHub, Slack,
# Stripe, AWS access key IDs, Google API keys, OpenAI/Anthropic keys, PEM private keys.
# Each starts where no token character precedes it, so a hostile run of near-tokens
# ("-eyJa-eyJa-...") is scanned once, not once per start.
_KNOWN_TOKEN = re.compile(
    r"(?<![\w\-])(?:eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abeoprs]-[A-Za-z0-9\-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|sk-[A-Za-z0-9_\-]{20,})"
    r"|-----BEGIN[A-Z ]{0,32}PRIVATE KEY-----.*?(?:-----END[A-Z ]{0,32}PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_SHORTEST_KNOWN_TOKEN = 20
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
_MAX_QUERY_PARAMS = 100
_MAX_CACHED_NAMES = 4096
_DEPTH_MARKER = "[depth limit]"


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_")


def _words(name: str) -> list[str]:
    """``clientSecret``, ``X-Api-Key``, ``db.PASSWORD`` -> their lower-case words."""
    spaced = _CAMEL.sub(r"\1_\2", name).lower()
    return [word for word in _NOT_ALPHANUMERIC.split(spaced) if word]


def _may_hold_known_token(text: str) -> bool:
    """Cheap substring checks before the known-token pattern runs (it costs more)."""
    return (
        "eyJ" in text
        or "gh" in text
        or "xox" in text
        or "AKIA" in text
        or "ASIA" in text
        or "k_live_" in text
        or "k_test_" in text
        or "AIza" in text
        or "sk-" in text
        or "PRIVATE KEY" in text
    )


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
    """Mask the password (and secret query values) of a connection URL.

    ``postgresql://app:hunter2@db:5432/prod?sslpassword=x`` becomes
    ``postgresql://app:**********@db:5432/prod?sslpassword=**********``. Query
    parameters are judged by the query-parameter rule
    (:meth:`Redactor.is_secret_parameter`), the one logs use for request URLs: ``key``,
    ``sig``, ``code`` and ``auth`` are masked too. A value that
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
            [
                (key, MASK if DEFAULT_REDACTOR.is_secret_parameter(key) else value)
                for key, value in pairs
            ],
            safe="*",
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
        keys: Extra substrings that make a key or parameter name secret (always, even
            in a name that would otherwise describe a secret, like ``pin_count``).
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
        self._secret_name = _alternation(SECRET_KEY_PARTS)
        extra = [_normalise(part) for part in keys]
        self._extra_name = _alternation(extra) if extra else None
        # Names repeat (log fields, header names, parameters); the answers are cached,
        # boundedly, since nested data and query strings bring names from clients.
        self._verdicts: dict[str, bool] = {}
        self._parameter_verdicts: dict[str, bool] = {}
        self.secret_headers = SECRET_HEADERS | {name.lower() for name in headers}
        self.max_depth = max_depth

    def is_secret(self, name: str) -> bool:
        """Whether a key, field or parameter called ``name`` holds a secret."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = self._judge(name)
            if len(self._verdicts) < _MAX_CACHED_NAMES:
                self._verdicts[name] = verdict
        return verdict

    def _judge(self, name: str) -> bool:
        words = _words(name)
        if not words:
            return False
        joined = "_".join(words)
        if self._extra_name is not None and (
            self._extra_name.search(joined) or self._extra_name.search(joined.replace("_", ""))
        ):
            return True
        if not (self._secret_name.search(joined) or SECRET_KEY_WORDS.intersection(words)):
            return False
        # The first word at which the name has become secret ("api_key": at "key").
        first = next(
            index
            for index, word in enumerate(words)
            if word in SECRET_KEY_WORDS or self._secret_name.search("_".join(words[: index + 1]))
        )
        if words[-1] in _DESCRIBED_AFTER:
            return False  # token_type, password_length, session_expires_at
        return not _DESCRIBED_BEFORE.intersection(words[:first])  # allow_credentials

    def is_secret_parameter(self, name: str) -> bool:
        """Whether a query parameter called ``name`` (already decoded) holds a secret.

        The rule of :meth:`is_secret`, plus the names in :data:`SECRET_PARAMETERS`.
        """
        verdict = self._parameter_verdicts.get(name)
        if verdict is None:
            verdict = "_".join(_words(name)) in SECRET_PARAMETERS or self.is_secret(name)
            if len(self._parameter_verdicts) < _MAX_CACHED_NAMES:
                self._parameter_verdicts[name] = verdict
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
            name, has_value, value = part.partition("=")
            if not has_value:
                kept.append(self.text(part))
            elif self.is_secret_parameter(_decoded(name)):
                kept.append(f"{name}={MASK}")
            else:
                kept.append(f"{name}={self.text(value)}")
        if len(parts) > _MAX_QUERY_PARAMS:
            kept.append(f"[{len(parts) - _MAX_QUERY_PARAMS} more parameters]")
        return "&".join(kept)

    def text(self, text: str) -> str:
        """Mask the secrets in free text (see the module docstring for what is found)."""
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
        if "=" in text and ("?" in text or "&" in text):
            text = _TEXT_QUERY_PARAM.sub(self._mask_param, text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered:
            text = _BEARER.sub(_mask_credential, text)
        if len(text) >= _SHORTEST_KNOWN_TOKEN and _may_hold_known_token(text):
            text = _KNOWN_TOKEN.sub(MASK, text)
        if "=" in text or ":" in text:
            text = self._mask_assignments(text)
        return text

    def _mask_assignments(self, text: str) -> str:
        """Mask the value of every ``name=value`` / ``name: value`` with a secret name."""
        pieces: list[str] = []
        done = 0  # text[:done] is settled: copied to pieces or masked
        reversed_text = text[::-1]
        length = len(text)
        for separator in _SEPARATOR.finditer(text):
            position = separator.start()
            if position < done:
                continue  # inside a value already masked
            name = _REVERSED_NAME.match(reversed_text, length - position)
            if name is None or not self.is_secret(name.group(1)[::-1]):
                continue
            after = _AFTER_SEPARATOR.match(text, position + 1)
            assert after is not None  # noqa: S101 - the pattern matches the empty string
            span = self._secret_span(
                text,
                after.end(),
                name.group(1)[::-1],
                text[position : after.start(1) if after.group(1) else after.end()],
                after.group(1),
            )
            if span is None:
                continue
            start, end = span
            pieces += (text[done:start], MASK)
            done = end
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _secret_span(
        self, text: str, start: int, name: str, separator: str, opening: str | None
    ) -> tuple[int, int] | None:
        """Where the value of a secret pair starting at ``start`` is, or ``None``."""
        if opening:  # a quoted value: up to the same quote
            end = text.find(opening, start, start + _QUOTED_VALUE_LIMIT)
            if end < 0:
                end = min(len(text), start + _QUOTED_VALUE_LIMIT)
            if end == start or text[start:end] == MASK:
                return None
            return start, end
        words = _words(name)
        value = (_COOKIE_VALUE if "cookie" in words[-1] else _VALUE).match(text, start)
        if value is None:
            return None
        found = value.group()
        if found.startswith((MASK, "//")):
            return None  # masked already, or a URL scheme ("token://host")
        if ":" in separator and separator[-1].isspace() and found.lower() in _PROSE:
            return None  # prose: "token: expired", "password: too short"
        if words[-1] == "authorization" and found.isalpha():
            # "Authorization: <scheme> <credential>": the scheme stays readable.
            credential = _CREDENTIAL.match(text, value.end())
            if credential is not None:
                if credential.group(2) == MASK:
                    return None
                return credential.start(2), credential.end(2)
        return start, value.end()

    def _mask_param(self, match: re.Match[str]) -> str:
        separator, name, value = match.groups()
        if value and value != MASK and self.is_secret_parameter(_decoded(name)):
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


def _alternation(parts: Iterable[str]) -> re.Pattern[str]:
    """One pattern over every part in both spellings: ``api_key`` and ``apikey``."""
    spellings = {spelling for part in parts for spelling in (part, part.replace("_", ""))}
    return re.compile("|".join(sorted(map(re.escape, spellings), key=len, reverse=True)))


def _mask_credential(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    # "basic authentication failed" is prose: a credential has a digit, a symbol or an
    # inner capital letter.
    if credential.isalpha() and credential[1:].islower():
        return match.group()
    return f"{scheme}{space}{MASK}"


def _decoded(name: str) -> str:
    # unquote_plus is slow; most parameter names have nothing to decode.
    return unquote_plus(name) if "%" in name or "+" in name else name


DEFAULT_REDACTOR = Redactor()
"""A redactor with the built-in rules only."""
