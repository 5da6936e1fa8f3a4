"""``SecurityHeadersMiddleware``: the protective headers, on every response, exactly once.

Every HTTP response gets the set (2xx, redirects, 404/405/413/429, CORS preflights, and
unhandled-exception 500s, which this layer answers itself so the headers are not lost):

- ``Content-Security-Policy`` (strict API policy by default; per-path policies, so the
  docs pages can carry their own; report-only mode; a fresh nonce per request);
- ``Strict-Transport-Security``, only when the request came over HTTPS (as resolved from
  trusted proxies by ``ProxyHeadersMiddleware``): HSTS over plain HTTP is ignored by
  browsers and pins development hosts by mistake;
- ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``,
  ``Permissions-Policy``, ``Cross-Origin-Opener-Policy``, ``Cross-Origin-Resource-Policy``,
  and ``Cache-Control: no-store``.

A header the endpoint set itself wins (``override=False``), so a route can choose its own
``Cache-Control`` or CSP, and there is still exactly one of it; with ``override=True`` the
middleware's value replaces it. Other headers, such as several ``Set-Cookie``, pass
through untouched. All header bytes are built in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise._http import under_prefix
from fastapi_enterprise.context import _reset_csp_nonce, _set_csp_nonce
from fastapi_enterprise.csp import API_POLICY, ContentSecurityPolicy, new_nonce
from fastapi_enterprise.errors import answer_exception

__all__ = [
    "DEFAULT_PERMISSIONS_POLICY",
    "REFERRER_POLICIES",
    "SecurityHeadersMiddleware",
    "check_frame_options",
    "check_referrer_policy",
    "hsts_value",
]

DEFAULT_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()"
)
"""Deny the powerful browser features an API never needs."""

_MIN_PRELOAD_AGE = 31_536_000

REFERRER_POLICIES = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)
"""The ``Referrer-Policy`` tokens browsers know (W3C Referrer Policy)."""


def check_frame_options(value: str | None) -> str | None:
    """Validate an ``X-Frame-Options`` value: ``DENY`` or ``SAMEORIGIN``, in any case.

    Returns:
        The value in upper case, or ``None`` (send no header) for ``None`` or ``""``.

    Raises:
        ValueError: Any other value. ``ALLOWALL`` is not a value and ``ALLOW-FROM`` is
            obsolete: browsers ignore both, so the page can be framed by anyone. To allow
            framing, send no header and set the CSP ``frame-ancestors`` directive.
    """
    if value is None or not value.strip():
        return None
    normalised = value.strip().upper()
    if normalised not in ("DENY", "SAMEORIGIN"):
        raise ValueError(
            "X-Frame-Options must be DENY or SAMEORIGIN (browsers ignore any other value); "
            "leave it empty and use the CSP frame-ancestors directive to allow framing"
        )
    return normalised


def check_referrer_policy(value: str | None) -> str | None:
    """Validate a ``Referrer-Policy`` value: one token or a comma-separated fallback list.

    Returns:
        The value normalised to lower case, or ``None`` (send no header) for ``None`` or
        ``""``.

    Raises:
        ValueError: A token is not one of :data:`REFERRER_POLICIES` (the message gives
            its position, not its text).
    """
    if value is None or not value.strip():
        return None
    tokens = [token.strip().lower() for token in value.split(",")]
    for position, token in enumerate(tokens, start=1):
        if token not in REFERRER_POLICIES:
            raise ValueError(
                f"Referrer-Policy token {position} is not one of "
                + ", ".join(sorted(REFERRER_POLICIES))
            )
    return ", ".join(tokens)


def hsts_value(max_age: int, *, include_subdomains: bool = True, preload: bool = False) -> str:
    """Build a ``Strict-Transport-Security`` value, refusing an invalid preload request.

    Raises:
        ValueError: ``max_age`` is negative, or ``preload`` lacks its prerequisites
            (one year and includeSubDomains, as the browsers' preload list requires).
    """
    if max_age < 0:
        raise ValueError("HSTS max-age must not be negative")
    if preload and (max_age < _MIN_PRELOAD_AGE or not include_subdomains):
        raise ValueError("HSTS preload needs max-age >= 31536000 and includeSubDomains")
    value = f"max-age={max_age}"
    if include_subdomains:
        value += "; includeSubDomains"
    if preload:
        value += "; preload"
    return value


class SecurityHeadersMiddleware:
    """Add security headers to every HTTP response.

    Args:
        app: The ASGI app to wrap.
        csp: The policy for every path without a more specific one; ``None`` sends none.
        path_policies: Path prefix to policy (or ``None`` for no CSP), longest prefix
            wins, e.g. ``{"/docs": docs_policy}``.
        hsts_max_age: HSTS max-age in seconds; ``None`` disables HSTS (development).
        hsts_include_subdomains: Add ``includeSubDomains``.
        hsts_preload: Add ``preload`` (checked for its prerequisites).
        frame_options: ``X-Frame-Options``: ``DENY`` or ``SAMEORIGIN``; ``None`` to omit.
        referrer_policy: ``Referrer-Policy`` value (known tokens only); ``None`` to omit.
        permissions_policy: ``Permissions-Policy`` value; ``None`` to omit.
        cross_origin_opener_policy: ``Cross-Origin-Opener-Policy``; ``None`` to omit.
        cross_origin_resource_policy: ``Cross-Origin-Resource-Policy``; ``None`` to omit.
        cache_control: ``Cache-Control`` for responses that set none; ``None`` to omit.
        extra_headers: More headers to add, e.g. ``Reporting-Endpoints``.
        override: Replace headers the endpoint set instead of keeping them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        csp: ContentSecurityPolicy | None = API_POLICY,
        path_policies: Mapping[str, ContentSecurityPolicy | None] | None = None,
        hsts_max_age: int | None = 31_536_000,
        hsts_include_subdomains: bool = True,
        hsts_preload: bool = False,
        frame_options: str | None = "DENY",
        referrer_policy: str | None = "no-referrer",
        permissions_policy: str | None = DEFAULT_PERMISSIONS_POLICY,
        cross_origin_opener_policy: str | None = "same-origin",
        cross_origin_resource_policy: str | None = "same-origin",
        cache_control: str | None = "no-store",
        extra_headers: Mapping[str, str] | None = None,
        override: bool = False,
    ) -> None:
        static = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": check_frame_options(frame_options),
            "Referrer-Policy": check_referrer_policy(referrer_policy),
            "Permissions-Policy": permissions_policy,
            "Cross-Origin-Opener-Policy": cross_origin_opener_policy,
            "Cross-Origin-Resource-Policy": cross_origin_resource_policy,
            "Cache-Control": cache_control,
            **(extra_headers or {}),
        }
        for name, value in static.items():
            if value is not None and ("\r" in value or "\n" in value or "\x00" in value):
                raise ValueError(f"header {name} contains a control character")
        self.app = app
        self.static = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in static.items()
            if value is not None
        ]
        self.hsts = (
            None
            if hsts_max_age is None
            else (
                b"strict-transport-security",
                hsts_value(
                    hsts_max_age, include_subdomains=hsts_include_subdomains, preload=hsts_preload
                ).encode("latin-1"),
            )
        )
        self.default_policy = csp
        self.path_policies = sorted(
            (path_policies or {}).items(), key=lambda item: len(item[0]), reverse=True
        )
        self._prefixes = [
            (prefix, under_prefix(prefix), policy) for prefix, policy in self.path_policies
        ]
        self.override = override
        # Everything but a nonce is known now: each policy's header list, over plain
        # HTTP and over HTTPS, is built once; a nonce policy renders its CSP per request.
        self._fixed: dict[tuple[int, bool], list[tuple[bytes, bytes]]] = {}
        for policy in {id(p): p for p in (csp, *dict(self.path_policies).values())}.values():
            for https in (False, True):
                self._fixed[id(policy), https] = self._headers(policy, None, https)

    def policy_for(self, path: str) -> ContentSecurityPolicy | None:
        """The CSP that applies to ``path``: longest matching prefix, else the default."""
        for prefix, under, policy in self._prefixes:
            if path == prefix or path.startswith(under):
                return policy
        return self.default_policy

    def _headers(
        self, policy: ContentSecurityPolicy | None, nonce: str | None, https: bool
    ) -> list[tuple[bytes, bytes]]:
        headers = list(self.static)
        if policy is not None and (nonce is not None or not policy.uses_nonce):
            headers.append(
                (
                    policy.header_name.lower().encode("latin-1"),
                    policy.render(nonce).encode("latin-1"),
                )
            )
        if self.hsts is not None and https:
            headers.append(self.hsts)
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; non-HTTP scopes pass through untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers, nonce = self.headers_for(scope)
        response_started = False

        async def send_with_security_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message = {**message, "headers": self.merged(message.get("headers", ()), headers)}
            await send(message)

        token = _set_csp_nonce(nonce)
        try:
            await self.app(scope, receive, send_with_security_headers)
        except Exception as exc:  # noqa: BLE001 - answered here so the 500 keeps its headers
            await answer_exception(
                scope, receive, send_with_security_headers, exc, response_started=response_started
            )
        finally:
            _reset_csp_nonce(token)

    def headers_for(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], str | None]:
        """The headers an HTTP request's response gets, and its CSP nonce if any.

        Stage code this middleware and ``install()``'s fused pipeline share.
        """
        policy = self.policy_for(scope["path"])
        https = scope.get("scheme") == "https"
        if policy is not None and policy.uses_nonce:
            nonce = new_nonce()
            return self._headers(policy, nonce, https), nonce
        return self._fixed[id(policy), https], None

    def merged(
        self, existing: list[tuple[bytes, bytes]] | tuple[()], ours: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``ours`` merged into the app's headers: added where absent, or all replaced."""
        if self.override:
            own_names = {name for name, _ in ours}
            kept = [item for item in existing if item[0].lower() not in own_names]
            return [*kept, *ours]
        if not existing:
            return list(ours)
        present = {name.lower() for name, _ in existing}
        return [*existing, *[item for item in ours if item[0] not in present]]
