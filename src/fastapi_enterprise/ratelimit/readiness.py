"""The readiness check of the rate-limit storage: visible for as long as it is away."""

from __future__ import annotations

from fastapi_enterprise.health import HealthCheck, HealthStatus
from fastapi_enterprise.ratelimit.limiter import RateLimiter

__all__ = ["storage_readiness"]


def storage_readiness(limiter: RateLimiter, *, required: bool = False) -> HealthCheck:
    """A readiness check of ``limiter``'s storage, for :class:`~fastapi_enterprise.HealthChecks`.

    While the storage is unavailable, the check reports ``degraded`` (still ready), or
    ``fail`` when requests are refused without it, with how long it has been away, when
    the next probe is due and what happens to requests meanwhile. An open breaker whose
    cooldown is over is probed here, so an idle server also notices the storage is back.

    Args:
        limiter: The engine whose storage is checked.
        required: Requests are refused without the storage (fail mode ``closed`` and no
            memory fallback): its absence makes the app not ready.
    """

    async def rate_limit() -> HealthStatus:
        if await limiter.probe():
            return HealthStatus("ok")
        return HealthStatus(
            "fail" if required else "degraded",
            {
                "storage": "unavailable",
                "unavailable_s": round(limiter.unavailable_for(), 1),
                "next_probe_s": round(limiter.breaker.remaining(), 1),
                "requests": "refused"
                if required
                else "limited per process"
                if limiter.fallback is not None
                else "unchecked",
            },
        )

    return rate_limit
