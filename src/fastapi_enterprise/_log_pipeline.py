"""The pipeline behind ``configure_logging()``: rendered lines, one writer per output.

A record is rendered once, in the caller's thread (so it carries the request context),
and the line is offered to every output. Each output has its own bounded queue and its
own writer thread, so a stuck output (a pipe nobody reads, a hung NFS file) stalls only
itself: its queue fills up and its new lines are dropped and counted, while the other
outputs keep writing. A request never waits for an output.

Losses are never silent: the drops and write errors of each output are counted
(:attr:`LoggingHandle.outputs`), reported on standard error (at most once a minute per
output, from a thread of their own), and handed to the loss observers, which the metrics
turn into Prometheus counters.

The pipeline survives what a server does to a process:

- ``fork`` (``gunicorn --preload``): threads do not survive a fork, and a queue's lock
  may be held by a thread that is gone; the child gets fresh queues and writer threads;
- ``SIGTERM`` (what Kubernetes, Docker, systemd and gunicorn send): servers such as
  uvicorn end by re-raising the signal, so ``atexit`` never runs. After the app's
  lifespan shutdown (:meth:`LoggingHandle.enter_shutdown`, which ``install()`` calls)
  every line is written before the call that logged it returns, and a chained
  ``SIGTERM`` handler writes what is queued before the default action ends the process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, Protocol

from fastapi_enterprise._logging import UnheardErrorHandler

__all__ = [
    "LoggingHandle",
    "OutputCounts",
    "current_logging_handle",
    "observe_log_losses",
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
_STOP: Any = object()  # what a writer's queue ends with


@dataclass(frozen=True)
class OutputCounts:
    """What one output has lost so far."""

    dropped: int
    """Lines dropped because the output's queue was full (the output did not keep up)."""

    write_errors: int
    """Lines the output failed to write (full or read-only disk, broken pipe, dead syslog)."""


_observers: list[weakref.ref[Any] | weakref.WeakMethod[Any]] = []
_observers_lock = threading.Lock()


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


class Output(logging.Handler):
    """Where lines end up. Subclasses write a batch of ``(level, line)`` pairs."""

    label = "output"

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Write the lines; raise on failure (the writer counts every line as lost)."""
        raise NotImplementedError

    def flush_batch(self) -> None:
        """Flush after a batch (called by the writer thread; failures raise)."""
        super().flush()

    def flush(self) -> None:
        """Deferred: the writer thread flushes once per batch."""

    _closed = False

    def close(self) -> None:
        """Flush and close once; a failure is the writer's to count, not raised."""
        # logging.shutdown() closes every handler ever made at exit: once is enough.
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # a full disk at exit: counted by the writer
            self.flush_batch()
        with contextlib.suppress(OSError):  # closing a file flushes its buffer
            super().close()


class StreamOutput(Output, logging.StreamHandler):  # type: ignore[type-arg]
    """Standard output, or the stream given to ``configure_logging()``."""

    label = "stdout"

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """One write for the whole batch."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self.stream.write("".join([f"{line}\n" for _, line in lines]))

    def flush_batch(self) -> None:
        """Flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self.stream.flush()


class FileOutput(Output, logging.handlers.RotatingFileHandler):
    """A size-rotated file written a batch at a time.

    The stdlib's ``RotatingFileHandler`` checks the file's type and seeks to its end for
    every record (four system calls, and a flush of the buffer): here that happens once
    per batch, and the size is counted as lines are added. Rotation still happens
    before the line that would reach ``maxBytes``; a lone line longer than that is
    written to a fresh file rather than rotating an empty one.
    """

    label = "file"

    def _opened(self) -> IO[str]:
        if self.stream is None:
            self.stream = self._open()
        return self.stream

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Write the lines, rotating between them where the size limit falls."""
        with self.lock:  # type: ignore[union-attr]
            self._write_lines([f"{line}\n" for _, line in lines])

    def flush_batch(self) -> None:
        """Flush the file, if it is open."""
        with self.lock:  # type: ignore[union-attr]
            if self.stream is not None:
                self.stream.flush()

    def _write_lines(self, lines: list[str]) -> None:
        stream = self._opened()
        name = self.baseFilename
        # bpo-45401: never rotate what is not a regular file (/dev/stdout, a FIFO).
        if self.maxBytes <= 0 or (os.path.exists(name) and not os.path.isfile(name)):
            stream.write("".join(lines))
            return
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        chunk: list[str] = []
        for line in lines:
            length = len(line) if line.isascii() else len(line.encode("utf-8"))
            if size and size + length >= self.maxBytes:
                stream.write("".join(chunk))
                chunk = []
                self.doRollover()
                stream = self._opened()  # a delayed handler leaves the new file unopened
                size = 0
            chunk.append(line)
            size += length
        stream.write("".join(chunk))


class SyslogOutput(Output, logging.handlers.SysLogHandler):
    """Syslog over a socket path or UDP; one datagram per line."""

    label = "syslog"
    _failures = 0

    def write_batch(self, lines: list[tuple[int, str]]) -> None:
        """Send each line with its level's priority; raise if any failed."""
        self._failures = 0
        for level, line in lines:
            record = logging.LogRecord("", level, "", 0, line, None, None)
            self.emit(record)  # calls handleError() on failure
        if self._failures:
            raise OSError(f"{self._failures} of {len(lines)} syslog messages failed")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        """Count the failure; :meth:`write_batch` reports it."""
        self._failures += 1

    def format(self, record: logging.LogRecord) -> str:
        """The line was rendered when it was queued."""
        return str(record.msg)

    def flush_batch(self) -> None:
        """Nothing is buffered."""


class _Writer:
    """One output, its bounded queue and its thread.

    The thread wakes every ``WRITE_INTERVAL`` and writes what is queued, one write and
    one flush per batch. Producers do not wake it per line: on a server pinned to one
    core, a writer woken for every access line took the GIL from the event loop
    thousands of times a second, which cost more CPU than rendering the lines. An error
    line and a queue a quarter full wake it at once, as do flush and stop.
    """

    BATCH = 512
    WRITE_INTERVAL = 0.05

    def __init__(self, output: Output, size: int, pipeline: LoggingHandle) -> None:
        self.output = output
        self.size = size
        self.pipeline = pipeline
        self.high_water = max(1, min(size // 4, self.BATCH))
        self.counts_lock = threading.Lock()
        self.last_error = ""
        self.renew()

    def renew(self) -> None:
        """A fresh queue, wake event and thread (at start, and in a forked child)."""
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=self.size)
        self.wake = threading.Event()
        self.counts_lock = threading.Lock()
        self.dropped = 0
        self.write_errors = 0
        self.stalled = False
        self.thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"fastapi-enterprise-log-{self.output.label}", daemon=True
        )

    def start(self) -> None:
        assert self.thread is not None  # noqa: S101 - renew() made it
        self.thread.start()

    def offer(self, item: tuple[int, str]) -> None:
        """Queue a line without ever blocking; a full queue drops and counts it."""
        records = self.queue
        try:
            records.put_nowait(item)
        except queue.Full:
            with self.counts_lock:
                self.dropped += 1
            self.pipeline.reporter.poke()
            return
        wake = self.wake
        if not wake.is_set() and (item[0] >= logging.ERROR or records.qsize() >= self.high_water):
            wake.set()

    def written(self, deadline: float) -> bool:
        """Wait until every line queued so far is written, or ``deadline`` passes."""
        records = self.queue
        with records.all_tasks_done:
            while records.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stalled = True
                    return False
                self.wake.set()
                records.all_tasks_done.wait(min(remaining, self.WRITE_INTERVAL))
        self.stalled = False
        return True

    def stop(self, deadline: float) -> bool:
        """Write what is queued and end the thread; ``False`` if it is stuck in a write."""
        thread = self.thread
        if thread is None:
            return True
        self.thread = None
        self.wake.set()
        try:
            self.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def _run(self) -> None:
        records, wake, output = self.queue, self.wake, self.output
        while True:
            wake.wait(self.WRITE_INTERVAL)
            wake.clear()
            while True:
                batch: list[Any] = []
                while len(batch) < self.BATCH:
                    try:
                        batch.append(records.get_nowait())
                    except queue.Empty:  # noqa: PERF203 - the loop ends here
                        break
                if not batch:
                    break
                lines = [item for item in batch if item is not _STOP]
                if lines:
                    self._write(output, lines)
                for _ in batch:
                    records.task_done()
                if len(lines) < len(batch):
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
        self.pipeline.reporter.poke()


class _Reporter:
    """Tells of lost lines: on standard error, boundedly, and to the loss observers.

    A thread of its own, so that a blocked standard error stalls no output and no
    request. Observers get the increments at most every ``PUBLISH_INTERVAL``; standard
    error gets one line per output with losses at most every ``REPORT_INTERVAL``.
    """

    PUBLISH_INTERVAL = 0.5
    REPORT_INTERVAL = 60.0

    def __init__(self, writers: list[_Writer]) -> None:
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
                with writer.counts_lock:
                    counts = (writer.dropped, writer.write_errors)
                    last_error = writer.last_error
                published = self.published[key]
                if counts != published:
                    self.published[key] = counts
                    _notify(writer.output.label, counts[0] - published[0], counts[1] - published[1])
                if counts == self.reported[key]:
                    continue
                due = self.last_report[key] + self.REPORT_INTERVAL
                if now >= due or final:
                    self.reported[key], self.last_report[key] = counts, now
                    _report(writer.output.label, counts, last_error)
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
        self.reporter = _Reporter(self._writers)
        self._handler: PipelineHandler | None = None
        self._single = self._writers[0] if len(self._writers) == 1 else None
        self._write_through = False
        self._stopped = False
        self._previous_sigterm: Any = None

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
            if skip_stalled and writer.stalled and writer.queue.unfinished_tasks:
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
            while writer.queue.unfinished_tasks and writer.thread is not None:
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
        self._chain_sigterm()

    def _restart_in_child(self) -> None:
        for writer in self._writers:
            writer.renew()
            writer.start()
        self.reporter.renew()
        self.reporter.start()
        if self._handler is not None and self._handler in logging.getLogger().handlers:
            adopt_server_loggers()

    def _chain_sigterm(self) -> None:
        """Write what is queued when ``SIGTERM``'s default action is about to end us.

        Installed only in the main thread, over a default or absent handler (a server's
        own handler is chained to, not replaced, and a server that restores the handler
        it found restores this one).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if isinstance(previous, _SigtermFlush):
                previous = previous.previous
            signal.signal(signal.SIGTERM, _SigtermFlush(previous))
        except (ValueError, OSError):  # not the main interpreter, or no signals here
            return


class _SigtermFlush:
    """A ``SIGTERM`` handler: pass to the handler in place, or flush and die as default."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
            return
        deadline = time.monotonic() + LoggingHandle.STOP_TIMEOUT
        for pipeline in list(_PIPELINES):
            pipeline._drain_without_locks(deadline)
        if previous == signal.SIG_IGN:
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
