"""Database observability: pool, checkout, query and session metrics; the slow-query log.

Issue 13 asks for pool gauges (size, checked out, overflow), a checkout-wait histogram,
query duration by statement type, open sessions, and a slow-query log line carrying the
request ID and the statement with its values masked.

- :class:`DatabaseMetrics` publishes the metrics (the ``metrics`` extra). The pool and
  session gauges are plain numbers published through a
  :class:`~fastapi_enterprise.metrics.mirror.StatsMirror` in ``livesum`` mode, so a
  scrape under gunicorn's workers sums the live workers (the scrape-time
  ``SQLAlchemyPoolCollector`` sees one worker only). The checkout wait is timed by a
  subclass of the pool the dialect would choose anyway
  (:meth:`DatabaseMetrics.engine_options`): SQLAlchemy has no event before a checkout,
  and a wait that ends in the pool timeout raises before any event after one.
- :class:`SlowQueryLog` writes one WARNING line per statement slower than a threshold.

Both time statements with ``before_cursor_execute`` / ``after_cursor_execute`` (and
``handle_error``, for a statement that fails) listeners on ``engine.sync_engine``, the
start kept on the execution context. A fast query costs two clock reads, two attribute
writes and, with metrics, one histogram observation: the statement type is cached per
statement string, and text is only masked for a slow statement.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Mapping
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import URL, Engine, event, exc, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.pool import Pool, PoolProxiedConnection

from fastapi_enterprise.context import get_request_id
from fastapi_enterprise.redaction import DEFAULT_REDACTOR, Redactor

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.metrics import Counter
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.ext.asyncio import AsyncEngine

    from fastapi_enterprise.metrics.mirror import StatsMirror

try:
    from prometheus_client import REGISTRY
except ImportError:  # pragma: no cover - exercised by the tests_minimal session
    # SlowQueryLog needs no extra; DatabaseMetrics() raises the extra's advice.
    REGISTRY = None  # type: ignore[assignment]

__all__ = ["STATEMENT_TYPES", "DatabaseMetrics", "SlowQueryLog"]

STATEMENT_TYPES = ("select", "insert", "update", "delete", "other")
"""Values of the ``statement`` label of ``db_query_duration_seconds``."""

_LOGGER_NAME = "fastapi_enterprise.database"

# Checkout waits: from an idle connection handed over (microseconds) to SQLAlchemy's
# default 30 s pool timeout, which a wait ending in TimeoutError lands next to.
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Statement strings whose type is remembered (compiled statements repeat the same
# string); longer or further statements are classified each time.
_CACHE_ENTRIES = 2048
_CACHE_LENGTH = 4096
_STATEMENT_LIMIT = 2000


class _QueryTimer:
    """Time every statement of one engine and hand the duration to :meth:`_observe`.

    The start is kept on the statement's ExecutionContext, which lives as long as the
    execution, under an attribute of each observer class, cleared when the statement
    ends: ``handle_error`` then times a statement that failed while executing (a
    statement timeout is a slow query too), but not an error after it ended.
    """

    _started: str
    """The ExecutionContext attribute holding the start (one per class)."""

    def __init__(self) -> None:
        self._engine: Engine | None = None

    def attach(self, engine: AsyncEngine) -> None:
        """Start observing ``engine``'s statements.

        Raises:
            RuntimeError: Already attached (call :meth:`detach` first).
        """
        if self._engine is not None:
            raise RuntimeError(f"{type(self).__name__} is already attached; detach() first")
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine, "handle_error", self._failed)
        self._engine = sync_engine

    def detach(self) -> None:
        """Stop observing: the listeners are removed (nothing happens if not attached)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            event.remove(engine, "before_cursor_execute", self._before)
            event.remove(engine, "after_cursor_execute", self._after)
            event.remove(engine, "handle_error", self._failed)

    def _before(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context is not None:
            setattr(context, self._started, perf_counter())

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        started: float | None = getattr(context, self._started, None)
        if started is not None:
            setattr(context, self._started, None)
            self._observe(conn, statement, perf_counter() - started)

    def _failed(self, error: ExceptionContext) -> None:
        context = error.execution_context
        started: float | None = getattr(context, self._started, None)
        if started is not None and error.statement is not None:
            setattr(context, self._started, None)
            failure = type(error.original_exception).__name__
            self._observe(error.connection, error.statement, perf_counter() - started, failure)

    def _observe(
        self, conn: Any, statement: str, seconds: float, failure: str | None = None
    ) -> None:
        raise NotImplementedError


class DatabaseMetrics(_QueryTimer):
    """Prometheus metrics of one database (needs the ``metrics`` extra).

    Registers, labelled ``pool=<name>`` (the databases of one registry share the metrics,
    each with its own ``pool`` series: ``primary`` and ``replica`` on one app):

    - ``db_pool_size``, ``db_pool_checked_out``, ``db_pool_overflow``: gauges (the names
      of ``SQLAlchemyPoolCollector``), summed over live workers in multiprocess mode;
      overflow counts connections beyond the pool size, never below 0;
    - ``db_pool_checkout_wait_seconds``: histogram of the time a checkout waited for a
      pooled connection (a new connection's connect time included, and the full wait of
      a checkout that ended in the pool timeout);
    - ``db_pool_timeouts_total``: checkouts that failed with the pool timeout;
    - ``db_query_duration_seconds{statement}``: histogram of statement durations, by
      ``select``, ``insert``, ``update``, ``delete`` or ``other`` (a ``WITH`` statement
      counts as the first ``insert``/``update``/``delete`` it names, else ``select``),
      statements that failed while executing included;
    - ``db_sessions_open``: sessions open now (:meth:`session_opened` minus
      :meth:`session_closed`), summed over live workers.

    Usage, in the lifespan::

        metrics = DatabaseMetrics(name="default", registry=registry)
        engine = create_async_engine(url, **metrics.engine_options(url))
        metrics.attach(engine)
        ...
        metrics.detach()
        await engine.dispose()

    Pool gauges read 0 while detached. Without :meth:`engine_options` the checkout wait
    and timeouts are not measured; everything else is.

    Args:
        name: The ``pool`` label: which database this is, unique per registry.
        registry: Where the metrics are registered.

    Raises:
        ValueError: Another live ``DatabaseMetrics`` of this name publishes on
            ``registry``.

    Attributes:
        mirror: The :class:`~fastapi_enterprise.metrics.mirror.StatsMirror` publishing the
            gauges (``mirror.flush()`` brings them up to date now).
    """

    _started = "_fastapi_enterprise_metrics_started"

    def __init__(self, *, name: str = "default", registry: CollectorRegistry = REGISTRY) -> None:
        super().__init__()
        shared = _SharedMetrics.of(registry)
        shared.join(name, self)
        self.name = name
        self._sessions = 0
        self.mirror: StatsMirror = shared.mirror
        self._wait = shared.wait.labels(name)
        self._timeouts = shared.timeouts.labels(name)
        self._durations = {kind: shared.duration.labels(name, kind) for kind in STATEMENT_TYPES}
        self._by_statement: dict[str, Histogram] = {}
        self.mirror.flush()  # this database's series exist from now on

    def engine_options(self, url: URL | str) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine(url, **options)``.

        ``poolclass``: the pool class the dialect would choose for ``url`` (SQLite's
        ``StaticPool`` for an in-memory database, a queue pool otherwise), subclassed to
        time checkouts. A ``poolclass`` of your own replaces it, and the checkout wait is
        then not measured.
        """
        url = make_url(url)
        # What create_async_engine() itself would pick (dialect.get_dialect_pool_class).
        dialect = cast("type[DefaultDialect]", url.get_dialect(_is_async=True))
        return {"poolclass": _timed_pool_class(dialect.get_pool_class(url), self)}

    def detach(self) -> None:
        """Stop observing: listeners removed, pool gauges read 0 from now on."""
        super().detach()
        self.mirror.flush()

    def session_opened(self) -> None:
        """Count a session opened (the caller must call :meth:`session_closed` too)."""
        self._sessions += 1

    def session_closed(self) -> None:
        """Count a session closed."""
        self._sessions -= 1

    def _pool_number(self, reader: str) -> float:
        engine = self._engine
        if engine is None:
            return 0.0
        # engine.pool, read each time: engine.dispose() replaces the pool.
        read = getattr(engine.pool, reader, None)
        if read is None:  # a pool without the number (StaticPool, NullPool)
            return 0.0
        # QueuePool.overflow() starts at -pool_size while the pool fills.
        return float(max(read(), 0))

    def _observe(
        self, conn: Any, statement: str, seconds: float, failure: str | None = None
    ) -> None:
        histogram = self._by_statement.get(statement)
        if histogram is None:
            histogram = self._durations[_statement_type(statement)]
            if len(self._by_statement) < _CACHE_ENTRIES and len(statement) <= _CACHE_LENGTH:
                self._by_statement[statement] = histogram
        histogram.observe(seconds)

    def _checkout_waited(self, seconds: float, *, timed_out: bool) -> None:
        if self._engine is not None:
            self._wait.observe(seconds)
            if timed_out:
                self._timeouts.inc()


class _SharedMetrics:
    """The metrics of every :class:`DatabaseMetrics` on one registry, labelled by ``pool``.

    Prometheus refuses a metric name registered twice on a registry: each database
    (``primary`` and ``replica``, say) takes its labelled children of these instead.
    """

    _by_registry: ClassVar[weakref.WeakKeyDictionary[Any, _SharedMetrics]] = (
        weakref.WeakKeyDictionary()
    )
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, registry: CollectorRegistry) -> _SharedMetrics:
        with cls._lock:
            shared = cls._by_registry.get(registry)
            if shared is None:
                shared = cls._by_registry[registry] = cls(registry)
            return shared

    def __init__(self, registry: CollectorRegistry) -> None:
        from fastapi_enterprise.metrics._prometheus import Counter, Histogram
        from fastapi_enterprise.metrics.mirror import StatsMirror

        # The databases publishing here, by name; one that is garbage-collected leaves.
        self.members: weakref.WeakValueDictionary[str, DatabaseMetrics] = (
            weakref.WeakValueDictionary()
        )
        self.mirror = StatsMirror(registry)
        for metric, documentation, read in (
            ("db_pool_size", "Connections the pool keeps.", "size"),
            ("db_pool_checked_out", "Connections in use.", "checkedout"),
            ("db_pool_overflow", "Connections beyond the pool size.", "overflow"),
        ):
            self.mirror.gauge(
                metric,
                documentation,
                partial(self._pool_readings, read),
                labelnames=("pool",),
                multiprocess_mode="livesum",
            )
        self.mirror.gauge(
            "db_sessions_open",
            "Database sessions open now.",
            self._sessions,
            labelnames=("pool",),
            multiprocess_mode="livesum",
        )
        self.wait: Histogram = Histogram(
            "db_pool_checkout_wait_seconds",
            "Time a checkout waited for a pooled connection.",
            ["pool"],
            registry=registry,
            buckets=_WAIT_BUCKETS,
        )
        self.timeouts: Counter = Counter(
            "db_pool_timeouts",
            "Checkouts that failed with the pool timeout.",
            ["pool"],
            registry=registry,
        )
        self.duration: Histogram = Histogram(
            "db_query_duration_seconds",
            "Duration of database statements by statement type.",
            ["pool", "statement"],
            registry=registry,
            buckets=_QUERY_BUCKETS,
        )

    def join(self, name: str, metrics: DatabaseMetrics) -> None:
        with self._lock:
            if self.members.get(name) is not None:
                raise ValueError(
                    f"a database named {name!r} already publishes metrics on this registry: "
                    "give each database its own name"
                )
            self.members[name] = metrics

    def _pool_readings(self, reader: str) -> dict[tuple[str, ...], float]:
        return {(name,): m._pool_number(reader) for name, m in list(self.members.items())}

    def _sessions(self) -> dict[tuple[str, ...], float]:
        return {(name,): float(m._sessions) for name, m in list(self.members.items())}


def _timed_pool_class(base: type[Pool], metrics: DatabaseMetrics) -> type[Pool]:
    """``base`` with a ``connect()`` that reports its wait to ``metrics``."""

    def connect(pool: Pool) -> PoolProxiedConnection:
        started = perf_counter()
        timed_out = False
        try:
            return base.connect(pool)
        except exc.TimeoutError:
            timed_out = True
            raise
        finally:
            metrics._checkout_waited(perf_counter() - started, timed_out=timed_out)

    # Pool.recreate() (engine.dispose()) builds self.__class__: the timing stays. The
    # base's module: SQLAlchemy names the pool's logger after it, and its INFO lines
    # ("Pool disposed") belong under the quiet ``sqlalchemy`` logger, not the library's.
    namespace = {"connect": connect, "__module__": base.__module__}
    return type(f"Timed{base.__name__}", (base,), namespace)


class SlowQueryLog(_QueryTimer):
    """Log statements slower than a threshold (no extra needed).

    Each slow statement gives one line: logger ``fastapi_enterprise.database``, level
    WARNING, message ``Slow database query``, with the ``extra`` fields ``duration_ms``,
    ``statement`` (the SQL text with comments dropped, every string, number and quoted
    literal replaced by ``?``, whitespace collapsed, cut to 2000 characters and passed
    through the redactor; bound parameters are never logged), ``statement_type``,
    ``pool``, inside a request ``request_id``, and for a statement that failed (a
    statement timeout, say) ``error``, the exception's class name.

    Args:
        threshold_ms: Statements taking at least this long are logged (0 logs all).
        logger: Where the lines go; ``fastapi_enterprise.database`` by default.
        redactor: Masks what looks secret in the statement text besides literals.
        name: The ``pool`` field: which database this is.

    Raises:
        ValueError: A negative threshold.
    """

    _started = "_fastapi_enterprise_slow_query_started"

    def __init__(
        self,
        threshold_ms: float,
        *,
        logger: logging.Logger | None = None,
        redactor: Redactor = DEFAULT_REDACTOR,
        name: str = "default",
    ) -> None:
        if not threshold_ms >= 0:
            raise ValueError(f"threshold_ms must be 0 or more, not {threshold_ms!r}")
        super().__init__()
        self.threshold_ms = threshold_ms
        self.logger = logger or logging.getLogger(_LOGGER_NAME)
        self.redactor = redactor
        self.name = name
        self._threshold = threshold_ms / 1000

    def _observe(
        self, conn: Any, statement: str, seconds: float, failure: str | None = None
    ) -> None:
        if seconds >= self._threshold:
            dialect = conn.dialect.name if conn is not None else ""
            self._log(statement, seconds, dialect, failure)

    def _log(self, statement: str, seconds: float, dialect: str, failure: str | None) -> None:
        fields: dict[str, Any] = {
            "duration_ms": round(seconds * 1000, 3),
            "statement": self.redactor.text(_mask_statement(statement, dialect)),
            "statement_type": _statement_type(statement),
            "pool": self.name,
        }
        if failure is not None:
            fields["error"] = failure
        request_id = get_request_id()
        if request_id is not None:
            # configure_logging() adds it to every line in a request; a plain stdlib
            # setup does not, and a slow query is worth tracing back either way.
            fields["request_id"] = request_id
        self.logger.warning("Slow database query", extra=fields)


# Skipped before the first word: whitespace, comments, opening parentheses.
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?(?:\*/|\Z)|\()*([A-Za-z]*)", re.S)
_DML_WORD = re.compile(r"\b(insert|update|delete)\b", re.I)
_TYPES: Mapping[str, str] = {kind: kind for kind in STATEMENT_TYPES}


def _statement_type(statement: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other``, from the SQL text."""
    match = _FIRST_WORD.match(statement)
    word = match.group(1).lower() if match else ""
    if word == "with":
        found = _DML_WORD.search(statement)
        return found.group(1).lower() if found else "select"
    return _TYPES.get(word, "other")


# One pass over the SQL text, token by token, so that digits inside names or strings and
# quotes inside comments are read as what they are. Unterminated strings and comments run
# to the end of the text (masked whole rather than leaked).
_SQL_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>(?:\b[EeNnXxBbUu]&?|_\w+)?'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<quoted>"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z))
    | (?P<name>[^\W\d]\w*|\$\d+|:\w+|%\(\w+\)s|%s)
    | (?P<number>0[xX][0-9A-Fa-f]+|0[bB][01]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<space>\s+)
    """,
    re.S | re.X,
)
# Dialects where "text" is a string by default (MySQL without ANSI_QUOTES); elsewhere it
# names a table or column and is kept.
_DOUBLE_QUOTED_STRINGS = frozenset({"mysql", "mariadb"})


def _mask_statement(statement: str, dialect: str) -> str:
    """The statement with comments dropped and every literal value replaced by ``?``."""
    mask_quoted = dialect in _DOUBLE_QUOTED_STRINGS

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind == "name":
            return match.group()
        if kind in ("space", "comment"):
            return " "
        if kind == "quoted":
            text = match.group()
            # A name ("user", `order`) is kept; a string in MySQL's default mode, or a
            # quote left open, which would carry the rest of the text along, is not.
            if not (mask_quoted and text[0] == '"') and len(text) > 1 and text[-1] == text[0]:
                return text
        return "?"

    masked = " ".join(_SQL_TOKEN.sub(replace, statement[: _STATEMENT_LIMIT * 4]).split())
    if len(masked) > _STATEMENT_LIMIT:
        masked = masked[:_STATEMENT_LIMIT] + "..."
    return masked
