"""Every error is one RFC 9457 problem+json body, through the full install() stack."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from fastapi_enterprise import (
    EnterpriseSettings,
    ErrorResponse,
    install,
    problem_response,
    problem_responses,
)


class Login(BaseModel):
    username: str = Field(min_length=3)
    password: str = Field(min_length=12)


basic = HTTPBasic()


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        return {"user": body.username}

    @app.get("/items/{item_id}", responses=problem_responses(404))
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(404, detail="No item 0.")
        return {"id": item_id}

    @app.get("/private")
    async def private(
        credentials: Annotated[HTTPBasicCredentials, Depends(basic)],
    ) -> dict[str, str]:
        return {"user": credentials.username}

    @app.get("/typed")
    async def typed() -> None:
        raise HTTPException(
            409,
            detail={
                "type": "https://example.com/problems/name-taken",
                "title": "Name taken",
                "detail": "Pick another name.",
                "status": 200,
                "request_id": "forged",
                "field": "name",
            },
        )

    @app.get("/listdetail")
    async def list_detail() -> None:
        raise HTTPException(400, detail=["a", "b"])

    @app.get("/nocontent")
    async def no_content() -> None:
        raise HTTPException(status.HTTP_304_NOT_MODIFIED)

    @app.get("/crash")
    async def crash() -> None:
        password = "hunter2-in-a-local"  # noqa: F841 - must not reach the response
        raise ZeroDivisionError("secret detail in message")

    install(app, EnterpriseSettings(environment="test"))
    return app


def assert_problem(response: object, status_code: int) -> dict[str, object]:
    assert response.status_code == status_code  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    ErrorResponse.model_validate(body)
    assert body["status"] == status_code
    assert body["request_id"] == response.headers["x-request-id"]  # type: ignore[attr-defined]
    return body


def test_404_from_the_router() -> None:
    body = assert_problem(TestClient(make_app()).get("/missing"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"
    assert body["instance"] == "/missing"
    assert "detail" not in body


def test_404_raised_by_the_endpoint_keeps_its_detail() -> None:
    body = assert_problem(TestClient(make_app()).get("/items/0"), 404)
    assert body["detail"] == "No item 0."
    assert body["instance"] == "/items/0"


def test_405_keeps_the_allow_header() -> None:
    response = TestClient(make_app()).delete("/items/1")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


def test_401_keeps_www_authenticate() -> None:
    response = TestClient(make_app()).get("/private")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Basic")


def test_422_lists_errors_without_echoing_the_password() -> None:
    secret = "hunter2-short"[:11]
    response = TestClient(make_app()).post("/login", json={"username": "al", "password": secret})
    body = assert_problem(response, 422)
    assert secret not in response.text
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {tuple(error["loc"]) for error in errors} == {("body", "username"), ("body", "password")}
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)


def test_422_for_malformed_json_does_not_echo_the_body() -> None:
    response = TestClient(make_app()).post(
        "/login",
        content=b'{"username": "alice", "password": "correct horse battery',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 422)
    assert "correct horse" not in response.text


def test_mapping_detail_makes_a_typed_problem_but_cannot_forge_status_or_id() -> None:
    body = assert_problem(TestClient(make_app()).get("/typed"), 409)
    assert body["type"] == "https://example.com/problems/name-taken"
    assert body["title"] == "Name taken"
    assert body["detail"] == "Pick another name."
    assert body["field"] == "name"
    assert body["request_id"] != "forged"


def test_non_string_detail_goes_under_data() -> None:
    body = assert_problem(TestClient(make_app()).get("/listdetail"), 400)
    assert body["data"] == ["a", "b"]


def test_statuses_without_a_body_stay_empty() -> None:
    response = TestClient(make_app()).get("/nocontent")
    assert response.status_code == 304
    assert response.content == b""


def test_500_is_generic_and_logged_once_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = TestClient(make_app()).get("/crash", headers={"X-Request-ID": "crash-0001"})
    body = assert_problem(response, 500)
    assert body["title"] == "Internal Server Error"
    for leak in ("ZeroDivisionError", "secret detail", "hunter2", "Traceback"):
        assert leak not in response.text
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert tracebacks[0].request_id == "crash-0001"  # type: ignore[attr-defined]
    assert tracebacks[0].route == "/crash"  # type: ignore[attr-defined]
    assert "crash-0001" in tracebacks[0].getMessage()


def test_problem_response_helper_defaults() -> None:
    response = problem_response(418, extensions={"status": 1, "hint": "short and stout"})
    assert response.media_type == "application/problem+json"
    assert response.body == (
        b'{"type":"about:blank","title":"I\'m a Teapot","status":418,"hint":"short and stout"}'
    )
    assert b'"title":"Error"' in problem_response(599).body


def test_openapi_documents_problem_responses() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    response = schema["paths"]["/items/{item_id}"]["get"]["responses"]["404"]
    assert "application/problem+json" in response["content"]
    assert "ErrorResponse" in schema["components"]["schemas"]


def test_openapi_documents_every_error_as_problem_json_only() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    item = schema["paths"]["/items/{item_id}"]["get"]["responses"]
    assert set(item["404"]["content"]) == {"application/problem+json"}
    assert set(item["422"]["content"]) == {"application/problem+json"}
    assert item["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert "ValidationError" not in components
    assert components["ErrorResponse"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/ValidationErrorItem"
    }
    assert "ValidationErrorItem" in components


def test_an_sse_route_documents_its_errors_as_problem_json_only() -> None:
    """FastAPI files the problem's copy under the route's own media type, not JSON."""
    app = FastAPI()

    @app.get(
        "/jobs/{job_id}/events",
        response_class=EventSourceResponse,
        responses=problem_responses(404),
    )
    async def events(job_id: int) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data={"job": job_id})

    install(app, EnterpriseSettings(environment="test"))
    client = TestClient(app)
    responses = client.get("/openapi.json").json()["paths"]["/jobs/{job_id}/events"]["get"][
        "responses"
    ]
    for code in ("404", "422", "500"):
        assert set(responses[code]["content"]) == {"application/problem+json"}, code
    assert "text/event-stream" in responses["200"]["content"]
    assert client.get("/jobs/7/events").text == 'data: {"job": 7}\n\n'
    assert_problem(client.get("/jobs/x/events"), 422)


def test_customizer_keeps_schemas_still_referenced_elsewhere() -> None:
    from fastapi_enterprise.openapi import document_problem_errors

    schema = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/HTTPValidationError"}
                                }
                            }
                        }
                    }
                }
            }
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    result = document_problem_errors(schema)
    assert "HTTPValidationError" in result["components"]["schemas"]
    assert "ValidationError" not in result["components"]["schemas"]
