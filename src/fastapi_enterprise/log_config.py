"""``configure_logging(settings)``: structlog and the stdlib, one format, one call.

The library never configures logging by itself: until the application configures
logging, the package logger writes nothing but the errors no handler would take
(to stderr, as bare FastAPI would). After a call to :func:`configure_logging`,
structlog loggers and every stdlib logger (uvicorn, gunicorn, SQLAlchemy, the app's own)
write the same format:

- production: one JSON object per line with an ISO-8601 UTC ``timestamp``, ``level``,
  ``logger``, ``event``, the ``request_id`` (and ``route`` once routed) of the request in
  flight, and structured exceptions without local variables;
- development: readable, coloured console lines.

Every value goes through the shared :class:`~fastapi_enterprise.redaction.Redactor`,
long strings are cut to ``max_field_length``, and control characters (CR, LF, NUL, ANSI
escapes, U+2028) are escaped, so no value can split a line or forge a record.

Records are formatted in the calling thread and written by a writer thread per output
from a bounded queue: a request never waits on a slow disk or pipe, and when an output's
queue is full the line is dropped and counted rather than blocking (per pipeline in
:attr:`LoggingHandle.outputs`, over the life of the process in :func:`log_losses`).
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import structlog
from pydantic_core import to_json
from structlog.processors import ExceptionRenderer
from structlog.stdlib import ProcessorFormatter
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from fastapi_enterprise._log_outputs import FileOutput, Output, StreamOutput, SyslogOutput
from fastapi_enterprise._log_pipeline import (
    EventSampler,
    LoggingHandle,
    PipelineHandler,
    adopt_server_loggers,
    current_logging_handle,
    direct_handler,
    log_losses,
)
from fastapi_enterprise._logging import RECORD_ATTRIBUTES
from fastapi_enterprise.client_ip import client_address
from fastapi_enterprise.context import _current_scope, get_trace_ids
from fastapi_enterprise.redaction import MASK, Redactor
from fastapi_enterprise.routing import UNMATCHED_ROUTE, route_template
from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "LoggingHandle",
    "configure_logging",
    "current_logging_handle",
    "escape_control_characters",
    "log_losses",
]

_direct_handler = direct_handler  # the access log's fast path
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_KEEP_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


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
        *([_TraceLink(options.trace_url)] if options.trace_url else []),
        ExceptionRenderer(ExceptionDictTransformer(show_locals=False, use_rich=False))
        if json_output
        else structlog.processors.format_exc_info,
        _Sanitize(redactor, options.max_field_length),
    ]
    if json_output:
        final.append(_render_json)
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
        if isinstance(existing, PipelineHandler):
            existing.pipeline.stop()
        elif replace_handlers:
            root.removeHandler(existing)

    outputs: list[Output] = []
    if options.stdout:
        outputs.append(StreamOutput(stream or sys.stdout))
    if options.file_path is not None:
        outputs.append(
            FileOutput(
                options.file_path,
                maxBytes=options.file_max_bytes,
                backupCount=options.file_backup_count,
                encoding="utf-8",
                delay=True,
            )
        )
    if options.syslog_address is not None:
        outputs.append(
            SyslogOutput(
                address=_syslog_address(options.syslog_address), facility=options.syslog_facility
            )
        )
    handle = LoggingHandle(outputs, options.queue_size)
    handler = PipelineHandler(handle, EventSampler(options.event_sample_rates, chance), formatter)
    root.addHandler(handler)
    root.setLevel(options.level)
    adopt_server_loggers()
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.NOTSET if options.uvicorn_access_log else logging.WARNING)
    handle._start(handler)
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
        # For events without ``exc_info`` (every access line): the chain minus the
        # exception renderer, which would only look for it.
        self._plain_chain = [p for p in processors if not isinstance(p, ExceptionRenderer)]

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
        for processor in self.chain if "exc_info" in event else self._plain_chain:
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


def _render_json(logger: WrappedLogger, method: str, event: EventDict) -> str:
    """Render ``event`` as one JSON line.

    What structlog's ``JSONRenderer`` over :func:`_dumps` returns, without the keyword
    arguments it would pass along.
    """
    return _dumps(event)


def _dumps(value: Any) -> str:
    # pydantic-core's Rust serializer: fast, and it escapes every C0 control character.
    # It leaves NEL and the Unicode line separators raw; escape them so that no
    # line-splitting reader (str.splitlines, some log shippers) can break a record.
    line = to_json(value, fallback=str).decode()
    if "\u2028" in line or "\u2029" in line or "\x85" in line:
        line = line.translate(_JSON_LINE_BREAKS)
    return line


def _add_request_context(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Add the request's route template (once routed), client IP and trace IDs.

    The trace IDs are those of the current sampled OpenTelemetry span, if any.
    """
    if "trace_id" not in event and (ids := get_trace_ids()) is not None:
        event["trace_id"], event["span_id"] = ids
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


ACCESS_EVENT = "http.request"
"""The event name of the access log's line (``middleware/access_log.py`` writes it)."""


class _TraceLink:
    """Add ``trace_url`` to a traced access line, from the ``logging.trace_url`` template."""

    def __init__(self, template: str) -> None:
        self.template = template

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        trace_id = event.get("trace_id")
        if trace_id and event.get("event") == ACCESS_EVENT:
            event["trace_url"] = self.template.format(
                trace_id=trace_id, span_id=event.get("span_id", "")
            )
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
            "trace_id",
            "span_id",
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
    _TRACEBACK_FIELDS = 8  # a traceback may be as long as this many fields

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
                event[key] = self._traceback(value) if key == "exception" else self._text(value)
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

    def _traceback(self, value: str) -> str:
        """A rendered traceback (console format): cut in the middle, if at all.

        Its end says what failed; its start, where. It gets more room than a field.
        """
        limit = self.limit * self._TRACEBACK_FIELDS
        if len(value) <= limit:
            return self.redactor.text(value)
        head, tail = limit // 4, limit - limit // 4
        start = self.redactor.text(value[: head + self._MARGIN])[:head]
        end = self.redactor.text(value[-(tail + self._MARGIN) :])[-tail:]
        return f"{start}\n...[{len(value) - limit} characters cut]...\n{end}"

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
