"""The documentation site as a reader gets it: built strictly, every snippet expanded.

A code formatter once rewrote the pymdownx snippet marker ``--8<-- "file"`` into
``--8 < --"file"``; the strict build accepted it and the home page showed the marker
instead of the code. These tests read the built HTML, not the Markdown sources.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Any spelling of the marker a formatter or an editor can produce: --8<--, --8 < --, -8<-...
RAW_MARKER = re.compile(r"-{1,2}\s*8\s*<\s*-{1,2}")
SNIPPET = re.compile(r'^(?P<fence>```\w*\n)?--8<-- "(?P<file>[^"]+)"', re.MULTILINE)


def page_text(page: Path) -> str:
    """The text of a built page, as a reader sees it: no tags, entities decoded."""
    main = page.read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", "", main))


def built_page(site: Path, source: Path) -> Path:
    """Where mkdocs writes ``docs/<name>.md`` (``use_directory_urls`` is on)."""
    relative = source.relative_to(DOCS).with_suffix("")
    if relative.name == "index":
        return site / relative.parent / "index.html"
    return site / relative / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs dependency group builds the site")
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(  # noqa: S603 - the project's own build
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return target


def test_no_source_page_holds_a_mangled_snippet_marker() -> None:
    for source in DOCS.rglob("*.md"):
        for line in source.read_text(encoding="utf-8").splitlines():
            if RAW_MARKER.search(line):
                assert re.fullmatch(r'--8<-- "[^"]+"', line), f"{source}: {line!r}"


def test_the_built_site_shows_no_raw_snippet_marker(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    leaks = [str(page) for page in pages if RAW_MARKER.search(page_text(page))]
    assert leaks == []


def test_every_included_code_file_is_shown_in_full(site: Path) -> None:
    included = 0
    for source in sorted(DOCS.rglob("*.md")):
        for match in SNIPPET.finditer(source.read_text(encoding="utf-8")):
            if match.group("fence") is None:
                continue  # Markdown included as Markdown (the changelog): rendered, not code
            text = page_text(built_page(site, source))
            name, _, section = match.group("file").partition(":")
            code = (ROOT / name).read_text(encoding="utf-8")
            if section:  # "file:name": the lines between its start and end markers
                start, end = f"--8<-- [start:{section}]", f"--8<-- [end:{section}]"
                assert start in code, f"{name} has no section {section}"
                assert end in code, f"{name} does not end section {section}"
                code = code.split(start, 1)[1].split(end, 1)[0].split("\n", 1)[1]
                code = code.rsplit("\n", 1)[0]
            missing = [line for line in code.splitlines() if line.strip() not in text]
            assert missing == [], f"{source.name} does not show {match.group('file')}: {missing}"
            included += 1
    assert included >= 2  # the home page and Getting started show examples/usage/app.py


def test_every_security_event_is_documented_as_emitted() -> None:
    """The logging page lists each event the library emits, with when it is emitted."""
    from fastapi_enterprise.security_events import SecurityEvent

    page = (DOCS / "how-to" / "logging.md").read_text(encoding="utf-8")
    for event in SecurityEvent:
        row = re.search(rf"^\| `{re.escape(event.value)}` \|(.+)$", page, re.MULTILINE)
        assert row is not None, f"{event.value} is not in the security events table"
        assert "reserved" not in row.group(1), row.group(0)


def test_no_page_points_at_a_file_the_repository_does_not_have() -> None:
    pages = [ROOT / "README.md", *DOCS.rglob("*.md")]  # the changelog may name old files
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    for path in [*pages, *sources]:
        text = path.read_text(encoding="utf-8")
        for name in set(re.findall(r"\b([A-Za-z_./-]+\.md)\b", text)):
            candidates = [ROOT / name, path.parent / name, DOCS / name]
            assert any(candidate.exists() for candidate in candidates), f"{path}: {name}"
