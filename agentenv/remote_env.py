"""An Env whose episodes run on an agentenv env server (:mod:`agentenv.env_server`) over HTTP.

``RemoteEnv(url)`` is itself an agentenv :class:`~agentenv.env.Env`, so the collector, the checker and user
code drive a remote environment exactly as a local one: ``reset`` opens a session on the server (closing
the previous one), ``step`` sends the raw action text, and observations, infos, rewards and flags come
back as the server's env produced them (JSON round-tripped: tuples arrive as lists).

``reset_async`` / ``step_async`` are native coroutines on a pooled ``httpx.AsyncClient`` (no thread per
call), so one collector runs hundreds of remote episodes concurrently.

Why failures are exceptions: a lost session cannot be continued. A server restart (its ``instance_id``
changed, or it no longer knows the session), a connection failure or an env that raised on the server
makes the call raise :class:`RemoteEnvError` naming the URL and what happened; the collector records the
episode as failed (``env_error``) with that message, and may retry it on a fresh session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from typing import Any, ClassVar

import httpx

from agentenv.env import Env, ResetNeeded
from agentenv.messages import Observation

INSTANCE_HEADER = "x-agentenv-instance"  # the same as agentenv.env_server's (not imported: no fastapi needed)

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


class RemoteEnvError(RuntimeError):
    """The env server could not carry on this episode (restart, lost session, connection, env error)."""


class RemoteEnv(Env):
    """A client of an agentenv env server; see the module docstring.

    ``timeout_s`` bounds each HTTP request. ``capacity_wait_s`` is how long ``reset`` keeps retrying while
    the server is at its session cap (429, honouring ``Retry-After``); 0 raises at once.
    """

    family: ClassVar[str] = "remote"

    def __init__(self, url: str, timeout_s: float = 60.0, capacity_wait_s: float = 0.0, **kwargs: Any):
        if kwargs:
            raise ValueError(f"RemoteEnv takes url, timeout_s and capacity_wait_s; unknown {sorted(kwargs)} (the "
                             "server's env kwargs are set where it is started: agentenv serve-env -e KEY=VALUE)")
        super().__init__(max_invalid_actions=None)
        self.url = url.rstrip("/")
        self.timeout_s, self.capacity_wait_s = timeout_s, capacity_wait_s
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

    def _request(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        what = f"{method} {path}"
        deadline = time.monotonic() + self.capacity_wait_s
        while True:
            try:
                response = self._sync().request(method, path, json=json)
            except httpx.HTTPError as e:
                raise self._connection_error(what, e) from e
            delay = self._retry_delay(response, deadline)
            if delay is None:
                return self._check(what, response)
            time.sleep(delay)

    async def _arequest(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        what = f"{method} {path}"
        deadline = time.monotonic() + self.capacity_wait_s
        while True:
            try:
                response = await self._async().request(method, path, json=json)
            except httpx.HTTPError as e:
                raise self._connection_error(what, e) from e
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
        return RemoteEnvError(f"env server {self.url}: {what} failed: {type(e).__name__}: {e or 'no detail'} "
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
        if status in (404, 410) and self.session_id is not None and "/sessions/" in what:
            raise RemoteEnvError(f"env server {self.url} no longer has session {self.session_id} "
                                 f"(expired, closed, or the server restarted): {message}")
        if status == 429:
            raise RemoteEnvError(f"env server {self.url} is at its session cap: {message}")
        if status == 502:
            raise RemoteEnvError(f"env server {self.url}: {message}")
        if status >= 400:
            raise RemoteEnvError(f"env server {self.url}: {what} answered {status}: {message}")
        return body

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
        self._end_session()
        return self._start(self._request("POST", "/sessions", self._reset_body(seed, options)))

    def step(self, action: str) -> StepTuple:
        sid = self._ensure_running()
        return self._step_result(self._request("POST", f"/sessions/{sid}/step", {"action": action}))

    def expert_action(self) -> str | None:
        sid = self._ensure_running()
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
        await self._aend_session()
        return self._start(await self._arequest("POST", "/sessions", self._reset_body(seed, options)))

    async def step_async(self, action: str) -> StepTuple:
        sid = self._ensure_running()
        return self._step_result(await self._arequest("POST", f"/sessions/{sid}/step", {"action": action}))

    async def expert_action_async(self) -> str | None:
        sid = self._ensure_running()
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
        with contextlib.suppress(Exception):
            await self._aend_session()
        aclient, self._aclient = self._aclient, None
        if aclient is not None and self._aclient_loop is asyncio.get_running_loop():
            await aclient.aclose()
        if self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"RemoteEnv({self.url!r}, session={self.session_id})"
