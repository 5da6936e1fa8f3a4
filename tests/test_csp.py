"""The CSP builder refuses the mistakes that blank pages or open holes."""

from __future__ import annotations

import pytest

from fastapi_enterprise import ContentSecurityPolicy, CSPError
from fastapi_enterprise.csp import API_POLICY, NONCE

GOOD_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"


@pytest.mark.parametrize(
    ("directives", "message"),
    [
        ({"default-src": ["self"]}, "must be quoted"),
        ({"script-src": ["none"]}, "must be quoted"),
        ({"script-src": ["'self';", "https://x"]}, "';' or ','"),
        ({"img-src": ["https://a.example,https://b.example"]}, "';' or ','"),
        ({"img-src": ["https://a .example"]}, "spaces"),
        ({"default-src": ["'none'"], "Default-Src": ["'self'"]}, "twice"),
        ({"script-src": ["'strict-dynamic'"]}, "strict-dynamic"),
        ({"script-src": ["'strict-dynamic'", "'self'"]}, "strict-dynamic"),
        ({"scrpt-src": ["'self'"]}, "unknown CSP directive"),
        ({"script-src": ["'sha256-notbase64!'"]}, "malformed hash"),
        ({"script-src": ["'sha256-AAAA'"]}, "wrong length"),
        ({"script-src": ["'nonce-'"]}, "malformed nonce"),
        ({"script-src": ["'unsafe-everything'"]}, "unknown quoted"),
        ({"upgrade-insecure-requests": ["'self'"]}, "takes no value"),
    ],
)
def test_mistakes_fail_when_the_policy_is_built(
    directives: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(CSPError, match=message):
        ContentSecurityPolicy(directives)


def test_report_uri_twice_is_refused() -> None:
    with pytest.raises(CSPError, match="twice"):
        ContentSecurityPolicy({"report-uri": ["/a"]}, report_uri="/b")


def test_valid_policies_render() -> None:
    policy = ContentSecurityPolicy(
        {
            "default-src": "'self'",
            "script-src": ["'strict-dynamic'", NONCE, GOOD_HASH],
            "upgrade-insecure-requests": [],
        },
        report_to="csp",
    )
    assert policy.uses_nonce
    assert policy.render("abc") == (
        f"default-src 'self'; script-src 'strict-dynamic' 'nonce-abc' {GOOD_HASH}; "
        "upgrade-insecure-requests; report-to csp"
    )
    assert "{nonce}" in str(policy)
    with pytest.raises(CSPError, match="pass one"):
        policy.render()
    assert repr(API_POLICY).startswith("ContentSecurityPolicy(\"default-src 'none'")


def test_parse_round_trips_and_detects_duplicates() -> None:
    text = "default-src 'none'; img-src 'self' data:"
    assert ContentSecurityPolicy.parse(text).render() == text
    assert ContentSecurityPolicy.parse(text, report_only=True).header_name == (
        "Content-Security-Policy-Report-Only"
    )
    with pytest.raises(CSPError, match="twice"):
        ContentSecurityPolicy.parse("img-src 'self'; img-src *")
