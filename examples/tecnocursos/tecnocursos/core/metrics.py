"""The app's own Prometheus series: time, failures and concurrency of its services.

They live on prometheus-client's global registry, which the library's ``/metrics``
endpoint exposes beside its HTTP series (and aggregates across workers under
``PROMETHEUS_MULTIPROC_DIR``). Every service operation is labelled by name; the label
set is fixed by the code, so it never grows with traffic.

- ``tecnocursos_service_duration_seconds{operation}``: histogram of each call, the whole
  coroutine (the library's ``time_calls``);
- ``tecnocursos_service_exceptions_total{operation}``: calls that raised, refusals
  included (a locked account's login, an upload of the wrong type);
- ``tecnocursos_service_in_progress{operation}``: calls running now (summed over live
  workers).

The password hashing operations are the ones to watch: Argon2 is slow on purpose, runs
in the thread pool, and its time is what a login costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from fastapi_enterprise.metrics import count_exceptions, time_calls, track_in_progress

__all__ = ["SERVICE_DURATION", "SERVICE_EXCEPTIONS", "SERVICE_IN_PROGRESS", "measured"]

P = ParamSpec("P")
R = TypeVar("R")

SERVICE_DURATION = Histogram(
    "tecnocursos_service_duration_seconds",
    "Duration of the app's service operations.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SERVICE_EXCEPTIONS = Counter(
    "tecnocursos_service_exceptions",
    "Service operations that raised (refusals included).",
    ["operation"],
)
SERVICE_IN_PROGRESS = Gauge(
    "tecnocursos_service_in_progress",
    "Service operations running now.",
    ["operation"],
    multiprocess_mode="livesum",
)


def measured(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Time, count failures of and track the calls of a service function or method.

    Args:
        operation: The ``operation`` label: a fixed name, never a value from a request.
    """
    timed = time_calls(SERVICE_DURATION.labels(operation=operation))
    failures = count_exceptions(SERVICE_EXCEPTIONS.labels(operation=operation))
    running = track_in_progress(SERVICE_IN_PROGRESS.labels(operation=operation))

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        return timed(failures(running(function)))

    return decorate
