"""Running an ASGI app with uvicorn: one ready line once the socket listens, clean shutdown on signals.

Both servers (policy and env) print where they listen only when a request can be answered, so scripts and
tests can wait for that line instead of sleeping; port 0 picks a free port and the line names the real one.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port), owned by the caller."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], str] | None = None,
              log_level: str = "warning", **config: Any) -> None:
    """Serve ``app`` until SIGINT/SIGTERM; print ``ready(base_url)`` once listening. ``config`` goes to
    ``uvicorn.Config``."""
    import uvicorn

    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    base_url = f"http://{shown}:{bound_port}"
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": log_level, "timeout_graceful_shutdown": 5,
                                                   "access_log": False, **config}))

    async def run() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started and ready is not None:
            print(ready(base_url), flush=True)
        await serving

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, restores the handlers it found, then raises the signal
    # again; with these no-op handlers in place, a graceful stop ends the process normally (exit status 0).
    in_main = threading.current_thread() is threading.main_thread()
    quiet = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    try:
        asyncio.run(run())
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        sock.close()
    if not server.started:
        sys.exit(1)


class ServerThread:
    """Serves an ASGI app with uvicorn on 127.0.0.1 in a background thread, for tests and notebooks::

        with ServerThread(app) as server:
            httpx.get(server.url + "/health")

    ``stop()`` shuts it down (like a server going away); ``start()`` brings it back on the same port.
    """

    def __init__(self, app: Any, port: int = 0, **config: Any):
        self.app, self.port, self.config = app, port, config
        self._server: Any = None
        self._thread: Any = None
        self._sock: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerThread:
        import uvicorn

        sock = bind_socket("127.0.0.1", self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, **{"log_level": "warning", "access_log": False,
                                                                          **self.config}))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the test server did not start within {timeout} s")
            time.sleep(0.01)
        self._sock = sock
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._sock.close()
            self._server = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Interrupted(BaseException):
    """SIGINT/SIGTERM arrived while :func:`serve_until_signal` watched."""


def serve_until_signal(start: Callable[[], Any], watch: Callable[[], int], stop: Callable[[], Any]) -> int:
    """Run servers in child processes until SIGINT/SIGTERM (exit status 0) or until ``watch`` returns (the
    status it returns: a child died). ``stop`` always runs, with further signals ignored so that a second
    Ctrl-C cannot cut the clean-up short; the previous handlers come back afterwards."""
    signals = (signal.SIGINT, signal.SIGTERM)

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        start()
        return watch()
    except _Interrupted:
        return 0
    finally:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        stop()
        for sig, old in previous.items():
            signal.signal(sig, old)
