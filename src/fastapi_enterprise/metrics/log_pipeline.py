"""Lost log lines as Prometheus counters, per output.

- ``log_lines_dropped_total{output}``: lines dropped because the output's queue was full
  (the output is blocked or too slow: a pipe nobody reads, a hung disk);
- ``log_write_errors_total{output}``: lines the output failed to write (a full or
  read-only disk, a dead syslog server).

``output`` is ``stdout``, ``file`` or ``syslog``; every one has a series from the start,
so ``increase()`` sees the first loss. The log pipeline keeps the process's totals
(:func:`~fastapi_enterprise.log_config.log_losses`: every configuration's losses, and
in a forked child its parent's before the fork), and a
:class:`~fastapi_enterprise.metrics.mirror.StatsMirror` publishes them, as it does the
rate limiter's counters: exact at every scrape in one process, and under gunicorn with
``PROMETHEUS_MULTIPROC_DIR`` written to each worker's files every second, so that the
scrape sums the workers. ``install()`` registers them when metrics are on.
"""

from __future__ import annotations

from fastapi_enterprise.log_config import log_losses
from fastapi_enterprise.metrics._prometheus import REGISTRY, CollectorRegistry
from fastapi_enterprise.metrics.mirror import StatsMirror

__all__ = ["LogPipelineMetrics"]


class LogPipelineMetrics:
    """Publish every output's lost log lines in ``registry``.

    The counters start at the process's totals so far (losses before the metrics were
    registered count too) and move for as long as ``registry`` exists.

    Args:
        registry: Where the counters live; the global registry by default.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.mirror = StatsMirror(registry)
        self.dropped = self.mirror.counter(
            "log_lines_dropped",
            "Log lines dropped because an output's queue was full, by output.",
            lambda: {(output,): float(counts.dropped) for output, counts in log_losses().items()},
            labelnames=("output",),
        )
        self.write_errors = self.mirror.counter(
            "log_write_errors",
            "Log lines an output failed to write, by output.",
            lambda: {
                (output,): float(counts.write_errors) for output, counts in log_losses().items()
            },
            labelnames=("output",),
        )
