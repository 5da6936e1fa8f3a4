"""Content-Security-Policies for FastAPI's docs pages, computed from the HTML they serve.

The strict API policy (``default-src 'none'``) would blank ``/docs`` and ``/redoc``.
Instead of loosening the policy for the whole app, each docs page gets its own policy,
built at startup from the page FastAPI will serve: the exact script and stylesheet URLs
it loads, and the SHA-256 of each inline script. No ``'unsafe-eval'``, no bare CDN host,
no inline script that is not byte-for-byte the expected one. Inline *styles* stay
allowed on these pages only: Swagger UI and ReDoc set style attributes at run time.

When docs are off, none of these policies exists.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)

from fastapi_enterprise.csp import ContentSecurityPolicy

__all__ = ["docs_policies", "inline_script_hashes", "policy_from_html"]

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_SCRIPT_SRC = re.compile(r"<script[^>]*\ssrc=\"([^\"]+)\"")
_STYLESHEET = re.compile(
    r"<link[^>]*href=\"([^\"]+)\"[^>]*rel=\"stylesheet\"|"
    r"<link[^>]*rel=\"stylesheet\"[^>]*href=\"([^\"]+)\""
)
_ICON = re.compile(r"<link[^>]*rel=\"shortcut icon\"[^>]*href=\"([^\"]+)\"")
_BASE = {
    "default-src": ["'none'"],
    "connect-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
}


def inline_script_hashes(html: str) -> list[str]:
    """Return the CSP ``'sha256-...'`` source of every inline ``<script>`` in ``html``."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def policy_from_html(
    html: str, *, extra: dict[str, list[str]] | None = None
) -> ContentSecurityPolicy:
    """Compute the CSP a docs page needs from its HTML: exact asset URLs, script hashes.

    Same-origin assets (a path such as ``/docs/assets/x.js``) become ``'self'``: a CSP
    source cannot be a bare path, and the request's ``Host`` must never be written into
    a policy.

    Args:
        html: The page as served.
        extra: More sources per directive (``worker-src blob:`` for ReDoc).
    """

    def source(url: str) -> str:
        return "'self'" if url.startswith("/") and not url.startswith("//") else url

    scripts = [source(url) for url in _SCRIPT_SRC.findall(html)]
    scripts += inline_script_hashes(html)
    styles = [source(first or second) for first, second in _STYLESHEET.findall(html)]
    icons = [source(url) for url in _ICON.findall(html)]
    directives: dict[str, list[str]] = {key: list(value) for key, value in _BASE.items()}
    directives["script-src"] = _unique(scripts) or ["'none'"]
    directives["style-src"] = [*_unique(styles), "'unsafe-inline'"]
    directives["img-src"] = _unique(["'self'", "data:", *icons])
    for key, value in (extra or {}).items():
        directives[key] = _unique([*directives.get(key, []), *value])
    return ContentSecurityPolicy(directives)


def _unique(values: Iterable[str]) -> list[str]:
    # A CSP source matches scheme, host and path; the query is ignored (and may hold
    # commas, which would end the source list), so it is dropped.
    return list(dict.fromkeys(value.split("?", 1)[0].split("#", 1)[0] for value in values))


def docs_policies(app: FastAPI) -> dict[str, ContentSecurityPolicy]:
    """Return path -> policy for the docs pages ``app`` serves (none when docs are off)."""
    policies: dict[str, ContentSecurityPolicy] = {}
    if not app.openapi_url:
        return policies
    if app.docs_url:
        redirect = app.swagger_ui_oauth2_redirect_url
        swagger = get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        ).body
        policies[app.docs_url] = policy_from_html(bytes(swagger).decode())
        if redirect:
            page = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()
            policies[redirect] = policy_from_html(page)
    if app.redoc_url:
        redoc = get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc")
        fonts = {"font-src": ["https://fonts.gstatic.com"], "worker-src": ["blob:"]}
        policies[app.redoc_url] = policy_from_html(bytes(redoc.body).decode(), extra=fonts)
    return policies
