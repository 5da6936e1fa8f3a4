"""Decorators that time, count and track sync and async functions and methods alike.

prometheus-client's own ``@histogram.time()`` measures an ``async def`` only until its
first ``await`` returns control; these await the coroutine and measure the whole call.
Labels can come from the call (``labels=lambda *args, **kwargs: {...}``), behind a
:class:`LabelGuard` that folds values beyond a cardinality budget into ``other``.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from fastapi_enterprise.metrics._prometheus import Counter, Gauge, Histogram, Summary

__all__ = ["LabelGuard", "count_calls", "count_exceptions", "time_calls", "track_in_progress"]

P = ParamSpec("P")
R = TypeVar("R")
LabelFunction = Callable[..., Mapping[str, str]]


class LabelGuard:
    """Bound the number of distinct values per label: the rest become ``other``.

    Args:
        max_values: Distinct values kept per label name.
        overflow: What values past the budget are folded into.
    """

    def __init__(self, max_values: int = 100, overflow: str = "other") -> None:
        self.max_values = max_values
        self.overflow = overflow
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, labels: Mapping[str, object]) -> dict[str, str]:
        """Return ``labels`` with over-budget values replaced by ``overflow``."""
        guarded: dict[str, str] = {}
        with self._lock:
            for name, value in labels.items():
                text = str(value)
                seen = self._seen.setdefault(name, set())
                if text not in seen:
                    if len(seen) >= self.max_values:
                        text = self.overflow
                    else:
                        seen.add(text)
                guarded[name] = text
        return guarded


def _wrap(
    function: Callable[P, R],
    before: Callable[[tuple[Any, ...], dict[str, Any]], object],
    after: Callable[[object, BaseException | None], None],
) -> Callable[P, R]:
    if inspect.iscoroutinefunction(function):
        coroutine_function = cast(Callable[P, Awaitable[Any]], function)

        @functools.wraps(function)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            state = before(args, kwargs)
            try:
                result = await coroutine_function(*args, **kwargs)
            except BaseException as exc:
                after(state, exc)
                raise
            after(state, None)
            return result

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(function)
    def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        state = before(args, kwargs)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            after(state, exc)
            raise
        after(state, None)
        return result

    return sync_wrapper


def _child(
    metric: Any,
    labels: LabelFunction | None,
    guard: LabelGuard | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if labels is None:
        return metric
    values: Mapping[str, object] = labels(*args, **kwargs)
    return metric.labels(
        **(guard(values) if guard is not None else {k: str(v) for k, v in values.items()})
    )


def time_calls(
    metric: Histogram | Summary,
    *,
    labels: LabelFunction | None = None,
    guard: LabelGuard | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Observe the duration of every call (the whole coroutine for ``async def``)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
            return (_child(metric, labels, guard, args, kwargs), time.perf_counter())

        def after(state: object, exc: BaseException | None) -> None:
            child, start = cast(tuple[Any, float], state)
            child.observe(time.perf_counter() - start)

        return _wrap(function, before, after)

    return decorate


def count_calls(
    metric: Counter, *, labels: LabelFunction | None = None, guard: LabelGuard | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count every call, successful or not."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
            _child(metric, labels, guard, args, kwargs).inc()
            return None

        return _wrap(function, before, lambda state, exc: None)

    return decorate


def count_exceptions(
    metric: Counter,
    *,
    exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    labels: LabelFunction | None = None,
    guard: LabelGuard | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count calls that raise ``exception`` (the exception still propagates)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
            return (args, kwargs)

        def after(state: object, exc: BaseException | None) -> None:
            if exc is not None and isinstance(exc, exception):
                args, kwargs = cast(tuple[tuple[Any, ...], dict[str, Any]], state)
                _child(metric, labels, guard, args, kwargs).inc()

        return _wrap(function, before, after)

    return decorate


def track_in_progress(
    metric: Gauge, *, labels: LabelFunction | None = None, guard: LabelGuard | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Keep ``metric`` at the number of calls currently running."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
            child = _child(metric, labels, guard, args, kwargs)
            child.inc()
            return child

        def after(state: object, exc: BaseException | None) -> None:
            cast(Any, state).dec()

        return _wrap(function, before, after)

    return decorate
