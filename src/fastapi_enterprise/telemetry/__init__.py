"""OpenTelemetry through FastAPI's own telemetry: configured once, redacted, batched.

``EnterpriseSettings.fastapi_kwargs()`` passes :meth:`Telemetry.fastapi_config` to
``FastAPI(telemetry=...)`` when ``otel.enabled`` is on; ``install()`` flushes and shuts
the providers down at the end of the app's lifespan. Every span and log record is
redacted before an exporter sees it (:class:`RedactingSpanProcessor`,
:class:`RedactingLogRecordProcessor`), and exports run in the SDK's batch threads, off
the request path. Needs the ``otel`` extra: ``pip install 'fastapi-enterprise[otel]'``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise._http import PathPrefixes
from fastapi_enterprise.redaction import Redactor

try:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
except ImportError as exc:  # pragma: no cover - exercised by the minimal suite
    raise MissingExtraError("otel", module=__name__, missing="opentelemetry-sdk") from exc

from fastapi_enterprise.telemetry._redacting import (
    RedactingLoggerProvider,
    RedactingLogRecordProcessor,
    RedactingSpanProcessor,
    RedactingTracerProvider,
)

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.metrics import MeterProvider

    from fastapi_enterprise.settings import EnterpriseSettings

__all__ = [
    "RedactingLogRecordProcessor",
    "RedactingLoggerProvider",
    "RedactingSpanProcessor",
    "RedactingTracerProvider",
    "Telemetry",
    "build_telemetry",
    "install_environment_providers",
]


class Telemetry:
    """The OpenTelemetry providers built from one ``EnterpriseSettings``.

    Attributes:
        tracer_provider: Spans, or ``None`` when ``otel.traces`` is off.
        logger_provider: FastAPI's log records, or ``None`` when ``otel.logs`` is off.
        meter_provider: FastAPI's HTTP metrics, or ``None`` when ``otel.metrics`` is off.
        exclude_paths: Path prefixes FastAPI does not observe.
        operation_spans: Whether FastAPI adds dependency, endpoint and serialization spans.
    """

    def __init__(
        self,
        *,
        tracer_provider: RedactingTracerProvider | None,
        logger_provider: RedactingLoggerProvider | None,
        meter_provider: MeterProvider | None,
        exclude_paths: list[str],
        operation_spans: bool,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self.meter_provider = meter_provider
        self.exclude_paths = list(exclude_paths)
        self.operation_spans = operation_spans
        self._excluded = PathPrefixes(self.exclude_paths)
        self._closed = False
        self._lock = threading.Lock()

    def exclude(self, scope: MutableMapping[str, Any]) -> bool:
        """FastAPI's ``exclude`` hook: whether a request's path is not observed."""
        return self._excluded.covers(scope.get("path", ""))

    def fastapi_config(self) -> TelemetryConfig:
        """The ``telemetry=`` argument of ``FastAPI()``.

        Explicit providers, and ``auto_configure`` off: FastAPI never attaches an
        exporter of its own that would bypass the redaction.
        """
        return {
            "tracer_provider": self.tracer_provider,
            "logger_provider": self.logger_provider,
            "meter_provider": self.meter_provider,
            "tracing": self.tracer_provider is not None,
            "logs": self.logger_provider is not None,
            "metrics": self.meter_provider is not None,
            "operation_spans": self.operation_spans,
            "auto_configure": False,
            "exclude": self.exclude,
        }

    def force_flush(self, timeout_millis: int = 30_000) -> None:
        """Export what the batch processors still hold."""
        for provider in self._providers():
            provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush, then stop the exporters; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for provider in self._providers():
            provider.shutdown()

    def _providers(self) -> list[Any]:
        return [
            provider
            for provider in (self.tracer_provider, self.logger_provider, self.meter_provider)
            if provider is not None
        ]


def _resource(settings: EnterpriseSettings) -> Resource:
    return Resource.create(
        {
            "service.name": settings.otel.service_name or settings.app.name,
            "service.version": settings.app.version,
            "deployment.environment.name": settings.environment.value,
        }
    )


def _redactor(settings: EnterpriseSettings) -> Redactor:
    options = settings.logging
    return Redactor(keys=options.redact_keys, headers=options.redact_headers)


def _endpoint(settings: EnterpriseSettings, signal: str) -> str | None:
    """The OTLP/HTTP URL of one signal: the setting, else the standard variables."""
    configured = settings.otel.endpoint
    if configured is not None:
        return f"{configured.get_secret_value().rstrip('/')}/v1/{signal}"
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific:
        return specific
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/{signal}" if base else None


def build_telemetry(settings: EnterpriseSettings) -> Telemetry:
    """Build the providers and OTLP/HTTP exporters that ``settings.otel`` describes.

    Prefer :meth:`EnterpriseSettings.fastapi_kwargs`, which builds them once per
    settings object.
    """
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    options = settings.otel
    resource = _resource(settings)
    redactor = _redactor(settings)
    # Headers from the environment (OTEL_EXPORTER_OTLP_HEADERS) when none are set here.
    headers = (
        {name: value.get_secret_value() for name, value in options.headers.items()}
        if options.headers
        else None
    )
    exporter_options: dict[str, Any] = {"headers": headers, "timeout": options.timeout}

    tracer_provider = None
    if options.traces:
        tracer_provider = RedactingTracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(options.sample_ratio)),
            redactor=redactor,
            shutdown_on_exit=False,
        )
        if (endpoint := _endpoint(settings, "traces")) is not None:
            tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, **exporter_options))
            )
    logger_provider = None
    if options.logs:
        logger_provider = RedactingLoggerProvider(
            resource=resource, redactor=redactor, shutdown_on_exit=False
        )
        if (endpoint := _endpoint(settings, "logs")) is not None:
            logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, **exporter_options))
            )
    meter_provider = None
    if options.metrics:
        endpoint = _endpoint(settings, "metrics")
        readers = (
            [
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=endpoint, **exporter_options)
                )
            ]
            if endpoint is not None
            else []
        )
        meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, shutdown_on_exit=False
        )
    return Telemetry(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        meter_provider=meter_provider,
        exclude_paths=options.exclude_paths,
        operation_spans=options.operation_spans,
    )


def install_environment_providers(settings: EnterpriseSettings) -> bool:
    """Make FastAPI's environment route (``FASTAPI_OTEL_AUTO_CONFIGURE=true``) redact.

    FastAPI's auto-configuration attaches its OTLP exporters to the global providers,
    creating them when none is set. Set first, redacting global providers receive those
    exporters instead. Nothing happens when a global tracer provider is already set (the
    app configured its own: wrap its processors in :class:`RedactingSpanProcessor`).

    Returns:
        Whether the global providers were installed.
    """
    from opentelemetry import _logs, trace

    if type(trace.get_tracer_provider()).__name__ != "ProxyTracerProvider":
        return False
    resource = _resource(settings)
    redactor = _redactor(settings)
    trace.set_tracer_provider(
        RedactingTracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(settings.otel.sample_ratio)),
            redactor=redactor,
        )
    )
    if type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider":
        _logs.set_logger_provider(RedactingLoggerProvider(resource=resource, redactor=redactor))
    return True
