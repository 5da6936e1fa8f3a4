"""Lost log lines as Prometheus counters, per output.

- ``log_lines_dropped_total{output}``: lines dropped because the output's queue was full
  (the output is blocked or too slow: a pipe nobody reads, a hung disk);
- ``log_write_errors_total{output}``: lines the output failed to write (a full or
  read-only disk, a dead syslog server).

``output`` is ``stdout``, ``file`` or ``syslog``. The log pipeline hands its losses to
:func:`~fastapi_enterprise.log_config.observe_log_losses` from its reporter thread
(never from a request), and these are ordinary counters: under gunicorn with
``PROMETHEUS_MULTIPROC_DIR`` each worker writes its own value file and the scrape sums
them. ``install()`` registers them when metrics are on.
"""

from __future__ import annotations

from fastapi_enterprise.log_config import observe_log_losses
from fastapi_enterprise.metrics._prometheus import REGISTRY, CollectorRegistry, Counter

__all__ = ["LogPipelineMetrics"]

_OUTPUTS = ("stdout", "file", "syslog")


class LogPipelineMetrics:
    """Count every output's lost log lines in ``registry``.

    Keep a reference to it for as long as the counters should move: the pipeline holds
    only a weak one (an app that is gone stops being counted).

    Args:
        registry: Where the counters live; the global registry by default.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.dropped = Counter(
            "log_lines_dropped_total",
            "Log lines dropped because an output's queue was full, by output.",
            ["output"],
            registry=registry,
        )
        self.write_errors = Counter(
            "log_write_errors_total",
            "Log lines an output failed to write, by output.",
            ["output"],
            registry=registry,
        )
        for output in _OUTPUTS:  # zero series, so that increase() sees the first loss
            self.dropped.labels(output)
            self.write_errors.labels(output)
        observe_log_losses(self.record)

    def record(self, output: str, dropped: int, write_errors: int) -> None:
        """Add an output's new losses (called by the log pipeline)."""
        if dropped:
            self.dropped.labels(output).inc(dropped)
        if write_errors:
            self.write_errors.labels(output).inc(write_errors)
