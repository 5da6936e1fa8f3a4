"""OpenAPI customizers compose into a schema that openapi-spec-validator accepts."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from fastapi_enterprise import EnterpriseSettings, install
from fastapi_enterprise.openapi import apply_customizers
from fastapi_enterprise.openapi.customizers import (
    declare_errors,
    info,
    readable_operation_ids,
    servers,
    standard_errors,
    tags,
)

openapi_spec_validator = pytest.importorskip("openapi_spec_validator")

bearer = HTTPBearer()


@declare_errors(401, 403)
async def current_admin(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
) -> str:
    if credentials.credentials != "admin":
        raise HTTPException(403)
    return "admin"


@declare_errors(409)
async def not_locked() -> None:
    return None


class CourseIn(BaseModel):
    title: str = Field(min_length=3, examples=["FastAPI in production"])
    price: int = Field(ge=0)


def make_app() -> FastAPI:
    app = FastAPI(title="Courses", version="2.0")

    @app.get("/courses/{course_id}", tags=["courses"])
    async def read_course(course_id: int) -> dict[str, int]:
        return {"id": course_id}

    @app.post("/courses", tags=["admin"], dependencies=[Depends(not_locked)])
    async def create_course(
        course: CourseIn, admin: Annotated[str, Depends(current_admin)]
    ) -> dict[str, Any]:
        return course.model_dump()

    @app.get("/health-ish", tags=["zz"])
    async def ping() -> dict[str, str]:
        return {}

    install(app, EnterpriseSettings(environment="test"))
    apply_customizers(
        app,
        info(
            description="The course API",
            contact={"email": "api@example.com"},
            license={"name": "MIT"},
            terms_of_service="https://example.com/terms",
            logo_url="https://example.com/logo.png",
        ),
        servers([{"url": "https://api.example.com", "description": "production"}]),
        tags([{"name": "courses", "description": "The catalogue"}]),
        standard_errors(app),
        readable_operation_ids(app),
    )
    return app


def test_customized_schema_validates() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    openapi_spec_validator.validate(schema)
    assert schema["info"]["x-logo"] == {"url": "https://example.com/logo.png"}
    assert schema["info"]["contact"] == {"email": "api@example.com"}
    assert schema["servers"][0]["url"] == "https://api.example.com"
    assert [tag["name"] for tag in schema["tags"]] == ["courses", "admin", "zz"]


def test_errors_raised_in_dependencies_are_documented() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    create = schema["paths"]["/courses"]["post"]
    assert {"400", "401", "403", "409", "422", "500"} <= set(create["responses"])
    assert "application/problem+json" in create["responses"]["409"]["content"]
    assert create["security"] == [{"HTTPBearer": []}]
    read = schema["paths"]["/courses/{course_id}"]["get"]["responses"]
    assert {"404", "422", "500"} <= set(read)
    assert "401" not in read


def test_readable_operation_ids() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    ids = {op["operationId"] for item in schema["paths"].values() for op in item.values()}
    assert {"read_course", "create_course", "ping"} <= ids


def test_declare_errors_refuses_success_statuses() -> None:
    with pytest.raises(ValueError, match="not an error status"):
        declare_errors(200)


def test_install_customizes_from_settings() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    install(
        app,
        EnterpriseSettings(
            environment="test",
            app={
                "description": "Items API",
                "logo_url": "https://example.com/logo.svg",
                "servers": "https://api.example.com,https://staging.example.com",
            },
        ),
    )
    schema = TestClient(app).get("/openapi.json").json()
    openapi_spec_validator.validate(schema)
    assert schema["info"]["description"] == "Items API"
    assert schema["info"]["x-logo"]["url"] == "https://example.com/logo.svg"
    assert [server["url"] for server in schema["servers"]] == [
        "https://api.example.com",
        "https://staging.example.com",
    ]
    operation = schema["paths"]["/items/{item_id}"]["get"]
    assert operation["operationId"] == "read_item"
    assert {"404", "422", "429", "500"} <= set(operation["responses"])


def test_generated_examples_follow_types_and_constraints() -> None:
    schema = TestClient(make_app()).get("/openapi.json").json()
    from fastapi_enterprise.openapi.customizers import generated_examples

    generated_examples(schema)
    openapi_spec_validator.validate(schema)
    body = schema["paths"]["/courses"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"]["title"] == "FastAPI in production"  # the declared example
    assert body["example"]["price"] >= 0
    CourseIn.model_validate(body["example"])


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_schema_does_not_depend_on_serving_the_docs(environment: str) -> None:
    """Docs off changes what is served, never the contract ``app.openapi()`` returns."""

    def build(settings: EnterpriseSettings) -> dict[str, Any]:
        app = FastAPI()

        @app.post("/items/{item_id}")
        async def update_item(item_id: int, course: CourseIn) -> dict[str, int]:
            return {"id": item_id}

        install(app, settings)
        schema: dict[str, Any] = app.openapi()
        return schema

    security = {"secret_key": "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ", "allowed_hosts": ["a.test"]}
    served = build(EnterpriseSettings(environment="development", security=security))
    hidden = EnterpriseSettings(
        environment=environment, security=security, metrics={"enabled": False}
    )
    assert hidden.app.docs is False
    assert build(hidden) == served
    assert served["paths"]["/items/{item_id}"]["post"]["operationId"] == "update_item"
