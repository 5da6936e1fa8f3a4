"""What the log pipeline lost, told: to standard error, boundedly, and to observers.

Each output's writer counts the lines it dropped (its queue was full) and failed to
write. A reporter thread of the pipeline's own publishes the increments to the loss
observers (:func:`observe_log_losses`; the metrics count them) and writes one line per
output with losses to standard error, at most once a minute: a thread of its own, so
that a blocked standard error stalls no output and no request.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["LossCounter", "OutputCounts", "Reporter", "observe_log_losses"]


class LossCounter(Protocol):
    """An output's writer, as the reporter sees it."""

    @property
    def label(self) -> str:
        """The output's name: ``stdout``, ``file``, ``syslog``."""

    def losses(self) -> tuple[int, int, str]:
        """Lines dropped, lines failed, and the last write error (``""`` if none)."""


@dataclass(frozen=True)
class OutputCounts:
    """What one output has lost so far."""

    dropped: int
    """Lines dropped because the output's queue was full (the output did not keep up)."""

    write_errors: int
    """Lines the output failed to write (full or read-only disk, broken pipe, dead syslog)."""


_observers: list[weakref.ref[Any] | weakref.WeakMethod[Any]] = []
_observers_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A reporter thread of the parent may have held the lock at the fork: gone with it.
    global _observers_lock  # noqa: PLW0603 - the one lock, replaced whole
    _observers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def observe_log_losses(observer: Callable[[str, int, int], None]) -> None:
    """Call ``observer(output, dropped, write_errors)`` with every output's new losses.

    Called from the pipeline's reporter thread, at most twice a second, with the
    increments since the previous call, for every pipeline running in this process
    (and after a fork, in the child). The observer is held weakly: it stops being
    called when it is garbage (a bound method goes with its object).

    Args:
        observer: A function or bound method; it must not block.
    """
    reference: weakref.ref[Any] | weakref.WeakMethod[Any]
    if hasattr(observer, "__self__") and hasattr(observer, "__func__"):
        reference = weakref.WeakMethod(observer)
    else:
        reference = weakref.ref(observer)
    with _observers_lock:
        _observers.append(reference)


def _notify(output: str, dropped: int, write_errors: int) -> None:
    with _observers_lock:
        live = [(ref, ref()) for ref in _observers]
        _observers[:] = [ref for ref, target in live if target is not None]
    for _, target in live:
        if target is not None:
            with contextlib.suppress(Exception):  # a broken observer must not stop the others
                target(output, dropped, write_errors)


class Reporter:
    """Tells of lost lines: on standard error, boundedly, and to the loss observers.

    A thread of its own, so that a blocked standard error stalls no output and no
    request. Observers get the increments at most every ``PUBLISH_INTERVAL``; standard
    error gets one line per output with losses at most every ``REPORT_INTERVAL``.
    """

    PUBLISH_INTERVAL = 0.5
    REPORT_INTERVAL = 60.0

    def __init__(self, writers: Sequence[LossCounter]) -> None:
        self.writers = writers
        self.renew()

    def renew(self) -> None:
        """Fresh state and thread (at start, and in a forked child)."""
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.published = {id(writer): (0, 0) for writer in self.writers}
        self.reported = {id(writer): (0, 0) for writer in self.writers}
        self.last_report = {id(writer): -self.REPORT_INTERVAL for writer in self.writers}
        self.thread: threading.Thread | None = threading.Thread(
            target=self._run, name="fastapi-enterprise-log-reporter", daemon=True
        )

    def start(self) -> None:
        assert self.thread is not None  # noqa: S101 - renew() made it
        self.thread.start()

    def poke(self) -> None:
        """Something was lost: look soon."""
        if not self.wake.is_set():
            self.wake.set()

    def stop(self, deadline: float) -> None:
        """Publish and report what is left, then end the thread."""
        thread, self.thread = self.thread, None
        self.stopped.set()
        self.wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

    def check(self, *, final: bool = False) -> float | None:
        """Publish new losses and report them when due; return when to look again."""
        with self.lock:
            now = time.monotonic()
            again: float | None = None
            for writer in self.writers:
                key = id(writer)
                dropped, failed, last_error = writer.losses()
                counts = (dropped, failed)
                published = self.published[key]
                if counts != published:
                    self.published[key] = counts
                    _notify(writer.label, counts[0] - published[0], counts[1] - published[1])
                if counts == self.reported[key]:
                    continue
                due = self.last_report[key] + self.REPORT_INTERVAL
                if now >= due or final:
                    self.reported[key], self.last_report[key] = counts, now
                    _report(writer.label, counts, last_error)
                else:
                    again = due if again is None else min(again, due)
            return again

    def _run(self) -> None:
        while True:
            again = self.check()
            timeout = None if again is None else max(0.0, again - time.monotonic())
            self.wake.wait(timeout)
            if self.stopped.is_set():
                self.check(final=True)
                return
            self.wake.clear()
            # At most one look per interval, however fast lines are lost; stop() cuts
            # the pause short.
            if self.stopped.wait(self.PUBLISH_INTERVAL):
                self.check(final=True)
                return


def _report(output: str, counts: tuple[int, int], last_error: str) -> None:
    dropped, errors = counts
    parts = []
    if dropped:
        parts.append(
            f"dropped {dropped} log lines (its queue was full: the output is blocked or too slow)"
        )
    if errors:
        parts.append(f"failed to write a log record {errors} times (last: {last_error})")
    try:
        sys.stderr.write(f"fastapi-enterprise: log output {output} {' and '.join(parts)}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr itself is gone; nothing left to tell
        return
