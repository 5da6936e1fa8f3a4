"""``configure_logging(settings)``: structlog and the stdlib, one format, one call.

The library never configures logging by itself: the package logger has a
``NullHandler`` until the application calls :func:`configure_logging`. After the call,
structlog loggers and every stdlib logger (uvicorn, gunicorn, SQLAlchemy, the app's own)
write the same format:

- production: one JSON object per line with an ISO-8601 UTC ``timestamp``, ``level``,
  ``logger``, ``event``, the ``request_id`` (and ``route`` once routed) of the request in
  flight, and structured exceptions without local variables;
- development: readable, coloured console lines.

Every value goes through the shared :class:`~fastapi_enterprise.redaction.Redactor`,
long strings are cut to ``max_field_length``, and control characters (CR, LF, NUL, ANSI
escapes, U+2028) are escaped, so no value can split a line or forge a record.

Records are formatted in the calling thread and written by a background thread from a
bounded queue (``QueueHandler``/``QueueListener``): a request never waits on a slow disk
or pipe, and when the queue is full the record is dropped and counted rather than
blocking.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

import structlog
from pydantic_core import to_json
from structlog.processors import ExceptionRenderer
from structlog.stdlib import ProcessorFormatter
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from fastapi_enterprise._logging import RECORD_ATTRIBUTES
from fastapi_enterprise.client_ip import client_address
from fastapi_enterprise.context import _current_scope
from fastapi_enterprise.redaction import MASK, Redactor
from fastapi_enterprise.routing import UNMATCHED_ROUTE, route_template
from fastapi_enterprise.settings import EnterpriseSettings

__all__ = ["LoggingHandle", "configure_logging", "escape_control_characters"]

# Loggers of servers and libraries that install their own handlers: after
# configure_logging() they propagate to the root logger and share its format.
_ADOPTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_ERROR_REPORT_INTERVAL = 60.0


def escape_control_characters(text: str, *, keep_newlines: bool = False) -> str:
    r"""Replace control characters with visible escapes (``\x1b``, ``\n``, ``\u2028``).

    Args:
        text: Any string headed for a log line.
        keep_newlines: Keep ``\n`` (for multi-line tracebacks, which the console
            renderer indents so they cannot pass for records).
    """
    pattern = _CONTROL_KEEP_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class LoggingHandle:
    """The running log pipeline: counters, flush and shutdown.

    Returned by :func:`configure_logging`; stopped automatically at interpreter exit.
    """

    def __init__(self) -> None:
        self._dropped = 0
        self._write_errors = 0
        self._lock = threading.Lock()
        self._last_error_report = 0.0
        self._queue: queue.Queue[logging.LogRecord] | None = None
        self._wake = threading.Event()
        self._listener: _BatchingListener | None = None
        self._handler: logging.Handler | None = None
        self._stopped = False

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full."""
        return self._dropped

    @property
    def write_errors(self) -> int:
        """Records an output failed to write (full or read-only disk, dead syslog)."""
        return self._write_errors

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is written; return whether that happened in time."""
        deadline = time.monotonic() + timeout
        while self._queue is not None and self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.001)
        return True

    def stop(self) -> None:
        """Write what is queued, then detach and close the outputs. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        root = logging.getLogger()
        if self._handler is not None and self._handler in root.handlers:
            root.removeHandler(self._handler)
        if self._listener is not None and self._listener.stop():
            for output in self._listener.outputs:
                output.close()  # a failing final flush is counted, not raised
        # Else the writer is stuck in an output's write(): it keeps the outputs (closing
        # one would wait for its lock), and as a daemon thread it does not hold up exit.
        atexit.unregister(self.stop)

    def _count_drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def _count_write_error(self, handler: logging.Handler, records: int = 1) -> None:
        with self._lock:
            self._write_errors += records
            now = time.monotonic()
            report = now - self._last_error_report >= _ERROR_REPORT_INTERVAL
            if report:
                self._last_error_report = now
        if report:
            error = sys.exc_info()[1]
            try:
                sys.stderr.write(
                    f"fastapi-enterprise: {type(handler).__name__} failed to write a log record "
                    f"({self._write_errors} so far): {type(error).__name__}: {error}\n"
                )
            except Exception:  # noqa: BLE001 - stderr itself is gone; nothing left to tell
                return


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Formats in the caller's thread; never blocks: a full queue drops and counts."""

    def __init__(
        self,
        records: queue.Queue[logging.LogRecord],
        handle: LoggingHandle,
        sampler: _EventSampler,
        formatter: _Formatter,
    ) -> None:
        super().__init__(records)
        self.records = records
        self.owner = handle
        self.sampler = sampler
        self.renderer = formatter
        self.addFilter(sampler)
        self.setFormatter(formatter)
        self.high_water = max(1, min(records.maxsize // 4, _BatchingListener.BATCH))

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Format here, in the caller's context; hand the writer a bare record.

        The stdlib copies the whole record; the writer needs only the line and the level.
        """
        return _line_record(record.name, record.levelno, self.format(record))

    def enqueue(self, record: logging.LogRecord) -> None:
        records = self.records
        try:
            records.put_nowait(record)
        except queue.Full:
            self.owner._count_drop()
            return
        # The writer wakes on its own every WRITE_INTERVAL; it is woken now only for an
        # error (written before a crash can lose it) or a queue filling up.
        wake = self.owner._wake
        if not wake.is_set() and (
            record.levelno >= logging.ERROR or records.qsize() >= self.high_water
        ):
            wake.set()

    def submit(self, name: str, level: int, event: str, fields: dict[str, Any]) -> None:
        """Render and queue an event without building a ``LogRecord`` first.

        The library's own access lines come this way (see :func:`_direct_handler`): the
        line is the one :meth:`format` would render for the record ``logger.handle``
        would have made, through the same sampler and processors.
        """
        if not self.sampler.keeps(event, level):
            return
        self.enqueue(_line_record(name, level, self.renderer.render(name, level, event, fields)))


def _line_record(name: str, level: int, line: str) -> logging.LogRecord:
    """A bare record carrying a rendered line: all the writer thread needs."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__.update(
        name=name,
        levelno=level,
        levelname=logging.getLevelName(level),
        msg=line,
        message=line,
        args=None,
        exc_info=None,
        exc_text=None,
        stack_info=None,
    )
    return record


def _direct_handler(logger: logging.Logger) -> _DroppingQueueHandler | None:
    """The pipeline's queue handler, if a record of ``logger`` would reach it alone.

    True when :func:`configure_logging` is in charge and nothing else listens: no
    handler other than ``NullHandler`` on the way to the root, no logger filters, no
    extra filter on the handler (pytest's ``caplog``, an app's own handler or filter all
    make this ``None``). The caller may then :meth:`~_DroppingQueueHandler.submit` its
    event and skip the ``LogRecord`` machinery; the rendered line is the same.
    """
    found: _DroppingQueueHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if found is None and isinstance(handler, _DroppingQueueHandler):
                found = handler
            elif handler.__class__ is not logging.NullHandler:
                return None
        if not current.propagate:
            break
        current = current.parent
    if found is None or found.level or len(found.filters) != 1:
        return None
    return found


class _CountErrors(logging.Handler):
    """Output mix-in: failures are counted, and flushing happens once per batch."""

    handle_ref: LoggingHandle

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        self.handle_ref._count_write_error(self)

    def write_batch(self, records: list[logging.LogRecord]) -> None:
        """Write the rendered lines of a batch; by default one record at a time."""
        for record in records:
            self.handle(record)

    def flush(self) -> None:
        """Deferred: the writer thread calls :meth:`flush_batch` after each batch."""

    def flush_batch(self) -> None:
        try:
            super().flush()
        except Exception:  # noqa: BLE001 - a full disk must not kill the writer thread
            self.handle_ref._count_write_error(self)

    _closed = False

    def close(self) -> None:
        # logging.shutdown() closes every handler ever made at exit: once is enough.
        if self._closed:
            return
        self._closed = True
        self.flush_batch()
        try:
            super().close()  # closing a file flushes its buffer: fails on a full disk
        except OSError:
            self.handle_ref._count_write_error(self)


class _Line(logging.Formatter):
    """The writer's formatter: the line was rendered when the record was queued."""

    def format(self, record: logging.LogRecord) -> str:
        line: str = record.msg
        return line


_LINE = _Line()
_STOP: Any = None  # what _BatchingListener.stop() queues last: the writer ends there


class _BatchingListener(logging.handlers.QueueListener):
    """A QueueListener that wakes every ``WRITE_INTERVAL`` and writes what is queued.

    Each output gets one write per batch. Producers do not wake the writer per record:
    on a server pinned to one core, a writer woken for every access line took the GIL
    from the event loop thousands of times a second (most when zlib released it), which
    cost more CPU than rendering the lines. Errors and a filling queue still wake it at
    once, as do :meth:`LoggingHandle.flush` and :meth:`stop`.
    """

    BATCH = 512
    WRITE_INTERVAL = 0.05
    STOP_TIMEOUT = 5.0

    def __init__(
        self, records: queue.Queue[Any], wake: threading.Event, outputs: list[_CountErrors]
    ) -> None:
        super().__init__(records, *outputs, respect_handler_level=False)
        self.records = records
        self.wake = wake
        self.outputs = outputs

    def stop(self) -> bool:  # type: ignore[override]
        """Write what is queued and end the thread; return whether it ended.

        Gives up after ``STOP_TIMEOUT`` seconds on an output stuck in ``write()``.
        """
        thread = self._thread
        if thread is None:
            return True
        self._thread = None
        self.wake.set()
        try:
            self.records.put(_STOP, timeout=self.STOP_TIMEOUT)
        except queue.Full:
            return False
        thread.join(self.STOP_TIMEOUT)
        return not thread.is_alive()

    def _monitor(self) -> None:
        records, wake = self.records, self.wake
        while True:
            wake.wait(self.WRITE_INTERVAL)
            wake.clear()
            while True:
                batch: list[logging.LogRecord] = []
                while len(batch) < self.BATCH:
                    try:
                        batch.append(records.get_nowait())
                    except queue.Empty:  # noqa: PERF203 - the loop ends here
                        break
                if not batch:
                    break
                lines = [record for record in batch if record is not _STOP]
                for output in self.outputs:
                    output.write_batch(lines)
                    output.flush_batch()
                for _ in batch:
                    records.task_done()
                if len(lines) < len(batch):
                    return


class _TextOutput(_CountErrors):
    """An output of text lines: each batch is handed to :meth:`_write_lines` at once."""

    def write_batch(self, records: list[logging.LogRecord]) -> None:
        """Write the batch's lines; a failure counts every record of the batch."""
        if not records:
            return
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self._write_lines([f"{record.msg}\n" for record in records])
            except Exception:  # noqa: BLE001 - a full disk or broken pipe must not kill the writer
                self.handle_ref._count_write_error(self, len(records))

    def _write_lines(self, lines: list[str]) -> None:
        raise NotImplementedError


class _StreamOutput(_TextOutput, logging.StreamHandler):  # type: ignore[type-arg]
    def _write_lines(self, lines: list[str]) -> None:
        self.stream.write("".join(lines))  # one write for the whole batch


class _FileOutput(_TextOutput, logging.handlers.RotatingFileHandler):
    """A size-rotated file written a batch at a time.

    The stdlib's ``RotatingFileHandler`` checks the file's type and seeks to its end for
    every record (four system calls, and a flush of the buffer): here that happens once
    per batch, and the size is counted as lines are added. Rotation still happens
    before the line that would reach ``maxBytes``; a lone line longer than that is
    written to a fresh file rather than rotating an empty one.
    """

    def _opened(self) -> IO[str]:
        if self.stream is None:
            self.stream = self._open()
        return self.stream

    def _write_lines(self, lines: list[str]) -> None:
        """Write the lines, rotating between them where the size limit falls."""
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


class _SyslogOutput(_CountErrors, logging.handlers.SysLogHandler):
    pass


class _EventSampler(logging.Filter):
    """Keeps a configured fraction of chosen debug/info events; never drops warnings."""

    def __init__(self, rates: Mapping[str, float], chance: Callable[[], float]) -> None:
        super().__init__()
        self.rates = dict(rates)
        self.chance = chance

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        event = message.get("event") if isinstance(message, dict) else message
        return self.keeps(event, record.levelno)

    def keeps(self, event: object, level: int) -> bool:
        """Whether an event of this name and level is kept."""
        if not self.rates or level >= logging.WARNING:
            return True
        rate = self.rates.get(event) if isinstance(event, str) else None
        return rate is None or self.chance() < rate


def configure_logging(
    settings: EnterpriseSettings,
    *,
    stream: IO[str] | None = None,
    chance: Callable[[], float] = random.random,
    replace_handlers: bool = False,
) -> LoggingHandle:
    """Configure structlog and the stdlib root logger from ``settings.logging``.

    Call it once, early (at import of the app module, before the app serves). Calling it
    again replaces the previous configuration cleanly.

    Args:
        settings: The settings; ``settings.logging`` decides level, format and outputs.
        stream: Where console/JSON lines go; standard output by default.
        chance: Source of randomness for sampling (a test can make it deterministic).
        replace_handlers: Also remove handlers that others put on the root logger (for
            example by ``logging.basicConfig``); by default only a previous
            configuration of this function is replaced.

    Returns:
        A :class:`LoggingHandle` with drop and error counters, ``flush()`` and ``stop()``.
    """
    options = settings.logging
    json_output = options.format != "console"
    redactor = Redactor(keys=options.redact_keys, headers=options.redact_headers)
    timestamper = _UTCTimestamp()

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    final: list[Processor] = [
        _add_request_context,
        ExceptionRenderer(ExceptionDictTransformer(show_locals=False, use_rich=False))
        if json_output
        else structlog.processors.format_exc_info,
        _Sanitize(redactor, options.max_field_length),
    ]
    if json_output:
        final.append(structlog.processors.JSONRenderer(serializer=_dumps))
    else:
        final += [_escape_for_console, structlog.dev.ConsoleRenderer(colors=_is_tty(stream))]
    formatter = _Formatter(
        pre_chain=[structlog.contextvars.merge_contextvars, timestamper],
        processors=final,
    )
    return _install_pipeline(settings, formatter, stream, chance, replace_handlers)


def _install_pipeline(
    settings: EnterpriseSettings,
    formatter: _Formatter,
    stream: IO[str] | None,
    chance: Callable[[], float],
    replace_handlers: bool,
) -> LoggingHandle:
    options = settings.logging
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _DroppingQueueHandler):
            existing.owner.stop()
        elif replace_handlers:
            root.removeHandler(existing)

    handle = LoggingHandle()
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=options.queue_size)
    outputs: list[_CountErrors] = [_StreamOutput(stream or sys.stdout)]
    if options.file_path is not None:
        outputs.append(
            _FileOutput(
                options.file_path,
                maxBytes=options.file_max_bytes,
                backupCount=options.file_backup_count,
                encoding="utf-8",
                delay=True,
            )
        )
    if options.syslog_address is not None:
        outputs.append(
            _SyslogOutput(
                address=_syslog_address(options.syslog_address), facility=options.syslog_facility
            )
        )
    for output in outputs:
        output.handle_ref = handle
        output.setFormatter(_LINE)

    handler = _DroppingQueueHandler(
        records, handle, _EventSampler(options.event_sample_rates, chance), formatter
    )
    listener = _BatchingListener(records, handle._wake, outputs)
    handle._queue, handle._listener, handle._handler = records, listener, handler

    root.addHandler(handler)
    root.setLevel(options.level)
    for name in _ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers.clear()
        adopted.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.NOTSET if options.uvicorn_access_log else logging.WARNING)
    listener.start()
    atexit.register(handle.stop)
    return handle


# What a record carries besides the extra fields: the stdlib's attributes, uvicorn's
# coloured message and structlog's bookkeeping.
_STANDARD_RECORD_ATTRIBUTES = RECORD_ATTRIBUTES | {"color_message", "_logger", "_name"}


class _Formatter(ProcessorFormatter):
    """structlog's ProcessorFormatter, minus the generic costs on the hot path.

    The parent copies every record and then formats it twice (once through the
    processors, once through ``logging.Formatter``). Here the event dict is built
    straight from the record, run through the same processors, and the rendered line
    returned: a third of the CPU per access line.
    """

    def __init__(self, *, pre_chain: list[Processor], processors: list[Processor]) -> None:
        super().__init__(foreign_pre_chain=pre_chain, processors=processors)
        self.pre_chain = pre_chain
        self.chain = processors

    def format(self, record: logging.LogRecord) -> str:
        structlog_name = getattr(record, "_name", None)
        if structlog_name is not None and isinstance(record.msg, dict):
            method: str = structlog_name
            event: EventDict = dict(record.msg)
        else:
            method = record.levelname.lower()
            event = {"event": record.getMessage()}
            for key, value in record.__dict__.items():
                if key not in _STANDARD_RECORD_ATTRIBUTES:
                    event[key] = value
            event["level"] = method
            event["logger"] = record.name
            if record.exc_info:
                event["exc_info"] = record.exc_info
            return self._process(method, event, foreign=True)
        return self._process(method, event, foreign=False)

    def render(self, name: str, level: int, message: str, fields: dict[str, Any]) -> str:
        """The line :meth:`format` gives a stdlib record with ``fields`` as ``extra``."""
        method = _METHOD_NAMES.get(level) or logging.getLevelName(level).lower()
        event: EventDict = {"event": message, **fields, "level": method, "logger": name}
        return self._process(method, event, foreign=True)

    def _process(self, method: str, event: EventDict, *, foreign: bool) -> str:
        """Run the chain (after the pre-chain, for events not from structlog)."""
        if foreign:
            for processor in self.pre_chain:
                event = processor(None, method, event)  # type: ignore[assignment]
        for processor in self.chain:
            event = processor(None, method, event)  # type: ignore[assignment]
        # The last processor is a renderer: what it returns is the finished line.
        line: str = event  # type: ignore[assignment]
        return line


_METHOD_NAMES = {
    level: logging.getLevelName(level).lower()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
}


class _UTCTimestamp:
    """Add ``timestamp``: ISO 8601 in UTC with microseconds, ``2026-11-29T06:23:34.123456Z``.

    What structlog's ``TimeStamper(fmt="iso", utc=True)`` writes (always with six
    fractional digits), with the date and time formatted once per second instead of on
    every line.
    """

    def __init__(self) -> None:
        # One tuple, replaced whole: threads logging concurrently never see a torn pair.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        cached, prefix = self._second
        if second != cached:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _syslog_address(address: str) -> str | tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if colon and port.isdigit() and not address.startswith("/"):
        return (host, int(port))
    return address


def _is_tty(stream: IO[str] | None) -> bool:
    target = stream or sys.stdout
    return bool(getattr(target, "isatty", lambda: False)())


def _dumps(value: Any, **_: Any) -> str:
    # pydantic-core's Rust serializer: fast, and it escapes every C0 control character.
    # It leaves NEL and the Unicode line separators raw; escape them so that no
    # line-splitting reader (str.splitlines, some log shippers) can break a record.
    line = to_json(value, fallback=str).decode()
    if "\u2028" in line or "\u2029" in line or "\x85" in line:
        line = line.translate(_JSON_LINE_BREAKS)
    return line


def _add_request_context(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Add the route template (once routed) and the client IP of the request in flight."""
    scope = _current_scope()
    if scope is not None:
        if "route" not in event:
            route = route_template(scope)
            if route != UNMATCHED_ROUTE:
                event["route"] = route
        if "client_ip" not in event:
            address = client_address(scope)
            if address:
                event["client_ip"] = address
    return event


class _Sanitize:
    """Redact and bound every value in one pass over the event.

    Secret-looking keys are masked whole, whatever their value's type; strings are cut to
    ``limit`` characters and scanned by the shared redactor (only what is written is
    scanned); containers are walked to the redactor's depth. Other numbers, booleans and
    ``None`` pass untouched, and the fields the library itself writes with known-safe
    values skip the scan.
    """

    _TRUSTED = frozenset(
        {
            "timestamp",
            "level",
            "logger",
            "request_id",
            "route",
            "method",
            "status",
            "client_ip",
            "duration_ms",
            "request_bytes",
            "response_bytes",
            "http_version",
            "slow",
            "security_event",
            "suppressed",
        }
    )

    # Short strings recur (event names, paths of hot routes, user agents): their clean
    # form is remembered. The table is emptied when full, so junk cannot pin it.
    _CACHED_LENGTH = 256
    _CACHE_SIZE = 4096
    _MARGIN = 256

    def __init__(self, redactor: Redactor, limit: int) -> None:
        self.redactor = redactor
        self.limit = limit
        self._clean: dict[str, str] = {}

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        redactor = self.redactor
        trusted = self._TRUSTED
        for key, value in event.items():
            if key in trusted or value is None:
                continue
            if key != "event" and redactor.is_secret(key):
                event[key] = MASK  # numbers too: an OTP or a PIN is often an int
                continue
            kind = value.__class__
            if kind is str:
                event[key] = self._text(value)
            elif kind is not int and kind is not float and kind is not bool:
                event[key] = self._walk(redactor.value(value), 0)
        return event

    def _text(self, value: str) -> str:
        clean = self._clean.get(value)
        if clean is None:
            clean = self._redact_and_cut(value)
            if len(value) <= self._CACHED_LENGTH:
                if len(self._clean) >= self._CACHE_SIZE:
                    self._clean.clear()
                self._clean[value] = clean
        return clean

    def _redact_and_cut(self, value: str) -> str:
        """Redact what will be written, and no more: a hostile megabyte costs the limit.

        A margin past the cut keeps a secret that straddles it masked.
        """
        limit = self.limit
        if len(value) <= limit:
            return self.redactor.text(value)
        clean = self.redactor.text(value[: limit + self._MARGIN])[:limit]
        return f"{clean}...[{len(value) - limit} more characters]"

    def _cut(self, value: str) -> str:
        if len(value) > self.limit:
            return f"{value[: self.limit]}...[{len(value) - self.limit} more characters]"
        return value

    def _walk(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._cut(value)
        if depth > self.redactor.max_depth:
            return value
        if isinstance(value, dict):
            return {key: self._walk(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item, depth + 1) for item in value]
        return value


def _escape_for_console(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    escaped: EventDict = {}
    for key, value in event.items():
        safe_key = escape_control_characters(str(key))
        if key == "exception" and isinstance(value, str):
            lines = escape_control_characters(value, keep_newlines=True).split("\n")
            escaped[safe_key] = "\n".join(f"    | {line}" for line in lines)
        elif isinstance(value, str):
            escaped[safe_key] = escape_control_characters(value)
        elif isinstance(value, (dict, list, tuple)):
            escaped[safe_key] = escape_control_characters(repr(value))
        else:
            escaped[safe_key] = value
    return escaped
