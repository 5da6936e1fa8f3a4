"""The rate-limit engine: ``limits.aio`` storages and strategies behind a circuit breaker.

Windows and Lua scripts are the ``limits`` package's; this module adds what a production
service needs around them:

- every storage call runs under a short timeout, so a hung Redis delays a request by at
  most that much;
- a circuit breaker: after a failure the storage is not asked again for
  ``breaker_cooldown`` seconds (one probe request then tests it), so a dead Redis costs
  one fast failure per interval instead of one per request, and enforcement resumes by
  itself when Redis comes back;
- an optional in-memory fallback that keeps enforcing the same limits per process while
  the shared storage is down;
- counters for decisions, rejections, storage errors and fail-open passes;
- a memory storage with a bounded number of keys, so a flood of distinct clients cannot
  grow it without limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import floor
from typing import Literal

import anyio
from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import (
    RateLimiter as LimitsRateLimiter,
)
from limits.storage import storage_from_string

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise._urls import storage_url_problem
from fastapi_enterprise.ratelimit.policy import RateLimitPolicy
from fastapi_enterprise.redaction import mask_dsn, mask_dsn_in_text

__all__ = [
    "STRATEGIES",
    "BoundedMemoryStorage",
    "Decision",
    "RateLimitStats",
    "RateLimiter",
    "create_storage",
]

Strategy = Literal["sliding-window-counter", "moving-window", "fixed-window"]
STRATEGIES: dict[str, type[LimitsRateLimiter]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
"""Strategy names accepted in settings, mapped to the ``limits.aio`` implementations."""

logger = logging.getLogger("fastapi_enterprise.ratelimit")


class BoundedMemoryStorage(MemoryStorage):
    """``limits``' async memory storage with a cap on the number of tracked keys.

    When a new key would exceed ``max_keys``, the oldest tenth of the keys is dropped
    first (their clients get a fresh budget early). Memory stays under roughly
    ``max_keys`` x 300 bytes, whatever the number of distinct clients.

    The counters of the fixed-window and sliding-window-counter strategies are kept
    with ``limits``' arithmetic but without its per-call overhead: a hit is one
    synchronous update (nothing else runs on the event loop in between, so no lock and
    no compare-and-revert is needed), and expired counters are swept at most every
    ``sweep_interval`` seconds instead of by a task started on every hit, which walks
    every key. Expired counters are also dropped as they are read.
    """

    def __init__(
        self, uri: str | None = None, *, max_keys: int = 100_000, sweep_interval: float = 5.0
    ) -> None:
        super().__init__(uri)
        self.max_keys = max_keys
        self.sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def _make_room(self, key: str) -> None:
        tracked = len(self.storage) + len(self.events)
        if tracked < self.max_keys or key in self.storage or key in self.events:
            return
        for table in (self.storage, self.events):
            for old in list(table)[: max(1, len(table) // 10)]:
                table.pop(old, None)
                self.expirations.pop(old, None)
                self.locks.pop(old, None)

    def _count(self, key: str, now: float) -> int:
        """The live value of a counter; an expired one is dropped."""
        if self.expirations.get(key, 0.0) <= now:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            return 0
        return self.storage.get(key, 0)

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        if now >= self._next_sweep:
            self._sweep(now)
        self._make_room(key)
        value = self._count(key, now) + amount
        self.storage[key] = value
        if value == amount:
            self.expirations[key] = now + expiry
        return value

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.sweep_interval
        expired = [key for key, expires in self.expirations.items() if expires <= now]
        for key in expired:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Increment a fixed-window counter, evicting old keys at the cap."""
        return self._add(key, expiry, amount, time.time())

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record moving-window entries, evicting old keys at the cap."""
        self._make_room(key)
        return await super().acquire_entry(key, limit, expiry, amount)

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        """Record a sliding-window-counter hit: ``limits``' weighting, in one step."""
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._count(previous_key, now)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        weighted = previous * previous_ttl / expiry + self._count(current_key, now)
        if floor(weighted) + amount > limit:
            return False
        # Kept for two windows: it is the previous window's count in the next one.
        self._add(current_key, 2 * expiry, amount, now)
        return True


@dataclass
class RateLimitStats:
    """Counters of what the limiter decided; exported by the metrics layer."""

    allowed: int = 0
    rejected: int = 0
    shadow_rejected: int = 0
    storage_errors: int = 0
    fail_open: int = 0
    fail_closed: int = 0
    fallback: int = 0


@dataclass(frozen=True)
class Decision:
    """The outcome of one check.

    Attributes:
        allowed: Whether the request is within every limit.
        windows: ``(limit, remaining, reset_after_seconds)`` of each limit that was read
            (all of them when stats were asked for, else the violated one).
        available: ``False`` when the storage could not answer (the fail mode applies).
        retry_after: Seconds until a retry can succeed (rejections, unavailability).
        degraded: Decided by the in-memory fallback because the storage was down.
    """

    allowed: bool
    windows: tuple[tuple[RateLimitItem, int, float], ...] = ()
    available: bool = True
    retry_after: int = 1
    degraded: bool = False


_ALLOWED = Decision(True)


@dataclass
class _Breaker:
    cooldown: float
    opened_at: float | None = None
    probing: bool = field(default=False)

    def allows_call(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at < self.cooldown or self.probing:
            return False
        self.probing = True  # one request tests the storage; the others still skip it
        return True

    def remaining(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (time.monotonic() - self.opened_at))

    def failure(self) -> bool:
        """Record a failure; return whether the breaker just opened (to warn once)."""
        just_opened = self.opened_at is None
        self.opened_at = time.monotonic()
        self.probing = False
        return just_opened

    def success(self) -> bool:
        """Record a success; return whether the breaker just closed."""
        recovered = self.opened_at is not None
        self.opened_at = None
        self.probing = False
        return recovered


def create_storage(
    uri: str, *, key_prefix: str = "fe-rl", memory_max_keys: int = 100_000
) -> Storage:
    """Build an async ``limits`` storage from a URI.

    ``memory://`` gives a :class:`BoundedMemoryStorage`; ``redis://``, ``rediss://``,
    ``redis+unix://``, ``redis+cluster://`` and ``redis+sentinel://`` use redis-py's
    asyncio client.

    Raises:
        ValueError: The URI is malformed or its scheme is not supported. The message
            shows the URI with its password masked, never the password.
        MissingExtraError: A Redis URI without the ``redis`` extra installed.
    """
    problem = storage_url_problem(uri)
    if problem is not None:
        raise ValueError(f"rate-limit storage URL {mask_dsn(uri)} {problem}")
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("memory", "async+memory"):
        return BoundedMemoryStorage(max_keys=memory_max_keys)
    try:
        import redis.asyncio  # noqa: F401 - only to fail early with the right advice
    except ImportError as exc:  # pragma: no cover - exercised by the tests_minimal session
        raise MissingExtraError(
            "redis", module="fastapi_enterprise.ratelimit", missing="redis"
        ) from exc
    target = uri if uri.startswith("async+") else "async+" + uri
    error: str | None = None
    try:
        storage = storage_from_string(target, implementation="redispy", key_prefix=key_prefix)
    except Exception as exc:  # noqa: BLE001 - limits' and redis-py's errors, all reworded
        # The client libraries quote the URL, password included: mask it, and raise
        # outside the except block so the original is neither cause nor context.
        error = mask_dsn_in_text(mask_dsn_in_text(str(exc), target), uri)
    if error is not None:
        raise ValueError(f"rate-limit storage URL {mask_dsn(uri)}: {error}")
    if not isinstance(storage, Storage):  # pragma: no cover - limits returns aio storages
        raise ValueError("rate-limit storage must be an async storage")
    return storage


class RateLimiter:
    """Checks requests against policies, surviving a slow or dead storage.

    Args:
        storage_uri: ``memory://`` (one process) or a Redis URI (shared).
        strategy: ``sliding-window-counter`` (default: flat cost, bursts bounded to twice
            the limit across a window boundary in the worst case), ``moving-window``
            (exact, cost grows with hits), or ``fixed-window`` (cheapest, bursts of 2x
            at boundaries).
        key_prefix: Prefix of every storage key.
        timeout: Seconds each storage check may take.
        breaker_cooldown: Seconds the storage is left alone after a failure.
        fallback_memory: While the storage is down, enforce the same limits per process.
        memory_max_keys: Cap on keys in memory storages.
        storage: A ready ``limits.aio`` storage instead of ``storage_uri``.
    """

    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        strategy: Strategy = "sliding-window-counter",
        key_prefix: str = "fe-rl",
        timeout: float = 0.25,
        breaker_cooldown: float = 5.0,
        fallback_memory: bool = False,
        memory_max_keys: int = 100_000,
        storage: Storage | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {sorted(STRATEGIES)}")
        if timeout <= 0 or breaker_cooldown < 0:
            raise ValueError("timeout must be positive and breaker_cooldown >= 0")
        # The strategy is part of the key: each strategy stores a different Redis type
        # under it, and switching strategies on a live Redis must not hit WRONGTYPE.
        self.storage = storage or create_storage(
            storage_uri, key_prefix=f"{key_prefix}:{strategy}", memory_max_keys=memory_max_keys
        )
        self.strategy = STRATEGIES[strategy](self.storage)
        self.fallback = (
            STRATEGIES[strategy](BoundedMemoryStorage(max_keys=memory_max_keys))
            if fallback_memory
            else None
        )
        self.local = isinstance(self.storage, MemoryStorage)
        self.timeout = timeout
        self.breaker = _Breaker(breaker_cooldown)
        self.stats = RateLimitStats()
        errors = self.storage.base_exceptions
        self._errors: tuple[type[BaseException], ...] = (
            (*errors, OSError, TimeoutError, asyncio.TimeoutError)
            if isinstance(errors, tuple)
            else (errors, OSError, TimeoutError, asyncio.TimeoutError)
        )

    async def check(
        self, policy: RateLimitPolicy, budget: str, identity: str, *, with_stats: bool = False
    ) -> Decision:
        """Charge one request of ``identity`` to ``budget`` under ``policy``.

        Never raises for storage problems: an unavailable storage gives a decision with
        ``available=False`` (or the fallback's answer), counted in :attr:`stats`.
        """
        if self.local:
            # In-process storage: no network to time out, nothing for a breaker to guard.
            return await _evaluate(self.strategy, policy, budget, identity, with_stats)
        if self.breaker.allows_call():
            try:
                with anyio.fail_after(self.timeout):
                    decision = await _evaluate(self.strategy, policy, budget, identity, with_stats)
            except self._errors as exc:
                self._storage_failed(exc)
            else:
                if self.breaker.success():
                    logger.warning("rate-limit storage is back; enforcement resumed")
                return decision
        retry = max(1, int(self.breaker.remaining() + 0.999))
        if self.fallback is not None:
            self.stats.fallback += 1
            decision = await _evaluate(self.fallback, policy, budget, identity, with_stats)
            return Decision(decision.allowed, decision.windows, True, decision.retry_after, True)
        return Decision(True, (), available=False, retry_after=retry)

    def _storage_failed(self, exc: BaseException) -> None:
        self.stats.storage_errors += 1
        if self.breaker.failure():
            # Once per outage, not once per request: the breaker keeps the rest quiet.
            logger.warning(
                "rate-limit storage failed (%s); skipping it for %.1f s",
                type(exc).__name__,
                self.breaker.cooldown,
            )

    async def reset(self) -> None:
        """Clear every counter of the storage (tests, incident response)."""
        await self.storage.reset()

    async def aclose(self) -> None:
        """Close the storage's connections (called at application shutdown)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()


async def _evaluate(
    strategy: LimitsRateLimiter,
    policy: RateLimitPolicy,
    budget: str,
    identity: str,
    with_stats: bool,
) -> Decision:
    violated: RateLimitItem | None = None
    for item in policy.limits:
        if not await strategy.hit(item, budget, identity, cost=policy.cost):
            violated = item
            break
    if violated is None and not with_stats:
        return _ALLOWED  # the common answer: one frozen instance, not one per request
    items: Sequence[RateLimitItem] = policy.limits if with_stats else (violated,)  # type: ignore[assignment]
    now = time.time()
    windows = []
    for item in items:
        stats = await strategy.get_window_stats(item, budget, identity)
        windows.append((item, max(0, stats.remaining), max(0.0, stats.reset_time - now)))
    if violated is None:
        return Decision(True, tuple(windows))
    reset = next(reset for item, _, reset in windows if item is violated)
    return Decision(False, tuple(windows), retry_after=max(1, int(reset + 0.999)))
