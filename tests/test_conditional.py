"""Entity tags and conditional requests (RFC 9110 section 13) through HTTP."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.conditional import (
    body_entity_tag,
    check_if_match,
    check_if_none_match,
    entity_tag,
    is_weak,
    not_modified,
    set_etag,
    strong_match,
    weak_match,
)

CURRENT = entity_tag("course", 7, "v3")


def make_app() -> FastAPI:
    app = FastAPI()
    install(app, EnterpriseSettings())

    @app.api_route("/course", methods=["GET", "HEAD", "POST"], response_model=None)
    async def read(request: Request, response: Response) -> Response | dict[str, str]:
        unchanged = not_modified(request, CURRENT, headers={"Cache-Control": "no-cache"})
        if unchanged is not None:
            return unchanged
        set_etag(response, CURRENT)
        return {"title": "FastAPI"}

    @app.put("/course")
    async def write(request: Request) -> dict[str, str]:
        check_if_match(request, CURRENT)
        return {"title": "changed"}

    @app.put("/missing")
    async def create(request: Request) -> dict[str, str]:
        check_if_match(request, None)
        check_if_none_match(request, None)
        return {"title": "created"}

    @app.put("/existing")
    async def replace(request: Request) -> dict[str, str]:
        check_if_none_match(request, CURRENT)
        return {"title": "replaced"}

    return app


def test_entity_tags_are_quoted_and_joined() -> None:
    assert entity_tag("scene", 7, "v3") == '"scene-7-v3"'
    assert entity_tag(42, weak=True) == 'W/"42"'
    assert is_weak('W/"42"')
    assert not is_weak('"42"')


@pytest.mark.parametrize("part", ["two words", 'quo"te', "", "tab\there"])
def test_entity_tag_refuses_characters_a_tag_cannot_hold(part: str) -> None:
    with pytest.raises(ValueError, match="entity tag"):
        entity_tag("scene", part)


def test_entity_tag_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        entity_tag()


def test_body_entity_tag_follows_the_bytes() -> None:
    tag = body_entity_tag(b'{"a": 1}')
    assert tag == body_entity_tag('{"a": 1}')
    assert tag != body_entity_tag(b'{"a": 2}')
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert len(tag) == 34


def test_weak_and_strong_comparison_as_in_rfc_9110_table() -> None:
    """RFC 9110 section 8.8.3.2, the example table."""
    assert not strong_match('W/"1"', 'W/"1"')
    assert weak_match('W/"1"', 'W/"1"')
    assert not strong_match('W/"1"', 'W/"2"')
    assert not weak_match('W/"1"', 'W/"2"')
    assert not strong_match('W/"1"', '"1"')
    assert weak_match('W/"1"', '"1"')
    assert strong_match('"1"', '"1"')
    assert weak_match('"1"', '"1"')


def test_set_etag_refuses_an_unquoted_tag() -> None:
    with pytest.raises(ValueError, match="not an entity tag"):
        set_etag(Response(), "scene-7")


def test_get_carries_the_etag() -> None:
    with TestClient(make_app()) as client:
        response = client.get("/course")
    assert response.status_code == 200
    assert response.headers["etag"] == CURRENT


@pytest.mark.parametrize(
    "header",
    [
        CURRENT,
        f"W/{CURRENT}",
        "*",
        f'"other", {CURRENT}',
        f'W/"x",W/{CURRENT}',
        f"garbage, {CURRENT}",
    ],
)
def test_if_none_match_answers_304_without_a_body(header: str) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/course", headers={"If-None-Match": header})
        head = client.head("/course", headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.content == b""
    assert "content-type" not in response.headers
    assert response.headers["etag"] == CURRENT
    assert response.headers["cache-control"] == "no-cache"
    assert head.status_code == 304


@pytest.mark.parametrize(
    "header", ['"other"', 'W/"other"', '"course-7"', "garbage", '"course,7,v3"', ""]
)
def test_if_none_match_with_other_tags_answers_200(header: str) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/course", headers={"If-None-Match": header})
    assert response.status_code == 200
    assert response.json() == {"title": "FastAPI"}


def test_a_quoted_comma_is_part_of_the_tag() -> None:
    tag = entity_tag("a,b")
    request = Request({"type": "http", "method": "GET", "headers": [(b"if-none-match", b'"a,b"')]})
    assert not_modified(request, tag) is not None
    assert not_modified(request, '"a"') is None


def test_if_none_match_is_ignored_on_unsafe_methods() -> None:
    with TestClient(make_app()) as client:
        response = client.post("/course", headers={"If-None-Match": CURRENT})
    assert response.status_code == 200


@pytest.mark.parametrize("header", [CURRENT, "*", f'"other", {CURRENT}'])
def test_if_match_lets_a_current_write_through(header: str) -> None:
    with TestClient(make_app()) as client:
        response = client.put("/course", headers={"If-Match": header})
    assert response.status_code == 200


def test_no_if_match_lets_the_write_through() -> None:
    with TestClient(make_app()) as client:
        assert client.put("/course").status_code == 200


@pytest.mark.parametrize("header", ['"other"', f"W/{CURRENT}", "garbage", '"course-7-v2"'])
def test_stale_or_weak_if_match_answers_412_problem(header: str) -> None:
    with TestClient(make_app()) as client:
        response = client.put("/course", headers={"If-Match": header})
    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 412
    assert body["title"] == "Precondition Failed"
    assert body["detail"] == "The resource has changed since you last read it."


@pytest.mark.parametrize("header", ["*", '"anything"'])
def test_if_match_on_a_missing_resource_answers_412(header: str) -> None:
    with TestClient(make_app()) as client:
        response = client.put("/missing", headers={"If-Match": header})
        unconditional = client.put("/missing")
    assert response.status_code == 412
    assert response.json()["detail"] == "The resource does not exist."
    assert unconditional.status_code == 200


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("*", "The resource already exists."),
        (f"W/{CURRENT}", "The resource has not changed from the version named."),
    ],
)
def test_if_none_match_on_a_write_to_an_existing_resource_answers_412(
    header: str, detail: str
) -> None:
    with TestClient(make_app()) as client:
        response = client.put("/existing", headers={"If-None-Match": header})
        other = client.put("/existing", headers={"If-None-Match": '"other"'})
        create = client.put("/missing", headers={"If-None-Match": header})
    assert response.status_code == 412
    assert response.json()["detail"] == detail
    assert other.status_code == 200
    assert create.status_code == 200  # nothing exists yet: create-only succeeds
