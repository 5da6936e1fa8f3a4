"""``ProxyHeadersMiddleware``: apply the client-IP resolver to the scope, once, first.

After it, ``scope["client"]`` holds the real client address and ``scope["scheme"]`` the
scheme the client used, so every later layer (HSTS, HTTPS redirect, access log, rate
limits) and Starlette's own ``request.client`` / ``request.url`` agree, and no layer parses
forwarded headers again. The resolved :class:`~fastapi_enterprise.client_ip.ClientInfo`
(with the original socket peer) is available through
:func:`~fastapi_enterprise.client_ip.get_client_info`.

An IPv4-mapped IPv6 peer (``::ffff:192.0.2.1``, every IPv4 client of a dual-stack
listener) is rewritten to IPv4 with or without trusted proxies.

Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``, ``Forwarded``) from a peer
that is not a trusted proxy are ignored, and reported as a
``proxy.untrusted_forwarded_headers`` security event at most once per
``report_interval``, with the number of such requests since the last report: either a
proxy in front of the app that is missing from the trusted proxies (then every client
shares the proxy's address and rate-limit budget), or a client forging its address.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise.client_ip import (
    _SCOPE_KEY,
    ClientIPResolver,
    TrustedProxies,
    client_address,
)
from fastapi_enterprise.security_events import SecurityEvent, security_event

__all__ = ["ProxyHeadersMiddleware"]

_FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"})


class ProxyHeadersMiddleware:
    """Rewrite ``client`` and ``scheme`` from trusted proxies' forwarded headers.

    Args:
        app: The ASGI app to wrap.
        trusted_proxies: Proxy addresses or CIDR networks, or a
            :class:`~fastapi_enterprise.client_ip.TrustedProxies` (see
            :class:`~fastapi_enterprise.client_ip.ClientIPResolver`).
        resolver: A ready resolver instead of ``trusted_proxies``.
        max_hops: Most ``X-Forwarded-For`` entries considered.
        report_interval: Seconds between two ``proxy.untrusted_forwarded_headers``
            events; ``None`` never reports.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[str] | TrustedProxies = (),
        resolver: ClientIPResolver | None = None,
        max_hops: int = 20,
        report_interval: float | None = 60.0,
    ) -> None:
        if report_interval is not None and report_interval < 0:
            raise ValueError("report_interval must be >= 0")
        self.app = app
        self.resolver = resolver or ClientIPResolver(trusted_proxies, max_hops=max_hops)
        self.report_interval = report_interval
        self._next_report = 0.0
        self._unreported = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the client of HTTP and WebSocket requests; pass lifespan through."""
        if scope["type"] in ("http", "websocket"):
            self.resolve(scope)
        await self.app(scope, receive, send)

    def resolve(self, scope: Scope) -> None:
        """Rewrite the ``client`` and ``scheme`` of an HTTP or WebSocket ``scope``.

        The stage this middleware runs, also run by ``install()``'s fused pipeline.
        """
        if not self.resolver.trusts_anyone:
            # Without trusted proxies the socket peer is the client: nothing to resolve
            # beyond unmapping an IPv4-mapped peer.
            client = scope.get("client")
            if client and ":" in client[0]:
                host = client_address(scope)
                if host != client[0]:
                    scope["client"] = (host, client[1])
            if self.report_interval is not None:
                # One pass over the header names (lower case, as ASGI requires), no
                # allocation: the only cost this adds to a request.
                for name, _value in scope.get("headers", ()):
                    if name in _FORWARDING_HEADERS:
                        self._notice_forwarding(scope, self.report_interval)
                        break
            return
        info = self.resolver.resolve(scope)
        if scope["type"] == "http":
            scope[_SCOPE_KEY] = info
        client = scope.get("client")
        # A WebSocket scope is left exactly as it came unless a trusted proxy spoke (or
        # the peer was IPv4-mapped).
        if info.via_proxy:
            scope["client"] = (info.ip, client[1] if client else 0)
            scope["scheme"] = info.scheme
        else:
            if client and info.ip != client[0]:
                scope["client"] = (info.ip, client[1])
            if self.report_interval is not None and not self.resolver.peer_is_trusted(scope):
                for name, _value in scope.get("headers", ()):
                    if name in _FORWARDING_HEADERS:
                        self._notice_forwarding(scope, self.report_interval)
                        break

    def _notice_forwarding(self, scope: Scope, interval: float) -> None:
        """Count a request from an untrusted peer with forwarding headers; report when due."""
        self._unreported += 1
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + interval
        count, self._unreported = self._unreported, 0
        present = sorted(
            {
                name.decode("latin-1")
                for name, _value in scope.get("headers", ())
                if name in _FORWARDING_HEADERS
            }
        )
        security_event(
            SecurityEvent.UNTRUSTED_FORWARDED_HEADERS,
            peer=client_address(scope),
            headers=",".join(present),
            requests=count,
            interval_seconds=interval,
            trusted_proxies_configured=self.resolver.trusts_anyone,
        )
