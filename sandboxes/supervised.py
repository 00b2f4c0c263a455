"""The host half of every backend: requests to the in-sandbox supervisor, with deadlines on our side too.

A backend only knows how to start the supervisor behind its walls and how to kill it; everything else
(exec, files, persistent processes, limits, output decoding) is here, so all backends behave the same.
The host never trusts the supervisor to answer: each request has a deadline of its own timeout plus a
grace, and a supervisor that misses it is killed and reported as `SandboxDied` (reliability F02, F03).
Every sandbox also has a maximum lifetime (`SandboxLimits.lifetime_s`): a timer kills it then, and what
is in flight or comes after raises `SandboxExpired` (F12), so no sandbox outlives its purpose unnoticed.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import json
import logging
import os
import select
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentenv.sandboxes.base import (
    MAX_ARGUMENT_BYTES,
    MAX_STDIN_BYTES,
    ExecResult,
    ProcessReply,
    Sandbox,
    SandboxDied,
    SandboxExpired,
    SandboxInfo,
    SandboxLimits,
    SandboxRequestError,
)
from agentenv.sandboxes.watchdog import WATCHDOG, Deadline

log = logging.getLogger(__name__)

SUPERVISOR_SOURCE = Path(__file__).with_name("supervisor.py")
CONTROL_GRACE_S = 5.0
START_TIMEOUT_S = 20.0
MAX_REPLY_BYTES = 512 << 20
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Transport(abc.ABC):
    """A byte stream to the supervisor: lines out, lines in. Backends supply the raw reads."""

    def __init__(self) -> None:
        self.pending = bytearray()

    @abc.abstractmethod
    def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def read_some(self, timeout: float) -> bytes | None:
        """Whatever arrived within `timeout` seconds (possibly nothing), or None at EOF."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def recv_line(self, deadline: float) -> bytes | None:
        """The next line, or None at EOF. Raises TimeoutError at the deadline."""
        while True:
            index = self.pending.find(b"\n")
            if index >= 0:
                line = bytes(self.pending[:index])
                del self.pending[: index + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the sandbox did not answer in time")
            chunk = self.read_some(remaining)
            if chunk is None:
                return None
            self.pending += chunk
            if len(self.pending) > MAX_REPLY_BYTES:
                raise SandboxDied("the sandbox sent an oversized reply")


class PipeTransport(Transport):
    """Pipes to a supervisor started by a process of ours (`watch_pid`, bwrap). The pipes alone do not say
    when that process dies: the supervisor inside may outlive a killed bwrap for a while and keep its end
    open, so a read would wait out the whole deadline (reliability F02, found here: 105 s for a `sleep 60`).
    A pidfd of the process is watched with the pipe, and its exit reads as the end of the stream."""

    def __init__(self, write_fd: int, read_fd: int, watch_pid: int | None = None) -> None:
        super().__init__()
        self.write_fd, self.read_fd = write_fd, read_fd
        os.set_blocking(read_fd, False)
        self.pidfd = -1
        if watch_pid is not None:
            with contextlib.suppress(OSError, AttributeError):  # pidfd_open: Linux >= 5.3
                self.pidfd = os.pidfd_open(watch_pid)

    def send(self, data: bytes) -> None:
        if self.write_fd < 0:
            raise EOFError("the channel is closed")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.write_fd, view) :]
        except (BrokenPipeError, OSError) as exc:
            raise EOFError(str(exc)) from exc

    def read_some(self, timeout: float) -> bytes | None:
        if self.read_fd < 0:
            return None
        watched = [self.read_fd] + ([self.pidfd] if self.pidfd >= 0 else [])
        ready, _, _ = select.select(watched, [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.read_fd, 1 << 20) or None
        except BlockingIOError:
            return None if self.pidfd in ready else b""  # nothing left to read and the process is gone

    def close(self) -> None:
        for fd in (self.write_fd, self.read_fd, self.pidfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.write_fd = self.read_fd = self.pidfd = -1


def check_text_argument(name: str, value: str, limit: int = MAX_ARGUMENT_BYTES) -> None:
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL byte")
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise ValueError(f"{name} is too long ({len(value)} characters; limit {limit} bytes): pass it as a file")


def as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


class SupervisedSandbox(Sandbox):
    """A sandbox whose work is done by `supervisor.py` running inside it."""

    def __init__(self, limits: SandboxLimits | None = None, env: Mapping[str, str] | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.base_env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PAGER": "cat", "GIT_PAGER": "cat",
                         "TERM": "dumb", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                         **(env or {})}
        self.lock = threading.Lock()
        self.transport: Transport | None = None
        self.next_id = 0
        self.closed = False
        self.died_reason: str | None = None
        self.expired_reason: str | None = None
        self.expires_at = float("inf")  # time.monotonic() past which the TTL kills the sandbox
        self.ttl_timer: Deadline | None = None
        self.workspace = ""
        self.enforcement: dict[str, str] = {}

    # ---- what a backend provides ----------------------------------------------------------------------

    @abc.abstractmethod
    def _launch(self) -> Transport:
        """Start the supervisor inside the sandbox and return the stream to it."""

    @abc.abstractmethod
    def _kill(self) -> None:
        """Kill the sandbox and everything in it, now. Must be safe to call twice."""

    def _signal_kill(self) -> None:
        """Kill the sandbox from another thread while a call may be in flight (the TTL timer): only send
        the kill; the caller's thread sees the channel close and cleans up. Backends override it."""

    # ---- start and stop -------------------------------------------------------------------------------

    def _start(self) -> None:
        self.transport = self._launch()
        try:
            hello = self._read_reply(time.monotonic() + START_TIMEOUT_S)
        except BaseException:
            self._kill()
            raise
        if not hello.get("ready"):
            self._kill()
            raise SandboxDied(f"the supervisor did not start: {hello}")
        self.hello = hello
        self.workspace = hello["workspace"]
        lifetime = self.limits.lifetime_s
        self.expires_at = time.monotonic() + lifetime
        self.ttl_timer = WATCHDOG.schedule(lifetime, self._expire)

    def _expire(self) -> None:
        if self.closed or self.died_reason is not None:
            return
        self.expired_reason = (f"the sandbox reached its maximum lifetime (ttl {self.limits.lifetime_s:g} s) "
                               "and was killed")
        log.warning("%s sandbox: %s", self.backend, self.expired_reason)
        with contextlib.suppress(Exception):
            self._signal_kill()

    @property
    def remaining_s(self) -> float:
        """Seconds left before the TTL kills this sandbox."""
        return self.expires_at - time.monotonic()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.ttl_timer is not None:
                self.ttl_timer.cancel()
            if self.died_reason is None and self.expired_reason is None and self.transport is not None:
                with contextlib.suppress(Exception):
                    self._call_locked({"op": "shutdown"}, 5.0)
            self._kill()
            if self.transport is not None:
                self.transport.close()

    @property
    def alive(self) -> bool:
        return not self.closed and self.died_reason is None and self.expired_reason is None

    def info(self) -> SandboxInfo:
        return SandboxInfo(self.backend, self.workspace, dict(self.enforcement))

    # ---- the request channel --------------------------------------------------------------------------

    def _read_reply(self, deadline: float) -> dict:
        assert self.transport is not None
        line = self.transport.recv_line(deadline)
        if line is None:
            raise SandboxDied(self._death_note("the sandbox exited"))
        return json.loads(line)

    def _death_note(self, what: str) -> str:
        return what

    def _call(self, request: dict, timeout: float) -> dict:
        with self.lock:
            return self._call_locked(request, timeout)

    def _call_locked(self, request: dict, timeout: float) -> dict:
        if self.died_reason is not None:
            error = SandboxExpired if self.expired_reason else SandboxDied
            raise error(f"the sandbox is dead ({self.died_reason}); start a new one")
        if self.expired_reason is not None and not self.closed:
            self._die(self.expired_reason)
        if self.closed and request.get("op") != "shutdown":
            raise SandboxDied("the sandbox is closed")
        self.next_id += 1
        request["id"] = self.next_id
        assert self.transport is not None
        deadline = time.monotonic() + timeout + CONTROL_GRACE_S
        try:
            self.transport.send((json.dumps(request) + "\n").encode())
            while True:
                reply = self._read_reply(deadline)
                if reply.get("id") == request["id"]:
                    break
        except TimeoutError:
            self._die("the supervisor did not answer within the deadline; the sandbox was killed")
        except (EOFError, SandboxDied, ValueError) as exc:
            self._die(str(exc) or "the sandbox exited")
        if "error" in reply:
            raise SandboxRequestError(reply["error"], reply.get("errno"))
        return reply

    def _die(self, reason: str) -> None:
        if self.expired_reason is not None:  # the TTL timer killed it: say so, not just "it exited"
            reason = self.expired_reason
        self.died_reason = reason
        self._kill()
        if self.transport is not None:
            self.transport.close()
        raise (SandboxExpired if self.expired_reason is not None else SandboxDied)(reason)

    # ---- the interface --------------------------------------------------------------------------------

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = {**self.base_env, "HOME": self.home, **(env or {})}
        for key, value in merged.items():
            check_text_argument(f"environment variable {key}", f"{key}={value}")
        return merged

    @property
    def home(self) -> str:
        return "/tmp"

    def exec(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        keep_background: bool = False,
    ) -> ExecResult:
        timeout = self.limits.clamp_timeout(timeout)
        request: dict = {"op": "exec", "timeout": timeout, "max_output": self.limits.output_bytes,
                         "env": self._env(env), "cwd": cwd, "keep_background": keep_background,
                         "rlimits": self.limits.rlimits(timeout)}
        if isinstance(command, str):
            check_text_argument("command", command)
            request["argv"] = ["/bin/sh", "-c", command]
        else:
            argv = [str(part) for part in command]
            if not argv:
                raise ValueError("empty command")
            for part in argv:
                check_text_argument("argument", part)
            request["argv"] = argv
        if stdin is not None:
            data = as_bytes(stdin)
            if len(data) > MAX_STDIN_BYTES:
                raise ValueError(f"stdin is too large ({len(data)} bytes; limit {MAX_STDIN_BYTES})")
            request["stdin"] = base64.b64encode(data).decode()
        return ExecResult.from_reply(self._call(request, timeout))

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        check_text_argument("path", path, 4096)
        limit = self.limits.output_bytes * 16 if max_bytes is None else max_bytes
        reply = self._call({"op": "read_file", "path": path, "max_bytes": limit}, 30.0)
        return base64.b64decode(reply["data"])

    def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644, parents: bool = True) -> None:
        check_text_argument("path", path, 4096)
        payload = as_bytes(data)
        if len(payload) > MAX_STDIN_BYTES:
            raise ValueError(f"file is too large ({len(payload)} bytes; limit {MAX_STDIN_BYTES})")
        self._call({"op": "write_file", "path": path, "data": base64.b64encode(payload).decode(),
                    "mode": mode, "parents": parents}, 30.0)

    def list_dir(self, path: str = ".") -> list[tuple[str, str]]:
        check_text_argument("path", path, 4096)
        reply = self._call({"op": "list_dir", "path": path}, 30.0)
        return [(entry["name"], entry["kind"]) for entry in reply["entries"]]

    def start_process(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        timeout = self.limits.max_timeout_s
        rlimits = self.limits.rlimits(timeout)
        rlimits.pop("cpu")  # a session lives across many requests; each request has a wall deadline
        self._call({"op": "spawn", "name": name, "argv": [str(a) for a in argv], "env": self._env(env),
                    "cwd": cwd, "rlimits": rlimits}, 30.0)

    def request(
        self, name: str, line: str, *, timeout: float | None = None, interrupt_grace: float = 2.0
    ) -> ProcessReply:
        timeout = self.limits.clamp_timeout(timeout)
        data = as_bytes(line)
        if b"\n" in data.rstrip(b"\n"):
            raise ValueError("a request is one line")
        reply = self._call({"op": "request", "name": name, "data": base64.b64encode(data).decode(),
                            "timeout": timeout, "interrupt_grace": interrupt_grace}, timeout + interrupt_grace + 3)
        text = base64.b64decode(reply["data"]).decode("utf-8", "replace") if reply.get("data") else None
        return ProcessReply(reply["status"], text, reply.get("note", ""), float(reply.get("duration", 0.0)),
                            reply.get("exit_code"), reply.get("signal"), reply.get("limit"))

    def stop_process(self, name: str) -> None:
        self._call({"op": "stop", "name": name}, 10.0)

    def ping(self) -> dict:
        return self._call({"op": "ping"}, 5.0)
