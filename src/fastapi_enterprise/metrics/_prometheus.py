"""The one import of prometheus-client, with the advice to install the extra."""

from __future__ import annotations

from fastapi_enterprise._extras import MissingExtraError

try:
    import prometheus_client
    import prometheus_client.exposition
    import prometheus_client.multiprocess
    from prometheus_client import (
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        Info,
        Summary,
    )
except ImportError as exc:  # pragma: no cover - exercised by the tests_minimal session
    raise MissingExtraError(
        "metrics", module="fastapi_enterprise.metrics", missing="prometheus-client"
    ) from exc

__all__ = [
    "REGISTRY",
    "CollectorRegistry",
    "Counter",
    "Gauge",
    "Histogram",
    "Info",
    "Summary",
    "prometheus_client",
]
