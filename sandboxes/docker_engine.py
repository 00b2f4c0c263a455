"""The `docker` backend: a container per sandbox through the Docker Engine API (the `docker` package).

It works with Docker and with podman's Docker-compatible service (what the tests use: no registry is
reachable here, so the image is built locally by `scripts/build-sandbox-image.sh`). The container runs
the same supervisor as the other backends as its PID 1, on its attached stdin/stdout, so every feature
and every limit behaves the same; the engine adds cgroup limits for the whole container (memory with no
swap, processes, CPU) on top of the supervisor's per-command rlimits.

Defaults follow reliability §6: no network, read-only root, size-capped tmpfs workspace and /tmp, all
capabilities dropped, no-new-privileges, an unprivileged user, labels for the reaper, and never the
engine's socket inside. The image holds almost nothing: the host's /usr and Python are bound read-only.

Engine faults (reliability F11) are typed: no engine or no image is `SandboxUnavailable` (nothing to
retry); a create or start that fails the way a busy or restarting engine does (5xx, 429, a refused or
timed-out connection) is retried with backoff and jitter, and after the last try is `SandboxStartFailed`.
A failed try removes what it created, by the container's name, which is chosen before the create: a
create that timed out on our side may still have made the container on the engine's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from agentenv.sandboxes.base import SandboxError, SandboxLimits, SandboxStartFailed, SandboxUnavailable
from agentenv.sandboxes.supervised import SUPERVISOR_SOURCE, SupervisedSandbox, Transport

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "agentenv-sandbox:latest"
WORKSPACE = "/workspace"
SUPERVISOR_PATH = "/opt/agentenv/supervisor.py"
LABEL = "agentenv.sandbox"
HOST_BINDS_LABEL = "agentenv.host_binds"
#: tries of a container's create+start, and of reaching the engine, before giving up
START_ATTEMPTS = 4
CONNECT_ATTEMPTS = 3
BACKOFF_S = 0.2  # doubled each retry, with up to 50% jitter
#: seconds an engine call may take; a create that takes longer counts as a transient failure
API_TIMEOUT_S = 60
#: container starts in flight at once from this process: an engine asked for a hundred creates at a time
#: times out or fails them (SkyRL#9, reliability L04); the rest wait their turn here
START_CONCURRENCY = int(os.environ.get("AGENTENV_DOCKER_START_CONCURRENCY", "16"))
START_SLOTS = threading.BoundedSemaphore(max(1, START_CONCURRENCY))


def backoff(attempt: int, base: float | None = None) -> float:
    """The pause before retry `attempt` (1, 2, ...): exponential, jittered so that many workers hitting
    one restarting engine do not retry in lockstep."""
    return (BACKOFF_S if base is None else base) * 2 ** (attempt - 1) * (1 + random.random() / 2)


def transient(exc: BaseException) -> bool:
    """Whether an engine error looks like one a retry can fix: a busy or restarting engine (5xx, 429), or
    a connection that was refused, reset or timed out. A 4xx (a bad request) is not."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status >= 500 or status == 429
    try:
        import requests
    except ImportError:  # pragma: no cover (docker depends on requests)
        return isinstance(exc, OSError | TimeoutError)
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout | OSError | TimeoutError)


def engine_url() -> str | None:
    return os.environ.get("AGENTENV_DOCKER_HOST") or os.environ.get("DOCKER_HOST")


def connect(base_url: str | None = None, attempts: int = CONNECT_ATTEMPTS) -> Any:
    """A `docker.DockerClient` for `base_url`, `$AGENTENV_DOCKER_HOST`, `$DOCKER_HOST` or the default
    socket; `SandboxUnavailable` when no engine answers after `attempts` tries with backoff (an engine that
    is restarting comes back within them)."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxUnavailable("the docker backend needs the `docker` package: pip install docker") from exc
    url = base_url or engine_url()
    attempts = attempts if url else 1  # no engine configured and no default socket: nothing to wait for
    for attempt in range(1, attempts + 1):
        client = None
        try:
            client = (docker.DockerClient(base_url=url, timeout=API_TIMEOUT_S) if url
                      else docker.from_env(timeout=API_TIMEOUT_S))
            client.ping()
            return client
        except Exception as exc:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if attempt < attempts:
                time.sleep(backoff(attempt))
                continue
            raise SandboxUnavailable(
                f"no Docker engine answers at {url or 'the default socket'} "
                f"after {attempts} {'try' if attempts == 1 else 'tries'} ({exc}); "
                "start one (on Linux without Docker: bash scripts/setup-podman.sh) and set AGENTENV_DOCKER_HOST"
            ) from exc
    raise AssertionError("unreachable")


class MuxTransport(Transport):
    """Lines over a hijacked attach socket. The engine frames what it sends (8-byte header: stream id,
    three zero bytes, big-endian length); what we send is raw."""

    def __init__(self, sock: socket.socket, holder: Any) -> None:
        super().__init__()
        self.sock, self.holder = sock, holder
        self.raw = bytearray()
        self.err = bytearray()

    def send(self, data: bytes) -> None:
        try:
            self.sock.settimeout(30)
            self.sock.sendall(data)
        except OSError as exc:
            raise EOFError(str(exc)) from exc

    def read_some(self, timeout: float) -> bytes | None:
        """Deframe what the engine sent: stdout payloads are returned, stderr's kept for diagnostics."""
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(1 << 20)
        except TimeoutError:
            return b""
        except OSError:
            return None
        if not chunk:
            return None
        self.raw += chunk
        out = bytearray()
        while len(self.raw) >= 8:
            kind, size = self.raw[0], struct.unpack(">I", self.raw[4:8])[0]
            if len(self.raw) < 8 + size:
                break
            payload = bytes(self.raw[8 : 8 + size])
            del self.raw[: 8 + size]
            if kind == 2:
                self.err = (self.err + payload)[-8192:]
            else:
                out += payload
        return bytes(out)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        for closable in (self.sock, self.holder):
            with contextlib.suppress(Exception):
                closable.close()


def python_binds() -> list[str]:
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return sorted(r for r in roots if not (r == "/usr" or r.startswith("/usr/")))


class DockerSandbox(SupervisedSandbox):
    backend = "docker"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        env: Mapping[str, str] | None = None,
        image: str = DEFAULT_IMAGE,
        base_url: str | None = None,
        ro_binds: Sequence[str | tuple[str, str]] = (),
        user: str = "1000:1000",
        cpus: float | None = 1.0,
        run_id: str | None = None,
        workspace: str | None = None,
        python: str | None = None,
        host_binds: bool = True,
    ) -> None:
        """`image` defaults to agentenv's own (the host's /usr and Python bound read-only). For a foreign
        image that holds its own project (a SWE-bench image with the repository at /testbed), pass
        `workspace` (a writable directory of the image, used instead of the tmpfs workspace; the root is
        then writable too), `python` (the image's interpreter for the supervisor, e.g. "python3") and
        `host_binds=False`."""
        super().__init__(limits, env)
        self.client = connect(base_url)
        reap_once(self.client)
        self.image_name, self.user, self.cpus = image, user, cpus
        self.run_id = run_id or os.environ.get("AGENTENV_RUN_ID", "default")
        self.ro_binds = [(b, b) if isinstance(b, str) else b for b in ro_binds]
        self.workspace_dir, self.python, self.host_binds = workspace, python, host_binds
        self.container: Any = None
        self.start_attempts = 0
        self.attached: MuxTransport | None = None  # the stream of the try in progress
        self.enforcement = {"processes": "pids cgroup", "memory": "memory cgroup (no swap) + RLIMIT_AS",
                            "cpu_time": "RLIMIT_CPU per command", "disk": "tmpfs size",
                            "wall_time": "supervisor deadline + host deadline", "network": "network_mode=none",
                            "syscalls": "the engine's default seccomp profile"}
        try:
            self._start()
        except BaseException:
            self._kill()
            raise

    def volumes(self, image: Any) -> dict[str, dict[str, str]]:
        host_binds = (image.labels or {}).get(HOST_BINDS_LABEL, "/usr").split() if self.host_binds else []
        pythons = python_binds() if self.host_binds else []
        binds = {path: path for path in [*host_binds, *pythons] if os.path.exists(path)}
        binds.update({os.path.abspath(source): target for source, target in self.ro_binds})
        volumes = {source: {"bind": target, "mode": "ro"} for source, target in binds.items()}
        volumes[str(SUPERVISOR_SOURCE)] = {"bind": SUPERVISOR_PATH, "mode": "ro"}
        return volumes

    def _launch(self) -> Transport:
        """Create, attach and start the container, retrying transient engine faults (see the module
        docstring); each failed try removes its container before the next."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.start_attempts = attempt
            name = f"agentenv-{uuid.uuid4().hex[:12]}"
            try:
                with START_SLOTS:
                    return self._launch_once(name)
            except SandboxError:
                self._discard(name)
                raise
            except Exception as exc:
                self._discard(name)
                if not transient(exc):
                    raise SandboxStartFailed(f"the engine refused the sandbox container: {exc}", attempt) from exc
                if attempt == START_ATTEMPTS:
                    raise SandboxStartFailed(f"the engine failed to start the sandbox container {attempt} times; "
                                             f"last: {exc}", attempt) from exc
                log.warning("docker sandbox: start failed (try %d of %d), retrying: %s", attempt, START_ATTEMPTS, exc)
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def _discard(self, name: str) -> None:
        """Remove a failed try's container, by name: it may exist even when the create call failed."""
        if self.attached is not None:
            self.attached.close()
            self.attached = None
        self.container = None
        with contextlib.suppress(Exception):
            remove_container(self.client, name, tries=3)

    def _launch_once(self, name: str) -> Transport:
        import docker

        try:
            image = self.client.images.get(self.image_name)
        except docker.errors.ImageNotFound as exc:
            raise SandboxUnavailable(
                f"the sandbox image {self.image_name} is missing: bash scripts/build-sandbox-image.sh"
            ) from exc
        limits = self.limits
        python = self.python or (os.path.realpath(sys.executable) if sys.prefix == sys.base_prefix
                                 else sys.executable)
        workspace = self.workspace_dir or WORKSPACE
        tmpfs = {"/tmp": f"size={limits.tmp_bytes},mode=1777", "/dev/shm": f"size={limits.tmp_bytes},mode=1777"}
        if self.workspace_dir is None:
            tmpfs[WORKSPACE] = f"size={limits.disk_bytes}"
        self.container = self.client.containers.create(
            image.id,
            [python, "-I", "-S", SUPERVISOR_PATH, "--workspace", workspace],
            name=name,
            stdin_open=True,
            network_mode="bridge" if limits.network else "none",
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            pids_limit=limits.processes,
            nano_cpus=int(self.cpus * 1e9) if self.cpus else None,
            read_only=self.workspace_dir is None,
            tmpfs=tmpfs,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user=self.user,
            working_dir=workspace,
            environment={"PATH": "/usr/local/bin:/usr/bin:/bin"},
            labels={LABEL: "1", "agentenv.run": self.run_id, "agentenv.owner_pid": str(os.getpid()),
                    "agentenv.host": socket.gethostname()},
            volumes=self.volumes(image),
            log_config=docker.types.LogConfig(type="none"),
            init=False,
        )
        holder = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        sock = getattr(holder, "_sock", holder)
        self.attached = MuxTransport(sock, holder)
        self.container.start()
        return self.attached

    def _death_note(self, what: str) -> str:
        state = ""
        with contextlib.suppress(Exception):
            self.container.reload()
            info = self.container.attrs.get("State", {})
            state = f"container {info.get('Status')}, exit {info.get('ExitCode')}"
            if info.get("OOMKilled"):
                state += ", killed: memory limit"
        return f"{what} ({state})" if state else what

    def _signal_kill(self) -> None:
        if self.container is not None and not self.closed:
            self.client.api.kill(self.container.id)

    def _kill(self) -> None:
        if self.container is not None:
            remove_container(self.client, self.container.id)
        if self.transport is not None:
            self.transport.close()
        with contextlib.suppress(Exception):  # its pooled engine connections (the census counts them)
            self.client.close()


def remove_container(client: Any, container_id: str, tries: int = 10) -> None:
    """Force-remove, retrying the engine's transient errors (a container that is stopping just then)."""
    import docker

    for attempt in range(tries):
        try:
            client.api.remove_container(container_id, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            if attempt == tries - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def reap_stale(client: Any, run_id: str | None = None) -> int:
    """Remove sandbox containers left by a process of this host that is gone (after a crash), or all of
    one run's. Returns how many were removed (reliability F11 and §6: the orphan reaper)."""
    filters = {"label": [LABEL]}
    if run_id:
        filters["label"].append(f"agentenv.run={run_id}")
    removed = 0
    host = socket.gethostname()
    for container in client.containers.list(all=True, filters=filters):
        labels = container.labels or {}
        owner = int(labels.get("agentenv.owner_pid", "0") or 0)
        orphan = labels.get("agentenv.host") == host and (not owner or not pid_alive(owner))
        if run_id or orphan:
            remove_container(client, container.id)
            removed += 1
    return removed


_reaped: set[str] = set()


def reap_once(client: Any) -> None:
    """Reap orphans the first time this process talks to an engine."""
    key = str(getattr(client.api, "base_url", ""))
    if key not in _reaped:
        _reaped.add(key)
        removed = reap_stale(client)
        if removed:
            log.warning("removed %d sandbox container(s) left behind by dead processes", removed)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
