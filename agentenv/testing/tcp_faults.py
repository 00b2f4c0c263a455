"""Network faults between a client and a server, at the TCP level (reliability F09, F18).

:class:`TcpFaultProxy` forwards 127.0.0.1 connections to a target port and, on demand:

* ``reset_first`` (a constructor argument): the first connections are reset at once (a server that crashes
  or restarts);
* ``partition(seconds)``: stops forwarding both ways, holding the bytes, and delivers them when it heals (a
  partition that TCP survives: its retransmissions carry the data across once the path is back). Nothing is
  lost, everything is late: the server may apply a request long after the client gave up on it.
* ``blackhole()``: drops every byte both ways, connections stay open, until ``heal()`` (a peer that vanished
  without a reset; only heartbeats or timeouts find it).
* ``lose_replies(n)``: the next ``n`` chunks the server sends are thrown away and their connections reset,
  after the server did the work (an answer lost on the way back: the case an idempotency key exists for).

Run it as a context manager (``with TcpFaultProxy(port) as proxy: ... proxy.url``); it serves from a thread of
its own, so the test's code and the client under test may block.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agentenv.testing.loop_server import LoopServer


class TcpFaultProxy(LoopServer):
    """A TCP proxy on 127.0.0.1 in front of ``target_port`` with resets, partitions, blackholes and lost
    replies (see the module docstring)."""

    thread_name = "agentenv-tcp-fault-proxy"

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", reset_first: int = 0):
        super().__init__()
        self.target_host, self.target_port, self.reset_first = target_host, target_port, reset_first
        #: connections accepted; server->client chunks thrown away by ``lose_replies``; bytes dropped by a blackhole
        self.connections = 0
        self.lost_replies = 0
        self.dropped_bytes = 0
        self._lose = 0
        self._blackhole = False
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----- faults (callable from any thread) ---------------------------------------------------------
    def partition(self, seconds: float | None = None) -> None:
        """Hold all bytes both ways; heal after ``seconds`` (None: at ``heal()``)."""
        def start() -> None:
            assert self._flowing is not None and self._loop is not None
            self._flowing.clear()
            if seconds is not None:
                self._loop.call_later(seconds, self._heal)
        self._call(start)

    def blackhole(self) -> None:
        """Drop all bytes both ways until ``heal()``."""
        def start() -> None:
            self._blackhole = True
        self._call(start)

    def heal(self) -> None:
        """End a partition (held bytes are delivered) or a blackhole."""
        self._call(self._heal)

    def lose_replies(self, n: int = 1) -> None:
        """Throw away the next ``n`` server->client chunks and reset their connections."""
        def start() -> None:
            self._lose += n
        self._call(start)

    def _heal(self) -> None:
        assert self._flowing is not None
        self._blackhole = False
        self._flowing.set()

    def _call(self, fn: Any) -> None:
        if self._loop is None:
            raise RuntimeError("the proxy is not running")
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()
        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    # ----- forwarding ---------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections <= self.reset_first:
            writer.transport.abort()  # a reset, not a polite close
            return
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()  # the target refuses: so does the proxy
            return
        self._writers.update((writer, up_writer))

        def reset() -> None:
            writer.transport.abort()
            up_writer.transport.abort()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_server: bool) -> None:
            assert self._flowing is not None
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()  # a partition holds the bytes here
                    if self._blackhole:
                        self.dropped_bytes += len(data)
                        continue
                    if from_server and self._lose > 0:
                        self._lose -= 1
                        self.lost_replies += 1
                        reset()
                        return
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))
        finally:
            self._writers.difference_update((writer, up_writer))

    def _started(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def _stopping(self) -> None:
        for w in list(self._writers):  # connections still open end with the proxy
            w.transport.abort()
        assert self._flowing is not None
        self._flowing.set()
        if self._handlers:  # let them finish, rather than be cancelled by asyncio.run
            await asyncio.wait(set(self._handlers), timeout=5)
