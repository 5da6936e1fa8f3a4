"""Rate-limit policies: what the budget is, whose it is, and what happens when storage fails.

Declared on an endpoint with the :func:`rate_limit` decorator, or per route template in
settings. A decorator was chosen over a dependency: it does not change the endpoint's
signature, it reads as a property of the route in code review, and the middleware can
check it (and OpenAPI can document it) without running anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from limits import RateLimitItem, parse_many
from starlette.types import Scope

__all__ = [
    "KeyFunction",
    "RateLimitPolicy",
    "describe",
    "parse_limits",
    "policy_of",
    "rate_limit",
    "rate_limit_exempt",
    "route_key",
    "split_route_key",
]

KeyFunction = Callable[[Scope], str | None]
"""Returns the identity a budget belongs to (``None``: fall back to the client IP)."""

FailMode = Literal["open", "closed"]
F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__fastapi_enterprise_rate_limit__"
_EXEMPT = "__fastapi_enterprise_rate_limit_exempt__"


def parse_limits(value: str) -> tuple[RateLimitItem, ...]:
    """Parse ``"10/second;200/hour"`` into limit items.

    Raises:
        ValueError: The value is malformed. The message does not quote it (limits come
            from the environment, and errors end up in logs).
    """
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items:
        raise ValueError(
            "invalid rate limit: expected one or more of '<count>/<period>' separated by "
            "';', e.g. '10/second;1000/hour' (periods: second, minute, hour, day, month, year)"
        )
    return tuple(items)


_ROUTE_KEY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_key(key: str) -> str:
    """Normalise a key of ``rate_limit.routes``: ``/template`` or ``METHOD /template``.

    A bare template limits every method of the route with one budget; with a method
    (any case; one space before the template) only that method, with its own budget.
    ``HEAD`` requests count as ``GET``, so a ``GET`` key covers both and ``HEAD`` is not
    accepted as a key.

    Raises:
        ValueError: Not a template starting with ``/``, or an unknown method. The message
            names the method but not the key (it may come from the environment).
    """
    method, separator, template = key.strip().partition(" ")
    if not separator:
        method, template = "", method
    template = template.strip()
    if not template.startswith("/"):
        raise ValueError("a route key is '/template' or 'METHOD /template'")
    if not method:
        return template
    if method.upper() not in _ROUTE_KEY_METHODS:
        allowed = ", ".join(sorted(_ROUTE_KEY_METHODS))
        hint = " (HEAD requests count as GET)" if method.upper() == "HEAD" else ""
        raise ValueError(f"a route key's method is one of {allowed}{hint}")
    return f"{method.upper()} {template}"


def split_route_key(key: str) -> tuple[str, str]:
    """Split a key :func:`route_key` returned into ``(method, template)``.

    The method is ``""`` for a bare template.
    """
    if key.startswith("/"):
        return "", key
    method, _, template = key.partition(" ")
    return method, template


@dataclass(frozen=True)
class RateLimitPolicy:
    """One budget: its limits, its name, and how a request is charged against it.

    Attributes:
        limits: All must hold (``10/second`` and ``200/hour``).
        scope: Share this budget between every route that names the same scope (for
            example all login-like routes); ``None`` gives each route its own.
        cost: How many units one request uses.
        key: Identity the budget belongs to; the client IP (IPv6 by /64) by default.
        fail: ``open`` lets requests through when the storage is down; ``closed``
            answers 503 with ``Retry-After`` instead.
        shadow: Evaluate and report would-be rejections without rejecting.
    """

    limits: tuple[RateLimitItem, ...]
    scope: str | None = None
    cost: int = 1
    key: KeyFunction | None = None
    fail: FailMode | None = None
    shadow: bool | None = None
    text: str = field(default="", compare=False)

    @classmethod
    def from_string(
        cls,
        value: str,
        *,
        scope: str | None = None,
        cost: int = 1,
        key: KeyFunction | None = None,
        fail: FailMode | None = None,
        shadow: bool | None = None,
    ) -> RateLimitPolicy:
        """Build a policy from ``"10/second;200/hour"``."""
        if cost < 1:
            raise ValueError("cost must be at least 1")
        if scope is not None and (not scope or ":" in scope):
            raise ValueError("scope must be a non-empty name without ':'")
        return cls(parse_limits(value), scope, cost, key, fail, shadow, value)


def rate_limit(
    limits: str,
    *,
    scope: str | None = None,
    cost: int = 1,
    key: KeyFunction | None = None,
    fail: FailMode | None = None,
    shadow: bool | None = None,
) -> Callable[[F], F]:
    """Give an endpoint its own budget, replacing the app-wide default for it.

    Example:
        ```python
        @app.post("/login")
        @rate_limit("5/minute;20/hour", scope="auth", fail="closed")
        async def login(form: LoginForm) -> Token: ...
        ```

    Args:
        limits: One or more limits separated by ``;``.
        scope: Name a budget shared with other routes using the same name.
        cost: Units one request uses (an expensive export can cost 10).
        key: Identity function; the client IP by default.
        fail: ``"open"`` or ``"closed"`` when storage is down; the setting by default.
        shadow: Only report would-be rejections (rollout); the setting by default.

    Raises:
        ValueError: The limit string is malformed, or ``cost``/``scope`` invalid.
    """
    policy = RateLimitPolicy.from_string(
        limits, scope=scope, cost=cost, key=key, fail=fail, shadow=shadow
    )

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, policy)
        return endpoint

    return mark


def rate_limit_exempt(endpoint: F) -> F:
    """Exempt an endpoint from every rate limit (health probes, webhooks with their own)."""
    setattr(endpoint, _EXEMPT, True)
    return endpoint


def policy_of(endpoint: object) -> RateLimitPolicy | Literal["exempt"] | None:
    """The policy declared on ``endpoint``: a policy, ``"exempt"``, or ``None``."""
    if getattr(endpoint, _EXEMPT, False):
        return "exempt"
    declared = getattr(endpoint, _ATTRIBUTE, None)
    return declared if isinstance(declared, RateLimitPolicy) else None


def describe(limits: Sequence[RateLimitItem]) -> str:
    """Human text for docs: ``10 per 1 second; 200 per 1 hour``."""
    return "; ".join(str(item) for item in limits)
