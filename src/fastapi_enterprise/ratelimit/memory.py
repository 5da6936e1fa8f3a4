"""An in-process ``limits`` storage whose size is bounded, for one process or a fallback.

A flood of distinct clients cannot grow it without limit: past ``max_keys`` the oldest
keys are dropped. ``create_storage("memory://")`` and the rate limiter's in-memory
fallback use it.
"""

from __future__ import annotations

import time
from math import floor, inf

from limits.aio.storage import MemoryStorage

__all__ = ["BoundedMemoryStorage"]


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
        allowed, _remaining, _reset = self.sliding_window_check(
            key, limit, expiry, amount, charge=True
        )
        return allowed

    def sliding_window_check(
        self, key: str, limit: int, expiry: int, cost: int, *, charge: bool
    ) -> tuple[bool, int, float]:
        """Charge a sliding-window-counter hit (if ``charge``) and read the window at once.

        Synchronous, for :class:`~fastapi_enterprise.ratelimit.RateLimiter` on this
        storage: one call instead of ``limits``' ``hit`` then ``get_window_stats`` (two
        awaits, four key builds and lookups). The arithmetic is ``limits``': the same
        weighting decides, and ``remaining`` and the reset are what its
        ``get_window_stats`` would answer right after.

        Returns:
            Whether the hit fits (``True`` when not charging), the requests remaining,
            and the seconds until the window frees one.
        """
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._count(previous_key, now)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous else 0.0
        current = self._count(current_key, now)
        allowed = True
        if charge:
            allowed = cost <= limit and (
                floor(previous * previous_ttl / expiry + current) + cost <= limit
            )
            if allowed:
                # Kept for two windows: it is the previous window's count in the next one.
                current = self._add(current_key, 2 * expiry, cost, now)
        remaining = max(0, limit - floor(previous * previous_ttl / expiry + current))
        if not (previous or current):
            return allowed, remaining, 0.0
        previous_reset, current_reset = inf, inf
        if previous:
            previous_reset = previous_ttl % (expiry / previous)
        if current:
            current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
            current_reset = current_ttl % expiry
        return allowed, remaining, min(previous_reset, current_reset)
