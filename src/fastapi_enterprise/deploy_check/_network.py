"""Deploy checks of who may reach the app and how: CORS, trusted proxies, hosts, HSTS."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from fastapi_enterprise.client_ip import IPNetwork, TrustedProxies
from fastapi_enterprise.cors_policy import CORSPolicy
from fastapi_enterprise.deploy_check._registry import Checks, Outcome, positions

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["checks"]

_MIN_HSTS_SECONDS = 180 * 24 * 3600
_PRELOAD_HSTS_SECONDS = 365 * 24 * 3600

checks = Checks()


@checks.register(
    "security.cors_insecure_origin",
    "error",
    ["security.cors_origins", "security.cors_origin_regex", "security.cors_allow_credentials"],
    "a plain `http://` origin, listed or matched by the origin regex, with credentials",
    "Use https:// origins, or turn FE_SECURITY__CORS_ALLOW_CREDENTIALS off.",
)
def _cors_http(settings: EnterpriseSettings) -> Outcome:
    security = settings.security
    if not security.cors_allow_credentials:
        return None
    policy = CORSPolicy(tuple(security.cors_origins), security.cors_origin_regex, True)
    listed, regex = policy.insecure_origins(), policy.regex_allows_http()
    if not (listed or regex):
        return None
    where = (
        f"security.cors_origins lists {listed} plain http:// origin(s)"
        if listed
        else "security.cors_origin_regex matches plain http:// origins"
    )
    return (
        f"{where} while credentials are allowed: anyone on the network path of such an "
        "origin can inject a script into it and act as your users."
    )


_PROXY_FIX = (
    "List only your proxies' addresses or subnets in FE_SECURITY__TRUSTED_PROXIES, or set "
    "FE_SECURITY__TRUST_ALL_PROXIES_ACKNOWLEDGED=true if the server is reachable only "
    "through them."
)


@checks.register(
    "security.proxy_trust_all",
    "error",
    ["security.trusted_proxies", "security.trust_all_proxies_acknowledged"],
    "`*`, `0.0.0.0/0` or `::/0` in `trusted_proxies` (a warning when acknowledged)",
    _PROXY_FIX,
)
def _proxy_all(settings: EnterpriseSettings) -> Outcome:
    if not TrustedProxies(settings.security.trusted_proxies).universal:
        return None
    return _unless_acknowledged(
        settings,
        "security.trusted_proxies trusts every address: any client can forge "
        "X-Forwarded-For (dodging per-IP limits) and X-Forwarded-Proto (HSTS over plain HTTP).",
    )


@checks.register(
    "security.proxy_trust_public",
    "error",
    ["security.trusted_proxies", "security.trust_all_proxies_acknowledged"],
    "a trusted network reaches public address space (a warning when acknowledged)",
    _PROXY_FIX,
)
def _proxy_public(settings: EnterpriseSettings) -> Outcome:
    public = _proxy_entries(settings, TrustedProxies.public_networks)
    if not public:
        return None
    return _unless_acknowledged(
        settings,
        f"security.trusted_proxies entries {public} reach public address space: a client "
        "there can connect directly and forge its address and scheme.",
    )


def _proxy_entries(
    settings: EnterpriseSettings, kind: Callable[[TrustedProxies], Collection[IPNetwork]]
) -> str:
    """Positions of the ``trusted_proxies`` entries of a kind (public, wide), ``"2, 5"``."""
    proxies = TrustedProxies(settings.security.trusted_proxies)
    found = kind(proxies)
    return positions(proxies.networks, lambda network: network in found)


def _unless_acknowledged(settings: EnterpriseSettings, message: str) -> Outcome:
    """An error, or a warning once the operator said only the proxies reach the server."""
    return (message, "warning") if settings.security.trust_all_proxies_acknowledged else message


@checks.register(
    "security.proxy_trust_wide",
    "warning",
    ["security.trusted_proxies"],
    "a private trusted network wider than /16 (IPv6: /48)",
    "Narrow FE_SECURITY__TRUSTED_PROXIES to the subnet your proxies run in.",
)
def _proxy_wide(settings: EnterpriseSettings) -> Outcome:
    wide = _proxy_entries(settings, TrustedProxies.wide_networks)
    if not wide:
        return None
    return (
        f"security.trusted_proxies entries {wide} are wide private ranges: any host in them "
        "(a compromised internal service) can forge client addresses."
    )


@checks.register(
    "security.allowed_hosts_any",
    "warning",
    ["security.allowed_hosts"],
    "production accepts any `Host` header",
    "List your host names in FE_SECURITY__ALLOWED_HOSTS.",
)
def _any_host(settings: EnterpriseSettings) -> Outcome:
    if "*" in settings.security.allowed_hosts and settings.is_production:
        return (
            "security.allowed_hosts accepts any Host header: links built from it (password "
            "resets, redirects) can point at an attacker's domain."
        )
    return None


@checks.register(
    "security.hsts_disabled",
    "error",
    ["security.hsts_enabled"],
    "`hsts_enabled` is off",
    "Remove FE_SECURITY__HSTS_ENABLED=false for production.",
)
def _hsts_off(settings: EnterpriseSettings) -> Outcome:
    if settings.security.hsts_enabled is False:
        return "security.hsts_enabled is off: browsers will accept a downgrade to plain HTTP."
    return None


@checks.register(
    "security.hsts_too_short",
    "error",
    ["security.hsts_max_age"],
    "HSTS max-age under 180 days",
    "Set FE_SECURITY__HSTS_MAX_AGE=31536000 (one year).",
)
def _hsts_short(settings: EnterpriseSettings) -> Outcome:
    max_age = settings.security.hsts_max_age
    if max_age < _MIN_HSTS_SECONDS:
        return (
            f"security.hsts_max_age is {max_age} seconds; HSTS needs at least 180 days to "
            "protect returning visitors."
        )
    return None


@checks.register(
    "security.hsts_preload_invalid",
    "error",
    ["security.hsts_preload", "security.hsts_max_age", "security.hsts_include_subdomains"],
    "preload without a one-year max-age and includeSubDomains",
    "Set FE_SECURITY__HSTS_MAX_AGE=31536000 and FE_SECURITY__HSTS_INCLUDE_SUBDOMAINS=true, "
    "or turn preload off.",
)
def _hsts_preload(settings: EnterpriseSettings) -> Outcome:
    security = settings.security
    if security.hsts_preload and (
        security.hsts_max_age < _PRELOAD_HSTS_SECONDS or not security.hsts_include_subdomains
    ):
        return (
            "security.hsts_preload is on but the preload list requires a max-age of at "
            "least one year and includeSubDomains."
        )
    return None


@checks.register(
    "security.hsts_no_subdomains",
    "warning",
    ["security.hsts_include_subdomains"],
    "HSTS without includeSubDomains",
    "Set FE_SECURITY__HSTS_INCLUDE_SUBDOMAINS=true once every subdomain serves HTTPS.",
)
def _hsts_subdomains(settings: EnterpriseSettings) -> Outcome:
    security = settings.security
    if security.hsts_enabled and not security.hsts_include_subdomains:
        return (
            "security.hsts_include_subdomains is off: a plain-HTTP subdomain can set cookies "
            "for the whole domain."
        )
    return None
