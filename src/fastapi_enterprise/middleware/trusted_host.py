"""``TrustedHostMiddleware``: Starlette's host check, answering with the one error shape.

Host-header attacks (cache poisoning, password-reset links pointing elsewhere) need the
app to accept any ``Host``. This keeps Starlette's ``TrustedHostMiddleware`` patterns
(``example.com``, ``*.example.com``, ``*``), validation and www redirect; only the
rejection changes, from a plain-text 400 to a problem+json 400.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware as StarletteTrustedHost
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise.errors import problem_response

__all__ = ["TrustedHostMiddleware"]

_MAX_HOST = 255


class TrustedHostMiddleware(StarletteTrustedHost):
    """Reject requests whose ``Host`` is not one of ``allowed_hosts``.

    Args:
        app: The ASGI app to wrap.
        allowed_hosts: Host names or ``*.domain`` patterns; ``["*"]`` allows any.
        www_redirect: Redirect ``example.com`` to ``www.example.com`` when only the
            latter is allowed.

    Raises:
        ValueError: A pattern has a ``*`` anywhere but a leading ``*.``.
    """

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Sequence[str] = ("*",), www_redirect: bool = True
    ) -> None:
        try:
            super().__init__(app, allowed_hosts=list(allowed_hosts), www_redirect=www_redirect)
        except AssertionError as exc:
            raise ValueError(str(exc)) from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the host of HTTP requests; Starlette handles redirects and WebSockets."""
        if self.allow_any or scope["type"] != "http" or self._allowed(_host(scope)):
            await super().__call__(scope, receive, send)
            return
        await problem_response(
            400, detail="The Host header is missing or names a host this server does not serve."
        )(scope, receive, send)

    def _allowed(self, host: str | None) -> bool:
        """Starlette's rule, plus the www-redirect case (which Starlette then answers)."""
        if host is None:
            return False
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:])):
                return True
            if self.www_redirect and "www." + host == pattern:
                return True
        return False


def _host(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"host":
            text: str = value.decode("latin-1").strip().lower()
            if not text or len(text) > _MAX_HOST:
                return None
            if text.startswith("["):  # [v6]:port
                end = text.find("]")
                return text[: end + 1] if end > 0 else None
            return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return None
