"""The deploy check: what must be fixed before these settings go to production.

Like Django's ``manage.py check --deploy``: each rule yields a :class:`Finding` with a
stable ``id``, a level, what is wrong and how to fix it. ``install()`` refuses to start a
production app with any error-level finding. Messages name settings, never their values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fastapi_enterprise.middleware.cors import origin_regex_problems

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["DeployCheckError", "Finding", "run_deploy_check"]

_MIN_SECRET_LENGTH = 32
_MIN_SECRET_DISTINCT = 10
_MIN_HSTS_SECONDS = 180 * 24 * 3600
_PRELOAD_HSTS_SECONDS = 365 * 24 * 3600
# Values that tutorials and templates ship; a key equal to one of them, or starting with
# one of the long prefixes, is a placeholder that was never replaced.
_PLACEHOLDER_SECRETS = frozenset({"secret", "password", "default", "example", "dev", "test"})
_PLACEHOLDER_PREFIXES = (
    "changeme",
    "change-me",
    "change_me",
    "insecure",
    "django-insecure",
    "replace-me",
    "replace_me",
    "your-secret",
    "your_secret",
)


@dataclass(frozen=True)
class Finding:
    """One problem found by the deploy check."""

    id: str
    """Stable identifier, e.g. ``security.secret_key_weak``; safe to match on."""

    level: Literal["error", "warning"]
    """``error`` stops a production start; ``warning`` is logged."""

    message: str
    """What is wrong. Never contains a secret."""

    fix: str
    """How to fix it."""

    def __str__(self) -> str:
        return f"[{self.level}] {self.id}: {self.message} Fix: {self.fix}"


class DeployCheckError(RuntimeError):
    """The settings are not safe for production; raised by ``install()`` at startup."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = [f"refusing to start in production: {len(findings)} deploy check error(s)"]
        lines.extend(f"  - {finding}" for finding in findings)
        super().__init__("\n".join(lines))


def run_deploy_check(settings: EnterpriseSettings) -> list[Finding]:
    """Run every rule against ``settings``; errors come first, then warnings."""
    findings = list(_rules(settings))
    return sorted(findings, key=lambda finding: finding.level != "error")


def _rules(settings: EnterpriseSettings) -> Iterator[Finding]:
    security = settings.security
    if settings.app.debug:
        yield Finding(
            "app.debug_enabled",
            "error",
            "app.debug is on.",
            "Set FE_APP__DEBUG=false in production.",
        )
    yield from _secret_key_rules(settings)
    if "*" in security.cors_origins and security.cors_allow_credentials:
        yield Finding(
            "security.cors_wildcard_with_credentials",
            "error",
            "security.cors_origins allows '*' together with cors_allow_credentials: any "
            "website could make credentialed requests as your users.",
            "List the exact origins in FE_SECURITY__CORS_ORIGINS, or turn credentials off.",
        )
    if security.cors_origin_regex is not None:
        yield from _regex_rules(security.cors_origin_regex)
    if "*" in security.trusted_proxies:
        yield Finding(
            "security.proxy_trust_all",
            "warning" if security.trust_all_proxies_acknowledged else "error",
            "security.trusted_proxies contains '*': any client can forge X-Forwarded-For "
            "and X-Forwarded-Proto.",
            "List the addresses or CIDR networks of your proxies, e.g. 10.0.0.0/8, or set "
            "FE_SECURITY__TRUST_ALL_PROXIES_ACKNOWLEDGED=true if the server is reachable only "
            "through them.",
        )
    if "*" in security.allowed_hosts and settings.is_production:
        yield Finding(
            "security.allowed_hosts_any",
            "warning",
            "security.allowed_hosts accepts any Host header: links built from it (password "
            "resets, redirects) can point at an attacker's domain.",
            "List your host names in FE_SECURITY__ALLOWED_HOSTS.",
        )
    if security.hsts_enabled is False:
        yield Finding(
            "security.hsts_disabled",
            "error",
            "security.hsts_enabled is off: browsers will accept a downgrade to plain HTTP.",
            "Remove FE_SECURITY__HSTS_ENABLED=false for production.",
        )
    if security.hsts_max_age < _MIN_HSTS_SECONDS:
        yield Finding(
            "security.hsts_too_short",
            "error",
            f"security.hsts_max_age is {security.hsts_max_age} seconds; HSTS needs at "
            "least 180 days to protect returning visitors.",
            "Set FE_SECURITY__HSTS_MAX_AGE=31536000 (one year).",
        )
    if security.hsts_preload and (
        security.hsts_max_age < _PRELOAD_HSTS_SECONDS or not security.hsts_include_subdomains
    ):
        yield Finding(
            "security.hsts_preload_invalid",
            "error",
            "security.hsts_preload is on but the preload list requires a max-age of at "
            "least one year and includeSubDomains.",
            "Set FE_SECURITY__HSTS_MAX_AGE=31536000 and "
            "FE_SECURITY__HSTS_INCLUDE_SUBDOMAINS=true, or turn preload off.",
        )
    if settings.app.docs and settings.is_production:
        yield Finding(
            "app.docs_public",
            "warning",
            "API docs (/docs, /redoc, /openapi.json) are served in production.",
            "Set FE_APP__DOCS=false unless the API is meant to be public.",
        )


def _secret_key_rules(settings: EnterpriseSettings) -> Iterator[Finding]:
    secret = settings.security.secret_key
    if secret is None or not secret.get_secret_value():
        yield Finding(
            "security.secret_key_missing",
            "error",
            "security.secret_key is not set.",
            "Set FE_SECURITY__SECRET_KEY to a random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
        )
        return
    value = secret.get_secret_value()
    lowered = value.lower()
    weak = (
        len(value) < _MIN_SECRET_LENGTH
        or len(set(value)) < _MIN_SECRET_DISTINCT
        or lowered in _PLACEHOLDER_SECRETS
        or lowered.startswith(_PLACEHOLDER_PREFIXES)
    )
    if weak:
        yield Finding(
            "security.secret_key_weak",
            "error",
            f"security.secret_key is weak: it needs at least {_MIN_SECRET_LENGTH} characters, "
            f"{_MIN_SECRET_DISTINCT} distinct ones, and must not be a placeholder.",
            "Generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
        )


def _regex_rules(pattern: str) -> Iterator[Finding]:
    fix = (
        "Anchor the expression and escape the dots of host names, e.g. "
        "^https://[a-z0-9-]+\\.example\\.com$."
    )
    for finding_id, message in origin_regex_problems(pattern):
        yield Finding(finding_id, "error", f"security.cors_origin_regex: {message}", fix)
