"""An Env whose episodes run on an agentenv env server (:mod:`agentenv.env_server`), over a WebSocket or HTTP.

``RemoteEnv(url)`` is itself an agentenv :class:`~agentenv.env.Env`, so the collector, the checker and user
code drive a remote environment exactly as a local one: ``reset`` opens a session on the server (closing
the previous one), ``step`` sends the raw action text, and observations, infos, rewards and flags come
back as the server's env produced them (JSON round-tripped: tuples arrive as lists).

Two transports, the same episodes:

* ``transport="ws"`` (the default when the ``websockets`` package is installed): one WebSocket per
  RemoteEnv to ``/sessions/ws``, carrying its session. It is the fast path (no HTTP request per step) and
  a client that dies frees its server session at once. The sync API uses ``websockets.sync.client``; the
  async API (``reset_async`` / ``step_async``) a ``websockets.asyncio.client`` connection on the calling
  event loop. A session lives on the connection that opened it: an async call from another event loop
  (or a sync call while an event loop in another thread owns the session) is run on the owning side, so
  the collector may build the env in one thread and drive it from its loop. Like any Env, one call at a
  time per RemoteEnv.
* ``transport="http"``: the HTTP API (the OpenAPI-documented one; the fallback without ``websockets``),
  with ``reset_async`` / ``step_async`` on a pooled ``httpx.AsyncClient``.

Either way the async twins are native coroutines (no thread per call), so one collector runs hundreds of
remote episodes concurrently.

Steps are applied once. Each step carries its index in the session (``seq``, an idempotency key: see
:mod:`agentenv.env_server`), so sending it again cannot step the env twice: the server answers a repeat
from memory. Over HTTP, a step whose answer was lost (the connection was reset, or no answer came within
``timeout_s``) is therefore sent once more on a new connection, and gets the answer of the one application
(the first attempt's late answer, if any, goes to a connection that is closed by then). Over a WebSocket
the session lives on its connection, so a lost connection loses the session and nothing can be retried
there: the episode fails (and the collector's ``env_retries`` re-runs it on a fresh session, under a new
attempt). Every WebSocket message carries a request ``id`` that its reply echoes, and a reply whose id is
not the current request's (a late or repeated answer) is dropped, never taken for the current answer.

Dead peers are found by heartbeats, not by the step timeout: the WebSocket client pings the server every
``ping_interval_s`` and gives the connection up when no pong comes within ``ping_timeout_s`` (a server
paused by SIGSTOP, a network partition), so a step waiting on a long ``timeout_s`` fails within about
``ping_interval_s + 2 * ping_timeout_s`` (the missed pong, then a close handshake the dead peer cannot
complete either). A killed server is found at once (its socket closes). ``reset`` may wait
``connect_wait_s`` for a server that refuses connections (restarting): a refused connection sent nothing, so
retrying it is always safe.

Why failures are exceptions: a lost session cannot be continued. A server restart (its ``instance_id``
changed, or it no longer knows the session), a connection failure or an env that raised on the server
makes the call raise :class:`RemoteEnvError` naming the URL and what happened; the collector records the
episode as failed (``env_error``) with that message, and may retry it on a fresh session. Over a
WebSocket, a lost connection (server stopped or restarted, network) loses the session with it; a call that
times out or is cancelled mid-flight drops the connection (its answer could no longer be matched to a
request), which ends the episode the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import itertools
import json
import logging
import ssl
import time
from typing import Any, ClassVar, NoReturn

import httpx

from agentenv.env import Env, ResetNeeded
from agentenv.messages import Observation

INSTANCE_HEADER = "x-agentenv-instance"  # the same as agentenv.env_server's (not imported: no fastapi needed)
log = logging.getLogger("agentenv.remote_env")

# httpx logs every request at INFO; under the CLI's INFO logging that is a line per env step. Quieten it
# unless the user configured that logger.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

StepTuple = tuple[Observation, float, bool, bool, dict[str, Any]]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every client: httpx builds a new one per client otherwise (~20 ms,
    which made opening hundreds of RemoteEnvs slower than running their episodes)."""
    return ssl.create_default_context()


def websockets_available() -> bool:
    """Whether the WebSocket transport can be used (the ``websockets`` package, in the serve extra)."""
    return importlib.util.find_spec("websockets") is not None


@functools.cache
def _sync_connect_flags() -> dict[str, Any]:
    """websockets >= 17 warns unless a directly used sync connection says ``legacy=True``; older ones lack it."""
    import inspect

    from websockets.sync.client import connect

    return {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


#: the largest message either side accepts (the server's request body limit)
WS_MAX_SIZE = 16 * 1024 * 1024


class RemoteEnvError(RuntimeError):
    """The env server could not carry on this episode (restart, lost session, connection, env error)."""


class EnvServerUnreachable(RemoteEnvError):
    """No connection to the env server could be opened (nothing was sent: safe to try again)."""


class _TransportRetry:
    """Which failed HTTP requests are sent again: a refused connection while opening a session (until
    ``connect_wait_s``), and a keyed step once (the server applies a key once, so a repeat is safe)."""

    def __init__(self, env: RemoteEnv, what: str, opening: bool, idempotent: bool):
        self.env, self.what, self.idempotent = env, what, idempotent
        self.connect_by = time.monotonic() + (env.connect_wait_s if opening else 0.0)

    def after(self, e: httpx.HTTPError) -> float:
        """Seconds to wait before sending again; raises the typed error when it may not be sent again."""
        if isinstance(e, httpx.ConnectError) and time.monotonic() + 0.2 <= self.connect_by:
            return 0.2
        if self.idempotent and isinstance(e, httpx.TransportError):
            self.idempotent = False
            self.env.step_retries += 1
            log.warning("env server %s: %s failed (%s: %s); sending it again with the same key", self.env.url,
                        self.what, type(e).__name__, e or "no detail")
            return 0.0
        raise self.env._connection_error(self.what, e) from e


class RemoteEnv(Env):
    """A client of an agentenv env server; see the module docstring.

    ``timeout_s`` bounds each request (connect, or one message and its answer; over HTTP a step whose
    answer was lost is sent once more, so it may take twice that). ``capacity_wait_s`` is how long ``reset``
    keeps retrying while the server is at its session cap (429, honouring ``Retry-After``); 0 raises at once.
    ``connect_wait_s`` is how long ``reset`` keeps retrying a server that refuses connections (restarting).
    ``ping_interval_s`` / ``ping_timeout_s`` are the WebSocket heartbeat (None: no pings). ``transport`` is
    ``"ws"`` or ``"http"``; None picks ``"ws"`` when ``websockets`` is installed.

    ``step_retries`` counts the steps sent again after a lost answer; ``stale_replies`` the WebSocket replies
    dropped because they answered an older request.
    """

    family: ClassVar[str] = "remote"

    def __init__(self, url: str, timeout_s: float = 60.0, capacity_wait_s: float = 0.0,
                 transport: str | None = None, connect_wait_s: float = 0.0, ping_interval_s: float | None = 10.0,
                 ping_timeout_s: float | None = 10.0, **kwargs: Any):
        if kwargs:
            raise ValueError(f"RemoteEnv takes url, timeout_s, capacity_wait_s, connect_wait_s, ping_interval_s, "
                             f"ping_timeout_s and transport; unknown "
                             f"{sorted(kwargs)} (the server's env kwargs are set where it is started: "
                             "agentenv serve-env -e KEY=VALUE)")
        if transport is None:
            transport = "ws" if websockets_available() else "http"
        if transport not in ("ws", "http"):
            raise ValueError(f"transport must be 'ws' or 'http', got {transport!r}")
        if transport == "ws" and not websockets_available():
            raise ValueError("transport='ws' needs the websockets package (pip install 'agentenv[serve]'), "
                             "or use transport='http'")
        super().__init__(max_invalid_actions=None)
        self.url = url.rstrip("/")
        self.transport = transport
        self.ws_url = "ws" + self.url[4:] + "/sessions/ws" if self.url.startswith("http") else self.url
        self.timeout_s, self.capacity_wait_s, self.connect_wait_s = timeout_s, capacity_wait_s, connect_wait_s
        self.ping_interval_s, self.ping_timeout_s = ping_interval_s, ping_timeout_s
        self.step_retries = 0
        self.stale_replies = 0
        self._message_ids = itertools.count(1)
        self._ws: Any = None  # websockets.sync.client.ClientConnection
        self._aws: Any = None  # websockets.asyncio.client.ClientConnection, bound to _aws_loop
        self._aws_loop: asyncio.AbstractEventLoop | None = None
        self._session_on: str | None = None  # "sync" / "async": the connection holding the session
        self.session_id: str | None = None
        self.instance_id: str | None = None
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # ----- HTTP plumbing ----------------------------------------------------------------------------
    def _sync(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=self.timeout_s, verify=_tls())
        return self._client

    def _async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:  # a client is bound to one event loop
            self._aclient = httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s, verify=_tls(),
                                              limits=httpx.Limits(max_connections=4, max_keepalive_connections=4))
            self._aclient_loop = loop
        return self._aclient

    def _request(self, method: str, path: str, json: Any = None, *, opening: bool = False,
                 idempotent: bool = False) -> dict[str, Any]:
        """One request: ``opening`` (a reset) waits for a refusing server up to ``connect_wait_s``;
        ``idempotent`` (a keyed step) is sent once more when its answer is lost."""
        what = f"{method} {path}"
        deadline = time.monotonic() + self.capacity_wait_s
        retry = _TransportRetry(self, what, opening, idempotent)
        while True:
            try:
                response = self._sync().request(method, path, json=json)
            except httpx.HTTPError as e:
                time.sleep(retry.after(e))
                continue
            delay = self._retry_delay(response, deadline)
            if delay is None:
                return self._check(what, response)
            time.sleep(delay)

    async def _arequest(self, method: str, path: str, json: Any = None, *, opening: bool = False,
                        idempotent: bool = False) -> dict[str, Any]:
        what = f"{method} {path}"
        deadline = time.monotonic() + self.capacity_wait_s
        retry = _TransportRetry(self, what, opening, idempotent)
        while True:
            try:
                response = await self._async().request(method, path, json=json)
            except httpx.HTTPError as e:
                await asyncio.sleep(retry.after(e))
                continue
            delay = self._retry_delay(response, deadline)
            if delay is None:
                return self._check(what, response)
            await asyncio.sleep(delay)

    @staticmethod
    def _retry_delay(response: httpx.Response, deadline: float) -> float | None:
        """Seconds to wait before retrying a 429, or None to stop (not a 429, or out of patience)."""
        if response.status_code != 429:
            return None
        try:
            delay = min(max(float(response.headers.get("retry-after", "1")), 0.05), 30.0)
        except ValueError:
            delay = 1.0
        return delay if time.monotonic() + delay <= deadline else None

    def _connection_error(self, what: str, e: httpx.HTTPError) -> RemoteEnvError:
        kind = EnvServerUnreachable if isinstance(e, httpx.ConnectError) else RemoteEnvError
        return kind(f"env server {self.url}: {what} failed: {type(e).__name__}: {e or 'no detail'} "
                    "(is the server running and reachable?)")

    def _check(self, what: str, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RemoteEnvError(f"env server {self.url}: {what} answered {response.status_code} with a non-JSON "
                                 f"body: {response.text[:200]!r}")
        message = str(body.get("error", body.get("detail", "")))[:1000]
        instance = response.headers.get(INSTANCE_HEADER) or body.get("instance_id")
        if self.session_id is not None and self.instance_id is not None and instance \
                and instance != self.instance_id and not what.startswith("DELETE"):
            raise RemoteEnvError(f"env server {self.url} restarted (instance {self.instance_id} is now {instance}); "
                                 f"session {self.session_id} and its episode are lost")
        status = response.status_code
        if status >= 400:
            lost = status in (404, 410) and self.session_id is not None and "/sessions/" in what
            self._raise_error(what, status, message, lost=lost)
        return body

    def _raise_error(self, what: str, status: Any, message: str, kind: str = "", lost: bool = False) -> NoReturn:
        """The error an answer ``status`` means, the same for both transports."""
        if lost:
            raise RemoteEnvError(f"env server {self.url} no longer has session {self.session_id} "
                                 f"(expired, closed, or the server restarted): {message}")
        if status == 429:
            raise RemoteEnvError(f"env server {self.url} is at its session cap: {message}")
        if status == 502:
            raise RemoteEnvError(f"env server {self.url}: {message}")
        raise RemoteEnvError(f"env server {self.url}: {what} answered {status}{f' ({kind})' if kind else ''}: "
                             f"{message}")

    # ----- WebSocket plumbing -----------------------------------------------------------------------
    def _ws_options(self) -> dict[str, Any]:
        tls = {"ssl": _tls()} if self.ws_url.startswith("wss:") else {}
        # a peer that missed its pong cannot answer a close either: wait for that no longer than for the pong
        close_timeout = min(2.0, self.ping_timeout_s) if self.ping_timeout_s else 2.0
        return {"open_timeout": self.timeout_s, "close_timeout": close_timeout, "max_size": WS_MAX_SIZE,
                "compression": None, "ping_interval": self.ping_interval_s, "ping_timeout": self.ping_timeout_s, **tls}

    def _connect_error(self, what: str, e: BaseException) -> RemoteEnvError:
        return EnvServerUnreachable(f"env server {self.url}: {what} failed: cannot open a WebSocket to "
                                    f"{self.ws_url}: {type(e).__name__}: {e or 'no detail'} (is the server running "
                                    "and reachable?)")

    def _ws_lost(self, what: str, e: BaseException) -> RemoteEnvError:
        lost = f"; session {self.session_id} and its episode are lost" if self.session_id else ""
        if isinstance(e, TimeoutError):
            return RemoteEnvError(f"env server {self.url}: {what} failed: TimeoutError: no answer within "
                                  f"{self.timeout_s:g} s, so the WebSocket was closed{lost}")
        return RemoteEnvError(f"env server {self.url}: {what} failed: the WebSocket connection was lost "
                              f"({type(e).__name__}: {e or 'no detail'}){lost} (did the server stop or restart?)")

    def _sync_ws(self, what: str) -> Any:
        if self._ws is None:
            from websockets.sync.client import connect

            try:
                self._ws = connect(self.ws_url, **self._ws_options(), **_sync_connect_flags())
            except Exception as e:
                raise self._connect_error(what, e) from e
        return self._ws

    def _drop_sync(self) -> None:
        """Close the sync connection (the server frees the session it held at once)."""
        ws, self._ws = self._ws, None
        if self._session_on == "sync":
            self._session_on = None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()

    def _release_async(self, wait: bool = False) -> None:
        """Let the async connection go, from any thread (the server frees the session it held)."""
        ws, loop = self._aws, self._aws_loop
        self._aws = self._aws_loop = None
        if self._session_on == "async":
            self._session_on = None
        if ws is None or loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with contextlib.suppress(Exception):
            if loop is running or loop.is_closed() or not loop.is_running():
                ws.transport.abort()
            elif wait:
                asyncio.run_coroutine_threadsafe(ws.close(), loop).result(timeout=5)
            else:
                loop.call_soon_threadsafe(ws.transport.abort)

    def _decode(self, what: str, raw: Any) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (TypeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise RemoteEnvError(f"env server {self.url}: {what} answered with a non-JSON message: {str(raw)[:200]!r}")
        return body

    def _ws_retry(self, body: dict[str, Any], deadline: float) -> float | None:
        if body.get("status") != 429 or "error" not in body:
            return None
        return 0.25 if time.monotonic() + 0.25 <= deadline else None

    def _ws_check(self, what: str, body: dict[str, Any]) -> dict[str, Any]:
        if "error" not in body:
            return body
        status, kind, message = body.get("status"), str(body.get("type") or ""), str(body["error"])[:1000]
        lost = self.session_id is not None and (status in (404, 410) or kind == "no_session")
        self._raise_error(what, status, message, kind, lost)

    def _current(self, what: str, raw: Any, request_id: int) -> dict[str, Any] | None:
        """The reply ``raw`` decoded, or None when it answers another (older) request: dropped."""
        body = self._decode(what, raw)
        if body.get("id", request_id) != request_id:
            self.stale_replies += 1
            log.info("env server %s: dropped a late reply to request %r (waiting for %d)", self.url, body.get("id"),
                     request_id)
            return None
        return body

    def _ws_roundtrip(self, message: dict[str, Any]) -> dict[str, Any]:
        """One message and its answer on the sync connection (reset retries while the server is full)."""
        what = f"WebSocket {message['op']}"
        deadline = time.monotonic() + self.capacity_wait_s
        while True:
            ws = self._sync_ws(what)
            request_id = next(self._message_ids)
            body: dict[str, Any] | None = None
            try:
                ws.send(json.dumps({**message, "id": request_id}))
                answer_by = time.monotonic() + self.timeout_s
                while body is None:
                    body = self._current(what, ws.recv(timeout=max(0.0, answer_by - time.monotonic())), request_id)
            except RemoteEnvError:
                raise
            except Exception as e:  # lost, or no answer in time: drop the connection (and the session on it)
                self._drop_sync()
                raise self._ws_lost(what, e) from e
            delay = self._ws_retry(body, deadline)
            if delay is None:
                return self._ws_check(what, body)
            time.sleep(delay)

    async def _aws_roundtrip(self, message: dict[str, Any]) -> dict[str, Any]:
        """One message and its answer on this event loop's connection."""
        what = f"WebSocket {message['op']}"
        deadline = time.monotonic() + self.capacity_wait_s
        while True:
            ws = self._aws
            if ws is None:
                from websockets.asyncio.client import connect

                try:
                    ws = self._aws = await connect(self.ws_url, **self._ws_options())
                except Exception as e:
                    raise self._connect_error(what, e) from e
                self._aws_loop = asyncio.get_running_loop()
            request_id = next(self._message_ids)
            body: dict[str, Any] | None = None
            try:
                await ws.send(json.dumps({**message, "id": request_id}))
                async with asyncio.timeout(self.timeout_s):
                    while body is None:
                        body = self._current(what, await ws.recv(), request_id)
            except RemoteEnvError:
                raise
            except BaseException as e:  # cancelled mid-call too: the session's state is unknown
                self._release_async()
                if isinstance(e, Exception):
                    raise self._ws_lost(what, e) from e
                raise
            delay = self._ws_retry(body, deadline)
            if delay is None:
                return self._ws_check(what, body)
            await asyncio.sleep(delay)

    def _owner_loop(self, what: str) -> asyncio.AbstractEventLoop:
        loop = self._aws_loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._release_async()
            raise RemoteEnvError(f"env server {self.url}: {what} failed: session {self.session_id} was opened on an "
                                 "event loop that has ended, and its WebSocket with it; the episode is lost")
        return loop

    def _ws_call(self, message: dict[str, Any]) -> dict[str, Any]:
        """A session call from the sync API, sent on the connection that holds the session."""
        if self._session_on != "async":
            return self._ws_roundtrip(message)
        loop = self._owner_loop(f"WebSocket {message['op']}")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError(f"RemoteEnv({self.url}): a sync call inside the event loop that holds its session "
                               "would block that loop; use the *_async methods")
        return asyncio.run_coroutine_threadsafe(self._aws_roundtrip(message), loop).result()

    async def _aws_call(self, message: dict[str, Any]) -> dict[str, Any]:
        """A session call from the async API, sent on the connection that holds the session."""
        if self._session_on == "sync":
            return await asyncio.to_thread(self._ws_roundtrip, message)
        if self._aws is not None and self._aws_loop is not asyncio.get_running_loop():
            if self._session_on == "async":  # the session lives on another (running) loop: run the call there
                loop = self._owner_loop(f"WebSocket {message['op']}")
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._aws_roundtrip(message), loop))
            self._release_async()  # an idle connection of another loop: this loop opens its own
        return await self._aws_roundtrip(message)

    # ----- sessions ---------------------------------------------------------------------------------
    def _start(self, body: dict[str, Any]) -> tuple[Observation, dict[str, Any]]:
        self.session_id = body["session_id"]
        self.instance_id = body.get("instance_id")
        self._done = False
        self.turn = 0
        return body["observation"], body.get("info", {})

    def _step_result(self, body: dict[str, Any]) -> StepTuple:
        terminated, truncated = bool(body["terminated"]), bool(body["truncated"])
        self.turn += 1
        self._done = terminated or truncated
        return body["observation"], float(body["reward"]), terminated, truncated, body.get("info", {})

    def _ensure_running(self) -> str:
        if self._closed:
            raise RuntimeError(f"RemoteEnv({self.url}) was closed; make a new env")
        if self._done or self.session_id is None:
            raise ResetNeeded("call reset() before step(): the episode has not started or has ended")
        return self.session_id

    @staticmethod
    def _reset_body(seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        return {"seed": seed, "options": options}

    # ----- the Env contract (sync) ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Observation, dict[str, Any]]:
        if self._closed:
            raise RuntimeError(f"RemoteEnv({self.url}) was closed; make a new env")
        if self.transport == "ws":
            if self._session_on == "async":
                self._release_async(wait=True)
            self.session_id = None  # a reset on the connection closes its previous session on the server
            connect_by = time.monotonic() + self.connect_wait_s
            while True:
                try:
                    body = self._ws_roundtrip({"op": "reset", **self._reset_body(seed, options)})
                    break
                except EnvServerUnreachable:
                    if time.monotonic() + 0.2 > connect_by:
                        raise
                    time.sleep(0.2)
            self._session_on = "sync"
            return self._start(body)
        self._end_session()
        return self._start(self._request("POST", "/sessions", self._reset_body(seed, options), opening=True))

    def step(self, action: str) -> StepTuple:
        sid = self._ensure_running()
        message = {"action": action, "seq": self.turn + 1}  # the key of this step (see the module docstring)
        if self.transport == "ws":
            return self._step_result(self._ws_call({"op": "step", **message}))
        return self._step_result(self._request("POST", f"/sessions/{sid}/step", message, idempotent=True))

    def expert_action(self) -> str | None:
        sid = self._ensure_running()
        if self.transport == "ws":
            action = self._ws_call({"op": "expert"}).get("action")
            return action if isinstance(action, str) else None
        action = self._request("POST", f"/sessions/{sid}/expert").get("action")
        return action if isinstance(action, str) else None

    def _end_session(self) -> None:
        sid, self.session_id = self.session_id, None
        if sid is not None:
            with contextlib.suppress(RemoteEnvError):  # already gone (expired, restart): nothing to free
                self._request("DELETE", f"/sessions/{sid}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.transport == "ws":  # closing the connection frees its session on the server at once
                self.session_id = None
                self._drop_sync()
                self._release_async(wait=True)
                return
            self._end_session()
            if self._client is not None:
                self._client.close()
            self._aclient = None  # an AsyncClient can only be closed on its loop: close_async does that

    def render(self) -> str | None:
        return None

    # ----- native async twins ------------------------------------------------------------------------
    async def reset_async(self, *, seed: int | None = None,
                          options: dict[str, Any] | None = None) -> tuple[Observation, dict[str, Any]]:
        if self._closed:
            raise RuntimeError(f"RemoteEnv({self.url}) was closed; make a new env")
        if self.transport == "ws":
            if self._session_on == "sync":
                await asyncio.to_thread(self._drop_sync)
            self.session_id = None
            connect_by = time.monotonic() + self.connect_wait_s
            while True:
                try:
                    body = await self._aws_call({"op": "reset", **self._reset_body(seed, options)})
                    break
                except EnvServerUnreachable:
                    if time.monotonic() + 0.2 > connect_by:
                        raise
                    await asyncio.sleep(0.2)
            self._session_on = "async"
            return self._start(body)
        await self._aend_session()
        return self._start(await self._arequest("POST", "/sessions", self._reset_body(seed, options), opening=True))

    async def step_async(self, action: str) -> StepTuple:
        sid = self._ensure_running()
        message = {"action": action, "seq": self.turn + 1}
        if self.transport == "ws":
            return self._step_result(await self._aws_call({"op": "step", **message}))
        return self._step_result(await self._arequest("POST", f"/sessions/{sid}/step", message, idempotent=True))

    async def expert_action_async(self) -> str | None:
        sid = self._ensure_running()
        if self.transport == "ws":
            action = (await self._aws_call({"op": "expert"})).get("action")
            return action if isinstance(action, str) else None
        action = (await self._arequest("POST", f"/sessions/{sid}/expert")).get("action")
        return action if isinstance(action, str) else None

    async def _aend_session(self) -> None:
        sid, self.session_id = self.session_id, None
        if sid is not None:
            with contextlib.suppress(RemoteEnvError):
                await self._arequest("DELETE", f"/sessions/{sid}")

    async def close_async(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.transport == "ws":
            self.session_id = None
            if self._ws is not None:
                await asyncio.to_thread(self._drop_sync)
            aws = self._aws
            if aws is not None and self._aws_loop is asyncio.get_running_loop():
                self._aws = self._aws_loop = None
                self._session_on = None
                with contextlib.suppress(Exception):
                    await aws.close()
            self._release_async()
            return
        with contextlib.suppress(Exception):
            await self._aend_session()
        aclient, self._aclient = self._aclient, None
        if aclient is not None and self._aclient_loop is asyncio.get_running_loop():
            await aclient.aclose()
        if self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r}, session={self.session_id})"
