"""The fastapi-enterprise command, run in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastapi_enterprise.cli import main

ROOT = Path(__file__).resolve().parents[1]
STRONG_KEY = "Xk3#9vLq2!mZ8wP4rT6yB1nC5hJ7dF0gS-aQ"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def test_openapi_to_stdout_and_file(tmp_path: Path) -> None:
    code, text = run("--app-dir", str(ROOT), "openapi", "examples.usage.app:app")
    assert code == 0
    spec = json.loads(text)
    assert "/courses/{course_id}" in spec["paths"]
    target = tmp_path / "openapi.json"
    code, _ = run("--app-dir", str(ROOT), "openapi", "examples.usage.app:app", "-o", str(target))
    assert code == 0
    assert json.loads(target.read_text())["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("examples.usage.app", "must look like 'package.module:app'"),
        (":app", "must look like"),
        (
            "no_such_module_xyz:app",
            "could not import module 'no_such_module_xyz': ModuleNotFoundError",
        ),
        ("examples.usage.app:nothing", "has no attribute 'nothing'"),
        ("examples.usage.app:settings", "is not a FastAPI app"),
    ],
)
def test_bad_app_paths_are_clear_errors(
    app: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("--app-dir", str(ROOT), "openapi", app)
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("fastapi-enterprise: error: ")
    assert message in error
    assert "Traceback" not in error


def test_module_that_raises_on_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('missing FE_DATABASE__URL')\n")
    code, _ = run("--app-dir", str(tmp_path), "openapi", "broken_app:app")
    assert code == 1
    assert "RuntimeError: missing FE_DATABASE__URL" in capsys.readouterr().err


FACTORY_MODULE = """
from fastapi import FastAPI

def create_app() -> FastAPI:
    print("building the app")  # an app factory that configures logging may print too
    app = FastAPI(title="Built")

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> int:
        return item_id

    return app

def broken() -> FastAPI:
    raise RuntimeError("missing TC_DATABASE__URL")

not_callable = 3
"""


@pytest.mark.parametrize("command", ["openapi", "postman"])
def test_an_app_factory_is_called_with_factory(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--factory`` calls ``create_app()``, as ``uvicorn --factory`` does; stdout stays JSON."""
    module = f"factory_app_{command}"
    (tmp_path / f"{module}.py").write_text(FACTORY_MODULE)
    code, text = run("--app-dir", str(tmp_path), command, "--factory", f"{module}:create_app")
    assert code == 0
    document = json.loads(text)  # the document alone: the factory's print went to stderr
    if command == "openapi":
        assert list(document["paths"]) == ["/items/{item_id}"]
    else:
        (folder,) = document["item"]
        assert folder["item"][0]["request"]["url"]["path"] == ["items", ":item_id"]
    assert "building the app" in capsys.readouterr().err

    for path, flags, message in [
        ("create_app", [], "is not a FastAPI app (it has no openapi() method); if it builds"),
        ("broken", ["--factory"], "failed: RuntimeError: missing TC_DATABASE__URL"),
        ("not_callable", ["--factory"], "is not callable, so it cannot be an app factory"),
    ]:
        code, text = run("--app-dir", str(tmp_path), command, *flags, f"{module}:{path}")
        assert (code, text) == (1, "")
        error = capsys.readouterr().err
        assert message in error
        assert "Traceback" not in error


def test_check_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FE_ENVIRONMENT", "production")
    code, text = run("check")
    assert code == 1
    assert "security.secret_key_missing" in text
    monkeypatch.setenv("FE_SECURITY__SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("FE_SECURITY__ALLOWED_HOSTS", "api.example.com")
    monkeypatch.setenv("FE_SECURITY__TRUSTED_PROXIES", "10.0.1.0/24")
    monkeypatch.setenv("FE_RATE_LIMIT__STORAGE_URL", "redis://cache.internal:6379/0")
    code, text = run("check")
    assert code == 0
    assert STRONG_KEY not in text
    assert text.strip().endswith("0 error(s), 0 warning(s) (environment: production)")


def test_check_with_invalid_settings_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FE_DATABASE__POOL_SIZE", "lots")
    code, _ = run("check")
    assert code == 1
    assert "database.pool_size" in capsys.readouterr().err


def test_check_with_a_custom_settings_class(tmp_path: Path) -> None:
    (tmp_path / "mysettings.py").write_text(
        "from fastapi_enterprise import EnterpriseSettings\n"
        "class Settings(EnterpriseSettings):\n"
        "    pass\n"
    )
    code, text = run("--app-dir", str(tmp_path), "check", "--settings", "mysettings:Settings")
    assert code == 1  # development defaults have no secret key
    assert "environment: development" in text
    code, _ = run("check", "--settings", "nope")
    assert code == 1


def test_the_installed_console_script() -> None:
    env = {**os.environ, "FE_ENVIRONMENT": "production"}
    result = subprocess.run(
        [sys.executable, "-m", "fastapi_enterprise.cli", "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert "security.secret_key_missing" in result.stdout


def test_postman_collection_validates_against_the_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = ROOT.parent / "shared/data/postman-collection-v2.1.0.schema.json"
    if not schema_path.exists():
        schema_path = Path("/work/shared/data/postman-collection-v2.1.0.schema.json")
    target = tmp_path / "collection.json"
    code, _ = run(
        "--app-dir",
        str(ROOT),
        "postman",
        "examples.minimal.app:app",
        "-o",
        str(target),
        "--base-url",
        "https://api.example.com",
    )
    assert code == 0
    collection = json.loads(target.read_text())
    jsonschema.Draft7Validator(json.loads(schema_path.read_text())).validate(collection)
    assert {"key": "baseUrl", "value": "https://api.example.com"}.items() <= collection["variable"][
        0
    ].items()
    names = {item["name"] for item in collection["item"]}
    assert names


def export(command: str, environment: str) -> str:
    """Run the real command on the usage example with ``FE_ENVIRONMENT=environment``."""
    app = "examples.usage.app:app"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FE_")}
    env.update(
        FE_ENVIRONMENT=environment,
        FE_SECURITY__SECRET_KEY=STRONG_KEY,
        FE_SECURITY__ALLOWED_HOSTS="api.example.com",
    )
    result = subprocess.run(  # noqa: S603 - the package's own command
        [sys.executable, "-m", "fastapi_enterprise.cli", "--app-dir", str(ROOT), command, app],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # the document alone: the app's log lines went to stderr
    return result.stdout


@pytest.mark.parametrize("command", ["openapi", "postman"])
def test_the_exported_contract_does_not_depend_on_the_environment(command: str) -> None:
    """Production serves no docs, but the contract it exports is the development one."""
    production = export(command, "production")
    assert production == export(command, "development")
    if command == "openapi":
        operation = json.loads(production)["paths"]["/courses/{course_id}"]["get"]
        assert operation["operationId"] == "read_course"
        assert {"422", "429", "500"} <= set(operation["responses"])
        assert "application/json" not in operation["responses"]["422"]["content"]
