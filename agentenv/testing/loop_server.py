"""A TCP server on 127.0.0.1 run by an event loop in a thread of its own: the fault proxies' lifetime, so a
test's code and the client under test may block while the proxy keeps serving."""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class LoopServer:
    """Subclasses give ``_handle(reader, writer)``; ``_started()`` runs on the loop before serving and
    ``_stopping()`` when the server stops (end the connections still open). ``with Server(...) as s: s.port``."""

    thread_name = "agentenv-loop-server"

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError  # abstract: each server handles its own connections

    def _started(self) -> None:
        """On the loop, before the first connection."""

    async def _stopping(self) -> None:
        """On the loop, once asked to stop: end what is still open."""

    def __enter__(self) -> Self:
        ready = threading.Event()

        async def main() -> None:
            self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
            self._started()
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await self._stopped.wait()
                await self._stopping()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout=10)
            self._loop = None
