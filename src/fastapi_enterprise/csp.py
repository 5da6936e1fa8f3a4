"""A typed Content-Security-Policy builder, validated when it is built.

A policy with a syntax mistake is worse than none: browsers drop what they cannot parse
and the page is either blank or unprotected. So :class:`ContentSecurityPolicy` refuses,
at startup, the mistakes that are easy to make by hand:

- a keyword without quotes (``self`` instead of ``'self'``): browsers read it as a host;
- a ``;`` or ``,`` inside a source: it would end the directive or start a second policy;
- a directive given twice: browsers ignore the second one;
- ``'strict-dynamic'`` without a nonce or hash: it would block every script;
- an unknown directive name, or a malformed hash.

Error messages name directives and keywords (from the fixed CSP vocabulary) and the
position of a bad source, never the text of a source or of an unknown directive: a
policy may come from the environment, and errors end up in logs.

:meth:`ContentSecurityPolicy.unsafe_script_sources` tells the deploy check which sources
let any script run (``*``, ``https:``, ``'unsafe-eval'``, ...).

Nonces: put :data:`NONCE` among a directive's sources, and the middleware renders a fresh
``'nonce-...'`` per request, readable through :func:`get_csp_nonce` for templates.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Mapping

from fastapi_enterprise.context import get_csp_nonce

__all__ = [
    "API_POLICY",
    "NONCE",
    "CSPError",
    "ContentSecurityPolicy",
    "get_csp_nonce",
    "new_nonce",
]

NONCE = "'nonce'"
"""Placeholder source: replaced by ``'nonce-<random>'``, fresh for every request."""

_KEYWORDS = frozenset(
    {
        "self",
        "none",
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "strict-dynamic",
        "report-sample",
        "wasm-unsafe-eval",
        "inline-speculation-rules",
        "unsafe-allow-redirects",
    }
)
_DIRECTIVES = frozenset(
    {
        "default-src",
        "script-src",
        "script-src-elem",
        "script-src-attr",
        "style-src",
        "style-src-elem",
        "style-src-attr",
        "img-src",
        "font-src",
        "connect-src",
        "media-src",
        "object-src",
        "frame-src",
        "child-src",
        "worker-src",
        "manifest-src",
        "prefetch-src",
        "fenced-frame-src",
        "base-uri",
        "form-action",
        "frame-ancestors",
        "sandbox",
        "upgrade-insecure-requests",
        "block-all-mixed-content",
        "require-trusted-types-for",
        "trusted-types",
        "report-uri",
        "report-to",
    }
)
_VALUELESS = frozenset({"upgrade-insecure-requests", "block-all-mixed-content"})
_HASH = re.compile(r"'(sha256|sha384|sha512)-([A-Za-z0-9+/_-]+={0,2})'")
_HASH_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64}
_SOURCE_CHARS = re.compile(r"[!-~]+")  # visible ASCII, no spaces
# Sources that let scripts from anywhere (or any inline or eval'd code) run.
_ANY_SCRIPT = frozenset({"*", "http:", "https:", "data:", "blob:", "filesystem:"})
_SCRIPT_DIRECTIVES = ("script-src", "script-src-elem", "script-src-attr")


class CSPError(ValueError):
    """A Content-Security-Policy is malformed; raised when the policy is built."""


def new_nonce() -> str:
    """Return a fresh nonce: 128 random bits, base64url."""
    return secrets.token_urlsafe(16)


class ContentSecurityPolicy:
    """An immutable, validated Content-Security-Policy.

    Args:
        directives: Directive name to sources, e.g. ``{"default-src": ["'self'"]}``; a
            string value is split on spaces; an empty list gives a value-less directive.
        report_only: Send as ``Content-Security-Policy-Report-Only``: violations are
            reported, nothing is blocked (for rolling out a new policy).
        report_uri: Where browsers POST violation reports (``report-uri``).
        report_to: Reporting API group name (``report-to``); pair it with a
            ``Reporting-Endpoints`` header.

    Raises:
        CSPError: The policy has one of the mistakes listed in the module docstring.
    """

    def __init__(
        self,
        directives: Mapping[str, Iterable[str] | str],
        *,
        report_only: bool = False,
        report_uri: str | None = None,
        report_to: str | None = None,
    ) -> None:
        parsed: dict[str, tuple[str, ...]] = {}
        for position, (raw_name, raw_sources) in enumerate(directives.items(), start=1):
            name = raw_name.strip().lower()
            if name not in _DIRECTIVES:
                raise CSPError(f"unknown CSP directive (directive {position})")
            if name in parsed:
                raise CSPError(f"CSP directive {name!r} is given twice")
            sources = raw_sources.split() if isinstance(raw_sources, str) else list(raw_sources)
            parsed[name] = tuple(
                _check_source(name, source, index) for index, source in enumerate(sources, start=1)
            )
            if name in _VALUELESS and parsed[name]:
                raise CSPError(f"CSP directive {name!r} takes no value")
        for name in ("report-uri", "report-to"):
            value = report_uri if name == "report-uri" else report_to
            if value is not None:
                if name in parsed:
                    raise CSPError(f"CSP directive {name!r} is given twice")
                parsed[name] = (_check_source(name, value, 1),)
        for name, checked in parsed.items():
            if "'strict-dynamic'" in checked and not any(
                source == NONCE or _HASH.fullmatch(source) for source in checked
            ):
                raise CSPError(
                    f"{name!r} uses 'strict-dynamic' without a nonce or hash: every script "
                    "would be blocked"
                )
        self.directives: Mapping[str, tuple[str, ...]] = parsed
        self.report_only = report_only
        self.header_name = (
            "Content-Security-Policy-Report-Only" if report_only else "Content-Security-Policy"
        )
        self.uses_nonce = any(NONCE in sources for sources in parsed.values())
        rendered = "; ".join(
            " ".join((name, *sources)) if sources else name for name, sources in parsed.items()
        )
        # Split once around the placeholder so each request only joins strings.
        self._parts = rendered.split(NONCE)

    def render(self, nonce: str | None = None) -> str:
        """Return the header value, with ``nonce`` in place of every :data:`NONCE`."""
        if not self.uses_nonce:
            return self._parts[0]
        if nonce is None:
            raise CSPError("this policy uses a nonce: pass one to render()")
        return f"'nonce-{nonce}'".join(self._parts)

    def unsafe_script_sources(self) -> tuple[str, ...]:
        """The sources that let scripts from anywhere, inline or through ``eval`` run.

        Read from ``script-src`` (``default-src`` when it is absent),
        ``script-src-elem`` and ``script-src-attr``: ``*``, a bare scheme (``https:``,
        ``data:``, ...), ``'unsafe-eval'``, and ``'unsafe-inline'`` unless a nonce or a
        hash makes browsers ignore it. Every value comes from the CSP vocabulary.
        """
        found: list[str] = []
        names = [name for name in _SCRIPT_DIRECTIVES if name in self.directives]
        if "script-src" not in self.directives and "default-src" in self.directives:
            names.insert(0, "default-src")
        for name in names:
            sources = self.directives[name]
            pinned = any(
                source == NONCE or source.startswith("'nonce-") or _HASH.fullmatch(source)
                for source in sources
            )
            for source in sources:
                lowered = source.lower()
                unsafe = (
                    lowered in _ANY_SCRIPT
                    or lowered == "'unsafe-eval'"
                    or (lowered == "'unsafe-inline'" and not pinned)
                )
                if unsafe and lowered not in found:
                    found.append(lowered)
        return tuple(found)

    @property
    def restricts_scripts(self) -> bool:
        """Whether any directive governs scripts (``script-src*`` or ``default-src``)."""
        return any(name in self.directives for name in (*_SCRIPT_DIRECTIVES, "default-src"))

    def __str__(self) -> str:
        return self.render("{nonce}") if self.uses_nonce else self.render()

    def __repr__(self) -> str:
        return f"ContentSecurityPolicy({str(self)!r}, report_only={self.report_only})"

    @classmethod
    def parse(
        cls,
        header: str,
        *,
        report_only: bool = False,
        report_uri: str | None = None,
        report_to: str | None = None,
    ) -> ContentSecurityPolicy:
        """Build a policy from header syntax: ``"default-src 'self'; img-src *"``."""
        directives: dict[str, list[str]] = {}
        for part in header.split(";"):
            tokens = part.split()
            if not tokens:
                continue
            name = tokens[0].lower()
            if name not in _DIRECTIVES:
                raise CSPError(f"unknown CSP directive (directive {len(directives) + 1})")
            if name in directives:
                raise CSPError(f"CSP directive {name!r} is given twice")
            directives[name] = tokens[1:]
        return cls(directives, report_only=report_only, report_uri=report_uri, report_to=report_to)


def _check_source(directive: str, source: str, position: int) -> str:
    """Validate one source; messages say where (directive, position), never what."""
    if source == NONCE:
        return source
    where = f"source {position} of {directive!r}"
    if not _SOURCE_CHARS.fullmatch(source):
        raise CSPError(f"CSP {where} contains spaces or controls")
    if ";" in source or "," in source:
        raise CSPError(f"CSP {where} contains ';' or ','")
    bare = source.strip("'").lower()
    if bare in _KEYWORDS and source != f"'{bare}'":
        raise CSPError(f"CSP keyword {bare!r} ({where}) must be quoted: '{bare}'")
    if source.startswith(("'sha", "'nonce-")):
        _check_hash_or_nonce(where, source)
    elif source.startswith("'") and bare not in _KEYWORDS:
        raise CSPError(f"CSP {where} is an unknown quoted keyword")
    return source


def _check_hash_or_nonce(where: str, source: str) -> None:
    if source.startswith("'nonce-"):
        if not re.fullmatch(r"'nonce-[A-Za-z0-9+/_-]+={0,2}'", source):
            raise CSPError(f"CSP {where} is a malformed nonce")
        return
    match = _HASH.fullmatch(source)
    if match is None:
        raise CSPError(f"CSP {where} is a malformed hash")
    algorithm, digest = match.groups()
    try:
        raw = base64.b64decode(digest.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise CSPError(f"CSP {where} is a hash that is not base64") from None
    if len(raw) != _HASH_BYTES[algorithm]:
        raise CSPError(f"CSP {where} is a hash of the wrong length")


API_POLICY = ContentSecurityPolicy(
    {
        "default-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
    }
)
"""The default for JSON APIs: load nothing, frame nothing, post nowhere."""
