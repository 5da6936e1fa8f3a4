"""Every middleware the package ships passes lifespan and websocket scopes through untouched."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import fastapi_enterprise.middleware as middleware_package

SHIPPED: list[type[Any]] = [
    getattr(middleware_package, name)
    for name in middleware_package.__all__
    if name.endswith("Middleware")
]


def test_the_list_of_shipped_middleware_is_complete() -> None:
    import inspect
    import pkgutil

    modules = {info.name for info in pkgutil.iter_modules(middleware_package.__path__)}
    classes = {
        cls.__name__
        for module in modules
        for _, cls in inspect.getmembers(
            __import__(f"fastapi_enterprise.middleware.{module}", fromlist=["_"]), inspect.isclass
        )
        if cls.__name__.endswith("Middleware") and cls.__module__.startswith("fastapi_enterprise")
    }
    assert classes == {cls.__name__ for cls in SHIPPED}


class Recorder:
    """An inner app that records exactly what reached it and answers through send."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, list[Message]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = [await receive()]
        self.calls.append((scope, received))
        await send({"type": f"{scope['type']}.marker", "payload": b"\x00untouched"})


SCOPES: dict[str, Callable[[], Scope]] = {
    "lifespan": lambda: {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
    "websocket": lambda: {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-request-id", b"\r\nbad"), (b"host", b"example.com")],
        "client": ("1.2.3.4", 5),
        "server": ("example.com", 80),
        "subprotocols": [],
    },
}


@pytest.mark.parametrize("middleware", SHIPPED, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("scope_type", sorted(SCOPES))
def test_non_http_scopes_pass_through(middleware: type[Any], scope_type: str) -> None:
    inner = Recorder()
    app: ASGIApp = middleware(inner)
    scope = SCOPES[scope_type]()
    original = copy.deepcopy(scope)
    incoming: Message = {"type": f"{scope_type}.connect", "payload": "first"}
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        await app(scope, receive, send)

    asyncio.run(main())
    assert len(inner.calls) == 1
    seen_scope, seen_messages = inner.calls[0]
    assert seen_scope is scope
    assert seen_scope == original
    assert seen_messages == [incoming]
    assert sent == [{"type": f"{scope_type}.marker", "payload": b"\x00untouched"}]
