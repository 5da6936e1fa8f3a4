"""``ProxyHeadersMiddleware``: apply the client-IP resolver to the scope, once, first.

After it, ``scope["client"]`` holds the real client address and ``scope["scheme"]`` the
scheme the client used, so every later layer (HSTS, HTTPS redirect, access log, rate
limits) and Starlette's own ``request.client`` / ``request.url`` agree, and no layer parses
forwarded headers again. The resolved :class:`~fastapi_enterprise.client_ip.ClientInfo`
(with the original socket peer) is available through
:func:`~fastapi_enterprise.client_ip.get_client_info`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise.client_ip import _SCOPE_KEY, ClientIPResolver

__all__ = ["ProxyHeadersMiddleware"]


class ProxyHeadersMiddleware:
    """Rewrite ``client`` and ``scheme`` from trusted proxies' forwarded headers.

    Args:
        app: The ASGI app to wrap.
        trusted_proxies: Proxy addresses or CIDR networks (see
            :class:`~fastapi_enterprise.client_ip.ClientIPResolver`).
        resolver: A ready resolver instead of ``trusted_proxies``.
        max_hops: Most ``X-Forwarded-For`` entries considered.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        resolver: ClientIPResolver | None = None,
        max_hops: int = 20,
    ) -> None:
        self.app = app
        self.resolver = resolver or ClientIPResolver(trusted_proxies, max_hops=max_hops)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the client of HTTP and WebSocket requests; pass lifespan through."""
        if scope["type"] not in ("http", "websocket") or not self.resolver.trusts_anyone:
            # Without trusted proxies the socket peer is the client: nothing to resolve.
            await self.app(scope, receive, send)
            return
        info = self.resolver.resolve(scope)
        if scope["type"] == "http":
            scope[_SCOPE_KEY] = info
        # A WebSocket scope is left exactly as it came unless a trusted proxy spoke.
        if info.via_proxy:
            client = scope.get("client")
            port = client[1] if client else 0
            scope["client"] = (info.ip, port)
            scope["scheme"] = info.scheme
        await self.app(scope, receive, send)
