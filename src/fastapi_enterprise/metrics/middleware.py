"""``PrometheusMiddleware``: RED metrics per route template, timed to the last byte.

Metrics (names stable; the alert rules and dashboard shipped in ``docs/metrics`` use them):

- ``http_requests_total{method,route,status}``: counter, with the status the access log
  writes too (:func:`~fastapi_enterprise.errors.final_status`): a response that breaks
  off mid-stream is a ``500``, and a client that disconnects before the response
  completes a ``499``;
- ``http_request_duration_seconds{method,route}``: histogram, to the last body chunk of a
  streamed response; exemplars carry the trace and span IDs of the request's OpenTelemetry
  span when one is active, else the request ID (OpenMetrics scrapes show them);
- ``http_requests_in_progress{method}``: gauge (``livesum`` across processes);
- ``http_request_size_bytes{method,route}`` and ``http_response_size_bytes{method,route}``:
  histograms of the bytes actually received and sent (an unhandled exception is
  answered here, through :func:`~fastapi_enterprise.errors.answer_exception`, so its
  500 body is measured);
- ``http_unhandled_exceptions_total{method,route,exception}``: counter.

Recording is cheap: in one process, each request adds to plain counters of its
``(method, route)`` (no lock, no call per metric), and those are added to the metrics
when the registry is collected (a scrape, ``get_sample_value``), with the same names,
labels, ``_created`` times and exemplars. Only the first thread that serves a request
(the event loop's) tallies; requests served from any other thread are observed at once.
With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn), each request writes its worker's files
at once, as the scrape is answered by another process.

``route`` is the route template (one value, ``<unmatched>``, for everything that matched
nothing), so 10,000 scanned paths add no series. ``method`` is one of the standard HTTP
methods or ``OTHER``: servers accept any token as a method, and a client inventing one
per request must not invent series either.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from threading import get_ident
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_enterprise.context import get_request_id, get_trace_ids
from fastapi_enterprise.errors import UNHANDLED_ERROR_KEY, answer_exception, final_status
from fastapi_enterprise.metrics._prometheus import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    prometheus_client,
)
from fastapi_enterprise.routing import route_template

Exemplar = prometheus_client.samples.Exemplar

__all__ = ["DEFAULT_BUCKETS", "SIZE_BUCKETS", "PrometheusMiddleware"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Request duration buckets, in seconds."""

SIZE_BUCKETS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
"""Request and response size buckets, in bytes."""

_EXCEPTION_NAME_LIMIT = 64
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# Children looked up once per (method, route, status) instead of through ``labels()`` on
# every request; bounded because every part of the key is (methods, templates, statuses).
_CHILD_CACHE_LIMIT = 10_000
_Series = tuple[Counter, Histogram, Histogram, Histogram]
_EXEMPLAR_VALUE_LIMIT = 128 - len("request_id")


def _exemplar_ids(
    trace_ids: tuple[str, str] | None, request_id: str | None
) -> tuple[str, str] | str | None:
    """What an observation's exemplar names: the trace when one is active, else the request ID.

    A click from the histogram to the trace. OpenMetrics caps an exemplar's labels at
    128 characters in all: both trace IDs take 63; a longer request ID gives no exemplar.
    """
    if trace_ids is not None:
        return trace_ids
    if request_id and len(request_id) <= _EXEMPLAR_VALUE_LIMIT:
        return request_id
    return None


def _exemplar_labels(ids: tuple[str, str] | str) -> dict[str, str]:
    """The exemplar's labels for what :func:`_exemplar_ids` chose."""
    if isinstance(ids, str):
        return {"request_id": ids}
    return {"trace_id": ids[0], "span_id": ids[1]}


class _Pending:
    """One histogram child's observations, added to it when the registry is collected.

    ``counts`` holds each bucket's own count (not cumulative) and ``total`` the sum, as
    they grow; ``done`` and ``done_total`` what was already added to the child. Only
    the event loop's thread writes the first two; collecting only reads them, so an
    observation made while collecting is added at the next collection, never lost.
    """

    __slots__ = ("child", "counts", "done", "done_exemplars", "done_total", "exemplars", "total")

    def __init__(self, child: Histogram, buckets: int) -> None:
        self.child = child
        self.counts = [0] * buckets
        self.done = [0] * buckets
        self.exemplars: list[Any] = [None] * buckets
        self.done_exemplars: list[Any] = [None] * buckets
        self.total = 0.0
        self.done_total = 0.0

    def apply(self) -> None:
        buckets = self.child._buckets
        for index, count in enumerate(self.counts):
            if count != self.done[index]:
                buckets[index].inc(count - self.done[index])
                self.done[index] = count
            latest = self.exemplars[index]
            if latest is not self.done_exemplars[index]:
                ids, value, timestamp = latest
                buckets[index].set_exemplar(Exemplar(_exemplar_labels(ids), value, timestamp))
                self.done_exemplars[index] = latest
        total = self.total
        if total != self.done_total:
            self.child._sum.inc(total - self.done_total)
            self.done_total = total


class _Tally:
    """What the requests of one ``(method, route)`` added, for :class:`_Pending`."""

    __slots__ = ("duration", "request_size", "response_size", "statuses")

    def __init__(self, duration: _Pending, request_size: _Pending, response_size: _Pending) -> None:
        self.duration = duration
        self.request_size = request_size
        self.response_size = response_size
        # status -> [requests, requests already added, the counter's child]
        self.statuses: dict[int, list[Any]] = {}

    def apply(self) -> None:
        for cell in list(self.statuses.values()):
            count = cell[0]
            if count != cell[1]:
                cell[2].inc(count - cell[1])
                cell[1] = count
        self.duration.apply()
        self.request_size.apply()
        self.response_size.apply()


class _ApplyPending:
    """A collector with no metrics of its own: it adds the tallies before the others.

    Registered before the middleware's metrics, so a registry's ``collect()`` (which
    follows registration order) reaches it first.
    """

    def __init__(self, middleware: PrometheusMiddleware) -> None:
        self.middleware = middleware

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        self.middleware._apply_pending()
        return []


class PrometheusMiddleware:
    """Record HTTP metrics for every request.

    Args:
        app: The ASGI app to wrap.
        registry: Where the metrics live; the global registry by default. Tests pass a
            fresh ``CollectorRegistry``.
        buckets: Duration histogram buckets (seconds).
        exclude_paths: Exact paths not measured (the scrape endpoint, probes).
        namespace: Prefix for every metric name (``myapp_http_requests_total``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry = REGISTRY,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        exclude_paths: Iterable[str] = (),
        namespace: str = "",
    ) -> None:
        self.app = app
        self.exclude_paths = frozenset(exclude_paths)
        # Requests are tallied in process unless every process writes its own files.
        multiprocess = getattr(prometheus_client.values.ValueClass, "_multiprocess", False)
        self._tallies: dict[tuple[str, str], _Tally] | None = None if multiprocess else {}
        self._active = dict.fromkeys((*_METHODS, "OTHER"), 0)
        self._active_done = dict(self._active)
        # The thread whose requests are tallied (the event loop's); another thread's
        # requests are observed at once, so no count is lost to a race.
        self._owner: int | None = None
        self._claiming = threading.Lock()
        if self._tallies is not None:
            registry.register(_ApplyPending(self))
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            namespace=namespace,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request to the last response byte, by method and route template.",
            ["method", "route"],
            buckets=buckets,
            namespace=namespace,
            registry=registry,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled, by method.",
            ["method"],
            namespace=namespace,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.request_size = Histogram(
            "http_request_size_bytes",
            "Request body sizes, by method and route template.",
            ["method", "route"],
            buckets=SIZE_BUCKETS,
            namespace=namespace,
            registry=registry,
        )
        self.response_size = Histogram(
            "http_response_size_bytes",
            "Response body sizes, by method and route template.",
            ["method", "route"],
            buckets=SIZE_BUCKETS,
            namespace=namespace,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], _Series] = {}
        self._gauges = {method: self.in_progress.labels(method) for method in (*_METHODS, "OTHER")}
        # As the histograms hold them (sorted, +Inf last): bisect_left finds the bucket
        # observe() would, the first bound >= the value.
        self._duration_bounds: list[float] = list(self.duration._upper_bounds)
        self._size_bounds: list[float] = list(self.request_size._upper_bounds)
        self.exceptions = Counter(
            "http_unhandled_exceptions_total",
            "Exceptions that escaped the app, by method, route template and type.",
            ["method", "route", "exception"],
            namespace=namespace,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Measure HTTP requests; other scopes pass through untouched."""
        if scope["type"] != "http" or scope["path"] in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        method, tallied = self.begin(scope)
        start = time.perf_counter()
        status: int | None = None
        request_bytes = 0
        response_bytes = 0
        complete = False
        client_gone = False

        async def receive_measured() -> Message:
            nonlocal request_bytes, client_gone
            message = await receive()
            if message["type"] == "http.request":
                request_bytes += len(message.get("body", b""))
            elif message["type"] == "http.disconnect" and not complete:
                client_gone = True
            return message

        async def send_measured(message: Message) -> None:
            nonlocal status, response_bytes, complete, client_gone
            try:
                await send(message)
            except BaseException:
                client_gone = True  # the server could not write to the client
                raise
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    complete = True

        counted = False
        try:
            try:
                await self.app(scope, receive_measured, send_measured)
            except Exception as exc:
                self.count_exception(method, scope, type(exc).__name__)
                counted = True
                if client_gone:
                    raise
                # Answered here rather than by an outer shield, so that the 500 and its
                # body are measured.
                await answer_exception(
                    scope, receive, send_measured, exc, response_started=status is not None
                )
        except BaseException as exc:
            if not counted:
                self.count_exception(method, scope, type(exc).__name__)
                counted = True
            raise
        finally:
            self.end(
                scope,
                method,
                tallied,
                time.perf_counter() - start,
                final_status(status, completed=complete, client_gone=client_gone),
                request_bytes,
                response_bytes,
                counted=counted,
            )

    def begin(self, scope: Scope) -> tuple[str, bool]:
        """Count an HTTP request in progress; its method label, and whether it is tallied.

        Stage code this middleware and ``install()``'s fused pipeline share, with
        :meth:`end` and :meth:`count_exception`.
        """
        method: str = scope["method"]
        if method not in _METHODS:
            method = "OTHER"
        tallied = self._tallies is not None and (
            self._owner == get_ident() or self._claim(get_ident())
        )
        if tallied:
            self._active[method] += 1
        else:
            self._gauges[method].inc()
        return method, tallied

    def end(
        self,
        scope: Scope,
        method: str,
        tallied: bool,
        elapsed: float,
        reported: int,
        request_bytes: int,
        response_bytes: int,
        *,
        counted: bool,
    ) -> None:
        """Record a finished request (``counted``: its exception is counted already)."""
        if tallied:
            self._active[method] -= 1
        else:
            self._gauges[method].dec()
        if not counted and UNHANDLED_ERROR_KEY in scope:  # answered by an inner layer
            self.count_exception(method, scope, scope[UNHANDLED_ERROR_KEY])
        route = route_template(scope)
        exemplar = _exemplar_ids(get_trace_ids(), get_request_id())
        tallies = self._tallies if tallied else None
        tally = tallies.get((method, route)) if tallies is not None else None
        if tally is None and tallies is not None:
            tally = self._tally(method, route)
        if tally is None:
            requests, duration, request_size, response_size = self._series(method, route, reported)
            requests.inc()
            duration.observe(elapsed, _exemplar_labels(exemplar) if exemplar is not None else None)
            request_size.observe(request_bytes)
            response_size.observe(response_bytes)
            return
        cell: list[Any] | None = tally.statuses.get(reported)
        if cell is None:
            cell = tally.statuses[reported] = [
                0,
                0,
                self.requests.labels(method, route, str(reported)),
            ]
        cell[0] += 1
        pending = tally.duration
        index = bisect_left(self._duration_bounds, elapsed)
        pending.counts[index] += 1
        pending.total += elapsed
        if exemplar is not None:
            # Its labels are made when collected: only a bucket's latest is kept.
            pending.exemplars[index] = (exemplar, elapsed, time.time())
        pending = tally.request_size
        pending.counts[bisect_left(self._size_bounds, request_bytes)] += 1
        pending.total += request_bytes
        pending = tally.response_size
        pending.counts[bisect_left(self._size_bounds, response_bytes)] += 1
        pending.total += response_bytes

    def _claim(self, thread: int) -> bool:
        """Make ``thread`` the one whose requests are tallied, if none is yet."""
        with self._claiming:
            if self._owner is None:
                self._owner = thread
        return self._owner == thread

    def _tally(self, method: str, route: str) -> _Tally | None:
        """A new tally for ``(method, route)``; ``None`` past the bound (observed at once).

        Its children are made now, so their ``_created`` is the first request's time.
        """
        tallies = self._tallies
        if tallies is None or len(tallies) >= _CHILD_CACHE_LIMIT:
            return None
        duration = self.duration.labels(method, route)
        tally = _Tally(
            _Pending(duration, len(self._duration_bounds)),
            _Pending(self.request_size.labels(method, route), len(self._size_bounds)),
            _Pending(self.response_size.labels(method, route), len(self._size_bounds)),
        )
        tallies[method, route] = tally
        return tally

    def _apply_pending(self) -> None:
        """Add what was tallied since the last collection to the metrics."""
        for method, count in self._active.items():
            if count != self._active_done[method]:  # other threads inc() the gauge itself
                self._gauges[method].inc(count - self._active_done[method])
                self._active_done[method] = count
        for tally in list((self._tallies or {}).values()):
            tally.apply()

    def count_exception(self, method: str, scope: Scope, name: str) -> None:
        """Count an exception that escaped the app, by type."""
        route = route_template(scope)
        self.exceptions.labels(method, route, name[:_EXCEPTION_NAME_LIMIT]).inc()

    def _series(self, method: str, route: str, status: int) -> _Series:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
                self.request_size.labels(method, route),
                self.response_size.labels(method, route),
            )
            if len(self._children) < _CHILD_CACHE_LIMIT:
                self._children[key] = children
        return children
