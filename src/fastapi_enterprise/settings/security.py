"""The ``security`` settings section: secrets and the policies that protect responses.

Each policy is validated through the object that enforces it (``ContentSecurityPolicy``,
``CORSPolicy``, ``TrustedProxies``, the security-header checks), imported when a value
is checked, so a value the middleware would refuse is refused here, in every
environment; no message contains the rejected value.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from fastapi_enterprise.settings._fields import SECTION_CONFIG, split_list

__all__ = ["SecuritySettings"]


class SecuritySettings(BaseModel):
    """Secrets and the policies the deploy check verifies before a production start."""

    model_config = SECTION_CONFIG

    secret_key: SecretStr | None = None
    """Key for signing sessions and tokens. Required in production: at least 32
    characters and an estimated 128 bits of entropy (repeats, runs such as ``abc`` or
    ``123`` and keyboard rows count for little); placeholders such as ``changeme`` are
    refused by the deploy check."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to make cross-origin requests, e.g. ``https://app.example.com``
    (scheme, host and optional port; no path). ``*`` allows any origin. From the
    environment: a comma-separated list or a JSON list."""

    cors_origin_regex: str | None = None
    """A regular expression for allowed origins. It must be anchored (``^...$``) and
    escape the dots of host names (``^https://[a-z0-9-]+\\.example\\.com$``); with
    credentials it must not match hosts anyone can register (``^https://.*$``)."""

    cors_allow_credentials: bool = False
    """Allow cookies and ``Authorization`` on cross-origin requests. Never with ``*`` or
    an origin regex that matches any host (refused in every environment)."""

    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses or CIDR networks of reverse proxies whose ``X-Forwarded-*`` headers are
    believed, e.g. ``10.0.1.0/24``. ``*``, ``0.0.0.0/0`` and networks reaching public
    address space are refused in production; private ranges wider than /16 (IPv6: /48)
    get a warning."""

    hsts_max_age: int = Field(31_536_000, ge=0, le=2 * 31_536_000)
    """``Strict-Transport-Security`` max-age in seconds (one year by default). The deploy
    check requires at least 180 days."""

    hsts_include_subdomains: bool = True
    """Add ``includeSubDomains`` to HSTS."""

    hsts_preload: bool = False
    """Add ``preload`` to HSTS. Opt-in: it needs a one-year max-age, includeSubDomains and
    a submission to the browsers' preload list that is hard to undo."""

    trust_all_proxies_acknowledged: bool = False
    """Acknowledge that the server is reachable only through its proxies, so trusting
    ``*`` or public networks (a CDN's ranges) is safe. Without it, the deploy check
    refuses such trust in production; with it, it warns."""

    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    """Host names the app answers (``api.example.com``, ``*.example.com``); others get
    400. ``*`` accepts any host (the deploy check warns in production)."""

    https_redirect: bool = False
    """Redirect plain-HTTP requests to HTTPS (307), using the scheme resolved from
    trusted proxies."""

    cors_methods: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"]
    )
    """Methods allowed in cross-origin requests."""

    cors_headers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-Request-ID"]
    )
    """Request headers allowed in cross-origin requests."""

    cors_expose_headers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After"]
    )
    """Response headers browsers may read."""

    cors_max_age: int = Field(600, ge=0, le=86_400)
    """Seconds browsers may cache a preflight answer."""

    csp: str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    """Content-Security-Policy for every response (header syntax; ``'nonce'`` inserts a
    per-request nonce). Validated at startup. Empty: no CSP."""

    csp_report_only: bool = False
    """Send the CSP as ``Content-Security-Policy-Report-Only``: report, do not block."""

    csp_report_uri: str | None = None
    """Where browsers send CSP violation reports."""

    frame_options: str = "DENY"
    """``X-Frame-Options``: ``DENY`` or ``SAMEORIGIN``; empty sends none (allow framing
    with the CSP ``frame-ancestors`` directive instead). Other values are refused."""

    referrer_policy: str = "no-referrer"
    """``Referrer-Policy``: a known token or a comma-separated fallback list; empty sends
    none. ``unsafe-url`` is refused in production."""

    hsts_enabled: bool | None = None
    """Send HSTS (over HTTPS only). ``None`` (the default): on in staging and production,
    off in development and test, so a developer's localhost is never pinned to HTTPS."""

    _split = field_validator(
        "cors_origins",
        "trusted_proxies",
        "allowed_hosts",
        "cors_methods",
        "cors_headers",
        "cors_expose_headers",
        mode="before",
    )(split_list)

    @field_validator("csp")
    @classmethod
    def _check_csp(cls, csp: str) -> str:
        from fastapi_enterprise.csp import ContentSecurityPolicy, CSPError

        if csp.strip():
            try:
                ContentSecurityPolicy.parse(csp)
            except CSPError as exc:
                raise ValueError(str(exc)) from None
        return csp

    @field_validator("csp_report_uri")
    @classmethod
    def _check_report_uri(cls, uri: str | None) -> str | None:
        from fastapi_enterprise.csp import ContentSecurityPolicy, CSPError

        if uri is not None:
            try:
                ContentSecurityPolicy({}, report_uri=uri)
            except CSPError:
                raise ValueError("not a valid CSP report-uri source") from None
        return uri

    @field_validator("frame_options")
    @classmethod
    def _check_frame_options(cls, value: str) -> str:
        from fastapi_enterprise.middleware.security_headers import check_frame_options

        return check_frame_options(value) or ""

    @field_validator("referrer_policy")
    @classmethod
    def _check_referrer_policy(cls, value: str) -> str:
        from fastapi_enterprise.middleware.security_headers import check_referrer_policy

        return check_referrer_policy(value) or ""

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        for position, host in enumerate(hosts, start=1):
            if host != "*" and (
                "*" in host[1:] or (host.startswith("*") and not host.startswith("*."))
            ):
                raise ValueError(f"entry {position} must be a host name, '*.domain' or '*'")
        return hosts

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        from fastapi_enterprise.cors_policy import check_origins

        check_origins(origins)  # a CORSPolicyError is a ValueError without the origin
        return origins

    @field_validator("cors_origin_regex")
    @classmethod
    def _check_regex(cls, pattern: str | None) -> str | None:
        from fastapi_enterprise.cors_policy import check_origin_regex

        check_origin_regex(pattern)
        return pattern

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, proxies: list[str]) -> list[str]:
        from fastapi_enterprise.client_ip import TrustedProxies

        TrustedProxies(proxies)
        return proxies

    @model_validator(mode="after")
    def _check_cors_policy(self) -> SecuritySettings:
        """Credentials with ``*`` or an any-host regex: refused in every environment."""
        from fastapi_enterprise.cors_policy import CORSPolicy, CORSPolicyError

        try:
            CORSPolicy(
                tuple(self.cors_origins), self.cors_origin_regex, self.cors_allow_credentials
            )
        except CORSPolicyError as exc:
            raise ValueError(f"CORS: {exc}") from None
        return self
