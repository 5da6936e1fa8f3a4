"""Rate limiting: policies, key functions, the engine over ``limits.aio``, and headers.

The ASGI adapter is :class:`fastapi_enterprise.middleware.rate_limit.RateLimitMiddleware`.
"""

from __future__ import annotations

from fastapi_enterprise.ratelimit.keys import api_key_header, client_ip, composite, user
from fastapi_enterprise.ratelimit.limiter import (
    Decision,
    RateLimiter,
    RateLimitStats,
    create_storage,
)
from fastapi_enterprise.ratelimit.memory import BoundedMemoryStorage
from fastapi_enterprise.ratelimit.policy import (
    RateLimitPolicy,
    parse_limits,
    rate_limit,
    rate_limit_exempt,
    route_key,
)
from fastapi_enterprise.ratelimit.readiness import storage_readiness

__all__ = [
    "BoundedMemoryStorage",
    "Decision",
    "RateLimitPolicy",
    "RateLimitStats",
    "RateLimiter",
    "api_key_header",
    "client_ip",
    "composite",
    "create_storage",
    "parse_limits",
    "rate_limit",
    "rate_limit_exempt",
    "route_key",
    "storage_readiness",
    "user",
]
