"""The package root re-exports its public API with a sorted __all__, all documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import fastapi_enterprise


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest."""
    if name.isupper() or re.fullmatch(r"[A-Z0-9_]+", name):
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_and_complete() -> None:
    exported = fastapi_enterprise.__all__
    assert exported == sorted(exported, key=isort_key)
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(fastapi_enterprise, name), name


def test_every_exported_member_is_public_and_documented() -> None:
    for name in fastapi_enterprise.__all__:
        member = getattr(fastapi_enterprise, name)
        if inspect.isclass(member) or inspect.isfunction(member):
            assert member.__module__.startswith("fastapi_enterprise"), name
            assert inspect.getdoc(member), f"{name} has no docstring"


def test_every_public_module_declares_all_and_documents_its_members() -> None:
    modules = [
        info.name
        for info in pkgutil.walk_packages(fastapi_enterprise.__path__, "fastapi_enterprise.")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
    ]
    assert "fastapi_enterprise.settings" in modules
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # an extra-only module without its extra: tested in test_extras
        assert inspect.getdoc(module), f"{module_name} has no docstring"
        assert hasattr(module, "__all__"), f"{module_name} has no __all__"
        for name in module.__all__:
            member = getattr(module, name)
            if inspect.isclass(member) or inspect.isfunction(member):
                assert inspect.getdoc(member), f"{module_name}.{name} has no docstring"


def test_version_comes_from_package_metadata() -> None:
    from importlib.metadata import version

    assert fastapi_enterprise.__version__ == version("fastapi-enterprise")


def test_package_logger_has_the_unheard_error_handler_and_nothing_else() -> None:
    """No output by surprise: only errors that no other handler would take get out."""
    import logging

    from fastapi_enterprise._logging import UnheardErrorHandler

    handlers = logging.getLogger("fastapi_enterprise").handlers
    assert [type(handler) for handler in handlers] == [UnheardErrorHandler]
    assert handlers[0].level == logging.ERROR
