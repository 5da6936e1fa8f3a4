"""The circuit breaker in front of a shared rate-limit storage.

Closed, it lets every call through and counts consecutive failures; ``threshold`` of
them in a row open it. Open, it lets nothing through for ``cooldown`` seconds, then one
call (the probe) tests the storage: success closes the breaker, failure opens it for
another cooldown. So a dead storage costs a few fast failures, then one per cooldown,
and enforcement resumes within one cooldown of the storage answering again.

Every admitted call carries the breaker's *generation* (bumped at each open and close)
and reports its outcome with it. A call that started before the last change of state
does not change the state again: the hundred calls that were in flight when the storage
hung do not keep the breaker open, and a slow failure from before a recovery cannot
re-open a breaker that a fresh probe just closed (issue 12, A2). A probe that is
cancelled (its client went away) hands the probe to the next call; a probe that never
reports back at all is replaced after ``probe_lease`` seconds.
"""

from __future__ import annotations

import time

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Closed / open / one probe, with generations so stale outcomes are ignored.

    Args:
        cooldown: Seconds the storage is left alone after the breaker opens.
        threshold: Consecutive failures that open a closed breaker.
        probe_lease: Seconds after which a probe that never reported is replaced.
    """

    __slots__ = (
        "_failures",
        "_probe_started",
        "cooldown",
        "generation",
        "opened_at",
        "probe_lease",
        "threshold",
    )

    def __init__(self, cooldown: float, *, threshold: int = 3, probe_lease: float = 10.0) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.cooldown = cooldown
        self.threshold = threshold
        self.probe_lease = probe_lease
        self.generation = 0
        self.opened_at: float | None = None
        self._failures = 0
        self._probe_started: float | None = None

    @property
    def is_open(self) -> bool:
        """Whether calls are being kept away from the storage."""
        return self.opened_at is not None

    @property
    def probing(self) -> bool:
        """Whether a probe is testing the storage right now."""
        return self._probe_started is not None

    def admit(self) -> int | None:
        """A ticket (the generation) if a call may go to the storage now, else ``None``."""
        if self.opened_at is None:
            return self.generation
        now = time.monotonic()
        if now - self.opened_at < self.cooldown:
            return None
        started = self._probe_started
        if started is not None and now - started < self.probe_lease:
            return None  # one probe at a time; the others still skip the storage
        self._probe_started = now
        return self.generation

    def still_admitted(self, ticket: int) -> bool:
        """Whether a call admitted with ``ticket`` may still go ahead (after waiting)."""
        return ticket == self.generation and (
            self.opened_at is None or self._probe_started is not None
        )

    def remaining(self) -> float:
        """Seconds until the next probe may run (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (time.monotonic() - self.opened_at))

    def success(self, ticket: int) -> bool:
        """Record a call that worked; return whether it closed the breaker."""
        if ticket != self.generation:
            return False
        self._failures = 0
        if self.opened_at is None:
            return False
        self._change()
        self.opened_at = None
        return True

    def failure(self, ticket: int) -> bool:
        """Record a failed call; return whether the breaker opened (or stayed open)."""
        if ticket != self.generation:
            return False
        if self.opened_at is None:
            self._failures += 1
            if self._failures < self.threshold:
                return False
        self._change()
        self.opened_at = time.monotonic()
        return True

    def trip(self) -> None:
        """Open the breaker now, whatever the count (a failed check at startup)."""
        self._change()
        self.opened_at = time.monotonic()

    def abandon(self, ticket: int) -> None:
        """A call gave up without an outcome (cancelled): free the probe if it was one."""
        if ticket == self.generation and self.opened_at is not None:
            self._probe_started = None

    def _change(self) -> None:
        self.generation += 1
        self._failures = 0
        self._probe_started = None
