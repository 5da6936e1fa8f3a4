"""A port, as test code, of the Mozilla HTTP Observatory's header rules and grading.

Covers the tests that apply to an API response over HTTPS: Content-Security-Policy,
Strict-Transport-Security, X-Frame-Options, X-Content-Type-Options, Referrer-Policy,
Cross-Origin-Resource-Policy and CORS. Each test yields a result name and a score
modifier as the Observatory defines them; the grade follows its score table (100 and up
is A+). Bonuses are only counted when the score without them is at least 90, as the
Observatory does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_GRADES = [
    (100, "A+"),
    (90, "A"),
    (85, "A-"),
    (80, "B+"),
    (70, "B"),
    (65, "B-"),
    (60, "C+"),
    (50, "C"),
    (45, "C-"),
    (40, "D+"),
    (30, "D"),
    (25, "D-"),
    (0, "F"),
]
_SIX_MONTHS = 15_768_000
_PRIVATE_REFERRER = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
_UNSAFE_REFERRER = {"origin", "origin-when-cross-origin", "unsafe-url"}


@dataclass
class Grade:
    """The outcome: total score, letter grade and each test's result and modifier."""

    score: int
    grade: str
    results: dict[str, tuple[str, int]] = field(default_factory=dict)


def _csp(headers: Mapping[str, str]) -> tuple[str, int]:
    value = headers.get("content-security-policy")
    if value is None:
        return "csp-not-implemented", -25
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        tokens = part.strip().split()
        if tokens:
            if tokens[0].lower() in directives:
                return "csp-header-invalid", -25
            directives[tokens[0].lower()] = tokens[1:]
    default = directives.get("default-src", ["*"])
    script = directives.get("script-src", default)
    style = directives.get("style-src", default)
    if "'unsafe-inline'" in script or "data:" in script:
        return "csp-implemented-with-unsafe-inline", -20
    if "'unsafe-eval'" in script:
        return "csp-implemented-with-unsafe-eval", -10
    if any(source in ("http:", "*") or source.startswith("http://") for source in script):
        return "csp-implemented-with-insecure-scheme", -20
    if "'unsafe-inline'" in style:
        return "csp-implemented-with-unsafe-inline-in-style-src-only", 0
    if default == ["'none'"]:
        return "csp-implemented-with-no-unsafe-default-src-none", 10
    return "csp-implemented-with-no-unsafe", 5


def _hsts(headers: Mapping[str, str]) -> tuple[str, int]:
    value = headers.get("strict-transport-security")
    if value is None:
        return "hsts-not-implemented", -20
    parts = {item.strip().split("=")[0].lower(): item.strip() for item in value.split(";")}
    try:
        max_age = int(parts["max-age"].split("=", 1)[1])
    except (KeyError, ValueError, IndexError):
        return "hsts-header-invalid", -20
    if max_age < _SIX_MONTHS:
        return "hsts-implemented-max-age-less-than-six-months", -10
    if "preload" in parts and "includesubdomains" in parts:
        return "hsts-preloaded", 5
    return "hsts-implemented-max-age-at-least-six-months", 0


def _xfo(headers: Mapping[str, str]) -> tuple[str, int]:
    csp = headers.get("content-security-policy", "")
    if "frame-ancestors" in csp.lower():
        return "x-frame-options-implemented-via-csp", 5
    value = headers.get("x-frame-options")
    if value is None:
        return "x-frame-options-not-implemented", -20
    if value.strip().upper() in ("DENY", "SAMEORIGIN"):
        return "x-frame-options-sameorigin-or-deny", 0
    return "x-frame-options-header-invalid", -20


def _xcto(headers: Mapping[str, str]) -> tuple[str, int]:
    value = headers.get("x-content-type-options")
    if value is None:
        return "x-content-type-options-not-implemented", -5
    if value.strip().lower() == "nosniff":
        return "x-content-type-options-nosniff", 0
    return "x-content-type-options-header-invalid", -5


def _referrer(headers: Mapping[str, str]) -> tuple[str, int]:
    value = headers.get("referrer-policy")
    if value is None:
        return "referrer-policy-not-implemented", 0
    last = value.split(",")[-1].strip().lower()
    if last in _PRIVATE_REFERRER:
        return "referrer-policy-private", 5
    if last in _UNSAFE_REFERRER:
        return "referrer-policy-unsafe", -5
    if last == "no-referrer-when-downgrade":
        return "referrer-policy-no-referrer-when-downgrade", 0
    return "referrer-policy-header-invalid", -5


def _corp(headers: Mapping[str, str]) -> tuple[str, int]:
    value = headers.get("cross-origin-resource-policy")
    if value is None:
        return "corp-not-implemented", 0
    if value.strip().lower() in ("same-origin", "same-site", "cross-origin"):
        return f"corp-implemented-with-{value.strip().lower()}", 0
    return "corp-header-invalid", -5


def _cors(headers: Mapping[str, str]) -> tuple[str, int]:
    origin = headers.get("access-control-allow-origin")
    if origin is None:
        return "cross-origin-resource-sharing-not-implemented", 0
    if origin.strip() == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access", 0
    credentials = headers.get("access-control-allow-credentials", "").lower() == "true"
    if credentials and origin.strip() != "null":
        return "cross-origin-resource-sharing-implemented-with-restricted-access", 0
    return "cross-origin-resource-sharing-implemented-with-universal-access", -50


_TESTS = {
    "content-security-policy": _csp,
    "strict-transport-security": _hsts,
    "x-frame-options": _xfo,
    "x-content-type-options": _xcto,
    "referrer-policy": _referrer,
    "cross-origin-resource-policy": _corp,
    "cross-origin-resource-sharing": _cors,
}


def grade(headers: Mapping[str, str]) -> Grade:
    """Grade a response's headers (names in any case) as the Observatory would."""
    lowered = {name.lower(): value for name, value in headers.items()}
    results = {name: test(lowered) for name, test in _TESTS.items()}
    penalties = sum(modifier for _, modifier in results.values() if modifier < 0)
    bonuses = sum(modifier for _, modifier in results.values() if modifier > 0)
    score = 100 + penalties
    if score >= 90:
        score += bonuses
    letter = next(letter for floor, letter in _GRADES if score >= floor)
    return Grade(score=score, grade=letter, results=results)
