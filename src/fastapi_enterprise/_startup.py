"""What ``install()`` adds to an app's start and end, each step in a defined order.

``install.py`` maps settings to the stack; this module makes that stack fail loudly and
end cleanly.

At ``install()``:

1. :func:`trial_build` builds each middleware ``install()`` added, so a bad option
   raises there, in every environment, not at the first request;
2. :func:`guard_stack_build`: should the stack still fail to build when the app first
   runs (a middleware the app added itself), the lifespan startup fails with the reason
   and every request gets a problem+json 500 with a request ID, never a plain-text 500.

In the app's lifespan, :func:`wrap_lifespan` puts one wrapper around the app's own:

- startup, before the app's own startup: (1) settings keyed by route template name
  routes the app has (:class:`UnknownRouteTemplateError`), then (2) the rate-limit
  storage is asked to answer (a warning, or a refused start where requests cannot be
  served without it); the cheap check first, so a typo never waits on the network;
- the app's own lifespan;
- shutdown, after the app's own shutdown (or a failed startup), each step even when the
  one before failed: (1) the rate-limit storage's connections are closed, then (2) the
  log pipeline writes every line at once, so the lines of step 1, of the app's shutdown
  and of the server's last moments are written before the process ends (servers end on
  ``SIGTERM`` without running ``atexit``; see ``LoggingHandle.enter_shutdown()``).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise.context import _enter_request, _exit_request
from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.log_config import current_logging_handle
from fastapi_enterprise.middleware.request_id import generate_request_id
from fastapi_enterprise.ratelimit.policy import split_route_key
from fastapi_enterprise.redaction import DEFAULT_REDACTOR
from fastapi_enterprise.routing import route_methods, route_templates

if TYPE_CHECKING:
    from fastapi_enterprise.middleware.rate_limit import RateLimitMiddleware
    from fastapi_enterprise.telemetry import Telemetry

__all__ = ["UnknownRouteTemplateError", "guard_stack_build", "trial_build", "wrap_lifespan"]

logger = logging.getLogger("fastapi_enterprise.install")


class UnknownRouteTemplateError(ValueError):
    """A setting keyed by route template names a route the app does not have.

    Raised at the app's startup (lifespan), once every route is defined, so a typo in
    ``FE_RATE_LIMIT__ROUTES`` stops the start instead of silently limiting nothing.

    Attributes:
        unknown: Setting name to the templates it names that the app lacks.
    """

    def __init__(
        self,
        unknown: Mapping[str, list[str]],
        known: frozenset[str],
        methods: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.unknown = dict(unknown)
        lines = ["settings name routes this app does not have:"]
        for setting, keys in self.unknown.items():
            for key in keys:
                _, path = split_route_key(key)
                served = (methods or {}).get(path)
                if path in known and served:
                    hint = f" (the route answers {', '.join(sorted(served))})"
                else:
                    close = difflib.get_close_matches(path, sorted(known), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                lines.append(f"  {setting}: {key!r}{hint}")
        super().__init__("\n".join(lines))


def trial_build(added: Iterable[Middleware]) -> list[Any]:
    """Build each middleware ``install()`` added once, now, so bad options fail here.

    Starlette builds the stack at the first request (or lifespan), where an error in a
    middleware's ``__init__`` has no request ID shield around it yet. Metrics collectors
    register on a scratch registry of the same type, so the real one stays untouched.

    Returns:
        The instances, around an app that is never called: ``install()`` reads their
        policies (the OpenAPI contract, the startup check of the rate-limit storage)
        instead of building any middleware a third time.
    """

    async def nothing(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        return None

    built: list[Any] = []
    for middleware in added:
        kwargs: dict[str, Any] = {
            name: type(value)() if _is_registry(value) else value
            for name, value in middleware.kwargs.items()
        }
        built.append(middleware.cls(nothing, *middleware.args, **kwargs))
    return built


def _is_registry(value: object) -> bool:
    """Whether ``value`` is a Prometheus registry (any keyword may carry one)."""
    try:
        from fastapi_enterprise.metrics._prometheus import CollectorRegistry
    except MissingExtraError:
        return False
    return isinstance(value, CollectorRegistry)


def guard_stack_build(app: Starlette, header_name: str) -> None:
    """If the stack fails to build when the app first runs, fail loudly, never plainly.

    A middleware the app added itself (or one ``install()`` could not try) may still
    raise when Starlette builds the stack; Starlette would then let the server answer a
    plain-text 500 without a request ID to every request, and a server whose lifespan is
    ``auto`` would even keep serving. The failure is logged with its traceback, the
    lifespan startup fails with its reason, and requests get a problem+json 500.
    """
    build: Callable[[], ASGIApp] = app.build_middleware_stack

    def build_or_refuse() -> ASGIApp:
        try:
            return build()
        except Exception as exc:
            logger.error("The middleware stack could not be built", exc_info=exc)
            return _BrokenStack(exc, header_name)

    app.build_middleware_stack = build_or_refuse  # type: ignore[method-assign]


class _BrokenStack:
    """Stands in for a middleware stack that failed to build: fails startup, answers 500."""

    def __init__(self, error: Exception, header_name: str) -> None:
        reason = DEFAULT_REDACTOR.text(str(error))[:500]
        self.reason = f"the middleware stack could not be built: {type(error).__name__}: {reason}"
        self.header_name = header_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": self.reason})
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
            return
        request_id = generate_request_id()
        tokens = _enter_request(request_id, scope)
        try:
            response = problem_response(
                500,
                detail="The server is misconfigured and cannot answer.",
                headers={
                    self.header_name: request_id,
                    "Cache-Control": "no-store",
                    "Content-Security-Policy": "default-src 'none'",
                    "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY",
                },
            )
        finally:
            _exit_request(tokens)
        await response(scope, receive, send)


def wrap_lifespan(
    app: Starlette,
    *,
    route_settings: Mapping[str, Mapping[str, object]],
    rate_limit: RateLimitMiddleware | None,
    telemetry: Telemetry | None = None,
    on_startup: Callable[[], None] | None = None,
) -> None:
    """Put ``install()``'s one wrapper around the app's lifespan (see the module docstring).

    Without a lifespan (a bare ``TestClient(app)``, a server run with ``--lifespan
    off``), nothing here runs: route templates are not checked, the storage is neither
    asked at startup nor closed, and the logs are written on the writer's schedule.

    Args:
        app: The app ``install()`` was called on.
        route_settings: Setting name (``rate_limit.routes``) to what it keys by route
            template; checked at startup, once every route is defined (routes are
            usually declared after ``install(app)``: decorators below it,
            ``include_router()``).
        rate_limit: A rate-limit middleware with the stack's engine and options (added
            with ``manage_storage=False``), whose storage is checked and closed here.
        telemetry: The OpenTelemetry providers to flush and shut down at the end (in a
            worker thread: an export waits on the collector, at most its timeout).
        on_startup: Runs first at startup, once every route is defined (FastAPI's body
            limits checked on the routes declared after ``install()``).
    """
    app_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def enterprise_lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        try:
            if on_startup is not None:
                on_startup()
            _check_route_templates(app, route_settings)
            if rate_limit is not None:
                refusal = await rate_limit.check_storage()
                if refusal is not None:
                    raise RuntimeError(refusal)
            async with app_lifespan(asgi_app) as state:
                yield state
        finally:
            try:
                if rate_limit is not None:
                    await rate_limit.limiter.aclose()
            finally:
                if telemetry is not None:
                    await anyio.to_thread.run_sync(telemetry.shutdown)
                handle = current_logging_handle()
                if handle is not None:
                    handle.enter_shutdown()

    app.router.lifespan_context = enterprise_lifespan


def _check_route_templates(app: Starlette, keyed: Mapping[str, Mapping[str, object]]) -> None:
    """Refuse settings keyed by a route template (or ``METHOD /template``) the app lacks."""
    if not any(keyed.values()):
        return
    known = route_templates(app)
    methods = route_methods(app)

    def exists(key: str) -> bool:
        method, template = split_route_key(key)
        if template not in known:
            return False
        return not method or template not in methods or method in methods[template]

    missing = {
        setting: sorted(key for key in keys if not exists(key)) for setting, keys in keyed.items()
    }
    unknown = {setting: keys for setting, keys in missing.items() if keys}
    if unknown:
        raise UnknownRouteTemplateError(unknown, known, methods)
