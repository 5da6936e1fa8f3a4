"""The docs pages in a real headless Chromium, under the production security headers."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fastapi_enterprise import EnterpriseSettings, install

pytest.importorskip("fastapi_offline")  # the docs-offline extra: these pages need no CDN
from fastapi_enterprise.openapi.docs_pages import (
    REDOC_VERSION,
    SWAGGER_UI_VERSION,
    DocsTheme,
    offline_assets_directory,
)
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


class Course(BaseModel):
    id: int
    title: str


def make_app(**app_settings: object) -> FastAPI:
    app = FastAPI()

    @app.get("/courses/{course_id}", tags=["courses"])
    async def read_course(course_id: int) -> Course:
        return Course(id=course_id, title="FastAPI in production")

    @app.post("/courses", tags=["courses"])
    async def create_course(course: Course) -> Course:
        return course

    # Production headers everywhere (strict CSP, HSTS, COOP/CORP...), docs explicitly on.
    install(
        app,
        EnterpriseSettings(
            environment="production",
            app={"name": "Courses", "docs": True, "docs_offline": True, **app_settings},
            security={"secret_key": KEY, "allowed_hosts": ["127.0.0.1", "testserver"]},
            metrics={"enabled": False},
        ),
    )
    return app


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but chromium is not installed")
        pytest.skip("chromium (Debian package chromium) is not installed")
    return binary


def browse(url: str, screenshot: Path, profile: Path) -> tuple[str, str]:
    """Load ``url`` headless; return (rendered DOM, browser log with console messages)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=15000",
        "--window-size=1280,1000",
    ]
    shot = subprocess.run(  # noqa: S603 - a fixed local browser
        [chromium(), *flags, f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run(  # noqa: S603
        [chromium(), *flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return dom.stdout, shot.stderr + dom.stderr


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", r'class="opblock opblock-get'),
        ("/redoc", r"read_course|Read Course"),
    ],
)
def test_docs_render_in_chromium_without_csp_violations(
    live_server: type[LiveServer], tmp_path: Path, path: str, rendered: str
) -> None:
    chromium()
    offline_assets_directory()  # the docs-offline extra: no CDN on this network
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"docs{path.replace('/', '-')}.png"
    with live_server(make_app()) as server:
        dom, log = browse(f"{server.url}{path}", screenshot, tmp_path / "profile")
    violations = [line for line in log.splitlines() if "Content Security Policy" in line]
    assert violations == []
    assert re.search(rendered, dom), dom[:2000]
    assert screenshot.stat().st_size > 10_000  # a real, non-blank page


def test_docs_csp_is_exact_and_never_relaxed(live_server: type[LiveServer]) -> None:
    client = TestClient(make_app(), base_url="http://testserver")
    page = client.get("/docs")
    policy = page.headers["content-security-policy"]
    assert len(page.headers.get_list("content-security-policy")) == 1
    assert re.search(r"script-src 'self' 'sha256-[^ ]+';", policy)  # the local bundle
    assert "testserver" not in policy
    assert "'unsafe-eval'" not in policy
    assert "cdn" not in policy
    scripts = re.search(r"script-src ([^;]+)", policy)
    assert scripts is not None
    assert "'unsafe-inline'" not in scripts.group(1)
    assert "strict-transport-security" not in page.headers  # plain http: no HSTS
    # Everything else keeps the strict API policy.
    api = client.get("/courses/1").headers["content-security-policy"]
    assert api.startswith("default-src 'none'")


def test_root_path_prefix_is_in_the_page_and_its_policy() -> None:
    client = TestClient(make_app(), root_path="/api")
    page = client.get("/docs")
    assert "url: '/api/openapi.json'" in page.text
    assert 'src="/api/docs/assets/swagger-ui-bundle.js"' in page.text
    # The inline script names /api/openapi.json: its hash is the prefixed page's.
    direct = TestClient(make_app()).get("/docs").headers["content-security-policy"]
    assert page.headers["content-security-policy"] != direct


HOSTILE_HOSTS = [
    b"a;b",
    b"a b",
    b"a'b",
    b'a"b',
    b"a,b",
    b"x" * 20_000,
    "bücher.example".encode(),
    b"\xff\xfe",
    b"",
    b"evil.example:443",
]
DOCS_ROUTES = [
    "/docs",
    "/redoc",
    "/docs/oauth2-redirect",
    "/docs/assets/theme.css",
    "/openapi.json",
]


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "cdn"])
def test_no_host_header_reaches_a_docs_page_or_its_policy(offline: bool) -> None:
    """A hostile Host never causes a 500 and is never written into a page or a policy."""
    app = FastAPI()
    install(
        app,
        EnterpriseSettings(
            environment="development", app={"docs_offline": offline}, metrics={"enabled": False}
        ),
    )
    client = TestClient(app, raise_server_exceptions=False)
    for path in DOCS_ROUTES:
        expected = client.get(path)
        assert expected.status_code == 200
        for host in HOSTILE_HOSTS:
            response = client.get(path, headers={b"host": host})
            assert response.status_code == 200, (path, host[:20])
            assert response.content == expected.content, (path, host[:20])
            policy = response.headers.get("content-security-policy")
            assert policy == expected.headers.get("content-security-policy"), (path, host[:20])


def test_theme_and_assets() -> None:
    client = TestClient(make_app(docs_color="#336699"))
    css = client.get("/docs/assets/theme.css")
    assert css.headers["content-type"].startswith("text/css")
    assert "#336699" in css.text
    assert "prefers-color-scheme: dark" in css.text
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    missing = client.get("/docs/assets/../../etc/passwd")
    assert missing.status_code == 404
    assert "persistAuthorization" in client.get("/docs").text


def test_docs_off_in_production_by_default() -> None:
    app = FastAPI()
    install(
        app,
        EnterpriseSettings(
            environment="production",
            security={"secret_key": KEY, "allowed_hosts": ["testserver"]},
            metrics={"enabled": False},
        ),
    )
    client = TestClient(app)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/theme.css"):
        assert client.get(path).status_code == 404


def test_theme_stylesheet_options() -> None:
    css = DocsTheme(primary_color="#000", dark_mode=False, logo_url="/logo.svg").stylesheet()
    assert "prefers-color-scheme" not in css
    assert 'url("/logo.svg")' in css


def sri(content: bytes) -> str:
    return f"sha384-{base64.b64encode(hashlib.sha384(content).digest()).decode()}"


@pytest.mark.parametrize("offline", [True, False], ids=["offline", "cdn"])
def test_every_script_and_stylesheet_carries_subresource_integrity(offline: bool) -> None:
    client = TestClient(make_app(docs_offline=offline))
    for path in ("/docs", "/redoc"):
        page = client.get(path).text
        tags = re.findall(r"<script[^>]*\ssrc=[^>]*>|<link[^>]*stylesheet[^>]*>", page)
        assert tags
        for tag in tags:
            assert re.search(r'integrity="sha384-[A-Za-z0-9+/=]{64}"', tag), tag
            assert 'crossorigin="anonymous"' in tag, tag
        assert "fonts.googleapis.com" not in page  # varies per browser: no integrity possible
        if not offline:
            assert "@5/" not in page
            assert "@2/" not in page


def test_cdn_pins_are_the_offline_bundle_byte_for_byte() -> None:
    """The CDN files are the ones the docs-offline extra ships: same versions, same hashes.

    If fastapi-offline moves to other versions, update SWAGGER_UI_VERSION, REDOC_VERSION
    and the hashes in docs_pages.py together (``npm pack swagger-ui-dist@X redoc@Y``).
    """
    directory = offline_assets_directory()
    bundle = (directory / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in bundle
    pages = TestClient(make_app(docs_offline=False))
    swagger, redoc = pages.get("/docs").text, pages.get("/redoc").text
    expected = {
        "swagger-ui-bundle.js": (swagger, f"swagger-ui-dist@{SWAGGER_UI_VERSION}/"),
        "swagger-ui.css": (swagger, f"swagger-ui-dist@{SWAGGER_UI_VERSION}/"),
        "redoc.standalone.js": (redoc, f"redoc@{REDOC_VERSION}/bundles/"),
    }
    for name, (page, prefix) in expected.items():
        tag = f'{prefix}{name}" integrity="{sri((directory / name).read_bytes())}"'
        assert tag in page, name
