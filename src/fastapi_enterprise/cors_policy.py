r"""The CORS origin policy: which origins may call the API, validated where it is defined.

Settings, the deploy check and :class:`~fastapi_enterprise.middleware.cors.CORSPolicyMiddleware`
all build a :class:`CORSPolicy`, so each rule is written once. Refused in every
environment, because each lets any website act as your users or cannot work:

- ``*`` origins with credentials;
- an origin regex that matches arbitrary hosts (``^https://.*$``, ``^https://[^/]+$``,
  ``^https://[a-z]+\.com$``) with credentials: the same effect as ``*``;
- a ``null`` origin (sent by sandboxed iframes and local files);
- an origin that is not ``scheme://host[:port]`` (a path or trailing slash never matches);
- an origin regex that does not compile, is not anchored (``^...$``), or has an
  unescaped dot or a wildcard glued to a host name (``.example.com`` also matches
  ``evil-example.com``).

Error messages give an origin's position in the list, never the origin itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CORSPolicy",
    "CORSPolicyError",
    "check_origin_regex",
    "check_origins",
    "origin_regex_problems",
]

_ORIGIN = re.compile(r"([a-z][a-z0-9+.\-]*)://[^/?#@\s]+", re.IGNORECASE)
_WILDCARD_BEFORE_NAME = re.compile(r"\.[*+?]\??[A-Za-z0-9]|\.\{\d*,?\d*\}[A-Za-z0-9]")
# Origins no policy of yours should match: letters-only, hyphenated and numeric hosts
# under several top-level domains, with and without ports. A regex that matches one of
# them matches hosts anyone can register.
_FOREIGN_ORIGINS = (
    "https://attacker.example",
    "https://attacker.com",
    "https://attacker.net",
    "https://attacker",
    "https://evil.attacker.org",
    "https://a.b.c.attacker.io",
    "https://attacker-1.co.uk",
    "https://attacker.com:8443",
    "https://198.51.100.7",
    "http://attacker.com",
)
_LITERAL_HOST = re.compile(r"(?:[a-z0-9-]+\\\.)+[a-z]{2,}", re.IGNORECASE)
_LOCAL_HTTP_ORIGINS = ("http://localhost", "http://localhost:3000", "http://127.0.0.1:8000")


class CORSPolicyError(ValueError):
    """A CORS policy is unsafe or malformed; raised when the policy is built.

    Attributes:
        code: Stable identifier of the rule, e.g. ``security.cors_wildcard_with_credentials``.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class CORSPolicy:
    """Which origins may make cross-origin requests, and whether with credentials.

    Args:
        allow_origins: Exact origins (``https://app.example.com``), or ``*`` for any.
        allow_origin_regex: A regular expression an origin must match in full.
        allow_credentials: Whether cookies and ``Authorization`` may be sent.

    Raises:
        CORSPolicyError: The policy breaks one of the rules in the module docstring.
    """

    allow_origins: tuple[str, ...] = ()
    allow_origin_regex: str | None = None
    allow_credentials: bool = False
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_origins", tuple(self.allow_origins))
        check_origins(self.allow_origins)
        compiled = check_origin_regex(self.allow_origin_regex)
        object.__setattr__(self, "_compiled", compiled)
        if not self.allow_credentials:
            return
        if "*" in self.allow_origins:
            raise CORSPolicyError(
                "security.cors_wildcard_with_credentials",
                "'*' origins with credentials would let any website make credentialed "
                "requests as your users; list the origins instead",
            )
        if compiled is not None and any(compiled.fullmatch(o) for o in _FOREIGN_ORIGINS):
            raise CORSPolicyError(
                "security.cors_regex_any_host",
                "the origin regex matches origins on hosts anyone can register (such as "
                "https://attacker.example), and credentials are allowed: any website "
                "could make credentialed requests as your users; match only your own "
                "hosts, or turn credentials off",
            )

    def insecure_origins(self) -> int:
        """How many listed origins use plain ``http://``."""
        return sum(1 for origin in self.allow_origins if origin.lower().startswith("http://"))

    def regex_allows_http(self) -> bool:
        r"""Whether the origin regex matches a plain-``http://`` origin.

        Tried on the host names written in the regex (``example\.com`` gives
        ``http://example.com``, ``http://www.example.com``, ...) and on localhost; a
        regex that admits plain HTTP only for other hosts is not detected.
        """
        if self._compiled is None:
            return False
        pattern = self.allow_origin_regex or ""
        hosts = {match.replace("\\.", ".") for match in _LITERAL_HOST.findall(pattern)}
        candidates = [
            f"http://{prefix}{host}{port}"
            for host in hosts
            for prefix in ("", "www.", "app.", "a.", "a-1.")
            for port in ("", ":80", ":8080")
        ]
        return any(self._compiled.fullmatch(c) for c in (*candidates, *_LOCAL_HTTP_ORIGINS))


def check_origins(origins: Iterable[str]) -> None:
    """Refuse a ``null`` origin and anything that is not ``scheme://host[:port]``.

    Raises:
        CORSPolicyError: With the origin's position, never its text.
    """
    for position, origin in enumerate(origins, start=1):
        if origin == "*":
            continue
        if origin.strip().lower() == "null":
            raise CORSPolicyError(
                "security.cors_null_origin",
                f"origin {position} is 'null' (sent by sandboxed iframes and local files): "
                "the 'null' origin must never be allowed",
            )
        if _ORIGIN.fullmatch(origin) is None:
            raise CORSPolicyError(
                "security.cors_origin_malformed",
                f"origin {position} is not scheme://host[:port] (no path, no trailing slash)",
            )


def check_origin_regex(pattern: str | None) -> re.Pattern[str] | None:
    """Compile an origin regex, refusing one that is invalid, unanchored or too loose.

    Returns:
        The compiled expression, or ``None`` without a pattern.

    Raises:
        CORSPolicyError: The first problem found; never quotes the pattern.
    """
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        where = f" (at position {exc.pos})" if exc.pos is not None else ""
        raise CORSPolicyError(
            "security.cors_regex_invalid",
            f"the origin regex is not a valid regular expression{where}",
        ) from None
    for code, message in origin_regex_problems(pattern):
        raise CORSPolicyError(code, message)
    return compiled


def origin_regex_problems(pattern: str) -> Iterator[tuple[str, str]]:
    """Yield ``(code, message)`` for each flaw of a CORS origin regex's shape."""
    anchored_start = pattern.startswith(("^", r"\A"))
    anchored_end = (pattern.endswith("$") and not pattern.endswith(r"\$")) or pattern.endswith(
        r"\Z"
    )
    if not (anchored_start and anchored_end):
        yield (
            "security.cors_regex_unanchored",
            "the CORS origin regex is not anchored with ^ and $: it can match inside a "
            "longer, attacker-controlled origin.",
        )
    if _has_unescaped_host_dot(pattern):
        yield (
            "security.cors_regex_unescaped_dot",
            "the CORS origin regex has an unescaped '.' or a wildcard directly before a host "
            "name: it also matches look-alike domains such as 'evilexample.com'.",
        )


def _has_unescaped_host_dot(pattern: str) -> bool:
    """Find a '.' meant literally (``.example``) or a wildcard glued to a name (``.*example``)."""
    escaped = False
    in_class = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
            continue
        if char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "." and not in_class:
            following = pattern[index + 1 : index + 2]
            if following.isalnum() or _WILDCARD_BEFORE_NAME.match(pattern, index):
                return True
    return False
