"""Swagger UI and ReDoc pages that work under a strict Content-Security-Policy.

Each page is rendered by FastAPI's own HTML builders and answered with its own CSP,
computed from the exact HTML served: the script and stylesheet URLs it loads (``'self'``
for the app's own assets) and the SHA-256 of each inline script. The policy is computed
once per ``root_path`` (the OpenAPI URL inside the inline script depends on it), so a
proxy prefix does not break it. No request header reaches the page or its policy.
No ``'unsafe-eval'``, no bare CDN host; inline *styles* are allowed on these pages only,
because Swagger UI and ReDoc set style attributes at run time.

From the CDN, the pages load exact versions (Swagger UI :data:`SWAGGER_UI_VERSION`, ReDoc
:data:`REDOC_VERSION`) with subresource integrity: a changed file is refused by the
browser, not run. No Google Fonts. ``offline=True`` serves the same files from the
``fastapi-offline`` package (``pip install 'fastapi-enterprise[docs-offline]'``) under
``/docs/assets/``: no CDN, and the pages work on a closed network. A small theme
stylesheet (brand colour, dark mode following the system setting) is served next to them.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from fastapi_enterprise._extras import MissingExtraError
from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.openapi.docs_policy import policy_from_html

__all__ = [
    "REDOC_VERSION",
    "SWAGGER_UI_VERSION",
    "DocsTheme",
    "install_docs_pages",
    "offline_assets_directory",
]

SWAGGER_UI_VERSION = "5.32.6"
"""The ``swagger-ui-dist`` version the docs page loads from the CDN."""

REDOC_VERSION = "2.5.3"
"""The ``redoc`` version the reference page loads from the CDN."""

_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
_MAX_CACHED_ROOTS = 16  # root_path values: set by the server or a mount, not by clients


@dataclass(frozen=True)
class DocsTheme:
    """How the docs pages look.

    Attributes:
        primary_color: Accent colour (CSS colour value).
        dark_mode: Follow the system's dark setting.
        favicon_url: Favicon; the bundled FastAPI one when offline.
        logo_url: Logo shown above Swagger UI's operations.
    """

    primary_color: str = "#0f766e"
    dark_mode: bool = True
    favicon_url: str | None = None
    logo_url: str | None = None

    def stylesheet(self) -> str:
        """The theme CSS served as ``/docs/assets/theme.css``."""
        css = [
            f":root {{ --fe-primary: {self.primary_color}; }}",
            ".swagger-ui .topbar { background-color: var(--fe-primary); }",
            ".swagger-ui .btn.execute { border-color: var(--fe-primary); }",
            ".swagger-ui .info .title { color: var(--fe-primary); }",
        ]
        if self.logo_url:
            css.append(
                f'.swagger-ui .information-container::before {{ content: ""; display: block;'
                f' height: 48px; background: url("{self.logo_url}") no-repeat left center;'
                f" background-size: contain; }}"
            )
        if self.dark_mode:
            css.append(
                "@media (prefers-color-scheme: dark) { body { background: #111; }"
                " .swagger-ui { filter: invert(88%) hue-rotate(180deg); }"
                " .swagger-ui img { filter: invert(100%) hue-rotate(180deg); } }"
            )
        return "\n".join(css) + "\n"


def offline_assets_directory() -> Path:
    """Where the ``fastapi-offline`` package keeps Swagger UI and ReDoc.

    Raises:
        MissingExtraError: The ``docs-offline`` extra is not installed.
    """
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise MissingExtraError(
            "docs-offline",
            module="fastapi_enterprise.openapi.docs_pages",
            missing="fastapi-offline",
        )
    return Path(spec.origin).parent / "static"


def install_docs_pages(
    app: FastAPI,
    *,
    theme: DocsTheme | None = None,
    offline: bool = False,
    assets_path: str = "/docs/assets",
) -> None:
    """Replace FastAPI's docs routes with CSP-safe, themed ones.

    Swagger UI opens with persisted authorization, deep links and "try it out" enabled.
    Does nothing when the app serves no OpenAPI schema or no docs.
    """
    if not app.openapi_url or not (app.docs_url or app.redoc_url):
        return
    theme = theme or DocsTheme()
    directory = offline_assets_directory() if offline else None
    openapi_url = app.openapi_url
    docs_paths = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes = [
        route
        for route in app.router.routes
        if not (isinstance(route, Route) and route.path in docs_paths)
    ]
    files = {name: (directory / name).read_bytes() for name in _ASSETS} if directory else {}
    files["theme.css"] = theme.stylesheet().encode()
    routes: list[Route] = [
        Route(f"{assets_path}/{{name}}", _asset_endpoint(files), include_in_schema=False)
    ]
    parameters = {
        **(app.swagger_ui_parameters or {}),
        "persistAuthorization": True,
        "deepLinking": True,
        "tryItOutEnabled": True,
        "displayRequestDuration": True,
    }

    # Subresource integrity of every script and stylesheet, checked by the browser.
    local = {name: _integrity(content) for name, content in files.items()}

    def urls(root: str) -> dict[str, tuple[str, str | None]]:
        base = f"{root}{assets_path}"

        def asset(key: str, name: str) -> tuple[str, str | None]:
            if offline:
                return f"{base}/{name}", local[name]
            return _CDN[key]

        icon = theme.favicon_url or (f"{base}/favicon.png" if offline else _CDN_FAVICON)
        return {
            "swagger_js": asset("swagger_js", "swagger-ui-bundle.js"),
            "swagger_css": asset("swagger_css", "swagger-ui.css"),
            "redoc_js": asset("redoc_js", "redoc.standalone.js"),
            "favicon": (icon, None),
            "theme": (f"{base}/theme.css", local["theme.css"]),
        }

    if app.docs_url:
        redirect = app.swagger_ui_oauth2_redirect_url

        def swagger(root: str) -> str:
            address = urls(root)
            html = get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - API docs",
                swagger_js_url=address["swagger_js"][0],
                swagger_css_url=address["swagger_css"][0],
                swagger_favicon_url=address["favicon"][0],
                oauth2_redirect_url=root + redirect if redirect else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=parameters,
            ).body
            link = f'<link type="text/css" rel="stylesheet" href="{address["theme"][0]}">'
            page = bytes(html).decode().replace("</head>", f"{link}\n</head>", 1)
            return _with_integrity(
                page, address["swagger_js"], address["swagger_css"], address["theme"]
            )

        routes.append(Route(app.docs_url, _page_endpoint(swagger), include_in_schema=False))
        if redirect:
            page = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()
            routes.append(
                Route(redirect, _page_endpoint(lambda root: page), include_in_schema=False)
            )

    if app.redoc_url:

        def redoc(root: str) -> str:
            address = urls(root)
            page = get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - API reference",
                redoc_js_url=address["redoc_js"][0],
                redoc_favicon_url=address["favicon"][0],
                with_google_fonts=False,  # a stylesheet that varies per browser: no SRI
            ).body
            return _with_integrity(bytes(page).decode(), address["redoc_js"])

        routes.append(
            Route(app.redoc_url, _page_endpoint(redoc, workers=True), include_in_schema=False)
        )
    app.router.routes.extend(routes)


_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_REDOC_EXTRA = {
    "worker-src": ["blob:"],
    "font-src": ["'self'", "data:"],
    # ReDoc's "API docs by Redocly" footer loads this one image.
    "img-src": [_REDOC_LOGO],
}
# Exact versions with their SHA-384, byte-identical to the files the docs-offline extra
# bundles (tests/test_docs_pages.py compares them).
_JSDELIVR = "https://cdn.jsdelivr.net/npm"
_CDN: dict[str, tuple[str, str | None]] = {
    "swagger_js": (
        f"{_JSDELIVR}/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui-bundle.js",
        "sha384-EYdOaiRwn44zNjrw+Tfs06qYz9BGQVo2f4/pLY5i7VorbjnZNhdplAbTBk8FXHUJ",
    ),
    "swagger_css": (
        f"{_JSDELIVR}/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui.css",
        "sha384-9Q2fpS+xeS4ffJy6CagnwoUl+4ldAYhOs9pgZuEKxypVModhmZFzeMlvVsAjf7uT",
    ),
    "redoc_js": (
        f"{_JSDELIVR}/redoc@{REDOC_VERSION}/bundles/redoc.standalone.js",
        "sha384-xiEssMQFSpSfLbzRZCGfxxIM5QDb2DTrU6vyoZdp2sV1L6pmOMy6MpTtUoLbpC96",
    ),
}
_CDN_FAVICON = "https://fastapi.tiangolo.com/img/favicon.png"


def _integrity(content: bytes) -> str:
    return f"sha384-{base64.b64encode(hashlib.sha384(content).digest()).decode()}"


def _with_integrity(html: str, *assets: tuple[str, str | None]) -> str:
    """Add ``integrity`` and ``crossorigin`` to the tag that loads each asset."""
    for url, integrity in assets:
        if integrity is None:
            continue
        found = 0
        for attribute in ("src", "href"):
            needle = f'{attribute}="{url}"'
            found += html.count(needle)
            html = html.replace(needle, f'{needle} integrity="{integrity}" crossorigin="anonymous"')
        if found != 1:  # FastAPI changed its page: never serve an asset without its hash
            raise RuntimeError(f"the docs page loads {url} {found} times, expected once")
    return html


Endpoint = Callable[[Request], Awaitable[Response]]


def _page_endpoint(render: Callable[[str], str], *, workers: bool = False) -> Endpoint:
    """An endpoint answering the page with its own CSP, both cached per root_path.

    Nothing of the request but the server-set ``root_path`` shapes the page or its
    policy: same-origin assets are ``'self'``, never the request's ``Host``.
    """
    extra = _REDOC_EXTRA if workers else None

    def build(root: str) -> tuple[bytes, str]:
        html = render(root)
        return html.encode(), policy_from_html(html, extra=extra).render()

    # Rendered once now: a page that cannot be served safely fails at startup.
    cache = {"": build("")}

    async def endpoint(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        cached = cache.get(root)
        if cached is None:
            cached = build(root)
            if len(cache) < _MAX_CACHED_ROOTS:
                cache[root] = cached
        body, csp = cached
        return HTMLResponse(
            body, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"}
        )

    return endpoint


def _asset_endpoint(files: dict[str, bytes]) -> Endpoint:

    async def endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        content = files.get(name)
        if content is None:
            return problem_response(404, detail="No such docs asset.")
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(
            content,
            media_type=media_type,
            headers={
                "Cache-Control": "public, max-age=86400",
                "Cross-Origin-Resource-Policy": "same-origin",
            },
        )

    return endpoint
