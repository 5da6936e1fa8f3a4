"""The OpenAPI -> Postman exporter: every export validates against the v2.1.0 JSON Schema."""

from __future__ import annotations

import json
import os
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from fastapi import Depends, FastAPI, Form, Header, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPBasic,
    HTTPBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
)
from jsonschema import Draft7Validator
from pydantic import BaseModel, Field

from fastapi_enterprise.openapi.postman import (
    POSTMAN_SCHEMA_URL,
    example_from_schema,
    openapi_to_postman,
)

_SCHEMA_FILE = "postman-collection-v2.1.0.schema.json"

# Models live at module level: with postponed annotations, FastAPI resolves an endpoint's
# annotations in the module globals, where a class defined inside a test is invisible.


class Color(str, Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str = Field(min_length=5)
    zip_code: str = Field(max_length=3)


class Order(BaseModel):
    name: str = Field(min_length=5)
    quantity: int = Field(ge=10, le=20)
    price: float = Field(gt=0, lt=1)
    color: Color
    address: Address
    tags: list[str] = Field(min_length=2)
    note: str | None = None
    created_at: datetime
    id: UUID


class Node(BaseModel):
    name: str
    children: list[Node]
    parent: Node | None = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Adoption(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]
    reference: int | str


class Problem(BaseModel):
    title: str
    status: int


def _schema_path() -> Path | None:
    candidates = [
        Path(__file__).resolve().parents[2] / "shared" / "data" / _SCHEMA_FILE,
        Path("/work/shared/data") / _SCHEMA_FILE,
    ]
    if os.environ.get("POSTMAN_SCHEMA"):
        candidates.insert(0, Path(os.environ["POSTMAN_SCHEMA"]))
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    path = _schema_path()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {_SCHEMA_FILE} is not found; set POSTMAN_SCHEMA")
        pytest.skip(f"{_SCHEMA_FILE} not found; set POSTMAN_SCHEMA to its path")
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def export(app: FastAPI, validator: Draft7Validator, **options: Any) -> dict[str, Any]:
    """Export ``app``'s OpenAPI document and fail on any Postman schema violation."""
    collection = openapi_to_postman(app.openapi(), **options)
    errors = [
        f"{list(error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(collection)
    ]
    assert not errors, errors
    return collection


def item_named(collection: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the request item called ``name``, looking inside every folder."""
    for folder in collection["item"]:
        for item in folder["item"]:
            if item["name"] == name:
                found: dict[str, Any] = item
                return found
    raise AssertionError(f"no request named {name!r}")


def json_body(item: dict[str, Any]) -> Any:
    body = item["request"]["body"]
    assert body["mode"] == "raw"
    assert body["options"] == {"raw": {"language": "json"}}
    return json.loads(body["raw"])


def test_requests_are_grouped_in_folders_by_first_tag(validator: Draft7Validator) -> None:
    app = FastAPI(title="Shop", openapi_tags=[{"name": "users", "description": "People"}])

    @app.get("/users", tags=["users", "admin"], summary="List users")
    def list_users() -> list[str]:
        return []

    @app.get("/orders", tags=["orders"])
    def list_orders() -> list[str]:
        return []

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    collection = export(app, validator)

    assert collection["info"] == {"name": "Shop", "schema": POSTMAN_SCHEMA_URL}
    folders = {folder["name"]: folder for folder in collection["item"]}
    assert list(folders) == ["users", "orders", "default"]
    assert folders["users"]["description"] == "People"
    assert [item["name"] for item in folders["users"]["item"]] == ["List users"]
    assert [item["name"] for item in folders["orders"]["item"]] == ["List Orders"]
    assert [item["name"] for item in folders["default"]["item"]] == ["Ping"]
    assert collection["variable"] == [
        {"key": "baseUrl", "value": "http://127.0.0.1:8000", "type": "string"}
    ]
    assert "auth" not in collection


def test_export_is_deterministic_and_named_on_request(validator: Draft7Validator) -> None:
    app = FastAPI(title="Shop")

    @app.post("/orders")
    def create_order(order: Order) -> Order:
        return order

    first = export(app, validator, name="Shop API", base_url="https://api.example.com")
    second = export(app, validator, name="Shop API", base_url="https://api.example.com")

    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert "_postman_id" not in json.dumps(first)
    assert first["info"]["name"] == "Shop API"
    assert first["variable"][0]["value"] == "https://api.example.com"


def test_path_parameters_become_postman_path_variables(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.get("/users/{user_id}/posts/{slug}", summary="Read post")
    def read_post(
        user_id: Annotated[int, PathParam(ge=1, description="The author")], slug: str
    ) -> str:
        return slug

    url = item_named(export(app, validator), "Read post")["request"]["url"]

    assert url["host"] == ["{{baseUrl}}"]
    assert url["path"] == ["users", ":user_id", "posts", ":slug"]
    assert url["raw"] == "{{baseUrl}}/users/:user_id/posts/:slug"
    assert url["variable"] == [
        {"key": "user_id", "description": "The author", "value": "1"},
        {"key": "slug", "value": "string"},
    ]


def test_optional_query_parameters_are_listed_but_disabled(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.get("/search", summary="Search")
    def search(
        q: Annotated[str, Query(min_length=3, description="Terms")],
        limit: int = 10,
        tag: Annotated[list[str] | None, Query()] = None,
    ) -> list[str]:
        return []

    url = item_named(export(app, validator), "Search")["request"]["url"]

    assert url["query"] == [
        {"key": "q", "description": "Terms", "value": "string"},
        {"key": "limit", "value": "10", "disabled": True},
        {"key": "tag", "value": "string", "disabled": True},
    ]
    assert url["raw"] == "{{baseUrl}}/search?q=string"


def test_header_parameters_become_request_headers(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.get("/trace", summary="Trace")
    def trace(
        x_tenant: Annotated[str, Header(examples=["acme"])],
        x_debug: Annotated[bool, Header()] = False,
    ) -> str:
        return x_tenant

    headers = item_named(export(app, validator), "Trace")["request"]["header"]

    assert headers == [
        {"key": "x-tenant", "value": "acme"},
        {"key": "x-debug", "value": "false", "disabled": True},
    ]


def test_json_body_is_generated_from_the_model_constraints(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.post("/orders", summary="Create order", description="Places an order.")
    def create_order(order: Order) -> None:
        return None

    item = item_named(export(app, validator), "Create order")
    body = json_body(item)

    assert item["request"]["method"] == "POST"
    assert item["request"]["description"] == "Places an order."
    assert {"key": "Content-Type", "value": "application/json"} in item["request"]["header"]
    assert len(body["name"]) >= 5
    assert 10 <= body["quantity"] <= 20
    assert 0 < body["price"] < 1
    assert body["color"] in {color.value for color in Color}
    assert len(body["address"]["city"]) >= 5
    assert len(body["address"]["zip_code"]) <= 3
    assert len(body["tags"]) >= 2
    assert body["note"] == "string"
    Order.model_validate(body)  # the generated body is one the endpoint accepts


def test_form_fields_become_an_urlencoded_body(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.post("/login", summary="Log in")
    def login(
        username: Annotated[str, Form(min_length=8)], remember: Annotated[bool, Form()] = False
    ) -> str:
        return username

    body = item_named(export(app, validator), "Log in")["request"]["body"]

    assert body["mode"] == "urlencoded"
    assert body["urlencoded"] == [
        {"key": "username", "value": "stringxx"},
        {"key": "remember", "value": "false", "disabled": True},
    ]


def test_the_oauth2_password_form_gets_the_grant_type_it_requires(
    validator: Draft7Validator,
) -> None:
    app = FastAPI()

    @app.post("/token", summary="Log in")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> str:
        return form.username

    fields = item_named(export(app, validator), "Log in")["request"]["body"]["urlencoded"]
    values = {field["key"]: field["value"] for field in fields}
    assert values["grant_type"] == "password"  # "^password$": anything else is a 422
    assert [field["key"] for field in fields if not field.get("disabled")] == [
        "username",
        "password",
    ]


@pytest.mark.parametrize(
    ("servers", "token_url"),
    [
        (None, "/token"),
        (None, "token"),  # relative, as in FastAPI's tutorial
        ([{"url": "/api/v1"}], "/api/v1/token"),  # behind a root_path
    ],
)
def test_the_password_flow_login_stores_the_token_for_the_other_requests(
    validator: Draft7Validator, servers: list[dict[str, str]] | None, token_url: str
) -> None:
    app = FastAPI(servers=servers)
    scheme = OAuth2PasswordBearer(tokenUrl=token_url)

    @app.post("/token", summary="Log in")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        return {"access_token": form.username, "token_type": "bearer"}

    @app.post("/items", summary="Add", dependencies=[Depends(scheme)])
    def add() -> None:
        return None

    collection = export(app, validator)
    (event,) = item_named(collection, "Log in")["event"]
    assert event["listen"] == "test"
    script = "\n".join(event["script"]["exec"])
    assert 'pm.collectionVariables.set("OAuth2PasswordBearer", ' in script
    assert "pm.response.json().access_token" in script
    assert "pm.response.code === 200" in script
    assert "event" not in item_named(collection, "Add")
    assert item_named(collection, "Add")["request"]["auth"]["bearer"][0]["value"] == (
        "{{OAuth2PasswordBearer}}"
    )


def test_no_token_script_without_a_request_that_uses_the_scheme(
    validator: Draft7Validator,
) -> None:
    app = FastAPI()
    scheme = OAuth2PasswordBearer(tokenUrl="/elsewhere")

    @app.post("/token", summary="Log in")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> str:
        return form.username

    @app.post("/items", summary="Add", dependencies=[Depends(scheme)])
    def add() -> None:
        return None

    collection = export(app, validator)
    assert "event" not in item_named(collection, "Log in")  # the tokenUrl is not /token
    public = FastAPI()
    public.post("/token", summary="Log in")(token)
    assert "event" not in item_named(export(public, validator), "Log in")


def test_uploads_become_formdata_file_fields(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.post("/upload", summary="Upload")
    def upload(
        file: UploadFile, attachments: list[UploadFile], caption: Annotated[str, Form()]
    ) -> str:
        return caption

    body = item_named(export(app, validator), "Upload")["request"]["body"]

    assert body["mode"] == "formdata"
    assert body["formdata"] == [
        {"key": "file", "type": "file", "src": None},
        {"key": "attachments", "type": "file", "src": []},
        {"key": "caption", "value": "string", "type": "text"},
    ]


def test_each_request_carries_its_own_operations_auth(validator: Draft7Validator) -> None:
    """An API-key route sends its key, not the collection's bearer token (issue 12, D23)."""
    app = FastAPI()
    header_key = APIKeyHeader(name="X-API-Key")
    query_key = APIKeyQuery(name="api_key")
    cookie_key = APIKeyCookie(name="session")

    @app.get("/me", summary="Me", dependencies=[Depends(HTTPBearer())])
    def me() -> str:
        return "me"

    @app.get("/reports", summary="Reports", dependencies=[Depends(header_key)])
    def reports() -> str:
        return "reports"

    @app.get("/feed", summary="Feed", dependencies=[Depends(query_key)])
    def feed() -> str:
        return "feed"

    @app.get("/cart", summary="Cart", dependencies=[Depends(cookie_key)])
    def cart() -> str:
        return "cart"

    @app.get("/admin", summary="Admin", dependencies=[Depends(HTTPBasic())])
    def admin() -> str:
        return "admin"

    @app.get("/orders", summary="Orders", dependencies=[Depends(OAuth2PasswordBearer("token"))])
    def orders() -> str:
        return "orders"

    @app.get("/both", summary="Both", dependencies=[Depends(header_key), Depends(HTTPBearer())])
    def both() -> str:
        return "both"

    @app.get("/public", summary="Public")
    def public() -> str:
        return "public"

    @app.get("/health", summary="Health", openapi_extra={"security": []})
    def health() -> str:
        return "ok"

    collection = export(app, validator)

    def auth(name: str) -> Any:
        return item_named(collection, name)["request"]["auth"]

    def attributes(name: str) -> dict[str, str]:
        found = auth(name)
        return {entry["key"]: entry["value"] for entry in found[found["type"]]}

    assert "auth" not in collection  # nothing to inherit
    assert auth("Me")["type"] == "bearer"
    assert attributes("Me") == {"token": "{{HTTPBearer}}"}
    assert auth("Reports")["type"] == "apikey"
    assert attributes("Reports") == {
        "key": "X-API-Key",
        "value": "{{APIKeyHeader}}",
        "in": "header",
    }
    assert attributes("Feed") == {"key": "api_key", "value": "{{APIKeyQuery}}", "in": "query"}
    # Postman's apikey helper has no cookie placement: the key goes into a Cookie header.
    by_cookie = item_named(collection, "Cart")["request"]
    assert by_cookie["auth"] == {"type": "noauth"}
    assert {"key": "Cookie", "value": "session={{APIKeyCookie}}"} in by_cookie["header"]
    assert auth("Admin")["type"] == "basic"
    assert attributes("Admin") == {
        "username": "{{HTTPBasicUsername}}",
        "password": "{{HTTPBasicPassword}}",
    }
    assert attributes("Orders") == {"token": "{{OAuth2PasswordBearer}}"}
    # FastAPI needs both dependencies: both are sent, the second one as its header.
    two = item_named(collection, "Both")["request"]
    assert two["auth"]["type"] == "apikey"
    assert {"key": "Authorization", "value": "Bearer {{HTTPBearer}}"} in two["header"]
    assert auth("Public") == {"type": "noauth"}
    assert auth("Health") == {"type": "noauth"}
    variables = [entry["key"] for entry in collection["variable"]]
    assert variables[0] == "baseUrl"
    assert sorted(variables[1:]) == [
        "APIKeyCookie",
        "APIKeyHeader",
        "APIKeyQuery",
        "HTTPBasicPassword",
        "HTTPBasicUsername",
        "HTTPBearer",
        "OAuth2PasswordBearer",
    ]
    assert all(entry["value"] == "" for entry in collection["variable"][1:])


def test_a_document_wide_requirement_applies_unless_the_operation_opts_out(
    validator: Draft7Validator,
) -> None:
    app = FastAPI()

    @app.get("/items", summary="Items")
    def items() -> str:
        return "items"

    @app.get("/status", summary="Status", openapi_extra={"security": []})
    def status() -> str:
        return "up"

    spec = app.openapi()
    spec["components"] = {
        "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "K"}}
    }
    spec["security"] = [{"key": []}]
    collection = openapi_to_postman(spec)
    assert not list(validator.iter_errors(collection))
    assert item_named(collection, "Items")["request"]["auth"]["type"] == "apikey"
    assert item_named(collection, "Status")["request"]["auth"] == {"type": "noauth"}


def test_documented_responses_become_saved_examples(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.get(
        "/orders/{order_id}",
        summary="Read order",
        responses={404: {"model": Problem, "description": "No such order"}},
    )
    def read_order(order_id: int) -> Address:
        return Address(city="Paris", zip_code="750")

    responses = item_named(export(app, validator), "Read order")["response"]
    by_code = {response["code"]: response for response in responses}

    assert sorted(by_code) == [200, 404, 422]
    assert by_code[200]["status"] == "OK"
    assert by_code[404]["status"] == "Not Found"
    assert by_code[404]["name"] == "No such order"
    assert by_code[200]["header"] == [{"key": "Content-Type", "value": "application/json"}]
    Address.model_validate_json(by_code[200]["body"])
    assert json.loads(by_code[404]["body"]) == {"title": "string", "status": 0}


def test_a_recursive_model_is_cut_at_the_recursion(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.post("/tree", summary="Plant")
    def plant(root: Node) -> None:
        return None

    body = json_body(item_named(export(app, validator), "Plant"))

    assert body == {"name": "string", "children": [], "parent": None}
    Node.model_validate(body)


def test_unions_take_the_first_option_with_its_discriminator(validator: Draft7Validator) -> None:
    app = FastAPI()

    @app.post("/adoptions", summary="Adopt")
    def adopt(adoption: Adoption) -> None:
        return None

    body = json_body(item_named(export(app, validator), "Adopt"))

    assert body == {"pet": {"kind": "cat", "lives": 1}, "reference": 0}
    Adoption.model_validate(body)


def test_a_relative_server_url_is_appended_to_the_base_url(validator: Draft7Validator) -> None:
    app = FastAPI(servers=[{"url": "/api/v1"}])

    @app.get("/ping", summary="Ping")
    def ping() -> str:
        return "pong"

    collection = export(app, validator, base_url="http://localhost:9000/")

    assert collection["variable"][0]["value"] == "http://localhost:9000/api/v1"
    assert item_named(collection, "Ping")["request"]["url"]["raw"] == "{{baseUrl}}/ping"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param({"type": "string", "example": "ex", "default": "d"}, "ex", id="example"),
        pytest.param({"type": "string", "examples": ["first", "second"]}, "first", id="examples"),
        pytest.param({"type": "integer", "default": 7}, 7, id="default"),
        pytest.param({"type": "string", "enum": [None, "a"]}, "a", id="enum-skips-null"),
        pytest.param({"const": "fixed", "example": "other"}, "fixed", id="const"),
        pytest.param({"type": "string", "format": "date"}, "2024-01-01", id="date"),
        pytest.param({"type": "string", "format": "email"}, "user@example.com", id="email"),
        pytest.param({"type": "string", "format": "uri"}, "https://example.com", id="uri"),
        pytest.param({"type": "string", "format": "binary"}, "", id="binary"),
        pytest.param({"type": "string", "maxLength": 2}, "st", id="maxLength"),
        pytest.param({"type": "string", "pattern": "^password$"}, "password", id="literal-pattern"),
        pytest.param({"type": "string", "pattern": "^pass.*$"}, "string", id="other-pattern"),
        pytest.param({"type": "integer", "exclusiveMinimum": 4}, 5, id="exclusive-3.1"),
        pytest.param(
            {"type": "integer", "minimum": 4, "exclusiveMinimum": True}, 5, id="exclusive-3.0"
        ),
        pytest.param({"type": "integer", "maximum": -3}, -3, id="maximum"),
        pytest.param({"type": "integer", "minimum": 5, "multipleOf": 4}, 8, id="multipleOf"),
        pytest.param({"type": "number", "minimum": 1.5}, 1.5, id="number"),
        pytest.param({"type": ["null", "boolean"]}, True, id="type-list"),
        pytest.param({"type": "string", "nullable": True}, "string", id="nullable-3.0"),
        pytest.param(
            {"type": "array", "items": {"type": "integer"}, "minItems": 3}, [0, 0, 0], id="minItems"
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "integer"}},
            {"key": 0},
            id="additionalProperties",
        ),
        pytest.param(
            {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "integer"}}},
                    {"type": "object", "properties": {"b": {"type": "boolean"}}},
                ]
            },
            {"a": 0, "b": True},
            id="allOf",
        ),
        pytest.param({"anyOf": [{"type": "null"}, {"type": "integer"}]}, 0, id="anyOf-non-null"),
        pytest.param({"$ref": "#/components/schemas/Missing"}, None, id="dangling-ref"),
    ],
)
def test_example_from_schema_follows_the_schema(schema: dict[str, Any], expected: Any) -> None:
    assert example_from_schema(schema, {}) == expected


def test_example_from_schema_tags_a_mapped_discriminator() -> None:
    components = {
        "schemas": {
            "Card": {"type": "object", "properties": {"method": {"type": "string"}}},
            "Cash": {"type": "object", "properties": {"method": {"type": "string"}}},
        }
    }
    schema: dict[str, Any] = {
        "oneOf": [{"$ref": "#/components/schemas/Card"}, {"$ref": "#/components/schemas/Cash"}],
        "discriminator": {
            "propertyName": "method",
            "mapping": {"credit-card": "#/components/schemas/Card"},
        },
    }

    assert example_from_schema(schema, components) == {"method": "credit-card"}
    del schema["discriminator"]["mapping"]
    assert example_from_schema(schema, components) == {"method": "Card"}


def test_example_from_schema_terminates_on_mutual_recursion_and_deep_nesting() -> None:
    components = {
        "schemas": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}},
        }
    }
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(30):
        deep = {"type": "array", "items": deep}

    assert example_from_schema({"$ref": "#/components/schemas/A"}, components) == {"b": {"a": None}}
    value = example_from_schema(deep, {})
    levels = 0
    while value:
        value, levels = value[0], levels + 1
    assert levels <= 9


def test_example_from_schema_terminates_on_a_huge_schema() -> None:
    names = [f"Model{index}" for index in range(40)]
    properties = {name.lower(): {"$ref": f"#/components/schemas/{name}"} for name in names}
    components = {"schemas": {name: {"type": "object", "properties": properties} for name in names}}

    value = example_from_schema({"$ref": "#/components/schemas/Model0"}, components)

    assert isinstance(value, dict)
    assert set(value) == set(properties)
    assert len(json.dumps(value)) < 1_000_000


def test_every_listed_scheme_is_sent_and_unknown_ones_are_ignored(
    validator: Draft7Validator,
) -> None:
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Keys", "version": "1"},
        "paths": {
            "/export": {
                "get": {
                    "summary": "Export",
                    "security": [
                        {"header": [], "query": []},
                        {"second": [], "digest": [], "missing": []},
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        },
        "components": {
            "securitySchemes": {
                "header": {"type": "apiKey", "in": "header", "name": "X-Key"},
                "query": {"type": "apiKey", "in": "query", "name": "key"},
                "second": {"type": "apiKey", "in": "header", "name": "X-Tenant"},
                "digest": {"type": "http", "scheme": "digest"},
            }
        },
    }
    collection = openapi_to_postman(spec)
    assert not list(validator.iter_errors(collection))
    request = item_named(collection, "Export")["request"]
    assert request["auth"]["type"] == "apikey"
    assert {"key": "key", "value": "{{query}}"} in request["url"]["query"]
    assert request["url"]["raw"].endswith("?key={{query}}")
    assert {"key": "X-Tenant", "value": "{{second}}"} in request["header"]
    names = [entry["key"] for entry in collection["variable"]]
    assert names == ["baseUrl", "header", "query", "second"]  # digest cannot be exported
