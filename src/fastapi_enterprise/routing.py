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

Two kinds of request have no ``scope["route"]`` although a route was chosen for them:
requests answered before routing (a 429 or 503 from the rate limiter), and requests that
FastAPI's router (>= 0.137) handed to a plain Starlette route (the docs pages,
``/openapi.json``, health probes, ``app.add_route()``): it names only its own
``APIRoute``s. For both, :class:`RouteMatcher` (the rate limiter's way of asking, before
routing, which route will run) supplies the template; it remembers its answer in the
scope, so every layer that reports (metrics, access log) reads the same value.

Anything that did not match a route (404 scans, redirects to a trailing slash, unknown
mounts) gets the single value :data:`UNMATCHED_ROUTE`.

The same matching answers which methods a path serves (:func:`allowed_methods`): every
route whose path matches counts, not only the first one the router tried, so a 405's
``Allow`` lists ``GET, POST`` for ``GET /notes`` and ``POST /notes`` declared as two
routes.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import Scope

__all__ = [
    "UNMATCHED_ROUTE",
    "RouteMatcher",
    "allowed_methods",
    "route_methods",
    "route_template",
    "route_templates",
]

UNMATCHED_ROUTE = "<unmatched>"
"""The template reported for every request that no route matched."""

_MOUNT_SUFFIX = "/{path}"
_CACHE_KEY = "fastapi_enterprise.route_template"
_MATCHED_KEY = "fastapi_enterprise.matched_route"
_MAX_MOUNT_DEPTH = 8
# RFC 9110's order (PATCH after PUT); other methods follow, alphabetically.
_METHOD_ORDER = {
    method: rank
    for rank, method in enumerate(
        ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
    )
}


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
        if prefix:
            # A mounted app without routes of its own (StaticFiles, a plain ASGI app).
            return prefix + _MOUNT_SUFFIX
        return _matched(scope, route)
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


def route_methods(app: Any) -> dict[str, frozenset[str]]:
    """The methods the routes of each template answer, for routes and included routers.

    ``HEAD`` is there where Starlette adds it to ``GET``. Templates inside mounted apps
    are not in it (a mount answers whatever its app does): where
    :func:`route_templates` has a template this lacks, any method may be served.
    """
    router = getattr(app, "router", app)
    found: dict[str, set[str]] = {}
    for context in _route_contexts(getattr(router, "routes", ())):
        path = getattr(context, "path_format", None)
        methods = getattr(context, "methods", None)
        if isinstance(path, str) and methods:
            found.setdefault(path, set()).update(methods)
    return {template: frozenset(methods) for template, methods in found.items()}


def _templates(routes: Any, prefix: str, depth: int) -> Iterator[str]:
    if depth >= _MAX_MOUNT_DEPTH:
        return
    for context in _route_contexts(routes):
        path = getattr(context, "path_format", None)
        if not isinstance(path, str):
            continue
        yield prefix + path
        original = getattr(context, "original_route", context)
        if isinstance(original, Mount):
            inner = original.routes
            if inner:
                yield from _templates(inner, prefix + path.removesuffix(_MOUNT_SUFFIX), depth + 1)


def _matched(scope: Scope, route: Any) -> str:
    """The template of a request that has no route in its scope."""
    matched = scope.get(_MATCHED_KEY)
    if isinstance(matched, str):
        return matched  # found before routing (the rate limiter asked)
    router = scope.get("router")
    if route is None and "endpoint" in scope and router is not None:
        # Routed, to a route the router did not name (a plain Starlette route).
        return _matcher_for(router).match(scope)[0]
    return UNMATCHED_ROUTE


class RouteMatcher:
    """Which route a router will run for a request, found without running it.

    Asks the router's own matching: FastAPI's public ``iter_route_contexts()`` (FastAPI
    >= 0.137, which resolves the prefixes of included routers) and each context's
    ``matches()``; a route that matches the path but not the method (a 405) counts. The
    answer is cached per method and path (bounded) and remembered in the scope, where
    :func:`route_template` finds it for a request the app never routed.
    :meth:`allowed_methods` asks every route, not only the first that matches.

    Args:
        router: The router to ask; the one of ``scope["app"]`` by default (read at the
            first request).
        cache_size: Method and path pairs remembered.
    """

    def __init__(self, router: object = None, *, cache_size: int = 4096) -> None:
        self._router = router
        self._contexts: list[Any] | None = None
        self._cache: OrderedDict[tuple[str, str], tuple[str, object, object]] = OrderedDict()
        self._cache_size = cache_size

    def match(self, scope: Scope) -> tuple[str, object]:
        """Return ``(template, endpoint)`` of the route that will handle ``scope``.

        Requests that match nothing get ``(UNMATCHED_ROUTE, None)``.
        """
        template, endpoint, _context = self.match_context(scope)
        return template, endpoint

    def match_context(self, scope: Scope) -> tuple[str, object, object]:
        """As :meth:`match`, with the route context itself (``None`` when nothing matched).

        The context is FastAPI's prefix-resolved route (its ``max_body_size`` is the
        route's effective limit) or the plain route.
        """
        key = (scope.get("method", ""), scope["path"])
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        else:
            found = self._cache[key] = self._find(scope)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        scope[_MATCHED_KEY] = found[0]
        return found

    def allowed_methods(self, scope: Scope) -> tuple[str, ...] | None:
        """The methods that the routes whose path matches ``scope``'s serve.

        Every matching route counts, routes of included routers and of mounted routers
        and apps too, in RFC 9110's order (``GET, HEAD, POST, ...``). ``None`` when that
        cannot be known: a matching route takes any method and answers for itself (an
        endpoint without a method list, a mounted app without routes).
        """
        methods: set[str] = set()
        probe = {**scope, "path_params": {}}
        if not _collect_methods(self._route_contexts(scope), probe, methods, 0):
            return None
        return tuple(sorted(methods, key=lambda method: (_METHOD_ORDER.get(method, 99), method)))

    def _route_contexts(self, scope: Scope) -> list[Any]:
        if self._contexts is None:
            router = self._router or getattr(scope.get("app"), "router", None)
            self._contexts = _route_contexts(getattr(router, "routes", []))
        return self._contexts

    def _find(self, scope: Scope) -> tuple[str, object, object]:
        probe = {**scope, "path_params": {}}
        partial: tuple[str, object, object] | None = None
        for context in self._route_contexts(scope):
            match, _child = context.matches(probe)
            if match is Match.NONE:
                continue
            template = getattr(context, "path_format", None) or UNMATCHED_ROUTE
            found = (template, getattr(context, "endpoint", None), context)
            if match is Match.FULL:
                return found
            if partial is None:
                partial = found
        return partial or (UNMATCHED_ROUTE, None, None)


def _collect_methods(contexts: list[Any], scope: Scope, methods: set[str], depth: int) -> bool:
    """Add the methods of every route matching ``scope``'s path; ``False`` if unknowable."""
    for context in contexts:
        match, child = context.matches(scope)
        if match is Match.NONE:
            continue
        original = getattr(context, "original_route", context)
        if isinstance(original, Mount):
            inner = original.routes
            if not inner or depth >= _MAX_MOUNT_DEPTH:
                return False
            if not _collect_methods(_route_contexts(inner), {**scope, **child}, methods, depth + 1):
                return False
            continue
        served = getattr(context, "methods", None)
        if not served:
            return False
        methods.update(served)
    return True


def allowed_methods(scope: Scope) -> tuple[str, ...] | None:
    """The methods the app's routes serve on ``scope``'s path, for a 405's ``Allow``.

    Asks the :class:`RouteMatcher` of the top-level router that routed the request (kept
    for as long as the router lives): one pass over the routes, as routing itself does.

    Args:
        scope: The ASGI scope of an HTTP request, after routing.

    Returns:
        The methods, ``GET, HEAD, POST, ...`` order; ``None`` when it cannot be known
        (a request that was not routed, or a matching route that takes any method).
    """
    router = scope.get("router")
    if router is None:
        return None
    # Match from the top-level router, as it routed: mounts on the way changed root_path.
    top = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    return _matcher_for(router).allowed_methods(top)


def _route_contexts(routes: Any) -> list[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI < 0.137 keeps a flat route list
        return list(routes)
    return list(iter_route_contexts(list(routes)))


# One matcher per router for requests routed to routes the router did not name: a cache
# that lives as long as the router does, not state that changes what any answer is.
# Keyed by id (routers need not be hashable), dropped when the router is collected.
_MATCHERS: dict[int, tuple[weakref.ref[object], RouteMatcher]] = {}


def _matcher_for(router: object) -> RouteMatcher:
    entry = _MATCHERS.get(id(router))
    if entry is not None and entry[0]() is router:
        return entry[1]
    matcher = RouteMatcher(router)
    _MATCHERS[id(router)] = (weakref.ref(router), matcher)
    weakref.finalize(router, _MATCHERS.pop, id(router), None)
    return matcher
