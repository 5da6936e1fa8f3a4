"""The app's Postman collection: exported, valid v2.1.0, complete, and it works when run.

Made twice, as users make it: from code (``openapi_to_postman(app.openapi())``) and with
the library's command on the app factory (``fastapi-enterprise postman --factory
tecnocursos.core.app:create_app``, settings from ``TC_*``). Both validate against the
Postman Collection v2.1.0 JSON Schema (``tests/data``), have one request per operation
with its path variables, the OAuth2 bearer token on every signed-in route and no auth on
``/auth/*``, and no secret. Then every request of the collection is sent as Postman
would send it, signed in by the collection's own login request (an admin's email and
password typed in; its script stores the token): each answer one its saved responses
document, the example bodies good enough to create real rows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import media_files
import pytest
from fastapi import FastAPI
from jsonschema import Draft7Validator

from conftest import PASSWORD, PROJECT, TEST_SECRET, add_user
from fastapi_enterprise.openapi.postman import POSTMAN_SCHEMA_URL, openapi_to_postman
from tecnocursos.auth.models import Role

SCHEMA = Path(__file__).resolve().parent / "data" / "postman-collection-v2.1.0.schema.json"
BASE_URL = "https://api.tecnocursos.example"
PUBLIC = {"/auth/register", "/auth/token", "/auth/refresh", "/auth/logout"}
BEARER = {
    "type": "bearer",
    "bearer": [{"key": "token", "value": "{{OAuth2PasswordBearer}}", "type": "string"}],
}


def _requests(collection: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``(METHOD, /path/{template})`` to the collection's request item."""
    items = {}
    for folder in collection["item"]:
        for item in folder["item"]:
            url = item["request"]["url"]
            path = "/" + "/".join(re.sub(r"^:(\w+)$", r"{\1}", part) for part in url["path"])
            items[(item["request"]["method"], path)] = item
    return items


def _check_collection(collection: dict[str, Any], spec: dict[str, Any]) -> None:
    Draft7Validator(json.loads(SCHEMA.read_text())).validate(collection)
    assert collection["info"] == {"name": "TecnoCursos", "schema": POSTMAN_SCHEMA_URL}
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    requests = _requests(collection)
    assert set(requests) == operations
    assert [folder["name"] for folder in collection["item"]] == [
        "auth",
        "users",
        "projects",
        "scenes",
        "media",
        "videos",
    ]
    for (method, path), item in requests.items():
        request = item["request"]
        assert request["auth"] == ({"type": "noauth"} if path in PUBLIC else BEARER), path
        names = re.findall(r"\{(\w+)\}", path)
        variables = request["url"]["variable"]
        assert [variable["key"] for variable in variables] == names
        assert all(variable["value"] == "1" for variable in variables)  # ids start at 1
        assert item["response"], (method, path)  # saved example responses
    variables = {variable["key"]: variable["value"] for variable in collection["variable"]}
    assert variables == {"baseUrl": BASE_URL, "OAuth2PasswordBearer": ""}  # no token in it

    login = requests[("POST", "/auth/token")]["request"]["body"]
    assert login["mode"] == "urlencoded"
    fields = {field["key"]: field for field in login["urlencoded"]}
    assert [key for key, field in fields.items() if not field.get("disabled")] == [
        "username",
        "password",
    ]
    assert fields["grant_type"]["value"] == "password"
    events = {name: item.get("event") for name, item in requests.items() if "event" in item}
    assert list(events) == [("POST", "/auth/token")]  # the login stores the token
    upload = requests[("POST", "/media")]["request"]["body"]
    assert upload["mode"] == "formdata"
    assert upload["formdata"][0] == {"key": "file", "type": "file", "src": None}
    assert upload["formdata"][1]["key"] == "project_id"
    assert upload["formdata"][1]["disabled"] is True

    text = json.dumps(collection)
    assert TEST_SECRET not in text
    assert "Bearer ey" not in text  # no token captured from anywhere


def test_the_collection_from_code_is_valid_and_complete(app: FastAPI) -> None:
    spec = app.openapi()
    _check_collection(openapi_to_postman(spec, base_url=BASE_URL), spec)


def test_the_command_exports_the_same_collection_from_the_app_factory(
    app: FastAPI, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TC_")}
    env.update(
        TC_ENVIRONMENT="test",
        TC_SECURITY__SECRET_KEY=TEST_SECRET,
        TC_DATABASE__URL=f"sqlite:///{tmp_path / 'unused.db'}",
        TC_RATE_LIMIT__ENABLED="false",
        PYTHONPATH=os.pathsep.join([str(PROJECT), env.get("PYTHONPATH", "")]),
    )
    target = tmp_path / "collection.json"
    result = subprocess.run(  # noqa: S603 - the library's own command
        [
            sys.executable,
            "-m",
            "fastapi_enterprise.cli",
            "postman",
            "--factory",
            "tecnocursos.core.app:create_app",
            "--base-url",
            BASE_URL,
            "-o",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert TEST_SECRET not in result.stderr
    exported = json.loads(target.read_text())
    spec = app.openapi()
    _check_collection(exported, spec)
    assert exported == openapi_to_postman(spec, base_url=BASE_URL)
    assert not (tmp_path / "unused.db").exists()  # exporting opens no database


def _send_args(
    request: dict[str, Any], token: str, typed: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ``httpx2`` arguments of a Postman request, as Postman resolves its variables."""
    url = request["url"]
    path = "/" + "/".join(url["path"])
    for variable in url["variable"]:
        path = path.replace(f":{variable['key']}", variable["value"])
    headers = {header["key"]: header["value"] for header in request["header"]}
    if request["auth"]["type"] == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    args: dict[str, Any] = {"method": request["method"], "url": path, "headers": headers}
    args["params"] = [(q["key"], q["value"]) for q in url["query"] if not q.get("disabled")]
    body = request.get("body") or {}
    if body.get("mode") == "raw":
        args["content"] = body["raw"].encode()
    elif body.get("mode") == "urlencoded":
        fields = [field for field in body["urlencoded"] if not field.get("disabled")]
        args["data"] = {field["key"]: field["value"] for field in fields} | (typed or {})
    elif body.get("mode") == "formdata":
        fields = [field for field in body["formdata"] if not field.get("disabled")]
        args["files"] = {
            field["key"]: ("pixel.png", media_files.png())
            for field in fields
            if field["type"] == "file"
        }
        args["data"] = {field["key"]: field["value"] for field in fields if field["type"] == "text"}
    return args


def _deletions_last(item: dict[str, Any]) -> tuple[bool, int]:
    deletion = item["request"]["method"] == "DELETE"
    return deletion, -len(item["request"]["url"]["path"]) if deletion else 0


@pytest.mark.asyncio
async def test_every_request_of_the_collection_gets_a_documented_answer(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    await add_user(app, "admin@example.com", role=Role.ADMIN)
    credentials = {"username": "admin@example.com", "password": PASSWORD}  # as a user types
    token = ""  # {{OAuth2PasswordBearer}} starts empty: the login request's script fills it
    collection = openapi_to_postman(app.openapi())
    items = [item for folder in collection["item"] for item in folder["item"]]
    # Deletions last (the deepest first), so the project the collection creates lives on.
    items.sort(key=_deletions_last)
    statuses = {}
    for item in items:
        login = "event" in item
        args = _send_args(item["request"], token, credentials if login else None)
        response = await client.request(**args)
        documented = {saved["code"] for saved in item["response"]}
        assert response.status_code in documented, (item["name"], response.text)
        statuses[item["name"]] = response.status_code
        if login:  # what its test script does: store access_token in the variable
            (event,) = item["event"]
            assert 'set("OAuth2PasswordBearer", ' in "\n".join(event["script"]["exec"])
            token = response.json()["access_token"]
    # The example bodies are valid: the requests create real rows and reach them.
    assert statuses["Create a student account"] == 201
    assert statuses["Log in (OAuth2 password flow)"] == 200
    assert statuses["List Users"] == 200  # signed in as the admin, by the login's script
    assert statuses["Create Project"] == 201
    assert statuses["Create Scene"] == 201
    assert statuses["Upload Media"] == 201
    assert statuses["Read Scene"] == 200
    assert statuses["Create Video"] == 202
    assert statuses["Read Video"] == 200
    assert statuses["Delete Project"] == 204
