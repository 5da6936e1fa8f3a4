"""Postman auth for each operation from its own OpenAPI security requirement.

Every request of an exported collection carries its own ``auth``: an operation secured by
an API key sends that key, a bearer operation its token, a public operation nothing. No
request inherits a neighbour's scheme from the collection.

Each scheme used gets collection variables named after it in
``components.securitySchemes``: ``{{APIKeyHeader}}`` (an API key), ``{{HTTPBearer}}`` (a
bearer, OAuth2 or OpenID Connect access token), ``{{HTTPBasicUsername}}`` and
``{{HTTPBasicPassword}}``. Every scheme the operation lists is sent: FastAPI lists each
security dependency as its own requirement although all of them must pass. Postman has
one ``auth`` per request, so a second scheme becomes a header, query parameter or cookie
where it can.

An OAuth2 scheme with a password flow whose ``tokenUrl`` is an operation of the document
gets a test script on that request: a successful login stores ``access_token`` in the
scheme's variable, so every request that uses it is signed from then on.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PostmanAuth"]

_TOKEN_TYPES = ("oauth2", "openIdConnect")
_NOAUTH = {"type": "noauth"}


def _save_token_event(variable: str) -> dict[str, Any]:
    """A Postman test script storing a token response's ``access_token`` in ``variable``."""
    name = json.dumps(variable)
    return {
        "listen": "test",
        "script": {
            "type": "text/javascript",
            "exec": [
                f"// Saves the access token in {{{{{variable}}}}} for the requests that use it.",
                "if (pm.response.code === 200) {",
                f"    pm.collectionVariables.set({name}, pm.response.json().access_token);",
                "}",
            ],
        },
    }


def _attribute(key: str, value: str) -> dict[str, str]:
    return {"key": key, "value": value, "type": "string"}


class PostmanAuth:
    """The security schemes of one OpenAPI document, turned into Postman request auth.

    Args:
        spec: The OpenAPI document (its top-level ``security`` is the default).
        schemes: ``components.securitySchemes``, with references resolved.
    """

    def __init__(self, spec: dict[str, Any], schemes: dict[str, Any]) -> None:
        self.default = spec.get("security")
        self.schemes = {
            name: scheme for name, scheme in schemes.items() if isinstance(scheme, dict)
        }
        self.used: dict[str, list[dict[str, str]]] = {}

    def variables(self) -> list[dict[str, str]]:
        """The collection variables of every scheme an exported request uses, in order."""
        return [entry for name in self.schemes for entry in self.used.get(name, [])]

    def for_operation(
        self,
        operation: dict[str, Any],
        header: list[dict[str, Any]],
        query: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Return the request's ``auth``; a second scheme's key is added to ``header``/``query``.

        Args:
            operation: The OpenAPI operation.
            header: The request's header list, extended in place.
            query: The request's query parameter list, extended in place.
        """
        requirements = operation.get("security", self.default)
        names = {
            name: None
            for requirement in (requirements if isinstance(requirements, list) else [])
            if isinstance(requirement, dict)
            for name in requirement
        }
        auth: dict[str, Any] | None = None
        cookies: list[str] = []
        for name in names:
            scheme = self.schemes.get(name)
            if scheme is None:
                continue
            kind = scheme.get("type")
            http = str(scheme.get("scheme", "")).lower() if kind == "http" else ""
            if kind == "apiKey":
                key, place = str(scheme.get("name", "")), scheme.get("in")
                value = self._variable(name, name, f"API key sent in {place} {key!r}")
                if place == "cookie":
                    cookies.append(f"{key}={value}")
                elif auth is None and place in ("header", "query"):
                    attributes = [_attribute("key", key), _attribute("value", value)]
                    auth = {"type": "apikey", "apikey": [*attributes, _attribute("in", place)]}
                elif place == "query":
                    query.append({"key": key, "value": value})
                else:
                    header.append({"key": key, "value": value})
            elif kind in _TOKEN_TYPES or http == "bearer":
                token = self._variable(name, name, "Bearer access token")
                if auth is None:
                    auth = {"type": "bearer", "bearer": [_attribute("token", token)]}
                else:
                    header.append({"key": "Authorization", "value": f"Bearer {token}"})
            elif http == "basic" and auth is None:
                username = self._variable(name, f"{name}Username", "Basic auth user name")
                password = self._variable(name, f"{name}Password", "Basic auth password")
                attributes = [_attribute("username", username), _attribute("password", password)]
                auth = {"type": "basic", "basic": attributes}
        if cookies:
            header.append({"key": "Cookie", "value": "; ".join(cookies)})
        return auth or dict(_NOAUTH)

    def token_requests(self, server: str) -> list[tuple[str, dict[str, Any]]]:
        """The login requests to script: ``(tokenUrl path, test event)`` per used scheme.

        Args:
            server: The document's relative server URL (FastAPI's ``root_path``), which
                a ``tokenUrl`` may start with while the paths do not.
        """
        found = []
        for name in self.used:
            flows = self.schemes[name].get("flows")
            password = flows.get("password") if isinstance(flows, dict) else None
            token_url = password.get("tokenUrl") if isinstance(password, dict) else None
            if self.schemes[name].get("type") != "oauth2" or not isinstance(token_url, str):
                continue
            path = "/" + urlsplit(token_url).path.lstrip("/")
            prefix = "/" + server.strip("/") if server.strip("/") else ""
            if prefix and path.startswith(prefix + "/"):
                path = path[len(prefix) :]
            found.append((path, _save_token_event(name)))
        return found

    def _variable(self, scheme: str, variable: str, description: str) -> str:
        entries = self.used.setdefault(scheme, [])
        if all(entry["key"] != variable for entry in entries):
            entry = {"key": variable, "value": "", "type": "string"}
            entries.append({**entry, "description": f"{description} ({scheme})."})
        return f"{{{{{variable}}}}}"
