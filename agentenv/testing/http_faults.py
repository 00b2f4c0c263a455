"""A toxiproxy-style HTTP/1.1 fault proxy for testing what a client does when its server misbehaves.

:class:`FaultProxy` listens on 127.0.0.1 in front of a server's port and, per request, applies a fault
chosen by a plan: the first requests take the faults of a list in order, later ones a fault drawn with a
seeded probability per kind. The faults are the ways an OpenAI-compatible policy server fails in practice
(reliability F04-F06): error statuses (500/502/503/429 with ``Retry-After``), a reset connection, a request
lost on the way, a server that accepts and never answers, one that trickles its answer a byte at a time
(slowloris), and answers whose JSON is broken or unusable (not JSON, no ``choices``, empty content,
``finish_reason="length"``, log-probs missing, token ids that do not spell the text). Every request is
logged (:attr:`FaultProxy.log`) with the fault applied and the upstream status, so a test can count the
attempts of each request and check that retries were bounded.

Put it in front of your own server::

    from agentenv.testing.http_faults import FaultProxy, drop, status

    with FaultProxy(8000, plan=[status(503), status(429, retry_after=1)], rates={drop(): 0.1}) as proxy:
        policy = OpenAIPolicy(proxy.url, model="my-model")   # talk to proxy.url instead of :8000
        ...
    print(proxy.counts())  # Counter({'pass': 93, 'drop': 7, 'status:503': 1, 'status:429': 1})
    print(proxy.attempts())  # requests per (episode, turn): the attempts of each call

Each request is forwarded with ``Connection: close`` (one request per connection keeps the proxy simple
and makes every fault hit exactly one request); the client sees ``Connection: close`` answers and opens a
new connection per request. Requests to paths outside ``path_prefix`` are forwarded untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentenv.testing.loop_server import LoopServer

#: body rewrites of an upstream JSON answer (see :func:`rewrite`)
REWRITES = ("invalid_json", "no_choices", "empty_content", "length", "no_logprobs", "wrong_ids")
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


@dataclass(frozen=True)
class Fault:
    """One fault; build them with :func:`status`, :func:`reset`, :func:`drop`, :func:`stall`,
    :func:`trickle` and :func:`rewrite` (``PASS`` forwards the request untouched)."""

    kind: str
    code: int = 0
    retry_after: float | None = None
    interval_s: float = 0.0
    body: str = ""

    def __str__(self) -> str:
        if self.kind == "status":
            return f"status:{self.code}"
        if self.kind == "rewrite":
            return f"rewrite:{self.body}"
        return self.kind


PASS = Fault("pass")


def status(code: int, retry_after: float | None = None) -> Fault:
    """Answer ``code`` (500/502/503/429...) from the proxy with a JSON error body, and ``Retry-After``."""
    return Fault("status", code=code, retry_after=retry_after)


def reset() -> Fault:
    """Read the request, then reset the connection (RST, as a crashing server or a load balancer does)."""
    return Fault("reset")


def drop() -> Fault:
    """Lose the request: read it, then close the connection without an answer (an orderly close, FIN)."""
    return Fault("drop")


def stall() -> Fault:
    """Read the request and never answer (the connection stays open until the client gives up)."""
    return Fault("stall")


def trickle(interval_s: float) -> Fault:
    """Forward the upstream answer one byte every ``interval_s`` seconds (slowloris)."""
    return Fault("trickle", interval_s=interval_s)


def rewrite(kind: str) -> Fault:
    """Forward the request, then rewrite the upstream JSON answer (one of :data:`REWRITES`)."""
    if kind not in REWRITES:
        raise ValueError(f"unknown rewrite {kind!r}; one of {REWRITES}")
    return Fault("rewrite", body=kind)


@dataclass
class ProxyRecord:
    """One request through the proxy."""

    t: float  # time.monotonic() when its head arrived
    method: str
    path: str
    fault: str
    upstream_status: int | None = None  # None: not forwarded, or no answer
    #: agentenv's client names the episode and turn in headers; retries of one call share them
    trajectory: str = ""
    turn: str = ""
    duration_s: float | None = None  # head arrived -> answer done (None: never answered)


@dataclass
class _Request:
    method: str
    path: str
    head: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FaultProxy(LoopServer):
    """See the module docstring. ``plan``: faults for the first requests, in order; ``rates``: for each
    later request, the probability of each fault (drawn with ``random.Random(seed)``); ``path_prefix``:
    only requests to such paths get faults. ``log`` lists a :class:`ProxyRecord` per request."""

    thread_name = "agentenv-fault-proxy"

    def __init__(self, target_port: int, plan: Sequence[Fault] = (), rates: Mapping[Fault, float] | None = None,
                 seed: int = 0, path_prefix: str = "/v1/", target_host: str = "127.0.0.1"):
        super().__init__()
        self.target_host, self.target_port, self.path_prefix = target_host, target_port, path_prefix
        self.log: list[ProxyRecord] = []
        self._lock = threading.Lock()
        self._plan: list[Fault] = []
        self._rates: list[tuple[Fault, float]] = []
        self._random = random.Random(seed)
        self.configure(plan, rates)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, plan: Sequence[Fault] = (), rates: Mapping[Fault, float] | None = None,
                  seed: int | None = None) -> None:
        """Replace the plan and the rates, and re-seed the draws when ``seed`` is given (``configure()`` heals
        the proxy: everything passes)."""
        rates = dict(rates or {})
        if any(p < 0 for p in rates.values()) or sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"rates must be >= 0 and sum to <= 1, got {rates}")
        with self._lock:
            self._plan, self._rates = list(plan), list(rates.items())
            if seed is not None:
                self._random.seed(seed)

    def counts(self) -> Counter[str]:
        """How many requests got each fault (``pass`` for the untouched ones)."""
        with self._lock:
            return Counter(r.fault for r in self.log)

    def attempts(self) -> Counter[tuple[str, str]]:
        """Requests per (episode, turn) as agentenv's client labels them: the attempts of each call."""
        with self._lock:
            return Counter((r.trajectory, r.turn) for r in self.log if r.trajectory)

    def _choose(self, path: str) -> Fault:
        with self._lock:
            if not path.startswith(self.path_prefix):
                return PASS
            if self._plan:
                return self._plan.pop(0)
            draw, total = self._random.random(), 0.0
            for fault, p in self._rates:
                total += p
                if draw < total:
                    return fault
            return PASS

    # ----- one connection -------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await _read_request(reader)
            if request is None:
                return
            fault = self._choose(request.path)
            record = ProxyRecord(time.monotonic(), request.method, request.path, str(fault),
                                 trajectory=request.headers.get("x-agentenv-trajectory", ""),
                                 turn=request.headers.get("x-agentenv-turn", ""))
            with self._lock:
                self.log.append(record)
            await self._apply(fault, request, record, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _apply(self, fault: Fault, request: _Request, record: ProxyRecord, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if fault.kind == "status":
            message = f"injected by FaultProxy: HTTP {fault.code}"
            body = json.dumps({"error": {"message": message, "type": "server_error", "code": fault.code}}).encode()
            extra = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            writer.write(_head(fault.code, [("content-type", "application/json"), *extra], len(body)) + body)
            await writer.drain()
        elif fault.kind == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        elif fault.kind == "drop":
            return
        elif fault.kind == "stall":
            await reader.read()  # until the client gives up and closes (or the proxy stops)
            return
        else:
            answer = await self._forward(request, record)
            if fault.kind == "rewrite":
                answer = _rewrite_answer(answer, fault.body)
            if fault.kind == "trickle":
                for i in range(len(answer)):
                    writer.write(answer[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(fault.interval_s)
            else:
                writer.write(answer)
                await writer.drain()
        record.duration_s = time.monotonic() - record.t

    async def _forward(self, request: _Request, record: ProxyRecord) -> bytes:
        """The upstream's whole answer to ``request`` (sent with ``Connection: close``; read to EOF)."""
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        try:
            head = [(k, v) for k, v in request.head if k.lower() not in ("connection", "keep-alive")]
            lines = [f"{request.method} {request.path} HTTP/1.1", *(f"{k}: {v}" for k, v in head),
                     "connection: close", "", ""]
            up_writer.write("\r\n".join(lines).encode("latin-1") + request.body)
            await up_writer.drain()
            answer = await up_reader.read()
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError):
                await up_writer.wait_closed()
        first = answer.split(b"\r\n", 1)[0].split()
        record.upstream_status = int(first[1]) if len(first) > 1 and first[1].isdigit() else None
        return answer

    # ----- lifetime -------------------------------------------------------------------------------------
    async def _stopping(self) -> None:
        for task in list(self._tasks):  # stalled and trickling connections end with the proxy
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """One HTTP/1.1 request (Content-Length or chunked body); None when the client closed first."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    head = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    headers = {k.lower(): v for k, v in head}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
        head = [(k, v) for k, v in head if k.lower() != "transfer-encoding"] + [("content-length", str(len(body)))]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return _Request(method, path, head, body, headers)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def _head(code: int, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}", *(f"{k}: {v}" for k, v in headers),
             f"content-length: {length}", "connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def _rewrite_answer(answer: bytes, kind: str) -> bytes:
    """The upstream answer with its JSON body rewritten; a non-JSON answer is passed on as it is."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    if any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
        body = _dechunk(body)
    if kind == "invalid_json":
        new = body[: max(1, len(body) // 2)] + b"\x00<html>502 upstream garbage"
    else:
        try:
            data = json.loads(body)
        except ValueError:
            return answer
        new = json.dumps(_rewrite_json(data, kind)).encode()
    keep = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding", "connection")]
    code = int(lines[0].split()[1])
    return _head(code, keep, len(new)) + new


def _rewrite_json(data: Any, kind: str) -> Any:
    if not isinstance(data, dict):
        return data
    if kind == "no_choices":
        data["choices"] = []
        return data
    for choice in data.get("choices") or []:
        if kind == "length":
            choice["finish_reason"] = "length"
        elif kind == "no_logprobs":
            choice["logprobs"] = None
            choice.pop("entropies", None)
        elif kind == "wrong_ids" and isinstance(choice.get("token_ids"), list):
            choice["token_ids"] = [int(i) + 1 for i in choice["token_ids"]]
        elif kind == "empty_content":  # the model said nothing: its answer is only the end token
            if isinstance(choice.get("message"), dict):
                choice["message"]["content"] = ""
                choice["message"].pop("tool_calls", None)
            if "text" in choice:
                choice["text"] = ""
            _keep_last_token(choice)
    return data


def _keep_last_token(choice: dict[str, Any]) -> None:
    """Trim a choice's token ids and per-token lists to the last token (the end token)."""
    for key in ("token_ids", "entropies"):
        if isinstance(choice.get(key), list):
            choice[key] = choice[key][-1:]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        for key in ("content", "tokens", "token_logprobs", "top_logprobs", "text_offset"):
            if isinstance(logprobs.get(key), list):
                logprobs[key] = logprobs[key][-1:]
