"""``StatsMirror``: plain in-process counters published as Prometheus metrics, in any mode.

A hot path counts with plain integers (``stats.rejected += 1``: no lock, no metric call,
a few nanoseconds). A collector that reads them at scrape time works in one process but
not under gunicorn or ``uvicorn --workers`` with ``PROMETHEUS_MULTIPROC_DIR``: the scrape
there aggregates the metric files every worker writes, and a collector in one worker
sees neither the files nor the other workers (issue 12, D18). This class publishes such
numbers as real prometheus-client counters and gauges instead, which write those files:

- in one process, the metrics are brought up to date at every scrape, so a scrape is
  exact;
- in multiprocess mode, a daemon thread of each process brings them up to date every
  ``interval`` seconds, and once more at exit; a scrape lags by at most ``interval``.
  The thread is restarted in a forked child (gunicorn ``--preload``).

The library publishes the rate limiter's counters
(:class:`~fastapi_enterprise.metrics.RateLimitCollector`) and the log pipeline's losses
(:class:`~fastapi_enterprise.metrics.LogPipelineMetrics`) this way. Usage::

    mirror = StatsMirror(registry)
    mirror.counter("webhooks_delivered", "Webhooks delivered.", lambda: {(): stats.delivered})
    mirror.counter(
        "webhooks_failed",
        "Failed deliveries by reason.",
        lambda: {("timeout",): stats.timed_out, ("refused",): stats.refused},
        labelnames=("reason",),
    )
    mirror.gauge("webhooks_pending", "Webhooks waiting.", lambda: {(): queue.qsize()})

``read`` returns the current totals (counters) or values (gauges) per label values; it
runs at scrape time or on the mirror's thread, so it must only read.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi_enterprise.metrics._prometheus import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["StatsMirror"]

Reading = Callable[[], Mapping[tuple[str, ...], float]]
"""Current values per tuple of label values (``{(): 3}`` without labels)."""


class StatsMirror:
    """Publish numbers a hot path keeps in plain attributes as Prometheus metrics.

    Args:
        registry: Where the metrics are registered (one process); in multiprocess mode
            their values go to the files in ``PROMETHEUS_MULTIPROC_DIR`` as well.
        interval: Seconds between updates in multiprocess mode.
        multiprocess: Force the mode; read from ``PROMETHEUS_MULTIPROC_DIR`` by default.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        interval: float = 1.0,
        multiprocess: bool | None = None,
    ) -> None:
        if multiprocess is None:
            multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = registry
        self.interval = interval
        self.multiprocess = multiprocess
        self._counters: list[tuple[Counter, Reading, dict[tuple[str, ...], float]]] = []
        self._gauges: list[tuple[Gauge, Reading]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Registered first, so the registry runs it before collecting the metrics below.
        registry.register(_FlushOnScrape(self))
        if multiprocess:
            self._start()
            this = weakref.ref(self)
            atexit.register(_flush_if_alive, this)
            os.register_at_fork(after_in_child=lambda: _restart_if_alive(this))

    def counter(
        self, name: str, documentation: str, read: Reading, *, labelnames: Sequence[str] = ()
    ) -> Counter:
        """Publish ``read()``'s totals as the counter ``name`` (``_total`` is appended).

        Every label set ``read()`` returns at registration exists at once, at its value,
        so alerts on ``increase()`` see the first increments too.
        """
        metric = Counter(name, documentation, list(labelnames), registry=self.registry)
        sent: dict[tuple[str, ...], float] = {}
        with self._lock:
            self._counters.append((metric, read, sent))
            self._flush_counter(metric, read, sent)
        return metric

    def gauge(
        self,
        name: str,
        documentation: str,
        read: Reading,
        *,
        labelnames: Sequence[str] = (),
        multiprocess_mode: str = "livemax",
    ) -> Gauge:
        """Publish ``read()``'s values as the gauge ``name``.

        ``multiprocess_mode`` says how the workers' values combine (``livemax``: the
        largest value among live workers, ``livesum``: their sum, ...).
        """
        metric = Gauge(
            name,
            documentation,
            list(labelnames),
            registry=self.registry,
            multiprocess_mode=multiprocess_mode,  # type: ignore[arg-type]
        )
        with self._lock:
            self._gauges.append((metric, read))
            _set_gauge(metric, read)
        return metric

    def flush(self) -> None:
        """Bring every metric up to date now."""
        with self._lock:
            for entry in self._counters:
                self._flush_counter(*entry)
            for metric, read in self._gauges:
                _set_gauge(metric, read)

    def close(self) -> None:
        """Flush a last time and stop the update thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()

    @staticmethod
    def _flush_counter(metric: Counter, read: Reading, sent: dict[tuple[str, ...], float]) -> None:
        for labels, total in read().items():
            increase = total - sent.get(labels, 0.0)
            child = metric.labels(*labels) if labels else metric
            if increase > 0 or labels not in sent:
                child.inc(max(increase, 0.0))
            sent[labels] = max(total, sent.get(labels, 0.0))

    def _start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="fastapi-enterprise-stats-mirror", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


class _FlushOnScrape:
    """A collector that yields nothing: it brings the mirror up to date at each scrape.

    It holds the mirror: the mirror lives as long as the registry it publishes to.
    """

    def __init__(self, mirror: StatsMirror) -> None:
        self._mirror = mirror

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        self._mirror.flush()
        return iter(())


def _set_gauge(metric: Gauge, read: Reading) -> None:
    for labels, value in read().items():
        (metric.labels(*labels) if labels else metric).set(value)


def _flush_if_alive(mirror: weakref.ref[StatsMirror]) -> None:
    alive = mirror()
    if alive is not None:
        alive.close()


def _restart_if_alive(mirror: weakref.ref[StatsMirror]) -> None:
    # A forked child has no threads but its parent's: the update thread must be new.
    alive = mirror()
    if alive is not None:
        alive._lock = threading.Lock()
        alive._start()
