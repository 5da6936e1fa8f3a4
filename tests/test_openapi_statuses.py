"""Every status the installed stack answers is documented on the operation that answered it.

Each operation of a small app is driven through the full ``install()`` stack with hostile
requests: malformed and conflicting ``Content-Length``, a Host that is not allowed,
invalid parameters and bodies, bodies too large (declared and streamed) and too slow,
missing and wrong credentials, a rate limit exhausted, a crash, and a dead rate-limit
storage behind a fail-closed policy. Whatever status comes back must be in that
operation's ``responses`` with the content type it was sent with (what schemathesis
checks as "undocumented status code"), and the statuses that cannot occur on an
operation are not documented on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, UploadFile
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.types import Message

from fastapi_enterprise import EnterpriseSettings, body_limit, install, rate_limit
from tests.conftest import free_port

HOST = "api.test"
READ_TIMEOUT = 0.5

api_key = APIKeyHeader(name="X-API-Key")


async def trusted_key(key: Annotated[str, Depends(api_key)]) -> None:
    if key != "right":
        raise HTTPException(403, detail="Wrong key.")


class Course(BaseModel):
    title: str = Field(min_length=3)
    price: int = Field(ge=0)


def make_app(*, crash: bool = True, **rate_limit_settings: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/courses/{course_id}")
    async def read_course(course_id: int) -> dict[str, int]:
        if course_id == 13 and crash:
            raise RuntimeError("unlucky")
        return {"id": course_id}

    @app.post("/courses", status_code=201, dependencies=[Depends(trusted_key)])
    async def create_course(course: Course) -> Course:
        return course

    @app.post("/uploads")
    @body_limit(64)
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(await file.read())}

    @app.get("/search")
    @rate_limit("2/minute")
    async def search(q: str = "") -> dict[str, str]:
        return {"q": q}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    install(
        app,
        EnterpriseSettings(
            environment="test",
            security={"allowed_hosts": [HOST]},
            body_limit={"read_timeout": READ_TIMEOUT},
            rate_limit={"default": "10000/minute", **rate_limit_settings},
            metrics={"enabled": False},
        ),
    )
    return app


@dataclass
class Answer:
    status: int
    content_type: str


@dataclass
class Probe:
    """One request: what is sent, and how the body arrives."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    stall: bool = False  # the body never finishes arriving
    host: bytes = HOST.encode()


async def call(app: FastAPI, probe: Probe) -> Answer:
    """Send ``probe`` through the app at the ASGI level, as a server would."""
    headers = [(b"host", probe.host), *probe.headers]
    if probe.body and not any(name == b"content-length" for name, _ in probe.headers):
        headers.append((b"content-length", str(len(probe.body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": probe.method,
        "scheme": "http",
        "path": probe.path.partition("?")[0],
        "raw_path": probe.path.partition("?")[0].encode(),
        "root_path": "",
        "query_string": probe.path.partition("?")[2].encode(),
        "headers": headers,
        "client": ("192.0.2.7", 50000),
        "server": (HOST, 80),
    }
    pending: list[Message] = [
        {"type": "http.request", "body": probe.body, "more_body": probe.stall}
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # nothing more arrives; the body limit's timeout ends it
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    start = next(message for message in sent if message["type"] == "http.response.start")
    response_headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return Answer(start["status"], response_headers.get("content-type", "").split(";")[0])


def multipart(size: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    boundary = "fe-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body += b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    return [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())], body


JSON = [(b"content-type", b"application/json")]
KEY = [(b"x-api-key", b"right")]
GOOD_COURSE = json.dumps({"title": "FastAPI", "price": 10}).encode()


def probes() -> list[tuple[str, str, Probe]]:
    """(template, method, probe) for every hostile request, per operation."""
    small_headers, small_upload = multipart(10)
    big_headers, big_upload = multipart(500)
    operations = [
        ("/courses/{course_id}", "GET", "/courses/1", [], b""),
        ("/courses", "POST", "/courses", JSON + KEY, GOOD_COURSE),
        ("/uploads", "POST", "/uploads", small_headers, small_upload),
        ("/search", "GET", "/search?q=x", [], b""),
        ("/ping", "GET", "/ping", [], b""),
    ]
    found: list[tuple[str, str, Probe]] = []
    for template, method, path, headers, body in operations:
        found += [
            (template, method, Probe(method, path, headers, body)),
            (template, method, Probe(method, path, [(b"content-length", b"abc"), *headers])),
            (template, method, Probe(method, path, [(b"content-length", b"-1"), *headers])),
            (
                template,
                method,
                Probe(method, path, [(b"content-length", b"1"), (b"content-length", b"2")]),
            ),
            (template, method, Probe(method, path, headers, body, host=b"evil.example")),
            (template, method, Probe(method, path, headers, body, host=b"a;b")),
        ]
        if body:
            found += [
                (template, method, Probe(method, path, headers, body[:5])),  # truncated
                (template, method, Probe(method, path, headers, body, stall=True)),  # slow
                (
                    template,
                    method,
                    Probe(method, path, [(b"content-length", b"99999999"), *headers], b"x"),
                ),
            ]
    found += [
        ("/courses/{course_id}", "GET", Probe("GET", "/courses/abc")),
        ("/courses/{course_id}", "GET", Probe("GET", "/courses/13")),
        ("/courses", "POST", Probe("POST", "/courses", JSON + KEY, b"{not json")),
        ("/courses", "POST", Probe("POST", "/courses", JSON + KEY, b'{"title": "x"}')),
        ("/courses", "POST", Probe("POST", "/courses", JSON + KEY, b"[" * 2_000_000)),
        ("/courses", "POST", Probe("POST", "/courses", JSON, GOOD_COURSE)),  # no key
        (
            "/courses",
            "POST",
            Probe("POST", "/courses", [*JSON, (b"x-api-key", b"no")], GOOD_COURSE),
        ),
        ("/uploads", "POST", Probe("POST", "/uploads", big_headers, big_upload)),
        ("/uploads", "POST", Probe("POST", "/uploads", JSON, b"{}")),
        ("/search", "GET", Probe("GET", "/search?q=" + "x" * 5000)),
    ]
    # The rate limit last: three more searches exhaust its 2/minute.
    found += [("/search", "GET", Probe("GET", "/search?q=y")) for _ in range(3)]
    return found


def drive(app: FastAPI, cases: Iterable[tuple[str, str, Probe]]) -> set[tuple[str, str, int, str]]:
    async def run() -> set[tuple[str, str, int, str]]:
        seen = set()
        for template, method, probe in cases:
            answer = await call(app, probe)
            seen.add((template, method.lower(), answer.status, answer.content_type))
        return seen

    return asyncio.run(run())


def undocumented(
    schema: dict[str, Any], seen: set[tuple[str, str, int, str]]
) -> list[tuple[str, str, int, str]]:
    missing = []
    for template, method, status, content_type in sorted(seen):
        response = schema["paths"][template][method]["responses"].get(str(status))
        if response is None:
            missing.append((template, method, status, "status"))
        elif content_type and content_type not in response.get("content", {}):
            missing.append((template, method, status, content_type))
    return missing


def test_every_status_the_stack_answers_is_documented_on_its_operation() -> None:
    app = make_app()
    schema = app.openapi()
    seen = drive(app, probes())
    assert undocumented(schema, seen) == []
    statuses = {status for _, _, status, _ in seen}
    # The hostile requests really reached every layer: none of this is vacuous.
    assert {200, 201, 400, 401, 403, 408, 413, 422, 429, 500} <= statuses


def test_statuses_that_cannot_occur_are_not_documented() -> None:
    schema = make_app().openapi()
    read = schema["paths"]["/courses/{course_id}"]["get"]["responses"]
    assert {"400", "404", "422", "429", "500"} <= set(read)
    assert not {"408", "413", "401", "403", "503"} & set(read)
    ping = schema["paths"]["/ping"]["get"]["responses"]
    assert not {"408", "413", "422", "503"} & set(ping)
    upload = schema["paths"]["/uploads"]["post"]["responses"]
    assert "64 bytes" in upload["413"]["description"]  # the route's own limit
    assert f"{READ_TIMEOUT:g} s" in upload["408"]["description"]
    create = schema["paths"]["/courses"]["post"]["responses"]
    assert "1048576 bytes" in create["413"]["description"]  # the default limit
    search = schema["paths"]["/search"]["get"]["responses"]
    assert "2 per 1 minute" in search["429"]["description"]
    assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= set(search["429"]["headers"])


def test_a_dead_storage_behind_a_fail_closed_policy_is_a_documented_503() -> None:
    pytest.importorskip("redis")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(storage_url=dead, fail_mode="closed", timeout=0.5)
    schema = app.openapi()
    cases = [case for case in probes() if case[2].host == HOST.encode() and not case[2].stall]
    seen = drive(app, cases)
    assert undocumented(schema, seen) == []
    assert 503 in {status for _, _, status, _ in seen}
    for template, method in {(template, method) for template, method, _ in cases}:
        responses = schema["paths"][template][method.lower()]["responses"]
        assert "Retry-After" in responses["503"]["headers"]


def test_schemathesis_finds_no_undocumented_status_or_content_type() -> None:
    """What the attackers ran, bounded and deterministic: conformance checks per operation."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    app = make_app(crash=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"host": HOST})
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            pytest.fail(f"schemathesis cannot read an operation: {result.err()}")
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(base_url=f"http://{HOST}", checks=checks)

        run()
    assert operations == 5
