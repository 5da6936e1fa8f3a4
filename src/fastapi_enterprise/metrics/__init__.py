"""Prometheus metrics: the HTTP middleware, ``/metrics``, decorators and collectors.

Needs the ``metrics`` extra: ``pip install 'fastapi-enterprise[metrics]'``. Importing this
package without it raises :class:`~fastapi_enterprise._extras.MissingExtraError`.
"""

from __future__ import annotations

from fastapi_enterprise.metrics.collectors import (
    CacheMetrics,
    RateLimitCollector,
    SQLAlchemyPoolCollector,
    register_app_info,
    register_runtime_collectors,
)
from fastapi_enterprise.metrics.decorators import (
    LabelGuard,
    count_calls,
    count_exceptions,
    time_calls,
    track_in_progress,
)
from fastapi_enterprise.metrics.exposition import (
    CombinedRegistry,
    MetricsEndpoint,
    cleanup_dead_processes,
    multiprocess_registry,
)
from fastapi_enterprise.metrics.log_pipeline import LogPipelineMetrics
from fastapi_enterprise.metrics.middleware import DEFAULT_BUCKETS, PrometheusMiddleware
from fastapi_enterprise.metrics.mirror import StatsMirror

__all__ = [
    "DEFAULT_BUCKETS",
    "CacheMetrics",
    "CombinedRegistry",
    "LabelGuard",
    "LogPipelineMetrics",
    "MetricsEndpoint",
    "PrometheusMiddleware",
    "RateLimitCollector",
    "SQLAlchemyPoolCollector",
    "StatsMirror",
    "cleanup_dead_processes",
    "count_calls",
    "count_exceptions",
    "multiprocess_registry",
    "register_app_info",
    "register_runtime_collectors",
    "time_calls",
    "track_in_progress",
]
