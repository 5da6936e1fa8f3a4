"""A TCP proxy for fault injection: a database server that dies, comes back or hangs.

The shared PostgreSQL and MariaDB servers must keep running for every other test, so a
test points its app at a :class:`TcpProxy` in front of them and breaks the proxy instead:

- forwarding (after :meth:`TcpProxy.start` and :meth:`TcpProxy.up`): bytes flow both ways;
- :meth:`TcpProxy.down`: the listener closes and every open connection is reset (RST), as
  when the server process dies: new connections are refused;
- :meth:`TcpProxy.up`: listen again on the same port and forward;
- :meth:`TcpProxy.hang`: connections are accepted and kept, but nothing is forwarded in
  either direction: a server that stopped answering (a frozen VM, a lost route).

The proxy runs its own event loop in a background thread; :meth:`TcpProxy.close` (or the
``with`` block's end) resets every connection, closes every socket and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from typing_extensions import Self

__all__ = ["TcpProxy"]

T = TypeVar("T")

_CHUNK = 65536


class _Link:
    """One client connection and its upstream connection, if any."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        """Close both sides at once, with a RST rather than an orderly FIN."""
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``, breakably.

    Args:
        target_host: The server's host.
        target_port: The server's port.
        max_connections: Connections accepted at once; more are closed at once (bounded).
    """

    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 64) -> None:
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.port = 0
        self.accepted = 0
        """Client connections accepted so far (refused ones are not counted)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()  # cleared by hang()

    # -- called from the test's thread --------------------------------------------------

    def start(self) -> Self:
        """Start the loop thread and listen on a free port (kept for later :meth:`up`)."""
        self._thread.start()
        self._run(self._listen())
        return self

    def up(self) -> None:
        """Listen again (on the same port) and forward, after :meth:`down` or :meth:`hang`."""
        self._run(self._listen())

    def down(self) -> None:
        """Close the listener and reset every open connection: the server died."""
        self._run(self._down())

    def hang(self) -> None:
        """Keep accepting and holding connections, but forward nothing either way."""
        self._run(self._hang())

    @property
    def open_connections(self) -> int:
        """Client connections open through the proxy right now."""
        return self._run(self._count())

    def close(self) -> None:
        """Reset every connection, close every socket, stop the loop, join the thread."""
        if self._thread.is_alive():
            self._run(self._finish())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- on the proxy's loop -----------------------------------------------------------

    async def _count(self) -> int:
        return len(self._links)

    async def _listen(self) -> None:
        self._flowing.set()
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links):
            link.reset()
        self._links.clear()
        if server is not None:
            await server.wait_closed()

    async def _finish(self) -> None:
        await self._down()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _hang(self) -> None:
        self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        if len(self._links) >= self.max_connections:
            link.reset()
            return
        self.accepted += 1
        self._links.add(link)
        accepting = asyncio.current_task()
        assert accepting is not None
        link.tasks.append(accepting)
        try:
            if not self._flowing.is_set():  # hung: hold the connection, answer nothing
                await self._flowing.wait()
            up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
            link.upstream = upstream
            pumps = [
                asyncio.create_task(self._pump(reader, upstream)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            link.tasks.extend(pumps)
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if link in self._links:  # an orderly end: either side closed
                self._links.discard(link)
                link.reset()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()  # hung: hold the bytes, forward nothing
                writer.write(data)
                await writer.drain()
