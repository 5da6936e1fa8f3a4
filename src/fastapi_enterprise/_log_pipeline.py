"""The pipeline behind ``configure_logging()``: rendered lines, one writer per output.

A record is rendered once, in the caller's thread (so it carries the request context),
and the line is offered to every output. Each output has its own bounded queue and its
own writer thread, so a stuck output (a pipe nobody reads, a hung NFS file) stalls only
itself: its queue fills up and its new lines are dropped and counted, while the other
outputs keep writing. A request never waits for an output.

Losses are never silent: the drops and write errors of each output are counted, per
pipeline (:attr:`LoggingHandle.outputs`) and over the life of the process
(:func:`log_losses`, which the metrics publish as Prometheus counters), and reported on
standard error (at most once a minute per output, from a thread of their own).

The pipeline survives what a server does to a process:

- ``fork`` (``gunicorn --preload``): threads do not survive a fork, and a queue's lock
  may be held by a thread that is gone; the child gets fresh queues and writer threads;
- ``SIGTERM`` (what Kubernetes, Docker, systemd and gunicorn send): servers such as
  uvicorn end by re-raising the signal, so ``atexit`` never runs. After the app's
  lifespan shutdown (:meth:`LoggingHandle.enter_shutdown`, which ``install()`` calls)
  every line is written before the call that logged it returns, and chained
  ``SIGTERM`` and ``SIGHUP`` handlers write what is queued before the default action
  ends the process.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, Protocol

from fastapi_enterprise._log_losses import OutputCounts, Reporter, log_losses, tally
from fastapi_enterprise._log_outputs import Output
from fastapi_enterprise._logging import UnheardErrorHandler

__all__ = [
    "LoggingHandle",
    "OutputCounts",
    "PipelineHandler",
    "adopt_server_loggers",
    "current_logging_handle",
    "direct_handler",
    "log_losses",
]

# Loggers of servers and libraries that install their own handlers: after
# configure_logging() they propagate to the root logger and share its format.
ADOPTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
)


class _Writer:
    """One output, its bounded queue and its thread.

    The thread wakes every ``WRITE_INTERVAL`` and writes what is queued, one write and
    one flush per batch. Producers do not wake it per line: on a server pinned to one
    core, a writer woken for every access line took the GIL from the event loop
    thousands of times a second, which cost more CPU than rendering the lines. An error
    line and a queue a quarter full wake it at once, as do flush and stop.

    The queue is a ``deque``: appending and taking a line are single atomic operations,
    where ``queue.Queue`` takes a lock and notifies a condition on every put and every
    get (both on the request path's CPU, the writer's share included). Its bound is
    checked before appending; concurrent producers may overshoot it by a line each.
    """

    BATCH = 512
    WRITE_INTERVAL = 0.05

    def __init__(self, output: Output, size: int, pipeline: LoggingHandle) -> None:
        self.output = output
        self.size = size
        self.pipeline = pipeline
        self.tally = tally(output.label)  # the process's totals: they outlive this writer
        self.high_water = max(1, min(size // 4, self.BATCH))
        self.renew()

    def renew(self) -> None:
        """A fresh queue, wake event and thread (at start, and in a forked child)."""
        self.lines: deque[tuple[int, str]] = deque()
        self.busy = False  # the thread holds lines taken from the queue, not yet written
        self.stopping = False
        self.wake = threading.Event()
        self.progress = threading.Condition()
        self.counts_lock = threading.Lock()
        self.dropped = 0
        self.write_errors = 0
        self.last_error = ""
        self.stalled = False
        self.thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"fastapi-enterprise-log-{self.output.label}", daemon=True
        )

    @property
    def label(self) -> str:
        """The output's name."""
        return self.output.label

    @property
    def pending(self) -> bool:
        """Whether lines offered so far are still to be written (read without a lock)."""
        return bool(self.lines) or self.busy

    def losses(self) -> tuple[int, int, str]:
        """Lines dropped, lines failed, and the last write error."""
        with self.counts_lock:
            return self.dropped, self.write_errors, self.last_error

    def start(self) -> None:
        assert self.thread is not None  # noqa: S101 - renew() made it
        self.thread.start()

    def offer(self, item: tuple[int, str]) -> None:
        """Queue a line without ever blocking; a full queue drops and counts it."""
        lines = self.lines
        if len(lines) >= self.size:
            with self.counts_lock:
                self.dropped += 1
            self.tally.add(dropped=1)
            self.pipeline.reporter.poke()
            return
        lines.append(item)
        wake = self.wake
        if (item[0] >= logging.ERROR or len(lines) >= self.high_water) and not wake.is_set():
            wake.set()

    def written(self, deadline: float) -> bool:
        """Wait until every line queued so far is written, or ``deadline`` passes."""
        progress = self.progress
        with progress:
            while self.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.thread is None:
                    self.stalled = True
                    return False
                self.wake.set()
                progress.wait(min(remaining, self.WRITE_INTERVAL))
        self.stalled = False
        return True

    def stop(self, deadline: float) -> bool:
        """Write what is queued and end the thread; ``False`` if it is stuck in a write."""
        thread = self.thread
        if thread is None:
            return True
        self.thread = None
        self.stopping = True
        self.wake.set()
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def _run(self) -> None:
        lines, wake, output, progress = self.lines, self.wake, self.output, self.progress
        take = lines.popleft
        while True:
            wake.wait(self.WRITE_INTERVAL)
            wake.clear()
            while lines:
                self.busy = True  # before the first line leaves the queue
                batch: list[tuple[int, str]] = []
                try:
                    while len(batch) < self.BATCH:
                        batch.append(take())
                except IndexError:
                    pass  # the queue is empty: write what was taken
                self._write(output, batch)
                self.busy = False
                with progress:
                    progress.notify_all()
            if self.stopping:
                return

    def _write(self, output: Output, lines: list[tuple[int, str]]) -> None:
        try:
            output.write_batch(lines)
            output.flush_batch()
        except Exception as error:  # noqa: BLE001 - a full disk must not kill the writer
            self._count_error(error, len(lines))

    def close(self) -> None:
        """Flush (a failure is counted) and close the output."""
        try:
            self.output.flush_batch()
        except Exception as error:  # noqa: BLE001 - counted, and the close goes on
            self._count_error(error, 1)
        self.output.close()

    def _count_error(self, error: BaseException, lines: int) -> None:
        with self.counts_lock:
            self.write_errors += lines
            self.last_error = f"{type(error).__name__}: {error}"
        self.tally.add(write_errors=lines)
        self.pipeline.reporter.poke()


class PipelineHandler(logging.Handler):
    """The root logger's handler: renders in the caller's thread, never blocks."""

    def __init__(
        self,
        pipeline: LoggingHandle,
        sampler: EventSampler,
        formatter: Renderer,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.sampler = sampler
        self.renderer = formatter
        self.addFilter(sampler)

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter, render and publish; no handler lock (each output has its own)."""
        if not self.filter(record):
            return False
        try:
            line = self.renderer.format(record)
        except Exception:  # noqa: BLE001 - a bad record must not reach the app
            self.handleError(record)
            return False
        self.pipeline.publish(record.levelno, line)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Render and publish (for callers that use ``emit`` directly)."""
        self.handle(record)

    def submit(self, name: str, level: int, event: str, fields: dict[str, Any]) -> None:
        """Render and publish an event without building a ``LogRecord`` first.

        The library's own access lines come this way (see :func:`direct_handler`): the
        line is the one :meth:`handle` would render for the record ``logger.handle``
        would have made, through the same sampler and processors.
        """
        if not self.sampler.keeps(event, level):
            return
        self.pipeline.publish(level, self.renderer.render(name, level, event, fields))


class Renderer(Protocol):
    """What the handler needs of the formatter."""

    def format(self, record: logging.LogRecord) -> str:
        """The line for a stdlib record."""

    def render(self, name: str, level: int, message: str, fields: dict[str, Any]) -> str:
        """The line for an event given by its fields."""


class EventSampler(logging.Filter):
    """Keeps a configured fraction of chosen debug/info events; never drops warnings."""

    def __init__(self, rates: Mapping[str, float], chance: Callable[[], float]) -> None:
        super().__init__()
        self.rates = dict(rates)
        self.chance = chance

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether the record is kept."""
        message = record.msg
        event = message.get("event") if isinstance(message, dict) else message
        return self.keeps(event, record.levelno)

    def keeps(self, event: object, level: int) -> bool:
        """Whether an event of this name and level is kept."""
        if not self.rates or level >= logging.WARNING:
            return True
        rate = self.rates.get(event) if isinstance(event, str) else None
        return rate is None or self.chance() < rate


class LoggingHandle:
    """The running log pipeline: loss counters, flush, shutdown.

    Returned by :func:`~fastapi_enterprise.configure_logging`; stopped automatically at
    interpreter exit.
    """

    STOP_TIMEOUT = 5.0
    SHUTDOWN_FLUSH_TIMEOUT = 5.0
    WRITE_THROUGH_TIMEOUT = 1.0

    def __init__(self, outputs: list[Output], queue_size: int) -> None:
        self._writers = [_Writer(output, queue_size, self) for output in outputs]
        self.reporter = Reporter(self._writers)
        self._handler: PipelineHandler | None = None
        self._single = self._writers[0] if len(self._writers) == 1 else None
        self._write_through = False
        self._stopped = False

    @property
    def outputs(self) -> dict[str, OutputCounts]:
        """Each output's losses so far, by name (``stdout``, ``file``, ``syslog``)."""
        return {
            writer.output.label: OutputCounts(writer.dropped, writer.write_errors)
            for writer in self._writers
        }

    @property
    def dropped(self) -> int:
        """Lines dropped because an output's queue was full, over all outputs."""
        return sum(writer.dropped for writer in self._writers)

    @property
    def write_errors(self) -> int:
        """Lines an output failed to write, over all outputs."""
        return sum(writer.write_errors for writer in self._writers)

    def publish(self, level: int, line: str) -> None:
        """Offer a rendered line to every output; never blocks (but see shutdown)."""
        item = (level, line)
        single = self._single
        if single is not None:
            single.offer(item)
        else:
            for writer in self._writers:
                writer.offer(item)
        if self._write_through:
            self._wait_written(self.WRITE_THROUGH_TIMEOUT)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued line is written; return whether that happened in time.

        Each output is waited for up to the same deadline: a stuck one does not keep
        the others from being flushed. Losses are published and reported on the way.
        """
        done = self._wait_written(timeout, skip_stalled=False)
        self.reporter.check()
        return done

    def enter_shutdown(self) -> None:
        """Write what is queued, then write every later line before its call returns.

        For the end of a server's life (``install()`` calls it after the app's lifespan
        shutdown): servers end a process by re-raising the signal that stopped them,
        and no ``atexit`` runs after that. The server's last lines are written as they
        are logged. Waits are bounded: an output that does not keep up is not waited for
        again until it catches up.
        """
        self._wait_written(self.SHUTDOWN_FLUSH_TIMEOUT, skip_stalled=False)
        self.reporter.check()
        self._write_through = True

    def stop(self) -> None:
        """Write what is queued, then detach and close the outputs. Safe to call twice.

        Gives up after ``STOP_TIMEOUT`` seconds on an output stuck in a write (that one
        keeps its output open: closing it would wait for the stuck write).
        """
        if self._stopped:
            return
        self._stopped = True
        _PIPELINES.discard(self)
        root = logging.getLogger()
        if self._handler is not None and self._handler in root.handlers:
            root.removeHandler(self._handler)
        deadline = time.monotonic() + self.STOP_TIMEOUT
        for writer in self._writers:
            if writer.stop(deadline):
                writer.close()
        self.reporter.stop(deadline)
        atexit.unregister(self.stop)

    def _wait_written(self, timeout: float, *, skip_stalled: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        done = True
        for writer in self._writers:
            if skip_stalled and writer.stalled and writer.pending:
                done = False
                continue
            done = writer.written(deadline) and done
        return done

    def _drain_without_locks(self, deadline: float) -> None:
        """Wait for the writers (which wake on their own) without taking any lock.

        For a signal handler: it runs in the main thread between two bytecodes, maybe
        while that thread holds a queue's or an event's lock, which it would then wait
        for forever.
        """
        for writer in self._writers:
            while writer.pending and writer.thread is not None:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.005)

    def _start(self, handler: PipelineHandler) -> None:
        self._handler = handler
        for writer in self._writers:
            writer.start()
        self.reporter.start()
        _PIPELINES.add(self)
        atexit.register(self.stop)
        self._chain_termination_signals()

    def _restart_in_child(self) -> None:
        for writer in self._writers:
            writer.renew()
            writer.start()
        self.reporter.renew()
        self.reporter.start()
        if self._handler is not None and self._handler in logging.getLogger().handlers:
            adopt_server_loggers()

    def _chain_termination_signals(self) -> None:
        """Write what is queued before ``SIGTERM`` or ``SIGHUP`` ends the process.

        Installed in the main thread only, for each signal that is not ignored. A
        handler already there is chained to, not replaced: after the flush it decides
        what the signal does (it may end the process at once, as coverage's or a
        supervisor's do, so the flush comes first). A server that restores the handler
        it found at the end restores this one, whose default action then comes after
        the flush.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for name in _TERMINATION_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                previous = signal.getsignal(signum)
                if isinstance(previous, _FlushBeforeSignal):
                    previous = previous.previous
                if previous == signal.SIG_IGN:
                    continue
                signal.signal(signum, _FlushBeforeSignal(previous))
            except (ValueError, OSError):  # not the main interpreter, or no signals here
                return


_TERMINATION_SIGNALS = ("SIGTERM", "SIGHUP")


class _FlushBeforeSignal:
    """A signal handler: flush, then hand over to the handler that was in place (or die).

    The flush is bounded: ``LoggingHandle.STOP_TIMEOUT`` before the default action ends
    the process, ``CHAINED_FLUSH_TIMEOUT`` before another handler runs (which may only
    start a graceful shutdown, and should not wait on a stuck output for long).
    """

    CHAINED_FLUSH_TIMEOUT = 1.0

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        chained = callable(previous)
        timeout = self.CHAINED_FLUSH_TIMEOUT if chained else LoggingHandle.STOP_TIMEOUT
        deadline = time.monotonic() + timeout
        for pipeline in list(_PIPELINES):
            pipeline._drain_without_locks(deadline)
        if chained:
            previous(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def direct_handler(logger: logging.Logger) -> PipelineHandler | None:
    """The pipeline's handler, if a record of ``logger`` would reach it alone.

    True when :func:`configure_logging` is in charge and nothing else listens: no
    handler other than ``NullHandler`` (or the package's unheard-error handler) on the
    way to the root, no logger filters, no extra filter on the handler (pytest's
    ``caplog``, an app's own handler or filter all make this ``None``). The caller may
    then :meth:`~PipelineHandler.submit` its event and skip the ``LogRecord``
    machinery; the rendered line is the same.
    """
    found: PipelineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if found is None and isinstance(handler, PipelineHandler):
                found = handler
            elif not isinstance(handler, (logging.NullHandler, UnheardErrorHandler)):
                return None
        if not current.propagate:
            break
        current = current.parent
    if found is None or found.level or len(found.filters) != 1:
        return None
    return found


def adopt_server_loggers() -> None:
    """Make the servers' loggers propagate to the root logger, with no handlers of theirs.

    gunicorn's uvicorn worker gives ``uvicorn.error`` the handlers of ``gunicorn.error``
    when the worker is made, which with ``--preload`` is after the app configured
    logging: so this runs again in every forked child.
    """
    for name in ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers = []
        adopted.propagate = True


def current_logging_handle() -> LoggingHandle | None:
    """The pipeline ``configure_logging()`` attached to the root logger, if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PipelineHandler):
            return handler.pipeline
    return None


_PIPELINES: weakref.WeakSet[LoggingHandle] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pipeline in list(_PIPELINES):
        pipeline._restart_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
