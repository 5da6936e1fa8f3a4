"""Span and log-record processors that pass every exported value through the redactor.

FastAPI's telemetry puts the raw query string, exception messages and stack traces into
spans and log records. These processors mask them with the library's one
:class:`~fastapi_enterprise.redaction.Redactor` before any exporter sees them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import Attributes

from fastapi_enterprise.redaction import MASK, Redactor

__all__ = [
    "RedactingLogRecordProcessor",
    "RedactingLoggerProvider",
    "RedactingSpanProcessor",
    "RedactingTracerProvider",
]

_HEADER_PREFIXES = ("http.request.header.", "http.response.header.")
_QUERY_KEYS = frozenset({"url.query", "http.query"})
_URL_KEYS = frozenset({"url.full", "http.url", "http.target", "url.original"})


def redact_attribute(redactor: Redactor, key: str, value: Any) -> Any:
    """The exported form of one attribute: secrets masked by name, then by content."""
    if key.startswith(_HEADER_PREFIXES):
        name = key.rsplit(".", 1)[-1]
        if isinstance(value, (list, tuple)):
            return tuple(redactor.header(name, str(item)) for item in value)
        return redactor.header(name, str(value))
    if redactor.is_secret(key.rsplit(".", 1)[-1]):
        return MASK
    if isinstance(value, str):
        if key in _QUERY_KEYS:
            return redactor.query_string(value)
        if key in _URL_KEYS and "?" in value:
            base, _, query = value.partition("?")
            return f"{redactor.text(base)}?{redactor.query_string(query)}"
        return redactor.text(value)
    if isinstance(value, (list, tuple)):
        return tuple(redactor.text(item) if isinstance(item, str) else item for item in value)
    return value


def redact_attributes(redactor: Redactor, attributes: Attributes) -> dict[str, Any]:
    """A redacted copy of ``attributes`` (``None`` gives an empty dict)."""
    if not attributes:
        return {}
    return {key: redact_attribute(redactor, key, value) for key, value in attributes.items()}


class RedactingSpanProcessor(SpanProcessor):
    """Hands ``inner`` a redacted copy of each ended span.

    Wrap the processor that exports (``BatchSpanProcessor(exporter)``) in it: the span's
    attributes, event attributes (``exception.message``, ``exception.stacktrace``), link
    attributes and status description pass through the redactor. The SDK freezes a
    span's attributes before any processor sees the end, hence a copy.

    Args:
        inner: The processor that receives the redacted spans.
        redactor: The redactor; the library's default rules when omitted.
    """

    def __init__(self, inner: SpanProcessor, redactor: Redactor | None = None) -> None:
        self.inner = inner
        self.redactor = redactor if redactor is not None else Redactor()

    def on_start(self, span: SDKSpan, parent_context: Context | None = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(self.redacted(span))

    def redacted(self, span: ReadableSpan) -> ReadableSpan:
        """A copy of ``span`` with every attribute and text redacted."""
        redactor = self.redactor
        status = span.status
        if status.description:
            status = Status(status.status_code, redactor.text(status.description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=redact_attributes(redactor, span.attributes),
            events=[
                Event(
                    event.name,
                    attributes=redact_attributes(redactor, event.attributes),
                    timestamp=event.timestamp,
                )
                for event in span.events
            ],
            links=[
                Link(link.context, attributes=redact_attributes(redactor, link.attributes))
                for link in span.links
            ],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RedactingLogRecordProcessor(LogRecordProcessor):
    """Redacts each log record in place: add it first, before any exporting processor.

    The body (text or nested data) and every attribute (the exception's message and
    stack trace included) pass through the redactor.

    Args:
        redactor: The redactor; the library's default rules when omitted.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor if redactor is not None else Redactor()

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        record = log_record.log_record
        if record.body is not None:
            record.body = self.redactor.value(record.body)
        attributes = record.attributes
        if attributes:
            # The SDK's record holds a fresh mutable BoundedAttributes: replaced whole,
            # its limits would be lost, so the values are written back into it.
            redacted = redact_attributes(self.redactor, attributes)
            if isinstance(attributes, MutableMapping):
                attributes.update(redacted)
            else:
                record.attributes = redacted

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is held back."""
        return True


class RedactingTracerProvider(TracerProvider):
    """A ``TracerProvider`` whose every span processor gets redacted spans.

    Processors added later, by FastAPI's environment auto-configuration or by the app,
    are wrapped in :class:`RedactingSpanProcessor` too.
    """

    def __init__(self, *args: Any, redactor: Redactor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redactor = redactor if redactor is not None else Redactor()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        if not isinstance(span_processor, RedactingSpanProcessor):
            span_processor = RedactingSpanProcessor(span_processor, self.redactor)
        super().add_span_processor(span_processor)


class RedactingLoggerProvider(LoggerProvider):
    """A ``LoggerProvider`` that redacts each record before its other processors see it."""

    def __init__(self, *args: Any, redactor: Redactor | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redactor = redactor if redactor is not None else Redactor()
        super().add_log_record_processor(RedactingLogRecordProcessor(self.redactor))
