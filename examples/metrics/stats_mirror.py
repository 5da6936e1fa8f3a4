"""Counters kept with plain integers in a hot path, published as Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from fastapi_enterprise.metrics import StatsMirror


@dataclass
class WebhookStats:
    """Counted where it happens, with ``stats.delivered += 1``: no lock, no metric call."""

    delivered: int = 0
    timed_out: int = 0
    refused: int = 0
    pending: int = 0


def publish(stats: WebhookStats, registry: CollectorRegistry) -> StatsMirror:
    """Publish ``stats``: exact at every scrape in one process, every second under workers."""
    mirror = StatsMirror(registry)
    mirror.counter("webhooks_delivered", "Webhooks delivered.", lambda: {(): stats.delivered})
    mirror.counter(
        "webhooks_failed",
        "Webhook deliveries that failed, by reason.",
        lambda: {("timeout",): stats.timed_out, ("refused",): stats.refused},
        labelnames=("reason",),
    )
    mirror.gauge("webhooks_pending", "Webhooks waiting to be sent.", lambda: {(): stats.pending})
    return mirror
