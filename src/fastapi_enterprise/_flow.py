"""Flow control for calls to a dependency: connection slots, and a deadline that times it.

A burst of requests must not look like a storage failure. Two things made it look like
one (issue 12, A1): a timeout around the whole check counted the time a request spent
waiting for the event loop and for a pool connection, and the client's pool refused
requests beyond its size with an error. Here:

- :class:`Slots` admits at most as many concurrent storage calls as the client has
  connections; the others wait their turn (bounded), and waiting is never a failure;
- :class:`Deadline` times out a call only when the storage had the loop's attention for
  the whole timeout and did not answer: the time the event loop was too busy to read an
  answer (measured by :class:`LoopClock`) is given back, and an answer that reached the
  process before the deadline fired is always read before the call is abandoned.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

__all__ = ["Deadline", "LoopClock", "Slots"]


class LoopClock:
    """How long the event loop was too busy to run anything, measured while it matters.

    While at least one :class:`Deadline` is running, a heartbeat is due every ``tick``
    seconds; whenever it runs late, the loop was busy for that long (running other
    requests, or descheduled by the OS) and could not have read a storage answer. The
    lateness adds up in :meth:`stalled`. With no deadline running, the heartbeat stops.

    Args:
        tick: Seconds between heartbeats: the resolution of the measure.
    """

    __slots__ = ("_due", "_handle", "_loop", "_stalled", "_users", "tick")

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self._stalled = 0.0
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def stalled(self, now: float) -> float:
        """Seconds the loop has been busy in all, up to ``now`` (loop time)."""
        return self._stalled + max(0.0, now - self._due) if self._handle else self._stalled

    def start(self, loop: asyncio.AbstractEventLoop, now: float) -> float:
        """Note one more user; return :meth:`stalled` as of ``now``."""
        self._users += 1
        if self._handle is None or self._loop is not loop:
            # Not beating, or beating on another loop (an app served by a new loop).
            if self._handle is not None:
                self._handle.cancel()
            self._loop = loop
            self._due = now + self.tick
            self._handle = loop.call_at(self._due, self._beat, loop)
        return self.stalled(now)

    def stop(self) -> None:
        """Note one user less (the heartbeat stops at its next beat with none left)."""
        self._users -= 1

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self._stalled += max(0.0, now - self._due)
        if self._users <= 0:
            self._users = 0
            self._handle = None
            return
        self._due = now + self.tick
        self._handle = loop.call_at(self._due, self._beat, loop)


class Deadline:
    """``with Deadline(0.25, clock, ceiling=4.5):`` cancels the current task when time is up.

    The task is cancelled (and :class:`TimeoutError` raised from the block) once
    ``seconds`` have passed in which the loop was free to read the answer (wall time
    minus what ``clock`` measured as busy), and in any case after ``ceiling`` seconds.
    Before giving up, the loop makes two more passes, so an answer that arrived in time
    is read, not thrown away. One cancellation, delivered once: code that cleans up
    after the cancelled call (returning a connection to its pool) runs undisturbed.

    Args:
        seconds: Time the storage has to answer.
        clock: Measures when the loop was too busy to listen.
        ceiling: Hard limit in wall time, however busy the loop is.
    """

    __slots__ = (
        "_clock",
        "_handle",
        "_limit",
        "_loop",
        "_seconds",
        "_stalled",
        "_start",
        "_task",
        "expired",
    )

    def __init__(self, seconds: float, clock: LoopClock, *, ceiling: float) -> None:
        self._seconds = seconds
        self._clock = clock
        self._limit = ceiling
        self.expired = False

    def __enter__(self) -> Deadline:
        self._loop = loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            raise RuntimeError("Deadline needs a running task")
        self._task = task
        self._start = now = loop.time()
        self._limit += now
        self._stalled = self._clock.start(loop, now)
        self._handle = loop.call_at(now + self._seconds, self._check)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handle.cancel()
        self._clock.stop()
        if not self.expired:
            return
        uncancel = getattr(self._task, "uncancel", None)  # Python >= 3.11
        still_cancelled = uncancel() > 0 if uncancel is not None else False
        if exc_type is asyncio.CancelledError and not still_cancelled:
            raise TimeoutError("the storage did not answer in time") from exc

    def _check(self) -> None:
        now = self._loop.time()
        listened = now - self._start - (self._clock.stalled(now) - self._stalled)
        if listened < self._seconds and now < self._limit:
            # The loop was busy for part of the time: the storage gets that time back.
            self._handle = self._loop.call_at(now + self._seconds - listened, self._check)
            return
        # Two more passes through the selector, so that an answer that arrived before
        # this moment is read (its reader runs before the next timer) before we give up.
        self._handle = self._loop.call_at(now, self._settle)

    def _settle(self) -> None:
        self._handle = self._loop.call_at(self._loop.time(), self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()


class Slots:
    """At most ``size`` concurrent storage calls; the others queue (first come, first served).

    Loop-agnostic (an application may be served by several event loops in turn, as in
    tests); a waiter that is cancelled or gives up never loses or leaks a slot.
    """

    __slots__ = ("_free", "_waiters", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        """Slots taken."""
        return self.size - self._free

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def try_acquire(self) -> bool:
        """Take a free slot without waiting; ``False`` if none is free."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot (wrap in a :class:`Deadline` to bound the wait)."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the wait ended: pass it on
            raise

    def release(self) -> None:
        """Give a slot back, to the longest waiter if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
