"""The settings reference page is the generator's output, and lists every variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from fastapi_enterprise import EnterpriseSettings
from fastapi_enterprise.deploy_check import DEPLOY_CHECKS
from fastapi_enterprise.settings.reference import render_settings_reference

PAGE = Path(__file__).parent.parent / "docs" / "reference" / "settings.md"


def test_the_committed_page_is_the_generators_output() -> None:
    """If not, regenerate the page (see the generator's docstring)."""
    assert PAGE.read_text(encoding="utf-8") == render_settings_reference()


def variables(settings_cls: type[EnterpriseSettings]) -> list[str]:
    found = []
    for name, field in settings_cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += [f"FE_{name}__{inner}".upper() for inner in annotation.model_fields]
        else:
            found.append(f"FE_{name}".upper())
    return found


def test_every_variable_and_every_checked_setting_is_on_the_page() -> None:
    page = render_settings_reference()
    for variable in variables(EnterpriseSettings):
        assert f"- **`{variable}`**: " in page, variable
    for check in DEPLOY_CHECKS:
        assert f"`{check.id}` ({check.level})" in page, check.id


def test_a_subclass_renders_its_own_sections_and_production_defaults() -> None:
    class Billing(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)

        currency: str = "EUR"
        """Currency of invoices."""

        retries: int = Field(3, ge=0, le=10)
        """Payment retries."""

    class Settings(EnterpriseSettings):
        billing: Billing = Field(default_factory=Billing)
        """Billing."""

    page = render_settings_reference(Settings)
    assert (
        "- **`FE_BILLING__CURRENCY`**: str; default `EUR`.\n\n    Currency of invoices.\n" in page
    )
    assert "- **`FE_BILLING__RETRIES`**: int, 0 to 10; default `3`." in page
    assert "- **`FE_APP__DOCS`**: bool (optional); default unset; in production `false`;" in page
