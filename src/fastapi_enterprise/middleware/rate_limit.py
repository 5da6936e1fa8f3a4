"""``RateLimitMiddleware``: budgets keyed on the route template, 429 as problem+json.

Before calling the app, the middleware asks the route resolver
(:class:`~fastapi_enterprise.routing.RouteMatcher`, FastAPI's own matching) which route
will handle the request, so the key is the route's template: ``/login``, ``/login/``,
``//login``, ``/log%69n``, ``HEAD /login``, ``/items/1`` and ``/items/2`` cannot open a
fresh budget. Requests that match nothing (404 scans, slash redirects) are charged to the
app-wide default. The resolver remembers the template in the scope, so the metrics and
the access log label a 429 or 503 with its route too.

A rejection is a 429 with the IETF ``quota-exceeded`` problem type, ``Retry-After`` and
the ``RateLimit-Policy`` (every limit of the route) and ``RateLimit`` fields; it is
recorded as a ``rate_limit.rejected`` security event. When the storage is down, the
policy's fail mode applies: ``open`` lets the request through (counted), ``closed``
answers 503 with ``Retry-After``. A request whose check could not start because every
storage connection stayed busy for ``queue_timeout`` is answered 503 with
``Retry-After: 1`` whatever the fail mode: a burst the storage cannot absorb is shed,
never let through unchecked (in shadow mode the fail mode applies instead).

At startup (the lifespan), the storage is asked to answer once: when it does not, a
warning is logged and requests skip it until the breaker's cooldown is over, or, with
``startup_check="require"``, the application refuses to start. At shutdown, after the
app's, the storage's connections are closed. ``install()`` turns both off
(``manage_storage=False``) and does them in its one lifespan wrapper instead, in the order
``docs/how-to/middleware-order.md`` gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise._http import PathPrefixes
from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.ratelimit.headers import legacy_headers, ratelimit_headers
from fastapi_enterprise.ratelimit.keys import client_ip
from fastapi_enterprise.ratelimit.limiter import Decision, RateLimiter
from fastapi_enterprise.ratelimit.policy import (
    KeyFunction,
    RateLimitPolicy,
    describe,
    policy_of,
    route_key,
    split_route_key,
)
from fastapi_enterprise.routing import RouteMatcher
from fastapi_enterprise.security_events import SecurityEvent, security_event

__all__ = ["QUOTA_EXCEEDED_TYPE", "RateLimitMiddleware"]

QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
"""The problem type draft-ietf-httpapi-ratelimit-headers registers for a 429."""

logger = logging.getLogger("fastapi_enterprise.ratelimit")


class RateLimitMiddleware:
    """Enforce rate limits per route template and client.

    Args:
        app: The ASGI app to wrap.
        limiter: The engine (storage, strategy, breaker); in-memory by default.
        default: App-wide budget per client for routes without their own policy and for
            unmatched requests; ``None`` for none.
        routes: Route template to policy (``"10/second;200/hour"`` or a
            :class:`RateLimitPolicy`); a ``@rate_limit`` on the endpoint wins.
        exempt_paths: Path prefixes never limited (probes, scrapes).
        key: Identity function; the client IP (IPv6 by /64) by default.
        fail_mode: ``open`` or ``closed`` when storage is down, unless the policy says.
        shadow: Report would-be rejections without rejecting, unless the policy says.
        headers: Send ``RateLimit-Policy``/``RateLimit`` on successful responses too (one
            more storage read per request).
        legacy_headers: Also send ``X-RateLimit-Limit``/``-Remaining``/``-Reset``.
        startup_check: At startup, ask the storage to answer: ``warn`` logs a warning
            when it does not, ``require`` makes the startup fail, ``off`` skips it.
        manage_storage: Check the storage at startup (``startup_check``) and close it
            at shutdown, in the lifespan events that pass through. Off when the app's
            lifespan does both (as ``install()``'s does, calling :meth:`check_storage`
            and :meth:`RateLimiter.aclose`): then nothing is done twice.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter | None = None,
        default: str | RateLimitPolicy | None = "100/minute",
        routes: Mapping[str, str | RateLimitPolicy] | None = None,
        exempt_paths: Iterable[str] = (),
        key: KeyFunction = client_ip,
        fail_mode: Literal["open", "closed"] = "open",
        shadow: bool = False,
        headers: bool = False,
        legacy_headers: bool = False,
        startup_check: Literal["off", "warn", "require"] = "warn",
        manage_storage: bool = True,
    ) -> None:
        self.app = app
        self.limiter = limiter or RateLimiter()
        self.default = _policy(default) if default is not None else None
        self.routes = {route_key(key): _policy(value) for key, value in (routes or {}).items()}
        # Whether any key names a method: only then is a second lookup needed per request.
        self._by_method = any(split_route_key(key)[0] for key in self.routes)
        self.exempt_paths = tuple(exempt_paths)
        self._exempt = PathPrefixes(self.exempt_paths)
        self.key = key
        self.fail_mode = fail_mode
        self.shadow = shadow
        self.headers = headers
        self.legacy = legacy_headers
        self.startup_check = startup_check
        self.manage_storage = manage_storage
        self._matcher = RouteMatcher()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check HTTP requests against their budget; check and close the storage."""
        if scope["type"] == "lifespan" and self.manage_storage:
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http" or self.is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        template, endpoint = self._matcher.match(scope)
        declared = policy_of(endpoint)
        if declared == "exempt":
            await self.app(scope, receive, send)
            return
        policy, budget, name = self.policy_for(declared, template, scope["method"], endpoint)
        if policy is None:
            await self.app(scope, receive, send)
            return
        identity = (policy.key or self.key)(scope) or client_ip(scope)
        limiter = self.limiter
        decision = limiter.check_now(policy, budget, identity, with_stats=self.headers)
        if decision is None:
            decision = await limiter.check(policy, budget, identity, with_stats=self.headers)
        stats = limiter.stats
        if not decision.available:
            if decision.overloaded and not self._shadow(policy):
                await self._unavailable(scope, receive, send, decision)
                return
            if (policy.fail or self.fail_mode) == "closed":
                stats.fail_closed += 1
                await self._unavailable(scope, receive, send, decision)
                return
            stats.fail_open += 1
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            shadow = self._shadow(policy)
            security_event(
                SecurityEvent.RATE_LIMITED,
                route=template,
                budget=budget,
                limits=describe(policy.limits),
                shadow=shadow,
            )
            if not shadow:
                stats.rejected += 1
                await self._reject(scope, receive, send, decision, name, policy)
                return
            stats.shadow_rejected += 1
        else:
            stats.allowed += 1
        extra = self._fields(name, decision, policy) if self.headers else []
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_ratelimit(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_ratelimit)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the storage before the app starts; close it after the app stopped."""
        first: Message | None = await receive()
        if first is not None and first["type"] == "lifespan.startup":
            refusal = await self.check_storage()
            if refusal is not None:
                # Before the app's own startup: nothing of it has to be undone.
                await send({"type": "lifespan.startup.failed", "message": refusal})
                return

        async def receive_first_again() -> Message:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()

        async def send_closing_storage(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.limiter.aclose()
            await send(message)

        await self.app(scope, receive_first_again, send_closing_storage)

    def policy_for(
        self,
        declared: RateLimitPolicy | None,
        template: str,
        method: str = "GET",
        endpoint: object = None,
    ) -> tuple[RateLimitPolicy | None, str, str]:
        """The policy for a request, its storage budget name and its header name.

        The endpoint's own policy wins (its own budget: two endpoints of one template,
        ``GET`` and ``POST``, each with a ``@rate_limit``, do not share one), then the
        routes' ``METHOD /template`` one (a ``HEAD`` request counts as ``GET``), then
        their ``/template`` one, then the app-wide default.
        """
        if declared is not None:
            if declared.scope is not None:
                return declared, f"scope:{declared.scope}", declared.scope
            if endpoint is None:
                return declared, f"route:{template}", "route"
            return declared, f"route:{template}#{_endpoint_name(endpoint)}", "route"
        key, policy = template, None
        if self._by_method:
            key = f"{'GET' if method == 'HEAD' else method} {template}"
            policy = self.routes.get(key)
        if policy is None:
            key, policy = template, self.routes.get(template)
        if policy is None:
            return self.default, "default", "default"
        if policy.scope is not None:
            return policy, f"scope:{policy.scope}", policy.scope
        return policy, f"route:{key}", "route"

    def _shadow(self, policy: RateLimitPolicy) -> bool:
        return self.shadow if policy.shadow is None else policy.shadow

    def _fields(
        self, name: str, decision: Decision, policy: RateLimitPolicy
    ) -> list[tuple[bytes, bytes]]:
        fields = ratelimit_headers(name, decision.windows, policy.limits)
        if self.legacy:
            fields += legacy_headers(decision.windows)
        return fields

    async def _reject(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: Decision,
        name: str,
        policy: RateLimitPolicy,
    ) -> None:
        headers = {"Retry-After": str(decision.retry_after)}
        headers.update(
            (key.decode(), value.decode()) for key, value in self._fields(name, decision, policy)
        )
        response = problem_response(
            429,
            type=QUOTA_EXCEEDED_TYPE,
            title="Request cannot be satisfied as assigned quota has been exceeded",
            detail=f"Rate limit exceeded ({describe(policy.limits)}). "
            f"Retry in {decision.retry_after} s.",
            instance=scope.get("path"),
            headers=headers,
        )
        await response(scope, receive, send)

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, decision: Decision
    ) -> None:
        detail = (
            "Too many requests are waiting for a rate-limit check; retry shortly."
            if decision.overloaded
            else "The rate-limit service is unavailable; this route does not run without it."
        )
        response = problem_response(
            503, detail=detail, headers={"Retry-After": str(decision.retry_after)}
        )
        await response(scope, receive, send)

    async def check_storage(self) -> str | None:
        """Ask the storage to answer, as at startup; return why the start must fail, if so.

        Does what ``startup_check`` says: nothing (``off``); a warning when the storage
        does not answer (``warn``: requests skip it until the breaker's cooldown is
        over); or the reason the application must not start (``require``).
        """
        if self.startup_check == "off":
            return None
        error = await self.limiter.verify()
        if error is None:
            return None
        if self.startup_check == "require":
            return (
                f"the rate-limit storage did not answer at startup ({error}) and requests "
                "are refused without it (fail mode closed)"
            )
        fallback = self.limiter.fallback is not None
        logger.warning(
            "rate-limit storage did not answer at startup (%s); until it does, %s",
            error,
            "the in-memory fallback limits each process"
            if fallback
            else f"requests go unchecked (fail mode {self.fail_mode})",
        )
        return None

    def is_exempt(self, path: str) -> bool:
        """Whether ``path`` is under an exempt prefix."""
        return self._exempt.covers(path)


def _endpoint_name(endpoint: object) -> str:
    """The endpoint's module and qualified name, as a budget's name.

    The same in every process running the same code, so instances sharing a Redis share
    the endpoint's budget.
    """
    module = getattr(endpoint, "__module__", "")
    return f"{module}.{getattr(endpoint, '__qualname__', type(endpoint).__qualname__)}"


def _policy(value: str | RateLimitPolicy) -> RateLimitPolicy:
    return value if isinstance(value, RateLimitPolicy) else RateLimitPolicy.from_string(value)
