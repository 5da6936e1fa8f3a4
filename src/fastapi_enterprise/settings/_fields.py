"""Field machinery shared by the settings sections: list parsing, case, URLs, patterns."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from pydantic import ConfigDict, SecretStr

from fastapi_enterprise._urls import url_problem

__all__ = ["SECTION_CONFIG", "casefold", "checked_regex", "checked_url", "split_list"]


def split_list(value: Any) -> Any:
    """Accept ``a,b`` and JSON ``["a","b"]`` from the environment; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a valid JSON list") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def casefold(upper: bool) -> Callable[[Any], Any]:
    """A before-validator accepting an enumerated value in any case (``info``, ``Closed``)."""

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return text.upper() if upper else text.lower()
        return value

    return normalise


def checked_url(
    url: SecretStr | None,
    *,
    schemes: Collection[str] | None = None,
    several_hosts: bool = False,
    require_user: bool = False,
    require_path: bool = False,
) -> SecretStr | None:
    """Refuse a malformed connection URL before a client library quotes it in an error."""
    if url is not None:
        problem = url_problem(
            url.get_secret_value(),
            schemes=schemes,
            several_hosts=several_hosts,
            require_user=require_user,
            require_path=require_path,
        )
        if problem is not None:
            raise ValueError(f"the URL {problem}")
    return url


def checked_regex(pattern: str) -> str:
    """Compile-check a regular expression; the message gives the position, not the text."""
    try:
        re.compile(pattern)
    except re.error as exc:
        where = f" (at position {exc.pos})" if exc.pos is not None else ""
        raise ValueError(f"not a valid regular expression{where}") from None
    return pattern


# hide_input_in_errors: a section used on its own (SecuritySettings(...)) raises pydantic's
# ValidationError, whose message would otherwise repeat the rejected value.
SECTION_CONFIG = ConfigDict(
    extra="forbid",
    use_attribute_docstrings=True,
    validate_assignment=True,
    hide_input_in_errors=True,
)
