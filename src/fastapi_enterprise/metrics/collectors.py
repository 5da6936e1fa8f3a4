"""Collectors: process/platform/GC, ``app_info``, SQLAlchemy pools, caches, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi_enterprise.metrics._prometheus import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    prometheus_client,
)
from fastapi_enterprise.metrics.mirror import StatsMirror
from fastapi_enterprise.ratelimit.breaker import CircuitBreaker
from fastapi_enterprise.ratelimit.limiter import RateLimitStats

__all__ = [
    "CacheMetrics",
    "RateLimitCollector",
    "SQLAlchemyPoolCollector",
    "register_app_info",
    "register_runtime_collectors",
]

_GaugeFamily = prometheus_client.metrics_core.GaugeMetricFamily


def register_runtime_collectors(registry: CollectorRegistry) -> None:
    """Register prometheus-client's process, platform and GC collectors on ``registry``.

    The global registry already has them; a custom registry gets its own.
    """
    if registry is REGISTRY:
        return
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)


def register_app_info(
    registry: CollectorRegistry, *, name: str, version: str, environment: str
) -> Gauge:
    """Publish ``app_info{name,version,environment} 1``.

    A gauge rather than an ``Info`` metric, so it also works in multiprocess mode.
    """
    info = Gauge(
        "app_info",
        "The application: name, version, environment.",
        ["name", "version", "environment"],
        registry=registry,
        multiprocess_mode="max",
    )
    info.labels(name, version, environment).set(1)
    return info


class SQLAlchemyPoolCollector:
    """Connection-pool gauges of a SQLAlchemy engine (sync or async), read at scrape time.

    ``db_pool_size``, ``db_pool_checked_out``, ``db_pool_overflow``, labelled ``pool``.
    Read at scrape time, it sees one process only: under gunicorn's multiprocess mode
    use :class:`fastapi_enterprise.database.DatabaseMetrics` (``Database.install()``
    registers it), which publishes the same gauges summed over the workers. Register
    one or the other, not both: the names are the same.
    """

    def __init__(
        self, engine: Any, *, name: str = "default", registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.engine = getattr(engine, "sync_engine", engine)
        self.name = name
        registry.register(self)

    def collect(self) -> Iterator[Any]:
        """Yield the pool gauges (pools without a size, like SQLite's, report what they have)."""
        pool = self.engine.pool
        for metric, help_text, reader in (
            ("db_pool_size", "Connections the pool keeps.", "size"),
            ("db_pool_checked_out", "Connections in use.", "checkedout"),
            ("db_pool_overflow", "Connections beyond the pool size.", "overflow"),
        ):
            read = getattr(pool, reader, None)
            if read is None:
                continue
            family = _GaugeFamily(metric, help_text, labels=["pool"])
            family.add_metric([self.name], float(read()))
            yield family


class CacheMetrics:
    """``cache_requests_total{cache,result}`` with ``hit()`` and ``miss()`` helpers."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.counter = Counter(
            "cache_requests_total",
            "Cache lookups by cache and result.",
            ["cache", "result"],
            registry=registry,
        )

    def hit(self, cache: str) -> None:
        """Count a hit."""
        self.counter.labels(cache, "hit").inc()

    def miss(self, cache: str) -> None:
        """Count a miss."""
        self.counter.labels(cache, "miss").inc()


class RateLimitCollector:
    """Export the rate limiter's counters, in one process or under gunicorn's workers.

    - ``ratelimit_decisions_total{decision}``: ``allowed``, ``rejected``,
      ``shadow_rejected``, ``fail_open``, ``fail_closed``, ``fallback``, ``overloaded``;
    - ``ratelimit_storage_errors_total``: storage calls that failed or timed out;
    - ``ratelimit_breaker_opens_total``: times the circuit breaker opened;
    - ``ratelimit_breaker_open``: 1 while the breaker keeps checks away from the storage
      (with ``breaker``; the largest value among live workers in multiprocess mode).

    The limiter counts with plain integers; a
    :class:`~fastapi_enterprise.metrics.mirror.StatsMirror` publishes them, so they also
    reach a multiprocess scrape.

    Args:
        stats: The limiter's counters (``RateLimiter.stats``).
        registry: Where the metrics are registered.
        breaker: The limiter's breaker (``RateLimiter.breaker``), for the gauge.
    """

    def __init__(
        self,
        stats: RateLimitStats,
        registry: CollectorRegistry = REGISTRY,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.stats = stats
        self.mirror = StatsMirror(registry)
        self.mirror.counter(
            "ratelimit_decisions",
            "Rate-limit decisions by outcome.",
            lambda: {(name,): float(getattr(stats, name)) for name in _DECISIONS},
            labelnames=("decision",),
        )
        self.mirror.counter(
            "ratelimit_storage_errors",
            "Rate-limit storage failures and timeouts.",
            lambda: {(): float(stats.storage_errors)},
        )
        self.mirror.counter(
            "ratelimit_breaker_opens",
            "Times the rate-limit storage's circuit breaker opened.",
            lambda: {(): float(stats.breaker_opens)},
        )
        if breaker is not None:
            self.mirror.gauge(
                "ratelimit_breaker_open",
                "1 while the rate-limit storage is left alone (limits fail open or closed).",
                lambda: {(): float(breaker.is_open)},
            )


_DECISIONS = (
    "allowed",
    "rejected",
    "shadow_rejected",
    "fail_open",
    "fail_closed",
    "fallback",
    "overloaded",
)
