"""Schemathesis against the app's own OpenAPI document, through the full stack.

The app is built by ``create_app`` on a schema made by the migrations, with data in it
(a public project with scenes, an image), and every operation is driven with generated
requests signed by an admin's token: path ids generated, and also pinned to the rows that
exist, so bodies reach real scenes and media. No answer may be a server error, and every
answer must be documented on its operation (status, content type, headers, body schema);
invalid data (the negative run) must be refused. Deletions run last, so the rows live
while the other operations run. Rate limits stay off (as in every test but
``test_rate_limits.py``): a generated burst would be a run of 429s that reach no route.

What it found: an id past the columns' range (``/projects/130742662717656219648``) was a
500 (SQLite's ``OverflowError``; asyncpg refuses it too): ids are now bounded (``IdPath``);
``"duration_seconds": true`` was stored as 1: the scenes' numbers are now strict.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import media_files
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import make_settings, migrated, signed_in, started
from tecnocursos.auth.models import Role
from tecnocursos.core.app import create_app
from tecnocursos.core.settings import TecnoCursosSettings

MAX_EXAMPLES = int(os.environ.get("TC_SCHEMATHESIS_EXAMPLES", "25"))
"""Generated requests per operation and strategy: bounded, deterministic (derandomized);
``TC_SCHEMATHESIS_EXAMPLES=500`` for a deeper run by hand."""

OPERATIONS = 27


@dataclass(frozen=True)
class Seeded:
    """The rows ``_seed`` made, and the admin's ``Authorization`` header."""

    headers: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
def settings(tmp_path: Path) -> TecnoCursosSettings:
    # One render at a time: the generated render requests queue behind it or get 429.
    return migrated(make_settings(tmp_path, video={"max_active_per_user": 1}))


async def _seed(settings: TecnoCursosSettings) -> Seeded:
    app = create_app(settings)
    try:
        async with started(app) as client:
            headers = await signed_in(app, client, "admin@example.com", Role.ADMIN)
            project = await client.post(
                "/projects", json={"title": "course", "visibility": "public"}, headers=headers
            )
            assert project.status_code == 201, project.text
            scenes = [
                await client.post(
                    project.headers["location"] + "/scenes", json={"title": title}, headers=headers
                )
                for title in ("intro", "setup", "outro")
            ]
            assert [scene.status_code for scene in scenes] == [201] * 3
            media = await client.post(
                "/media", files={"file": ("pixel.png", media_files.png())}, headers=headers
            )
            assert media.status_code == 201, media.text
            video = await client.post(project.headers["location"] + "/videos", headers=headers)
            assert video.status_code == 202, video.text
            await client.get(video.json()["events_url"], headers=headers)  # until it is done
    finally:
        app.state.logging.stop()
    ids = {
        "project_id": project.json()["id"],
        "scene_id": scenes[0].json()["id"],
        "media_id": media.json()["id"],
        "job_id": video.json()["id"],
    }
    return Seeded(headers, ids)


@pytest.fixture
def seeded(settings: TecnoCursosSettings, restore_logging: None) -> Seeded:
    return asyncio.run(_seed(settings))


@pytest.fixture
def contract_app(seeded: Seeded, app: FastAPI) -> Iterator[FastAPI]:
    """The app schemathesis drives (its lifespan runs on schemathesis' own event loop)."""
    try:
        yield app
    finally:
        shutdown_lifespans()  # the app's database and cache close within the test


def _deletions_last(operation: Any) -> tuple[bool, int]:
    # Deletions last, the deepest first: a scene before its project.
    deletion = operation.method.lower() == "delete"
    return deletion, -len(operation.path) if deletion else 0


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_get_documented_answers_and_no_server_error(
    contract_app: FastAPI, seeded: Seeded, mode: str
) -> None:
    generation = GenerationMode(mode)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    if generation is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    schema = schemathesis.openapi.from_asgi("/openapi.json", contract_app)
    operations = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            pytest.fail(f"schemathesis cannot read an operation: {result.err()}")
        operations.append(result.ok())
    assert len(operations) == OPERATIONS, operations
    for operation in sorted(operations, key=_deletions_last):
        inputs = [*operation.path_parameters, *operation.query, *operation.body]
        if generation is GenerationMode.NEGATIVE and not inputs:
            continue  # nothing to make invalid (GET /users/me)
        strategy = operation.as_strategy(generation, headers=seeded.headers)
        path_names = [parameter.name for parameter in operation.path_parameters]
        if path_names:
            pinned = {name: seeded.ids[name] for name in path_names}
            strategy |= operation.as_strategy(
                generation, headers=seeded.headers, path_parameters=pinned
            )

        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            case.call_and_validate(checks=checks)

        run()
