"""A real OTLP/HTTP receiver on 127.0.0.1 for the telemetry tests.

It accepts what the OpenTelemetry exporters POST to ``/v1/traces``, ``/v1/logs`` and
``/v1/metrics`` (protobuf, gzip or not), keeps the raw bytes and decodes them with
opentelemetry-proto. ``stall()`` makes it hold every request unanswered until
``release()`` (bounded by ``stall_limit``), like a collector that hangs.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_SIGNALS: dict[str, tuple[Any, Any]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


@dataclass
class Received:
    """What one export POST carried."""

    path: str
    headers: dict[str, str]
    raw: bytes
    message: Any


@dataclass
class OTLPReceiver:
    """The receiver's state; ``url`` is the base URL to give an exporter."""

    server: ThreadingHTTPServer
    stall_limit: float = 30.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _go: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._go.set()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stall(self) -> None:
        """Hold every request from now on, without answering."""
        self._go.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._go.set()

    def signal(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]

    def raw(self) -> bytes:
        """Every byte received, all signals."""
        with self._lock:
            return b"".join(item.raw for item in self.received)

    def spans(self) -> list[Any]:
        return [
            span
            for item in self.signal("/v1/traces")
            for resource in item.message.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def log_records(self) -> list[Any]:
        return [
            record
            for item in self.signal("/v1/logs")
            for resource in item.message.resource_logs
            for scope in resource.scope_logs
            for record in scope.log_records
        ]

    def metrics(self) -> list[Any]:
        return [
            metric
            for item in self.signal("/v1/metrics")
            for resource in item.message.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds; fail with what arrived if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.02)
        paths = [item.path for item in self.received]
        raise AssertionError(f"the receiver never saw what was expected; it got {paths}")

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)


def start_receiver() -> OTLPReceiver:
    """Serve on a free port of 127.0.0.1 in a daemon thread; stop with ``stop_receiver``."""
    state: dict[str, OTLPReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = state["receiver"]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver._go.wait(receiver.stall_limit)
            signal = _SIGNALS.get(self.path)
            if signal is None:
                self.send_error(404)
                return
            raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
            request_type, response_type = signal
            message = request_type()
            message.ParseFromString(raw)
            receiver._record(Received(self.path, dict(self.headers.items()), raw, message))
            answer = response_type().SerializeToString()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the exporter gave up waiting (a stalled receiver): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read what was received, not an access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = OTLPReceiver(server)
    state["receiver"] = receiver
    threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True).start()
    return receiver


def stop_receiver(receiver: OTLPReceiver) -> None:
    receiver.release()
    receiver.server.shutdown()
    receiver.server.server_close()
