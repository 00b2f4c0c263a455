"""Any registered env served over HTTP (FastAPI), one session per episode.

    POST   /sessions             {"seed"?, "options"?} -> new env, reset: {"session_id", "observation", "info"}
    POST   /sessions/{id}/step   {"action": str, "seq"?: int}
                                 -> {"observation", "reward", "terminated", "truncated", "info", "seq"?}
    POST   /sessions/{id}/expert                       -> {"action": str | null} (the env's expert, for DAgger)
    DELETE /sessions/{id}                              -> close it
    WS     /sessions/ws                                -> the same over one WebSocket (below)
    GET    /health, GET /info, GET /openapi.json

The WebSocket transport (``/sessions/ws``) carries one session at a time per connection, with JSON text
messages answered in order, one reply per message::

    {"op": "reset", "seed"?: int, "options"?: dict} -> {"session_id", "observation", "info", "instance_id"}
    {"op": "step", "action": str, "seq"?: int}      -> {"observation", "reward", "terminated", "truncated", "info",
                                                        "instance_id", "seq"?}
    {"op": "expert"}                                -> {"action": str | null, "instance_id"}
    {"op": "close"}                                 -> {"closed": bool, "session_id", "instance_id"}
    any error                                       -> {"error", "type", "status", "instance_id"}

``status`` is the HTTP status the same error gets over HTTP (422 bad message, 409 step before reset or
after the episode ended or a stale step key, 410 expired, 429 at the cap, 502 env error). Any message may
carry an ``"id"`` (an integer or a short string), echoed in its reply (errors too), so a client can drop a
reply that answers an older request instead of taking it for the current one's. An error never closes the
connection: the client may send the next message. A ``reset`` on a connection that holds a session closes
that session first. It uses the same sessions as HTTP (the cap counts both, idle expiry applies to both),
and it is faster (no per-request HTTP parsing or routing) and frees resources sooner: **a connection that
closes or drops frees its session at once**, where HTTP can only wait for idle expiry.

Why it is built this way:

* **Sessions, not one shared env.** Each episode gets its own env object, so hundreds of episodes from
  many collectors proceed at once; an id is unguessable (``secrets.token_urlsafe``) so clients cannot
  step each other's episodes by accident.
* **Env calls never block the event loop.** Every reset/step goes through the env's ``reset_async`` /
  ``step_async`` (a worker thread for sync envs, on a pool sized for the session cap), so one slow env does
  not stall the others. The one exception is opt-in: an env class that sets ``nonblocking_steps = True``
  declares that its ``step`` and ``expert_action`` never block and take microseconds (pure-Python text
  worlds), and the server then calls them inline on the event loop, saving the thread hop (~50-100 us, a
  large part of the per-step overhead of such envs). Never set it on an env that does I/O, sleeps, runs
  a sandbox or a browser, or can take more than about a millisecond: it would stall every other session.
  Envs that do not declare it (the default) always run in a worker thread.
* **Bounded and self-cleaning.** At most ``max_sessions`` are open (429 with ``Retry-After`` past that).
  A client that disconnects mid-episode (crash, network loss) frees its session when it sends
  ``DELETE`` or, at the latest, when the session has been idle for ``idle_timeout_s``: a background task
  closes it, and its id then answers 410 "expired". HTTP gives no reliable signal of a vanished client
  between requests, so idle expiry is the guarantee; DELETE is the fast path.
* **No tracebacks over the wire.** Bad requests get 4xx with a typed JSON body (``{"error", "type"}``, also
  for unknown paths and methods; FastAPI's 422 for schema errors);
  an env that raises gets 502 ``{"error", "type": "env_error", "exception"}`` and its session is closed
  (its state is unknown); anything else unexpected gets a JSON 500 without a traceback. The server logs
  the traceback.
* **A step is applied once per key.** A step may carry ``seq``, its 1-based index in the session (an
  idempotency key). The session remembers the last applied key and its answer: the same key again gets
  that answer without stepping the env (and, while that step is still running, waits for it); an older key
  is a 409 ``stale_step``, one that skips ahead a 409 ``step_out_of_order``. So a client whose answer was
  lost (a connection reset, a timeout while the env was stepping) may send the step again on a new
  connection and cannot apply it twice (reliability F09). ``/info`` counts the env steps applied and the
  answers replayed. Over a WebSocket the session dies with its connection, so there is no new connection to
  retry on; the key still makes a repeated message harmless there.
* **Restarts are detectable.** ``instance_id`` (random per process) is in every response's
  ``x-agentenv-instance`` header and in the bodies, so a client can tell "my session expired" from "the
  server restarted and every session is gone".
* **JSON-safe payloads.** Infos may hold numpy scalars, sets, bytes or arbitrary objects: they are
  converted (``.item()``, lists, text) or replaced by a short ``repr``, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentenv.env import Env, ResetNeeded
from agentenv.registry import env_info, make, resolve_id
from agentenv.serving import ServerThread, serve_app
from agentenv.threads import DaemonThreadPool

log = logging.getLogger("agentenv.env_server")

INSTANCE_HEADER = "x-agentenv-instance"
#: request bodies larger than this are refused (413) before they are read: an action is text, not a file
MAX_BODY_BYTES = 16 * 1024 * 1024
_GONE_REMEMBERED = 10_000
#: env kwargs whose names look like credentials are not shown by GET /info
_SECRET_NAME = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)


# ----- request and response models (they are the OpenAPI schema) ------------------------------------
class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="reset seed (one seed = one task)")
    options: dict[str, Any] | None = Field(default=None, description="passed to env.reset(options=...)")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(description="the policy's raw text; the env parses it")
    seq: int | None = Field(default=None, ge=1, lt=2**63, strict=True,
                            description="the step's 1-based index in the session, an idempotency key: a repeat gets "
                                        "the remembered answer without stepping again")


class ResetResponse(BaseModel):
    session_id: str
    observation: dict[str, Any]
    info: dict[str, Any]
    instance_id: str


class StepResponse(BaseModel):
    observation: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    instance_id: str
    seq: int | None = None


class ExpertResponse(BaseModel):
    action: str | None
    instance_id: str


class CloseResponse(BaseModel):
    closed: bool
    session_id: str
    instance_id: str


class ErrorResponse(BaseModel):
    error: str
    type: str
    instance_id: str


class HealthResponse(BaseModel):
    status: str
    instance_id: str


class InfoResponse(BaseModel):
    env_id: str
    family: str
    env_kwargs: dict[str, Any]
    observation_space: str
    action_space: str
    sessions_open: int
    max_sessions: int
    idle_timeout_s: float
    steps_applied: int
    steps_replayed: int
    instance_id: str


# ----- JSON safety ------------------------------------------------------------------------------------
def to_jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` made JSON-safe: numpy scalars/arrays, sets, tuples, bytes and non-finite floats converted;
    anything else (or anything nested deeper than 32) replaced by a short ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf': JSON has no such numbers
    if _depth > 32:
        return _short_repr(value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): to_jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [to_jsonable(v, _depth + 1) for v in value]
        with contextlib.suppress(TypeError):
            items.sort()
        return items
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        with contextlib.suppress(Exception):
            return to_jsonable(value.tolist(), _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        with contextlib.suppress(Exception):
            return to_jsonable(dataclasses.asdict(value), _depth + 1)
    return _short_repr(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= 500 else text[:500] + "..."


def _dumps_text(payload: dict[str, Any]) -> str:
    try:  # fast path: most payloads are plain JSON already
        return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(to_jsonable(payload), separators=(",", ":"), ensure_ascii=False)


def _dumps(payload: dict[str, Any]) -> bytes:
    return _dumps_text(payload).encode()


class _JSON(Response):
    """A JSON response that survives any payload (see :func:`to_jsonable`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def _error(status: int, kind: str, message: str, instance_id: str, headers: dict[str, str] | None = None) -> _JSON:
    return _JSON({"error": message, "type": kind, "instance_id": instance_id}, status_code=status, headers=headers)


# ----- sessions -------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Session:
    id: str
    env: Env
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    #: steps applied so far (the key of the last one), and its answer, replayed to a repeat of that key
    applied_seq: int = 0
    last_reply: dict[str, Any] | None = None
    #: the step running now and its key (a repeat of that key waits for it)
    pending: asyncio.Future[dict[str, Any]] | None = None
    pending_seq: int | None = None


class _Failure(Exception):
    """An HTTP error answer raised from inside a handler."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def _inline(env: Env) -> bool:
    """Whether ``env`` declared its steps non-blocking and fast (see the module docstring)."""
    return getattr(type(env), "nonblocking_steps", False) is True  # gymnasium envs lack the attribute


async def _step(env: Env, action: str) -> Any:
    return env.step(action) if _inline(env) else await env.step_async(action)


async def _expert(env: Env) -> Any:
    return env.expert_action() if _inline(env) else await env.expert_action_async()


class _Sessions:
    """The open sessions, the ids that went away (and why), and the cap."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], max_sessions: int, idle_timeout_s: float):
        self.env_id, self.env_kwargs = env_id, env_kwargs
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self.open: dict[str, _Session] = {}
        self.gone: OrderedDict[str, str] = OrderedDict()
        self.reserved = 0  # sessions being created: they count toward the cap
        self.closing: set[asyncio.Task[None]] = set()
        self.steps_applied = 0  # env steps run
        self.steps_replayed = 0  # repeated step keys answered from memory

    def get(self, session_id: str) -> _Session:
        session = self.open.get(session_id)
        if session is not None:
            return session
        why = self.gone.get(session_id)
        if why is not None:
            raise _Failure(410, "session_gone", f"session {session_id} is gone: {why}")
        raise _Failure(404, "unknown_session", f"unknown session {session_id!r}: it was never created here, "
                       "or it was closed (a server restart also forgets every session)")

    def forget(self, session: _Session, why: str) -> None:
        if self.open.pop(session.id, None) is not None:
            self.gone[session.id] = why
            while len(self.gone) > _GONE_REMEMBERED:
                self.gone.popitem(last=False)
            self._close_soon(session)

    def _close_soon(self, session: _Session) -> None:
        """Close the env once any call in flight on it has finished (an env is not closed under a step)."""
        async def close() -> None:
            async with session.lock:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.env.close_async(), 30)
        task = asyncio.get_running_loop().create_task(close())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    def close_all(self) -> None:
        for session in list(self.open.values()):
            self.forget(session, "the server shut down")


# ----- the app --------------------------------------------------------------------------------------
def create_env_app(env_id: str, env_kwargs: dict[str, Any] | None = None, max_sessions: int = 1024,
                   idle_timeout_s: float = 600, max_workers: int | None = None) -> FastAPI:
    """A FastAPI app serving ``env_id`` (built with ``env_kwargs``); see the module docstring.

    One env is built and closed here, so that a bad id or keyword argument fails at start-up, not on the
    first client's request. ``max_workers`` bounds the threads that run sync env calls (default:
    ``min(max_sessions, 256)``).
    """
    from agentenv.collector import EnvCreationError

    if max_sessions < 1:
        raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
    if idle_timeout_s <= 0:
        raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
    env_id = resolve_id(env_id)
    kwargs = dict(env_kwargs or {})
    try:
        probe = make(env_id, **kwargs)
    except Exception as e:
        raise EnvCreationError(f"could not create env {env_id} with {kwargs}: {e!r}") from e
    family = str(getattr(probe, "family", env_info(env_id).family))
    spaces = (repr(probe.observation_space), repr(probe.action_space))
    with contextlib.suppress(Exception):
        probe.close()

    instance_id = secrets.token_urlsafe(12)
    public_kwargs = {k: "***" if _SECRET_NAME.search(k) else to_jsonable(v) for k, v in kwargs.items()}
    sessions = _Sessions(env_id, kwargs, max_sessions, idle_timeout_s)
    workers = max_workers or min(max_sessions, 256)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(DaemonThreadPool(max_workers=workers, thread_name_prefix="agentenv-env-server"))
        reaper = asyncio.create_task(_expire_idle(sessions))
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            sessions.close_all()
            if sessions.closing:
                await asyncio.wait(set(sessions.closing), timeout=10)

    app = FastAPI(title=f"agentenv env server: {env_id}", version="1", lifespan=lifespan,
                  description="One session per episode; see agentenv.env_server. The same sessions are also "
                  "served over a WebSocket at /sessions/ws (JSON messages {op: reset|step|expert|close}; one "
                  "session per connection, freed when the connection closes).")
    app.state.sessions = sessions
    app.state.instance_id = instance_id
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (404, 409, 410, 429, 502)}

    @app.exception_handler(_Failure)
    async def on_failure(request: Request, exc: _Failure) -> Response:
        return _error(exc.status, exc.kind, exc.message, instance_id, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        text = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
        return _JSON({"error": f"bad request: {text}", "type": "bad_request", "detail": problems,
                      "instance_id": instance_id}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # unknown paths (404) and methods (405) too: every error body is typed, never {"detail": ...} alone
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, kind, f"{request.method} {request.url.path}: {exc.detail}"[:500],
                      instance_id, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", f"internal error: {type(exc).__name__}: {str(exc)[:300]}", instance_id)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> Response:
        return _JSON({"status": "ok", "instance_id": instance_id})

    @app.get("/info", response_model=InfoResponse)
    async def info() -> Response:
        return _JSON({"env_id": env_id, "family": family, "env_kwargs": public_kwargs,
                      "observation_space": spaces[0], "action_space": spaces[1],
                      "sessions_open": len(sessions.open), "max_sessions": max_sessions,
                      "idle_timeout_s": idle_timeout_s, "steps_applied": sessions.steps_applied,
                      "steps_replayed": sessions.steps_replayed, "instance_id": instance_id})

    async def open_session(seed: int | None, options: dict[str, Any] | None) -> tuple[_Session, Any, Any]:
        """A new session, reset with ``seed``/``options`` (both transports use this)."""
        if len(sessions.open) + sessions.reserved >= max_sessions:
            raise _Failure(429, "at_capacity", f"the server holds its maximum of {max_sessions} sessions; close "
                           "finished sessions (DELETE /sessions/{id}, or close the WebSocket) or retry later",
                           {"Retry-After": "1"})
        sessions.reserved += 1
        made: list[Env] = []
        try:
            made.append(await asyncio.to_thread(make, env_id, **kwargs))
            obs, reset_info = await made[0].reset_async(seed=seed, options=options)
        except Exception as e:
            for env in made:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(env.close)
            log.warning("env %s failed to start a session: %r", env_id, e)
            what = "creating the env" if not made else "reset"
            raise _Failure(502, "env_error", f"the env raised during {what}: {type(e).__name__}: "
                           f"{str(e)[:500]}") from None
        finally:
            sessions.reserved -= 1
        session = _Session(secrets.token_urlsafe(16), made[0])
        sessions.open[session.id] = session
        return session, obs, reset_info

    @app.post("/sessions", response_model=ResetResponse, responses=errors)
    async def create_session(body: ResetRequest | None = None) -> Response:
        body = body or ResetRequest()
        session, obs, reset_info = await open_session(body.seed, body.options)
        return _JSON({"session_id": session.id, "observation": obs, "info": reset_info, "instance_id": instance_id})

    @app.post("/sessions/{session_id}/step", response_model=StepResponse, responses=errors)
    async def step(session_id: str, body: StepRequest) -> Response:
        session = sessions.get(session_id)
        return _JSON(await _apply_step(session, sessions, body.action, body.seq, instance_id))

    @app.post("/sessions/{session_id}/expert", response_model=ExpertResponse, responses=errors)
    async def expert(session_id: str) -> Response:
        session = sessions.get(session_id)
        action = await _locked(session, sessions, "expert_action", lambda: _expert(session.env))
        return _JSON({"action": action if isinstance(action, str) else None, "instance_id": instance_id})

    @app.delete("/sessions/{session_id}", response_model=CloseResponse, responses=errors)
    async def close_session(session_id: str) -> Response:
        session = sessions.get(session_id)
        sessions.forget(session, "it was closed by a client (DELETE)")
        return _JSON({"closed": True, "session_id": session_id, "instance_id": instance_id})

    # the WebSocket is served by the ASGI layer below, before Starlette's routing (a measurable cost per message)
    serve_socket = functools.partial(_serve_socket, sessions=sessions, open_session=open_session,
                                     instance_id=instance_id)
    app.add_middleware(_InstanceHeader, instance_id=instance_id, websocket=serve_socket)
    return app


async def _locked(session: _Session, sessions: _Sessions, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run one env call on ``session``; a concurrent call on the same session is refused (409)."""
    if session.lock.locked():
        raise _Failure(409, "session_busy", f"session {session.id} is already running a call; "
                       "send one request at a time per session")
    async with session.lock:
        if sessions.open.get(session.id) is not session:  # closed while we waited for the lock
            sessions.get(session.id)
        try:
            result = await call()
        except ResetNeeded as e:
            raise _Failure(409, "episode_ended", f"{e}; create a new session for the next episode") from None
        except Exception as e:
            log.warning("env %s raised in %s of session %s: %r", sessions.env_id, what, session.id, e)
            sessions.forget(session, f"the env raised during {what} ({type(e).__name__}) and the session was closed")
            raise _Failure(502, "env_error", f"the env raised during {what}: {type(e).__name__}: "
                           f"{str(e)[:500]}; the session was closed") from None
        finally:
            session.last_used = time.monotonic()
    return result


async def _apply_step(session: _Session, sessions: _Sessions, action: str, seq: int | None,
                      instance_id: str) -> dict[str, Any]:
    """Step ``session`` with ``action``, at most once per key ``seq`` (see the module docstring); the answer."""
    if seq is not None:
        if seq == session.applied_seq and session.last_reply is not None:
            sessions.steps_replayed += 1
            return session.last_reply
        if seq == session.pending_seq and session.pending is not None:  # the same step, still running
            sessions.steps_replayed += 1
            return await asyncio.shield(session.pending)
        expected = session.applied_seq + 1
        if seq < expected:
            raise _Failure(409, "stale_step", f"step key {seq} is stale: session {session.id} has applied "
                           f"{session.applied_seq} steps and remembers the answer of the last one only")
        if seq > expected and not session.lock.locked():
            raise _Failure(409, "step_out_of_order", f"step key {seq} skips ahead: session {session.id} has applied "
                           f"{session.applied_seq} steps, so the next key is {expected}")
    if session.lock.locked():  # checked here too, so that a refused call does not replace the running one's future
        raise _Failure(409, "session_busy", f"session {session.id} is already running a call; "
                       "send one request at a time per session")
    pending: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    pending.add_done_callback(_retrieved)
    session.pending, session.pending_seq = pending, seq

    async def call() -> Any:
        sessions.steps_applied += 1
        return await _step(session.env, action)

    try:
        obs, reward, terminated, truncated, info = await _locked(session, sessions, "step", call)
        reply: dict[str, Any] = {"observation": obs, "reward": float(reward), "terminated": bool(terminated),
                                 "truncated": bool(truncated), "info": info, "instance_id": instance_id}
        if seq is not None:
            reply["seq"] = seq
        session.applied_seq += 1
        session.last_reply = reply
        pending.set_result(reply)
        return reply
    except Exception as e:
        pending.set_exception(e)
        raise
    finally:
        pending.cancel()  # a no-op once settled; a cancelled step (shutdown) cancels its waiters
        if session.pending is pending:
            session.pending, session.pending_seq = None, None


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a settled future's exception as seen (nobody may be waiting on it)."""
    if not future.cancelled():
        future.exception()


_OpenSession = Callable[[int | None, dict[str, Any] | None], Awaitable[tuple[_Session, Any, Any]]]


def _bad(message: str) -> _Failure:
    return _Failure(422, "bad_request", f"bad message: {message}")


def _parse_message(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """A WebSocket message checked by hand (no pydantic on the hot path): its op and fields, or a 422."""
    try:
        message = json.loads(raw)
    except ValueError as e:  # UnicodeDecodeError too
        raise _bad(f"not JSON ({e})") from None
    except RecursionError:  # "[[[[..." nested past the parser's depth (reliability L09 found it as a 500)
        raise _bad("not JSON (nested too deeply)") from None
    if not isinstance(message, dict):
        raise _bad("expected a JSON object such as {\"op\": \"step\", \"action\": \"...\"}")
    op = message.get("op")
    allowed = _WS_FIELDS.get(op) if isinstance(op, str) else None
    if allowed is None:
        raise _bad(f"op must be one of {sorted(_WS_FIELDS)}, got {op!r}")
    extra = message.keys() - allowed - {"op", "id"}
    if extra:
        raise _bad(f"{op}: extra fields {sorted(extra)} (allowed: {sorted(allowed | {'id'})})")
    if op == "step" and not isinstance(message.get("action"), str):
        raise _bad("step: action must be a string (the policy's raw text)")
    request_id = message.get("id")
    if request_id is not None and type(request_id) is not int and not (isinstance(request_id, str)
                                                                       and len(request_id) <= 128):
        raise _bad("id must be an integer or a string of at most 128 characters")
    seq = message.get("seq")
    if seq is not None and (type(seq) is not int or not 1 <= seq < 2**63):
        raise _bad(f"step: seq must be an integer in [1, 2**63) or null, got {seq!r}"[:300])
    if op == "reset":
        seed, options = message.get("seed"), message.get("options")
        if seed is not None and (type(seed) is not int or not 0 <= seed < 2**63):
            raise _bad(f"reset: seed must be an integer in [0, 2**63) or null, got {seed!r}"[:300])
        if options is not None and not isinstance(options, dict):
            raise _bad("reset: options must be an object or null")
    return str(op), message


_WS_FIELDS: dict[str, set[str]] = {"reset": {"seed", "options"}, "step": {"action", "seq"}, "expert": set(),
                                   "close": set()}


def _message_id(raw: str | bytes) -> Any:
    """The ``id`` of a message, to echo in its reply (also when the message is refused), or None."""
    with contextlib.suppress(ValueError, TypeError, AttributeError, RecursionError):
        value = json.loads(raw).get("id")
        if value is None or type(value) is int or (isinstance(value, str) and len(value) <= 128):
            return value
    return None


async def _serve_socket(receive: Any, send: Any, *, sessions: _Sessions, open_session: _OpenSession,
                        instance_id: str) -> None:
    """One WebSocket connection (raw ASGI): messages answered in order; its session is freed when it closes."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept", "headers": [(INSTANCE_HEADER.encode(), instance_id.encode())]})
    session: _Session | None = None

    def current() -> _Session:
        if session is None:
            raise _Failure(409, "no_session", 'no session on this connection: send {"op": "reset"} first')
        return sessions.get(session.id)  # 410 once it expired or the env raised

    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return  # websocket.disconnect
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            request_id, parsed = None, False
            try:
                op, body = _parse_message(raw)
                request_id, parsed = body.get("id"), True
                if op == "step":
                    reply = await _apply_step(current(), sessions, body["action"], body.get("seq"), instance_id)
                elif op == "reset":
                    if session is not None:
                        sessions.forget(session, "its WebSocket client reset into a new session")
                        session = None
                    session, obs, info = await open_session(body.get("seed"), body.get("options"))
                    reply = {"session_id": session.id, "observation": obs, "info": info, "instance_id": instance_id}
                elif op == "expert":
                    live = current()
                    action = await _locked(live, sessions, "expert_action", functools.partial(_expert, live.env))
                    reply = {"action": action if isinstance(action, str) else None, "instance_id": instance_id}
                else:  # close
                    closed = session is not None and sessions.open.get(session.id) is session
                    reply = {"closed": closed, "session_id": session.id if session else None,
                             "instance_id": instance_id}
                    if session is not None:
                        sessions.forget(session, "it was closed by its WebSocket client")
                        session = None
            except _Failure as failure:
                reply = {"error": failure.message, "type": failure.kind, "status": failure.status,
                         "instance_id": instance_id}
            except Exception as e:
                log.error("internal error on the WebSocket of session %s", session and session.id, exc_info=e)
                reply = {"error": f"internal error: {type(e).__name__}: {str(e)[:300]}", "type": "internal_error",
                         "status": 500, "instance_id": instance_id}
            if not parsed:
                request_id = _message_id(raw)
            if request_id is not None:
                reply = {**reply, "id": request_id}
            await send({"type": "websocket.send", "text": _dumps_text(reply)})
    except Exception:  # the client went away while we answered: nothing to answer to
        return
    finally:
        if session is not None:
            sessions.forget(session, "its WebSocket closed")


async def _expire_idle(sessions: _Sessions) -> None:
    timeout = sessions.idle_timeout_s
    period = min(max(timeout / 5, 0.05), 5.0)
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        for session in list(sessions.open.values()):
            if not session.lock.locked() and now - session.last_used > timeout:
                sessions.forget(session, f"it expired after {timeout:g} s idle")


class _InstanceHeader:
    """ASGI middleware: every response carries ``x-agentenv-instance``, oversized bodies get 413, and
    ``/sessions/ws`` goes straight to ``websocket(receive, send)``.

    A plain ASGI layer, not Starlette's BaseHTTPMiddleware, which costs a task per request.
    """

    def __init__(self, app: Any, instance_id: str, websocket: Callable[[Any, Any], Awaitable[None]]):
        self.app, self.instance_id, self.websocket = app, instance_id, websocket
        self._header = (INSTANCE_HEADER.encode(), instance_id.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and scope["path"] in ("/sessions/ws", "/sessions/ws/"):
                await self.websocket(receive, send)
            else:
                await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                await _error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes",
                             self.instance_id)(scope, receive, send)
                return

        received = 0
        too_large = False

        async def bounded_receive() -> Any:  # a chunked body has no content-length to check up front
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                too_large = True
                return {"type": "http.disconnect"}
            return message

        async def send_with_header(message: Any) -> None:
            if too_large:  # whatever the app made of the cut-off body, the answer is the typed 413
                if message["type"] == "http.response.start":
                    await _error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes",
                                 self.instance_id)(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self._header]
            await send(message)

        await self.app(scope, bounded_receive, send_with_header)


# ----- running it -----------------------------------------------------------------------------------
#: uvicorn picks httptools, uvloop and websockets when installed (loop/http/ws "auto"); messages are small
#: JSON, so per-message compression would cost more latency than it saves bytes
UVICORN_OPTIONS: dict[str, Any] = {"ws_max_size": MAX_BODY_BYTES, "ws_per_message_deflate": False}

def serve_env(env_id: str, env_kwargs: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 8100,
              max_sessions: int = 1024, idle_timeout_s: float = 600, log_level: str = "warning") -> None:
    """Serve ``env_id`` until interrupted; prints ``agentenv env server: http://HOST:PORT (env ENV_ID)``
    on stdout once it listens (with the real port when ``port`` is 0), so scripts can wait for that line."""
    app = create_env_app(env_id, env_kwargs, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s)
    resolved = resolve_id(env_id)
    previous = asyncio.get_event_loop_policy()
    with contextlib.suppress(ImportError):  # uvloop (the serve extra): ~25% less server time per request
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        serve_app(app, host, port, ready=lambda url: f"agentenv env server: {url} (env {resolved})",
                  log_level=log_level, timeout_keep_alive=60, **UVICORN_OPTIONS)
    finally:
        asyncio.set_event_loop_policy(previous)


class BackgroundEnvServer(ServerThread):
    """An env server on a daemon thread of this process, for tests and notebooks; ``url`` once started."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, *, port: int = 0,
                 **app_kwargs: Any):
        super().__init__(create_env_app(env_id, env_kwargs, **app_kwargs), port=port, **UVICORN_OPTIONS)
