"""Deploy checks of what responses tell browsers: CSP, framing, referrer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi_enterprise.csp import ContentSecurityPolicy
from fastapi_enterprise.deploy_check._registry import Checks, Outcome, Test

if TYPE_CHECKING:
    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["checks"]

checks = Checks()


def _csp(settings: EnterpriseSettings) -> ContentSecurityPolicy | None:
    text = settings.security.csp
    return ContentSecurityPolicy.parse(text) if text.strip() else None


@checks.register(
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


@checks.register(
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


@checks.register(
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


@checks.register(
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


@checks.register(
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


_REFERRER_FIX = "Use FE_SECURITY__REFERRER_POLICY=no-referrer or strict-origin-when-cross-origin."


def _referrer_policy_is(token: str, consequence: str) -> Test:
    """A test that finds the effective ``Referrer-Policy`` to be ``token``."""

    def test(settings: EnterpriseSettings) -> Outcome:
        # Browsers apply the last token they know; the settings accept known tokens only.
        if settings.security.referrer_policy.split(",")[-1].strip() == token:
            return f"security.referrer_policy is {token}: {consequence}"
        return None

    return test


checks.add(
    "security.referrer_policy_unsafe",
    "error",
    ["security.referrer_policy"],
    "`Referrer-Policy: unsafe-url`: full URLs (paths, query tokens) sent to every site",
    _REFERRER_FIX,
    _referrer_policy_is(
        "unsafe-url",
        "full URLs, with their paths and query strings, go to every site, over plain HTTP too.",
    ),
)
checks.add(
    "security.referrer_policy_full_url",
    "warning",
    ["security.referrer_policy"],
    "`Referrer-Policy: no-referrer-when-downgrade`: full URLs sent to other HTTPS sites",
    _REFERRER_FIX,
    _referrer_policy_is(
        "no-referrer-when-downgrade",
        "full URLs, with their query strings, go to every other HTTPS site.",
    ),
)
