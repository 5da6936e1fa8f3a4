"""The route-template resolver: the one place that turns a request into ``/items/{id}``.

Rate-limit keys, metric labels and log fields must never use the raw path: every new
path parameter value would be a fresh budget, a fresh time series, a fresh log key.
They all ask :func:`route_template` instead, after the app has routed the request.

How the template is found, in order:

1. FastAPI >= 0.137 stores the prefix-resolved route of an ``include_router()`` tree in
   ``scope["fastapi"]["effective_route_context"]``; ``scope["route"]`` then holds the
   original route, whose path lacks the include prefixes (fastapi/fastapi#16051).
2. Otherwise ``scope["route"]`` (set by Starlette's router and FastAPI's routes).
3. Requests handled by a mounted sub-application add the mount's own template, found by
   matching the mount tree of the top-level router, so ``/tenants/{tid}`` never leaks
   a raw tenant ID into a label.

Anything that did not match a route (404 scans, redirects to a trailing slash, unknown
mounts) gets the single value :data:`UNMATCHED_ROUTE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Mount
from starlette.types import Scope

__all__ = ["UNMATCHED_ROUTE", "route_template", "route_templates"]

UNMATCHED_ROUTE = "<unmatched>"
"""The template reported for every request that no route matched."""

_MOUNT_SUFFIX = "/{path}"
_CACHE_KEY = "fastapi_enterprise.route_template"
_MAX_MOUNT_DEPTH = 8


def route_template(scope: Scope) -> str:
    """Return the route template that handled ``scope``, e.g. ``/items/{item_id}``.

    Call it after the request went through the router (in a middleware: after
    ``await self.app(...)`` or when the response starts). Before routing, and for
    requests that matched nothing, it returns :data:`UNMATCHED_ROUTE`.

    Args:
        scope: The ASGI scope of an HTTP or WebSocket request.

    Returns:
        The template, prefixed with the templates of any mounts and included routers;
        never a value taken from the raw path.
    """
    route = scope.get("route")
    cached = scope.get(_CACHE_KEY)
    if cached is not None and cached[0] is route and route is not None:
        template: str = cached[1]
        return template
    template = _template(scope, route)
    if route is not None:
        # The access log, the metrics and the error handlers all ask, after routing.
        scope[_CACHE_KEY] = (route, template)
    return template


def _template(scope: Scope, route: Any) -> str:
    prefix = _mount_prefix(scope)
    if prefix is None:
        return UNMATCHED_ROUTE
    if route is None or isinstance(route, Mount):
        # A mounted app without routes of its own (StaticFiles, a plain ASGI app).
        return prefix + _MOUNT_SUFFIX if prefix else UNMATCHED_ROUTE
    path = _effective_path(scope, route) or getattr(route, "path_format", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    return prefix + path


def _effective_path(scope: Scope, route: Any) -> str | None:
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, dict):
        return None
    context = fastapi_scope.get("effective_route_context")
    # The context may be left over from an outer app's include tree; only trust it when
    # it describes the route that finally handled the request.
    if context is None or getattr(context, "original_route", None) is not route:
        return None
    path = getattr(context, "path_format", None)
    return path if isinstance(path, str) else None


def _mount_prefix(scope: Scope) -> str | None:
    """Template of the mounts between the app and the final route; ``None`` if unknown."""
    root_path: str = scope.get("root_path", "")
    app_root_path = scope.get("app_root_path")
    if app_root_path is None or root_path == app_root_path:
        return ""  # not inside a mount
    router = scope.get("router")
    path: str = scope.get("path", "")
    if not path.startswith(app_root_path) or not root_path.startswith(app_root_path):
        return None
    consumed = len(root_path) - len(app_root_path)
    return _match_mounts(getattr(router, "routes", ()), path[len(app_root_path) :], consumed)


def _match_mounts(routes: Any, path: str, consumed: int, depth: int = 0) -> str | None:
    if depth >= _MAX_MOUNT_DEPTH:
        return None
    for candidate in routes:
        if not isinstance(candidate, Mount):
            continue
        match = candidate.path_regex.match(path)
        if match is None:
            continue
        remaining = "/" + match.group("path")
        used = len(path) - len(remaining)
        template = candidate.path_format.removesuffix(_MOUNT_SUFFIX)
        if used == consumed:
            return template
        if used < consumed:
            inner = _match_mounts(candidate.routes, remaining, consumed - used, depth + 1)
            if inner is not None:
                return template + inner
    return None


def route_templates(app: Any) -> frozenset[str]:
    """Every template :func:`route_template` can report for ``app``'s routes.

    Included routers with their prefixes, and mounted apps (the mount's template
    followed by each inner template, and ``{mount}/{path}`` for what matches no inner
    route). :data:`UNMATCHED_ROUTE` is not included. Read it once the app has all its
    routes (at startup): routes added later are not in it.

    Args:
        app: A Starlette or FastAPI app (or a router).
    """
    router = getattr(app, "router", app)
    return frozenset(_templates(getattr(router, "routes", ()), "", 0))


def _templates(routes: Any, prefix: str, depth: int) -> Iterator[str]:
    if depth >= _MAX_MOUNT_DEPTH:
        return
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI < 0.137 keeps a flat route list
        contexts: Iterable[Any] = list(routes)
    else:
        contexts = iter_route_contexts(list(routes))
    for context in contexts:
        path = getattr(context, "path_format", None)
        if not isinstance(path, str):
            continue
        yield prefix + path
        original = getattr(context, "original_route", context)
        if isinstance(original, Mount):
            inner = original.routes
            if inner:
                yield from _templates(inner, prefix + path.removesuffix(_MOUNT_SUFFIX), depth + 1)
