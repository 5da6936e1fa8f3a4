"""What the log pipeline lost, kept and told: process totals, and bounded stderr lines.

Each output's writer counts the lines it dropped (its queue was full) and failed to
write, for its own pipeline (:attr:`LoggingHandle.outputs`) and into the process's
totals per output (:func:`log_losses`). The totals outlive a pipeline: they keep
growing across a reconfiguration (``configure_logging()`` called again) and are
inherited by a forked child (gunicorn ``--preload``), so they can be published as
Prometheus counters, which must never go down; the metrics read them with a
:class:`~fastapi_enterprise.metrics.mirror.StatsMirror`, like the rate limiter's.

A reporter thread of the pipeline's own writes one line per output with losses to
standard error, at most once a minute: a thread of its own, so that a blocked standard
error stalls no output and no request.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["OUTPUTS", "LossCounter", "LossTally", "OutputCounts", "Reporter", "log_losses"]

OUTPUTS = ("stdout", "file", "syslog")
"""The outputs' names, as in :func:`log_losses` and the metrics' ``output`` label."""


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


class LossTally:
    """One output's losses over the life of the process, whichever pipeline lost them."""

    __slots__ = ("_lock", "dropped", "write_errors")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dropped = 0
        self.write_errors = 0

    def add(self, *, dropped: int = 0, write_errors: int = 0) -> None:
        """Count more losses (from any thread)."""
        with self._lock:
            self.dropped += dropped
            self.write_errors += write_errors

    def counts(self) -> OutputCounts:
        """The totals so far."""
        return OutputCounts(self.dropped, self.write_errors)


_TALLIES: dict[str, LossTally] = {name: LossTally() for name in OUTPUTS}
_TALLIES_LOCK = threading.Lock()


def tally(output: str) -> LossTally:
    """The process's tally of ``output`` (made on first use for an output not in OUTPUTS)."""
    found = _TALLIES.get(output)
    if found is None:
        with _TALLIES_LOCK:
            found = _TALLIES.setdefault(output, LossTally())
    return found


def log_losses() -> dict[str, OutputCounts]:
    """Every output's losses in this process so far, by name; outputs never used show 0.

    Totals over the life of the process: they survive ``configure_logging()`` being
    called again and, in a forked child, include what the parent had lost before the
    fork. For an exporter (they only grow); a pipeline's own losses are in
    :attr:`~fastapi_enterprise.log_config.LoggingHandle.outputs`.
    """
    return {name: found.counts() for name, found in list(_TALLIES.items())}


def _after_fork_in_child() -> None:
    # A thread of the parent may have held a lock at the fork: gone with it. The totals
    # themselves are the child's too.
    global _TALLIES_LOCK  # noqa: PLW0603 - the one lock, replaced whole
    _TALLIES_LOCK = threading.Lock()
    for found in _TALLIES.values():
        found._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Reporter:
    """Tells of lost lines on standard error, boundedly.

    A thread of its own, so that a blocked standard error stalls no output and no
    request. It looks at most every ``LOOK_INTERVAL``, however fast lines are lost, and
    writes one line per output with losses at most every ``REPORT_INTERVAL``.
    """

    LOOK_INTERVAL = 0.5
    REPORT_INTERVAL = 60.0

    def __init__(self, writers: Sequence[LossCounter]) -> None:
        self.writers = writers
        self.renew()

    def renew(self) -> None:
        """Fresh state and thread (at start, and in a forked child)."""
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
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
        """Report what is left, then end the thread."""
        thread, self.thread = self.thread, None
        self.stopped.set()
        self.wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))

    def check(self, *, final: bool = False) -> float | None:
        """Report new losses when due; return when to look again."""
        with self.lock:
            now = time.monotonic()
            again: float | None = None
            for writer in self.writers:
                key = id(writer)
                dropped, failed, last_error = writer.losses()
                counts = (dropped, failed)
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
            if self.stopped.wait(self.LOOK_INTERVAL):
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
