"""``CORSPolicyMiddleware``: Starlette's CORSMiddleware with a validated policy.

The matching and header logic is Starlette's; this subclass adds what it leaves to you:

- the origin policy is a :class:`~fastapi_enterprise.cors_policy.CORSPolicy`, checked
  when the middleware is built: ``*`` or a regex matching arbitrary hosts with
  credentials, an unanchored origin regex, a regex with unescaped dots
  (``.example.com`` matches ``evil-example.com``), a ``null`` origin or an origin with
  a path are refused with a clear error (``install()`` builds it at startup);
- a response to a disallowed, ``null`` or look-alike origin carries no
  ``Access-Control-*`` header at all (Starlette adds ``Allow-Credentials`` and
  ``Expose-Headers`` whenever an ``Origin`` is present);
- a rejected preflight is a problem+json 400, recorded as a ``cors.rejected`` security
  event;
- ``X-Request-ID`` and the rate-limit headers are exposed to browsers by default.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Send

from fastapi_enterprise.cors_policy import CORSPolicy, origin_regex_problems
from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.security_events import SecurityEvent, security_event

__all__ = ["DEFAULT_EXPOSE_HEADERS", "CORSPolicyMiddleware", "origin_regex_problems"]

DEFAULT_EXPOSE_HEADERS = (
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
)
"""Response headers browsers may read by default: the request ID and the rate limits."""


class CORSPolicyMiddleware(CORSMiddleware):
    """Starlette's CORS handling behind a policy that is validated when it is built.

    Takes Starlette's arguments (keyword-only here), plus ``expose_headers`` defaulting
    to :data:`DEFAULT_EXPOSE_HEADERS`.

    Raises:
        CORSPolicyError: The policy is unsafe or malformed (a ``ValueError``; see the
            module docstring).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        expose_headers: Collection[str] = DEFAULT_EXPOSE_HEADERS,
        max_age: int = 600,
    ) -> None:
        self.policy = CORSPolicy(tuple(allow_origins), allow_origin_regex, allow_credentials)
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials,
            allow_origin_regex=allow_origin_regex,
            expose_headers=expose_headers,
            max_age=max_age,
        )

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether ``origin`` may make cross-origin requests; ``null`` never may."""
        if origin == "null":
            return False
        return super().is_allowed_origin(origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answer a preflight; a rejected one is a problem+json 400 without CORS headers."""
        response = super().preflight_response(request_headers=request_headers)
        if response.status_code == 200:
            return response
        origin = request_headers.get("origin", "")
        failures = bytes(response.body).decode("latin-1").removeprefix("Disallowed CORS ")
        security_event(
            SecurityEvent.CORS_REJECTED,
            origin=origin[:256],
            reasons=failures,
            preflight=True,
        )
        return problem_response(
            400,
            detail=f"CORS preflight rejected: {failures}.",
            headers={"Vary": "Origin"},
        )

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Add CORS headers to a simple response, only for an allowed origin."""
        origin = request_headers.get("origin")
        if message["type"] != "http.response.start" or origin is None:
            await send(message)
            return
        if self.is_allowed_origin(origin=origin):
            await super().send(message, send, request_headers)
            return
        security_event(SecurityEvent.CORS_REJECTED, origin=origin[:256], preflight=False)
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        headers.add_vary_header("Origin")
        await send(message)
