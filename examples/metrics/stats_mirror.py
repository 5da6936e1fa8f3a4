"""Counters kept with plain integers in a hot path, published as Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from fastapi_enterprise.metrics import StatsMirror


@dataclass
class PipelineStats:
    """Counted where it happens, with ``stats.dropped += 1``: no lock, no metric call."""

    dropped: int = 0
    stream_errors: int = 0
    file_errors: int = 0


def publish(stats: PipelineStats, registry: CollectorRegistry) -> StatsMirror:
    """Publish ``stats``: exact at every scrape in one process, every second under workers."""
    mirror = StatsMirror(registry)
    mirror.counter("log_records_dropped", "Log records dropped.", lambda: {(): stats.dropped})
    mirror.counter(
        "log_write_errors",
        "Failed writes, by output.",
        lambda: {("stream",): stats.stream_errors, ("file",): stats.file_errors},
        labelnames=("output",),
    )
    return mirror
