"""The deploy check: what must be fixed before these settings go to production.

Like Django's ``manage.py check --deploy``: every check in :data:`DEPLOY_CHECKS` has a
stable ``id``, a level, the settings it reads and a fix; each problem it finds is a
:class:`Finding`. ``install()`` refuses to start a production app with any error-level
finding and logs the warnings. Messages name settings (and list positions), never
their values.

Errors are settings that switch off a protection the library promises (HSTS, proxy
trust, the secret key, script restrictions) or make a configured limit untrue; warnings
are choices that are unsafe for most apps but deliberate for some (public docs, no CSP
on a JSON API, memory storage on a single process).

Policies that are unsafe in every environment (``*`` or an any-host regex with CORS
credentials, malformed CORS origins, CSPs, proxy entries, header values) are not deploy
checks: the settings refuse them at construction.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fastapi_enterprise.client_ip import TrustedProxies, is_private_network, parse_networks
from fastapi_enterprise.cors_policy import CORSPolicy
from fastapi_enterprise.csp import ContentSecurityPolicy

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "DEPLOY_CHECKS",
    "DeployCheck",
    "DeployCheckError",
    "Finding",
    "estimate_entropy_bits",
    "run_deploy_check",
    "worker_processes",
]

Level = Literal["error", "warning"]
Outcome = str | tuple[str, Level] | None

_MIN_SECRET_LENGTH = 32
_MIN_SECRET_BITS = 128
_MIN_TOKEN_BITS = 64
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
# Character orders people type: alphabet, digits, keyboard rows.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
)
_ADJACENT = frozenset(
    pair
    for sequence in _SEQUENCES
    for index in range(len(sequence) - 1)
    for pair in (sequence[index : index + 2], sequence[index + 1] + sequence[index])
)
_ENTROPY_WINDOW = 256
_SERVER_PROGRAMS = ("gunicorn", "uvicorn", "hypercorn")


@dataclass(frozen=True)
class Finding:
    """One problem found by the deploy check."""

    id: str
    """Stable identifier, e.g. ``security.secret_key_weak``; safe to match on."""

    level: Level
    """``error`` stops a production start; ``warning`` is logged."""

    message: str
    """What is wrong. Never contains a secret."""

    fix: str
    """How to fix it."""

    def __str__(self) -> str:
        return f"[{self.level}] {self.id}: {self.message} Fix: {self.fix}"


@dataclass(frozen=True)
class DeployCheck:
    """One rule of the deploy check, as documented in the settings guide."""

    id: str
    """Stable identifier of the findings it yields."""

    level: Level
    """Its usual level (a check may lower an error to a warning when acknowledged)."""

    settings: tuple[str, ...]
    """The settings it reads, dotted (``security.trusted_proxies``)."""

    when: str
    """When it fires, in one line."""

    fix: str
    """How to fix what it finds."""

    test: Callable[[EnterpriseSettings], Outcome]
    """Returns the message (and the level, when it differs), or ``None``."""


class DeployCheckError(RuntimeError):
    """The settings are not safe for production; raised by ``install()`` at startup."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        lines = [f"refusing to start in production: {len(findings)} deploy check error(s)"]
        lines.extend(f"  - {finding}" for finding in findings)
        super().__init__("\n".join(lines))


_CHECKS: list[DeployCheck] = []


def _check(
    check_id: str,
    level: Level,
    settings: Sequence[str],
    when: str,
    fix: str,
) -> Callable[[Callable[[EnterpriseSettings], Outcome]], Callable[[EnterpriseSettings], Outcome]]:
    def register(
        test: Callable[[EnterpriseSettings], Outcome],
    ) -> Callable[[EnterpriseSettings], Outcome]:
        _CHECKS.append(DeployCheck(check_id, level, tuple(settings), when, fix, test))
        return test

    return register


def run_deploy_check(settings: EnterpriseSettings) -> list[Finding]:
    """Run every check against ``settings``; errors come first, then warnings."""
    findings: list[Finding] = []
    for check in DEPLOY_CHECKS:
        outcome = check.test(settings)
        if outcome is None:
            continue
        message, level = outcome if isinstance(outcome, tuple) else (outcome, check.level)
        findings.append(Finding(check.id, level, message, check.fix))
    return sorted(findings, key=lambda finding: finding.level != "error")


_GENERATE_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"

# --- app -----------------------------------------------------------------------------


@_check(
    "app.debug_enabled",
    "error",
    ["app.debug"],
    "`app.debug` is on: tracebacks in responses",
    "Set FE_APP__DEBUG=false in production.",
)
def _debug(settings: EnterpriseSettings) -> Outcome:
    return "app.debug is on." if settings.app.debug else None


@_check(
    "app.docs_public",
    "warning",
    ["app.docs"],
    "API docs (`/docs`, `/redoc`, `/openapi.json`) served in production",
    "Set FE_APP__DOCS=false unless the API is meant to be public.",
)
def _docs(settings: EnterpriseSettings) -> Outcome:
    if settings.app.docs and settings.is_production:
        return "API docs (/docs, /redoc, /openapi.json) are served in production."
    return None


# --- secret key ----------------------------------------------------------------------


@_check(
    "security.secret_key_missing",
    "error",
    ["security.secret_key"],
    "no secret key",
    f"Set FE_SECURITY__SECRET_KEY to a random value, e.g. the output of {_GENERATE_KEY}.",
)
def _secret_missing(settings: EnterpriseSettings) -> Outcome:
    secret = settings.security.secret_key
    if secret is None or not secret.get_secret_value():
        return "security.secret_key is not set."
    return None


@_check(
    "security.secret_key_weak",
    "error",
    ["security.secret_key"],
    "under 32 characters, an estimated entropy under 128 bits (repeats, runs such as "
    "`abc`/`123`, keyboard rows), or a placeholder",
    f"Generate one with {_GENERATE_KEY}.",
)
def _secret_weak(settings: EnterpriseSettings) -> Outcome:
    secret = settings.security.secret_key
    if secret is None or not secret.get_secret_value():
        return None
    if _weak_secret(secret.get_secret_value(), _MIN_SECRET_LENGTH, _MIN_SECRET_BITS):
        return (
            f"security.secret_key is weak: it needs at least {_MIN_SECRET_LENGTH} characters "
            f"and about {_MIN_SECRET_BITS} bits of entropy (repeated blocks, runs such as "
            "'abc' or '123' and keyboard rows count for little), and must not be a "
            "placeholder."
        )
    return None


def _weak_secret(value: str, min_length: int, min_bits: int) -> bool:
    lowered = value.lower()
    return (
        len(value) < min_length
        or lowered in _PLACEHOLDER_SECRETS
        or lowered.startswith(_PLACEHOLDER_PREFIXES)
        or estimate_entropy_bits(value) < min_bits
    )


def estimate_entropy_bits(value: str) -> float:
    """Estimate how many bits an attacker must guess to find ``value``.

    Each character costs ``log2`` of the alphabet its character classes span (lower,
    upper, digits, others); a block that repeats earlier text costs only where and how
    long it is, and a run along the alphabet, the digits or a keyboard row (``abcd``,
    ``4321``, ``qwerty``) costs about one character. So ``"0123456789" * 4`` is about 12
    bits where ``secrets.token_urlsafe(32)`` is over 250. Only the first 256 characters
    are read. A heuristic for catching human-made keys, not a strength proof.

    Args:
        value: The secret.

    Returns:
        The estimate in bits.
    """
    text = value[:_ENTROPY_WINDOW]
    lowered = text.lower()
    alphabet = (
        26 * any(c.islower() for c in text)
        + 26 * any(c.isupper() for c in text)
        + 10 * any(c.isdigit() for c in text)
        + 33 * any(not c.isalnum() for c in text)
    )
    per_char = math.log2(max(alphabet, 2))
    bits = 0.0
    index = 0
    while index < len(text):
        repeat = _repeat_length(text, index)
        if repeat >= 3:
            bits += math.log2(index + 1) + math.log2(repeat + 1)
            index += repeat
            continue
        run = _run_length(lowered, index)
        if run >= 3:
            bits += per_char + math.log2(run) + 1
            index += run
            continue
        bits += per_char
        index += 1
    return bits


def _repeat_length(text: str, index: int) -> int:
    """Length of the longest block at ``index`` that also starts earlier (overlap allowed)."""
    length = 0
    while index + length < len(text):
        candidate = text[index : index + length + 1]
        if text.find(candidate, 0, index + length) == -1:
            break
        length += 1
    return length


def _run_length(lowered: str, index: int) -> int:
    """Length of the run of neighbouring characters of a known order starting at ``index``."""
    end = index + 1
    while end < len(lowered) and lowered[end - 1 : end + 1] in _ADJACENT:
        end += 1
    return end - index


# --- CORS ----------------------------------------------------------------------------


@_check(
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


# --- trusted proxies -----------------------------------------------------------------

_PROXY_FIX = (
    "List only your proxies' addresses or subnets in FE_SECURITY__TRUSTED_PROXIES, or set "
    "FE_SECURITY__TRUST_ALL_PROXIES_ACKNOWLEDGED=true if the server is reachable only "
    "through them."
)


@_check(
    "security.proxy_trust_all",
    "error",
    ["security.trusted_proxies", "security.trust_all_proxies_acknowledged"],
    "`*`, `0.0.0.0/0` or `::/0` in `trusted_proxies` (a warning when acknowledged)",
    _PROXY_FIX,
)
def _proxy_all(settings: EnterpriseSettings) -> Outcome:
    security = settings.security
    if not TrustedProxies(security.trusted_proxies).universal:
        return None
    message = (
        "security.trusted_proxies trusts every address: any client can forge "
        "X-Forwarded-For (dodging per-IP limits) and X-Forwarded-Proto (HSTS over plain HTTP)."
    )
    return (message, "warning") if security.trust_all_proxies_acknowledged else message


@_check(
    "security.proxy_trust_public",
    "error",
    ["security.trusted_proxies", "security.trust_all_proxies_acknowledged"],
    "a trusted network reaches public address space (a warning when acknowledged)",
    _PROXY_FIX,
)
def _proxy_public(settings: EnterpriseSettings) -> Outcome:
    security = settings.security
    proxies = TrustedProxies(security.trusted_proxies)
    public = [
        position
        for position, network in enumerate(proxies.networks, start=1)
        if network in proxies.public_networks()
    ]
    if not public:
        return None
    message = (
        f"security.trusted_proxies entries {_positions(public)} reach public address "
        "space: a client there can connect directly and forge its address and scheme."
    )
    return (message, "warning") if security.trust_all_proxies_acknowledged else message


@_check(
    "security.proxy_trust_wide",
    "warning",
    ["security.trusted_proxies"],
    "a private trusted network wider than /16 (IPv6: /48)",
    "Narrow FE_SECURITY__TRUSTED_PROXIES to the subnet your proxies run in.",
)
def _proxy_wide(settings: EnterpriseSettings) -> Outcome:
    proxies = TrustedProxies(settings.security.trusted_proxies)
    wide = [
        position
        for position, network in enumerate(proxies.networks, start=1)
        if network in proxies.wide_networks()
    ]
    if not wide:
        return None
    return (
        f"security.trusted_proxies entries {_positions(wide)} are wide private ranges: any "
        "host in them (a compromised internal service) can forge client addresses."
    )


def _positions(positions: list[int]) -> str:
    return ", ".join(str(position) for position in positions)


# --- hosts, HSTS ---------------------------------------------------------------------


@_check(
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


@_check(
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


@_check(
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


@_check(
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


@_check(
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


# --- Content-Security-Policy, framing, referrer --------------------------------------


def _csp(settings: EnterpriseSettings) -> ContentSecurityPolicy | None:
    text = settings.security.csp
    return ContentSecurityPolicy.parse(text) if text.strip() else None


@_check(
    "security.csp_missing",
    "warning",
    ["security.csp"],
    "no Content-Security-Policy",
    "Keep the default FE_SECURITY__CSP (a strict policy for JSON APIs) or set your own.",
)
def _csp_missing(settings: EnterpriseSettings) -> Outcome:
    if _csp(settings) is None:
        return (
            "security.csp is empty: any HTML a response carries (an error page, an uploaded "
            "file) runs scripts without restriction."
        )
    return None


@_check(
    "security.csp_report_only",
    "warning",
    ["security.csp_report_only"],
    "the CSP is sent report-only: nothing is blocked",
    "Set FE_SECURITY__CSP_REPORT_ONLY=false once the reports are clean.",
)
def _csp_report_only(settings: EnterpriseSettings) -> Outcome:
    if settings.security.csp_report_only and _csp(settings) is not None:
        return "security.csp_report_only is on: browsers report violations and block nothing."
    return None


@_check(
    "security.csp_unsafe_scripts",
    "error",
    ["security.csp"],
    "the CSP lets any script run: `*`, `https:`, `data:`, `'unsafe-eval'` or "
    "`'unsafe-inline'` (without a nonce or hash) in the script sources",
    "Allow scripts by host, nonce ('nonce') or hash; drop 'unsafe-eval' and wildcards.",
)
def _csp_unsafe(settings: EnterpriseSettings) -> Outcome:
    policy = _csp(settings)
    unsafe = policy.unsafe_script_sources() if policy is not None else ()
    if unsafe:
        return (
            "security.csp lets scripts run from anywhere or inline: its script sources "
            f"include {' '.join(unsafe)}."
        )
    return None


@_check(
    "security.csp_scripts_unrestricted",
    "warning",
    ["security.csp"],
    "the CSP has neither `script-src` nor `default-src`",
    "Add default-src 'none' (an API) or default-src 'self' to FE_SECURITY__CSP.",
)
def _csp_no_scripts(settings: EnterpriseSettings) -> Outcome:
    policy = _csp(settings)
    if policy is not None and not policy.restricts_scripts:
        return "security.csp has neither script-src nor default-src: scripts are unrestricted."
    return None


@_check(
    "security.framing_allowed",
    "warning",
    ["security.frame_options", "security.csp"],
    "no `X-Frame-Options` and no restrictive CSP `frame-ancestors`: clickjacking",
    "Keep FE_SECURITY__FRAME_OPTIONS=DENY, or set frame-ancestors in FE_SECURITY__CSP.",
)
def _framing(settings: EnterpriseSettings) -> Outcome:
    if settings.security.frame_options:
        return None
    policy = _csp(settings)
    ancestors = policy.directives.get("frame-ancestors") if policy is not None else None
    if ancestors is not None and not set(ancestors) & {"*", "http:", "https:"}:
        return None
    return (
        "security.frame_options is empty and the CSP does not restrict frame-ancestors: "
        "any site can frame the app (clickjacking)."
    )


@_check(
    "security.referrer_policy_unsafe",
    "error",
    ["security.referrer_policy"],
    "`Referrer-Policy: unsafe-url`: full URLs (paths, query tokens) sent to every site",
    "Use FE_SECURITY__REFERRER_POLICY=no-referrer or strict-origin-when-cross-origin.",
)
def _referrer_unsafe(settings: EnterpriseSettings) -> Outcome:
    if _effective_referrer_policy(settings) == "unsafe-url":
        return (
            "security.referrer_policy is unsafe-url: full URLs, with their paths and query "
            "strings, go to every site, over plain HTTP too."
        )
    return None


@_check(
    "security.referrer_policy_full_url",
    "warning",
    ["security.referrer_policy"],
    "`Referrer-Policy: no-referrer-when-downgrade`: full URLs sent to other HTTPS sites",
    "Use FE_SECURITY__REFERRER_POLICY=no-referrer or strict-origin-when-cross-origin.",
)
def _referrer_full(settings: EnterpriseSettings) -> Outcome:
    if _effective_referrer_policy(settings) == "no-referrer-when-downgrade":
        return (
            "security.referrer_policy is no-referrer-when-downgrade: full URLs, with their "
            "query strings, go to every other HTTPS site."
        )
    return None


def _effective_referrer_policy(settings: EnterpriseSettings) -> str:
    # Browsers apply the last token they know; the settings accept known tokens only.
    return settings.security.referrer_policy.split(",")[-1].strip()


# --- rate limiting -------------------------------------------------------------------


@_check(
    "rate_limit.disabled",
    "warning",
    ["rate_limit.enabled"],
    "rate limiting is off",
    "Remove FE_RATE_LIMIT__ENABLED=false unless a gateway limits every route.",
)
def _rate_limit_off(settings: EnterpriseSettings) -> Outcome:
    if not settings.rate_limit.enabled:
        return "rate_limit.enabled is off: nothing limits brute force or scraping."
    return None


@_check(
    "rate_limit.no_default",
    "warning",
    ["rate_limit.default"],
    "no app-wide default limit",
    "Set FE_RATE_LIMIT__DEFAULT, e.g. 100/minute.",
)
def _no_default(settings: EnterpriseSettings) -> Outcome:
    options = settings.rate_limit
    if options.enabled and options.default is None:
        return (
            "rate_limit.default is empty: only routes with their own limit are limited, "
            "and 404 scans are not."
        )
    return None


@_check(
    "rate_limit.shadow",
    "warning",
    ["rate_limit.shadow"],
    "shadow mode: rejections are logged, not enforced",
    "Set FE_RATE_LIMIT__SHADOW=false once the limits are tuned.",
)
def _shadow(settings: EnterpriseSettings) -> Outcome:
    if settings.rate_limit.enabled and settings.rate_limit.shadow:
        return "rate_limit.shadow is on: every limit is reported and none is enforced."
    return None


_MEMORY_FIX = (
    "Share one storage between workers and hosts: "
    "FE_RATE_LIMIT__STORAGE_URL=redis://... (or rediss://, redis+sentinel://)."
)


@_check(
    "rate_limit.memory_storage_multi_worker",
    "error",
    ["rate_limit.storage_url"],
    "`memory://` storage while several worker processes are detected (`WEB_CONCURRENCY`, "
    "`--workers` of gunicorn/uvicorn/hypercorn, `PROMETHEUS_MULTIPROC_DIR`)",
    _MEMORY_FIX,
)
def _memory_workers(settings: EnterpriseSettings) -> Outcome:
    workers = worker_processes()
    if _uses_memory(settings) and workers is not None and workers > 1:
        return (
            f"rate_limit.storage_url is memory:// and the server runs {workers} worker "
            f"processes: each counts alone, so clients get {workers} times every limit."
        )
    return None


@_check(
    "rate_limit.memory_storage",
    "warning",
    ["rate_limit.storage_url"],
    "`memory://` storage (per process) in production",
    _MEMORY_FIX,
)
def _memory(settings: EnterpriseSettings) -> Outcome:
    workers = worker_processes()
    if settings.is_production and _uses_memory(settings) and (workers is None or workers <= 1):
        return (
            "rate_limit.storage_url is memory://: each worker process and host counts alone, "
            "so with N of them clients get N times every limit."
        )
    return None


def _uses_memory(settings: EnterpriseSettings) -> bool:
    url = settings.rate_limit.storage_url.get_secret_value().lower().removeprefix("async+")
    return settings.rate_limit.enabled and url.startswith("memory://")


@_check(
    "rate_limit.ip_key_without_proxies",
    "warning",
    ["rate_limit.key", "security.trusted_proxies"],
    "limits keyed on the client IP with no trusted proxy: behind a proxy every client "
    "shares its budget",
    "List your reverse proxies in FE_SECURITY__TRUSTED_PROXIES (or ignore this if clients "
    "connect directly).",
)
def _ip_without_proxies(settings: EnterpriseSettings) -> Outcome:
    options = settings.rate_limit
    if options.enabled and options.key == "ip" and not settings.security.trusted_proxies:
        return (
            "rate_limit.key is ip and security.trusted_proxies is empty: behind a reverse "
            "proxy every client has the proxy's address, and shares one budget."
        )
    return None


def worker_processes(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> int | None:
    """How many worker processes serve this app, when the environment says; else ``None``.

    Read from ``WEB_CONCURRENCY``, the ``--workers``/``-w`` option of a gunicorn,
    uvicorn or hypercorn command line (and ``GUNICORN_CMD_ARGS``), and
    ``PROMETHEUS_MULTIPROC_DIR`` (set for multi-process metrics: at least two).
    """
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    counts: list[int] = []
    concurrency = environ.get("WEB_CONCURRENCY", "").strip()
    if concurrency.isdigit():
        counts.append(int(concurrency))
    if argv and any(program in argv[0] for program in _SERVER_PROGRAMS):
        arguments = [*argv[1:], *shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))]
        counts.extend(_workers_option(arguments))
    if environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("prometheus_multiproc_dir"):
        counts.append(2)
    return max(counts) if counts else None


def _workers_option(arguments: Sequence[str]) -> list[int]:
    found: list[int] = []
    for index, argument in enumerate(arguments):
        value: str | None = None
        if argument in ("-w", "--workers") and index + 1 < len(arguments):
            value = arguments[index + 1]
        elif argument.startswith("--workers="):
            value = argument.partition("=")[2]
        elif argument.startswith("-w") and argument[2:].isdigit():
            value = argument[2:]
        if value is not None and value.isdigit():
            found.append(int(value))
    return found


# --- metrics, database, bodies, logging, Sentry --------------------------------------


@_check(
    "metrics.allow_ips_public",
    "warning",
    ["metrics.allow_ips"],
    "`/metrics` open to networks that reach public address space",
    "Limit FE_METRICS__ALLOW_IPS to your Prometheus servers, or use a bearer token.",
)
def _metrics_public(settings: EnterpriseSettings) -> Outcome:
    if settings.metrics.enabled is False:
        return None
    public = [
        position
        for position, network in enumerate(parse_networks(settings.metrics.allow_ips), start=1)
        if not is_private_network(network)
    ]
    if public:
        return (
            f"metrics.allow_ips entries {_positions(public)} reach public address space: "
            "anyone there can read the routes, traffic and errors of the app."
        )
    return None


@_check(
    "metrics.bearer_token_weak",
    "warning",
    ["metrics.bearer_token"],
    "a `/metrics` bearer token under 16 characters or 64 bits of estimated entropy",
    f"Generate one with {_GENERATE_KEY}.",
)
def _metrics_token(settings: EnterpriseSettings) -> Outcome:
    token = settings.metrics.bearer_token
    if token is not None and _weak_secret(token.get_secret_value(), 16, _MIN_TOKEN_BITS):
        return "metrics.bearer_token is short, guessable or a placeholder."
    return None


@_check(
    "database.echo",
    "warning",
    ["database.echo"],
    "every SQL statement logged, with its parameters",
    "Set FE_DATABASE__ECHO=false in production.",
)
def _database_echo(settings: EnterpriseSettings) -> Outcome:
    if settings.database.echo:
        return "database.echo is on: statements and their parameters (personal data) are logged."
    return None


@_check(
    "body_limit.no_read_timeout",
    "warning",
    ["body_limit.read_timeout"],
    "no time limit for a request body to arrive (slow-body attacks)",
    "Set FE_BODY_LIMIT__READ_TIMEOUT, e.g. 30.",
)
def _no_read_timeout(settings: EnterpriseSettings) -> Outcome:
    if settings.body_limit.read_timeout is None:
        return (
            "body_limit.read_timeout is off: a client sending a body byte by byte holds a "
            "worker for as long as it likes."
        )
    return None


@_check(
    "logging.debug_level",
    "warning",
    ["logging.level"],
    "debug logging in production",
    "Set FE_LOGGING__LEVEL=INFO.",
)
def _debug_logging(settings: EnterpriseSettings) -> Outcome:
    if settings.is_production and settings.logging.level == "DEBUG":
        return "logging.level is DEBUG: libraries log payloads and headers at this level."
    return None


@_check(
    "sentry.local_variables",
    "warning",
    ["sentry.include_local_variables"],
    "stack-frame local variables sent to Sentry",
    "Set FE_SENTRY__INCLUDE_LOCAL_VARIABLES=false.",
)
def _sentry_locals(settings: EnterpriseSettings) -> Outcome:
    sentry = settings.sentry
    if sentry.dsn is not None and sentry.include_local_variables:
        return (
            "sentry.include_local_variables is on: locals hold passwords and tokens under "
            "names no scrubber can guess."
        )
    return None


DEPLOY_CHECKS: tuple[DeployCheck, ...] = tuple(_CHECKS)
"""Every check, in the order it runs; ``docs/how-to/settings.md`` lists the same IDs."""
