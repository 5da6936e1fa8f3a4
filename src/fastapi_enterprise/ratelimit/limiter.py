"""The rate-limit engine: ``limits.aio`` storages and strategies behind a circuit breaker.

Windows and Lua scripts are the ``limits`` package's; this module adds what a production
service needs around them:

- a burst is never a storage failure: at most ``max_connections`` checks talk to the
  storage at once (the others queue for a connection, up to ``queue_timeout``), and the
  timeout counts only time in which the storage could have answered, not time spent
  queueing or waiting for a busy event loop (see :mod:`fastapi_enterprise._flow`);
- a circuit breaker (:mod:`.breaker`): ``threshold`` real failures in a row and the
  storage is left alone for ``breaker_cooldown`` seconds (one probe then tests it), so a
  dead Redis costs one fast failure per interval instead of one per request, and
  enforcement resumes by itself within one cooldown of Redis answering again;
- a connection that the server closed while it sat in the pool (a Redis restart, the
  server's idle ``timeout``) is replaced and the command sent again, once: it is not a
  storage failure;
- an optional in-memory fallback that keeps enforcing the same limits per process while
  the shared storage is down or saturated;
- counters for decisions, rejections, storage errors and fail-open passes, and a warning
  when the storage goes away, every ``report_interval`` seconds while it stays away, and
  when it is back.

``memory://`` is a :class:`~fastapi_enterprise.ratelimit.memory.BoundedMemoryStorage`
(imported here too): a flood of distinct clients cannot grow it without limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
from fastapi_enterprise._flow import Deadline, LoopClock, Slots
from fastapi_enterprise._urls import storage_url_problem
from fastapi_enterprise.ratelimit.breaker import CircuitBreaker
from fastapi_enterprise.ratelimit.memory import BoundedMemoryStorage
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


@dataclass
class RateLimitStats:
    """Counters of what the limiter decided; exported by the metrics layer.

    Attributes:
        allowed: Requests within their limits.
        rejected: Requests answered 429.
        shadow_rejected: Requests over their limits but served (shadow mode).
        storage_errors: Storage calls that failed or timed out.
        fail_open: Requests served unchecked because the storage was unavailable.
        fail_closed: Requests answered 503 because the storage was unavailable.
        fallback: Requests decided by the in-memory fallback.
        overloaded: Requests answered 503 because no storage connection came free
            within ``queue_timeout``.
        breaker_opens: Times the circuit breaker opened.
    """

    allowed: int = 0
    rejected: int = 0
    shadow_rejected: int = 0
    storage_errors: int = 0
    fail_open: int = 0
    fail_closed: int = 0
    fallback: int = 0
    overloaded: int = 0
    breaker_opens: int = 0


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
        overloaded: Not checked because every storage connection stayed busy for
            ``queue_timeout`` (``available`` is ``False``); answered 503 whatever the
            fail mode, since letting a burst through unchecked is what a limiter exists
            to prevent.
    """

    allowed: bool
    windows: tuple[tuple[RateLimitItem, int, float], ...] = ()
    available: bool = True
    retry_after: int = 1
    degraded: bool = False
    overloaded: bool = False


_ALLOWED = Decision(True)


def create_storage(
    uri: str,
    *,
    key_prefix: str = "fe-rl",
    memory_max_keys: int = 100_000,
    client_options: Mapping[str, Any] | None = None,
) -> Storage:
    """Build an async ``limits`` storage from a URI.

    ``memory://`` gives a :class:`BoundedMemoryStorage`; ``redis://``, ``rediss://``,
    ``redis+unix://``, ``redis+cluster://`` and ``redis+sentinel://`` use redis-py's
    asyncio client, built with ``client_options`` (timeouts, pool size, retry policy).

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
        storage = storage_from_string(
            target, implementation="redispy", key_prefix=key_prefix, **(client_options or {})
        )
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
    """Checks requests against policies, surviving a slow, dead or saturated storage.

    Args:
        storage_uri: ``memory://`` (one process) or a Redis URI (shared).
        strategy: ``sliding-window-counter`` (default: flat cost, bursts bounded to twice
            the limit across a window boundary in the worst case), ``moving-window``
            (exact, cost grows with hits), or ``fixed-window`` (cheapest, bursts of 2x
            at boundaries).
        key_prefix: Prefix of every storage key.
        timeout: Seconds the storage has to answer a check, counted from when the check
            is sent and only while the event loop could have read the answer (a
            :class:`~fastapi_enterprise._flow.LoopClock` measures when it
            could not).
        breaker_cooldown: Seconds the storage is left alone after the breaker opens.
        breaker_threshold: Storage failures in a row that open the breaker.
        fallback_memory: While the storage is down or saturated, enforce the same limits
            per process.
        memory_max_keys: Cap on keys in memory storages.
        max_connections: Storage connections per process, and so checks in flight at
            once; further checks queue for a free connection.
        queue_timeout: Seconds a check may queue for a connection (time the event loop
            was busy does not count); past that the request is not checked (see
            :attr:`Decision.overloaded`).
        report_interval: Seconds between the warnings logged while the storage stays
            unavailable.
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
        breaker_threshold: int = 3,
        fallback_memory: bool = False,
        memory_max_keys: int = 100_000,
        max_connections: int = 64,
        queue_timeout: float = 5.0,
        report_interval: float = 30.0,
        storage: Storage | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {sorted(STRATEGIES)}")
        if timeout <= 0 or breaker_cooldown < 0 or queue_timeout <= 0:
            raise ValueError("timeout and queue_timeout must be positive and breaker_cooldown >= 0")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.timeout = timeout
        self.queue_timeout = queue_timeout
        self.clock = LoopClock(tick=min(0.01, timeout / 25))
        # The strategy is part of the key: each strategy stores a different Redis type
        # under it, and switching strategies on a live Redis must not hit WRONGTYPE.
        self.storage = storage or create_storage(
            storage_uri,
            key_prefix=f"{key_prefix}:{strategy}",
            memory_max_keys=memory_max_keys,
            client_options=_client_options(_CEILING, max_connections),
        )
        self.strategy = STRATEGIES[strategy](self.storage)
        self.fallback = (
            STRATEGIES[strategy](BoundedMemoryStorage(max_keys=memory_max_keys))
            if fallback_memory
            else None
        )
        self.local = isinstance(self.storage, MemoryStorage)
        self.breaker = CircuitBreaker(
            breaker_cooldown,
            threshold=breaker_threshold,
            probe_lease=max(breaker_cooldown, 2 * _CEILING),
        )
        self.slots = Slots(max_connections)
        self.report_interval = report_interval
        self.stats = RateLimitStats()
        errors = self.storage.base_exceptions
        self._errors: tuple[type[BaseException], ...] = (
            (*errors, OSError, TimeoutError, asyncio.TimeoutError)
            if isinstance(errors, tuple)
            else (errors, OSError, TimeoutError, asyncio.TimeoutError)
        )
        self._outage = _Outage()

    def check_now(
        self, policy: RateLimitPolicy, budget: str, identity: str, *, with_stats: bool = False
    ) -> Decision | None:
        """:meth:`check` without awaiting anything, where the storage allows it.

        The default engine (sliding window counter, in this process's memory) decides in
        one synchronous step; any other storage or strategy returns ``None``, and the
        caller awaits :meth:`check`. The same decision either way.
        """
        storage = _synchronous_storage(self.strategy)
        if storage is None:
            return None
        return _evaluate_memory(storage, policy, budget, identity, with_stats)

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
        ticket = self.breaker.admit()
        if ticket is None:
            return await self._unchecked(policy, budget, identity, with_stats)
        if not self.slots.try_acquire():
            if not await self._wait_for_slot():
                self.breaker.abandon(ticket)
                return await self._unchecked(policy, budget, identity, with_stats, busy=True)
            if not self.breaker.still_admitted(ticket):
                # The breaker opened while this check queued: do not add to the pile.
                self.slots.release()
                return await self._unchecked(policy, budget, identity, with_stats)
        try:
            with Deadline(self.timeout, self.clock, ceiling=_CEILING):
                decision = await _evaluate(self.strategy, policy, budget, identity, with_stats)
        except self._errors as exc:
            self.slots.release()
            self._failed(ticket, type(exc).__name__)
            return await self._unchecked(policy, budget, identity, with_stats)
        except BaseException:
            self.slots.release()
            self._abandoned(ticket)
            raise
        self.slots.release()
        if self.breaker.success(ticket):
            self._recovered()
        return decision

    async def _wait_for_slot(self) -> bool:
        try:
            with Deadline(self.queue_timeout, self.clock, ceiling=_CEILING):
                await self.slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _unchecked(
        self,
        policy: RateLimitPolicy,
        budget: str,
        identity: str,
        with_stats: bool,
        *,
        busy: bool = False,
    ) -> Decision:
        """The answer when the storage cannot be asked: the fallback's, or unavailable."""
        if self.fallback is not None:
            self.stats.fallback += 1
            decision = await _evaluate(self.fallback, policy, budget, identity, with_stats)
            return Decision(decision.allowed, decision.windows, True, decision.retry_after, True)
        if busy and not self.breaker.is_open:
            self.stats.overloaded += 1
            self._report_overload()
            return _OVERLOADED
        retry = max(1, math.ceil(self.breaker.remaining()))
        return Decision(True, (), available=False, retry_after=retry)

    def _failed(self, ticket: int, error: str) -> None:
        """Count a failure (``error``: the exception's type name, never its message)."""
        self.stats.storage_errors += 1
        was_open = self.breaker.is_open
        if not self.breaker.failure(ticket):
            return
        if not was_open:
            self.stats.breaker_opens += 1
            self._outage.begin(self.stats)
            logger.warning(
                "rate-limit storage failed %d times in a row (%s); skipping it for %.1f s",
                self.breaker.threshold,
                error,
                self.breaker.cooldown,
            )
            return
        # A failed probe: the outage goes on. Say so, at most every report_interval.
        if self._outage.due(self.report_interval):
            unchecked = self._outage.report(self.stats)
            logger.warning(
                "rate-limit storage still unavailable after %.0f s (%s); %s since the "
                "last report; next probe in %.1f s",
                self._outage.duration(),
                error,
                unchecked,
                self.breaker.cooldown,
            )

    def _recovered(self) -> None:
        logger.warning(
            "rate-limit storage is back after %.0f s; enforcement resumed (%s during the outage)",
            self._outage.duration(),
            self._outage.total(self.stats),
        )
        self._outage.end()

    def _abandoned(self, ticket: int) -> None:
        if self.breaker.is_open and self.breaker.still_admitted(ticket):
            logger.info("rate-limit storage probe cancelled (client gone); the next check probes")
        self.breaker.abandon(ticket)

    def _report_overload(self) -> None:
        now = time.monotonic()
        if now - self._outage.last_overload >= self.report_interval:
            self._outage.last_overload = now
            logger.warning(
                "rate-limit checks waited over %.1f s for one of %d storage connections; "
                "%d requests answered 503 so far (raise max_connections, or check the "
                "storage's latency)",
                self.queue_timeout,
                self.slots.size,
                self.stats.overloaded,
            )

    async def verify(self) -> str | None:
        """Ask the storage to answer now (startup check); ``None`` if it did.

        Returns the failure's type name otherwise (never its message, which can hold a
        URL), and opens the breaker so requests do not wait on it. Memory storages
        always answer.
        """
        if self.local:
            return None
        error = await self._ping()
        if error is None:
            if self.breaker.success(self.breaker.generation):
                self._recovered()
            return None
        self.stats.storage_errors += 1
        if not self.breaker.is_open:
            self.stats.breaker_opens += 1
            self._outage.begin(self.stats)
        self.breaker.trip()
        return error

    async def probe(self) -> bool:
        """Whether the storage is in use: ``True`` unless the breaker is open.

        When the breaker is open and its cooldown is over, this runs the probe (one
        ``PING``), so a readiness check also brings enforcement back on an idle server.
        """
        if self.local or not self.breaker.is_open:
            return True
        ticket = self.breaker.admit()
        if ticket is None:
            return False
        try:
            error = await self._ping()
        except BaseException:  # the readiness probe timed out, or was cancelled
            self._abandoned(ticket)
            raise
        if error is None:
            if self.breaker.success(ticket):
                self._recovered()
            return True
        self._failed(ticket, error)
        return False

    async def _ping(self) -> str | None:
        try:
            with Deadline(self.timeout, self.clock, ceiling=_CEILING):
                answered = await self.storage.check()
        except self._errors as exc:
            return type(exc).__name__
        return None if answered else "ConnectionError"

    def unavailable_for(self) -> float:
        """Seconds since the storage became unavailable (0 while it is in use)."""
        return self._outage.duration() if self.breaker.is_open else 0.0

    async def reset(self) -> None:
        """Clear every counter of the storage (tests, incident response)."""
        await self.storage.reset()

    async def aclose(self) -> None:
        """Close the storage's connections (called at application shutdown)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()


# However busy the event loop, a storage call or a wait for a connection ends after this
# long: a last resort for a loop that never lets the clock tick, not a timeout in use.
_CEILING = 30.0
_OVERLOADED = Decision(True, (), available=False, retry_after=1, overloaded=True)


def _client_options(ceiling: float, max_connections: int) -> dict[str, Any]:
    """redis-py options: a pool as large as the slots, sockets timed as a last resort.

    The limiter's :class:`~fastapi_enterprise._flow.Deadline` does the timing; the
    client's own socket timeouts sit above its ceiling and only fire if something else
    went wrong. The client retries as :func:`fastapi_enterprise.redis.reconnect_once`
    says: once, at once, on a lost connection (a pooled connection the server closed
    fails its first command, and a fresh one answers); timeouts are never retried (the
    first attempt may have counted).
    """
    try:
        from fastapi_enterprise.redis import reconnect_once
    except ImportError:  # no redis extra: memory only (create_storage() explains)
        return {}

    return {
        "socket_timeout": ceiling + 1.0,
        "socket_connect_timeout": ceiling + 1.0,
        "max_connections": max_connections,
        "retry": reconnect_once(),
    }


class _Outage:
    """When the storage went away, and what went unchecked since (for the warnings)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.last_report = 0.0
        self.last_overload = -math.inf
        self.at_start = 0
        self.at_report = 0

    def begin(self, stats: RateLimitStats) -> None:
        self.started = self.last_report = time.monotonic()
        self.at_start = self.at_report = _unchecked(stats)

    def due(self, interval: float) -> bool:
        return time.monotonic() - self.last_report >= interval

    def report(self, stats: RateLimitStats) -> str:
        self.last_report = time.monotonic()
        now = _unchecked(stats)
        since, self.at_report = now - self.at_report, now
        return f"{since} requests went unchecked"

    def total(self, stats: RateLimitStats) -> str:
        return f"{_unchecked(stats) - self.at_start} requests went unchecked"

    def duration(self) -> float:
        return time.monotonic() - self.started

    def end(self) -> None:
        self.started = time.monotonic()


def _unchecked(stats: RateLimitStats) -> int:
    return stats.fail_open + stats.fail_closed + stats.fallback


async def _evaluate(
    strategy: LimitsRateLimiter,
    policy: RateLimitPolicy,
    budget: str,
    identity: str,
    with_stats: bool,
) -> Decision:
    storage = _synchronous_storage(strategy)
    if storage is not None:
        return _evaluate_memory(storage, policy, budget, identity, with_stats)
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


def _synchronous_storage(strategy: LimitsRateLimiter) -> BoundedMemoryStorage | None:
    """The storage, when the strategy on it is the default engine, which needs no await."""
    storage = strategy.storage
    if isinstance(storage, BoundedMemoryStorage) and (
        type(strategy) is SlidingWindowCounterRateLimiter
    ):
        return storage
    return None


def _evaluate_memory(
    storage: BoundedMemoryStorage,
    policy: RateLimitPolicy,
    budget: str,
    identity: str,
    with_stats: bool,
) -> Decision:
    """:func:`_evaluate` for the default engine (sliding window counter, in memory).

    The same decision and windows, each limit charged and read in one synchronous step.
    As with ``limits``, the limits before a violated one stay charged and the ones after
    it are not; all of them are read when stats are asked for.
    """
    violated: RateLimitItem | None = None
    retry_after = 1.0
    windows = []
    for item in policy.limits:
        allowed, remaining, reset = storage.sliding_window_check(
            # item.key_for(budget, identity), without its list and per-part conversions
            f"{item.namespace}/{budget}/{identity}/{item.amount}/{item.multiples}/"
            f"{item.GRANULARITY.name}",
            item.amount,
            item.get_expiry(),
            policy.cost,
            charge=violated is None,
        )
        if not allowed:
            violated, retry_after = item, reset
        if with_stats or item is violated:
            windows.append((item, remaining, reset))
        if violated is not None and not with_stats:
            break
    if violated is None:
        return Decision(True, tuple(windows)) if with_stats else _ALLOWED
    return Decision(False, tuple(windows), retry_after=max(1, int(retry_after + 0.999)))
