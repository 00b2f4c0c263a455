"""The sandbox interface every backend implements, its limits and its results.

A sandbox runs untrusted, model-written code. The contract (design.md, reliability.md): every call returns
within its deadline plus a short grace, says which limit stopped it, and leaves no process behind; a
sandbox that died says so with `SandboxDied` instead of silently starting over; nothing from the host
(environment variables, home directory, network, sockets) is visible unless asked for.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from agentenv.sandboxes.output import decode_output

Limit = Literal["wall_time", "cpu_time", "memory", "processes", "disk"]

MiB = 1 << 20
GiB = 1 << 30
MAX_ARGUMENT_BYTES = 64 * 1024
MAX_STDIN_BYTES = 64 * MiB


class SandboxError(RuntimeError):
    """Base class of the sandbox layer's errors: infrastructure faults, never the agent's."""


class SandboxUnavailable(SandboxError):
    """The backend cannot give the isolation it promises on this machine; nothing was run (I01)."""


class SandboxDied(SandboxError):
    """The sandbox (or its supervisor) is gone: its state is lost and it must not be used again."""


class SandboxExpired(SandboxDied):
    """The sandbox outlived its maximum lifetime (`SandboxLimits.ttl_s`) and was killed (reliability F12)."""


class SandboxStartFailed(SandboxError):
    """The engine could not create or start the sandbox, after retrying what looked transient (F11).
    Nothing it partly created is left behind. `attempts` says how many tries were made."""

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class SandboxRequestError(SandboxError):
    """The supervisor refused a request (a bad path, a missing file, an unknown process)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


CPU_BACKSTOP_S = 1.0
#: the maximum lifetime of a sandbox that was given none: a sandbox leaked by a bug (or kept by a hung
#: episode) is killed after this long instead of living as long as its host process
DEFAULT_TTL_S = 4 * 3600.0
#: the time an episode's scoring may take after its deadline, by default (see `check_ttl`)
DEFAULT_SCORING_BUFFER_S = 60.0


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits. `wall_time_s` is the default per-call deadline; a call may ask for less or more,
    clamped to `[min_timeout_s, max_timeout_s]` (reliability B17)."""

    wall_time_s: float = 30.0
    cpu_time_s: float | None = None  # per command; None = a backstop one second past the call's wall time
    memory_bytes: int = 2 * GiB  # address space per process
    processes: int = 128  # processes and threads of the whole sandbox
    output_bytes: int = 1 * MiB  # kept per stream (head and tail); the rest is counted and dropped
    disk_bytes: int = 512 * MiB  # the workspace
    tmp_bytes: int = 128 * MiB  # /tmp
    file_bytes: int | None = None  # largest single file a command may write; None = disk_bytes
    open_files: int = 1024
    network: bool = False
    min_timeout_s: float = 0.05
    max_timeout_s: float = 600.0
    #: maximum lifetime in seconds, from start: past it the sandbox is killed and calls raise
    #: `SandboxExpired`; None means `DEFAULT_TTL_S` (every sandbox has one)
    ttl_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.network, bool):
            raise TypeError(
                f"network must be True or False, got {self.network!r}: sandboxes offer no domain allowlist, "
                "and an unsupported option is an error rather than a silent allow-all"
            )
        for name in ("memory_bytes", "processes", "output_bytes", "disk_bytes", "tmp_bytes", "open_files"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 < self.min_timeout_s <= self.wall_time_s <= self.max_timeout_s:
            raise ValueError("need 0 < min_timeout_s <= wall_time_s <= max_timeout_s")
        if self.ttl_s is not None and not self.ttl_s > 0:
            raise ValueError(f"ttl_s must be a positive number of seconds, got {self.ttl_s!r}")

    @property
    def lifetime_s(self) -> float:
        """The sandbox's maximum lifetime: `ttl_s`, or `DEFAULT_TTL_S` when none was given."""
        return float(self.ttl_s) if self.ttl_s is not None else DEFAULT_TTL_S

    def clamp_timeout(self, timeout: float | None) -> float:
        """A caller's (possibly model-written) timeout as a safe number of seconds."""
        if timeout is None:
            return self.wall_time_s
        try:
            value = float(timeout)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"timeout must be a number of seconds, got {timeout!r}") from exc
        if value != value:  # NaN
            raise ValueError("timeout must be a number of seconds, got NaN")
        return min(max(value, self.min_timeout_s), self.max_timeout_s)

    def rlimits(self, timeout: float) -> dict[str, int]:
        """The per-command rlimits the supervisor sets (names of `resource.RLIMIT_*`, lower case).

        Without an explicit `cpu_time_s` the CPU limit only backstops the wall deadline, so it sits a
        second past it: a spinning command must be reported as `wall_time`, not race the kernel's SIGXCPU.
        """
        cpu = self.cpu_time_s if self.cpu_time_s is not None else timeout + CPU_BACKSTOP_S
        return {
            "cpu": max(1, int(cpu + 0.999)),
            "as": int(self.memory_bytes),
            "fsize": int(self.file_bytes or self.disk_bytes),
            "nofile": int(self.open_files),
            "core": 0,
        }

    def with_(self, **changes: object) -> SandboxLimits:
        return replace(self, **changes)  # type: ignore[arg-type]


def check_ttl(limits: SandboxLimits, episode_deadline_s: float,
              scoring_buffer_s: float = DEFAULT_SCORING_BUFFER_S) -> None:
    """Refuse a configuration whose sandbox can die before its episode is scored (reliability F12).

    An episode may run until its deadline and is then scored, possibly in the sandbox (tests of a patch);
    a sandbox whose TTL fires first would turn every slow episode into an infrastructure failure, or worse,
    a score of 0. So the TTL must cover the deadline plus a scoring buffer."""
    if episode_deadline_s <= 0 or scoring_buffer_s < 0:
        raise ValueError("need episode_deadline_s > 0 and scoring_buffer_s >= 0")
    needed = episode_deadline_s + scoring_buffer_s
    if limits.lifetime_s < needed:
        raise ValueError(
            f"the sandbox TTL ({limits.lifetime_s:g} s) is shorter than the episode deadline "
            f"({episode_deadline_s:g} s) plus the scoring buffer ({scoring_buffer_s:g} s): a sandbox would "
            f"be killed before its episode is scored; set SandboxLimits(ttl_s=...) to at least {needed:g} s"
        )


@dataclass
class Stream:
    """One output stream of a command: text for people and models, with what was cut said plainly."""

    text: str
    dropped_bytes: int = 0

    def __str__(self) -> str:
        return self.text


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    limit: Limit | None = None
    signal: int | None = None
    stdout_dropped: int = 0
    stderr_dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None

    @property
    def timed_out(self) -> bool:
        return self.limit == "wall_time"

    def describe(self) -> str:
        """A one-line status for an observation: exit code and, when one stopped it, the limit."""
        if self.limit == "wall_time":
            return f"killed: wall time limit ({self.duration_s:.1f} s)"
        if self.limit is not None:
            return f"exit code {self.exit_code}: {self.limit.replace('_', ' ')} limit"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit code {self.exit_code}"

    @classmethod
    def from_reply(cls, reply: Mapping) -> ExecResult:
        out, err = reply["stdout"], reply["stderr"]
        return cls(
            exit_code=reply.get("exit_code"),
            stdout=decode_output(out["head"], out["tail"], out["dropped"]),
            stderr=decode_output(err["head"], err["tail"], err["dropped"]),
            duration_s=float(reply.get("duration", 0.0)),
            limit=reply.get("limit"),
            signal=reply.get("signal"),
            stdout_dropped=int(out["dropped"]),
            stderr_dropped=int(err["dropped"]),
        )


@dataclass
class ProcessReply:
    """The answer of a persistent process to one request.

    `status`: "ok"; "interrupted" (the time limit fired, SIGINT stopped it, its state is kept); "killed"
    (it ignored the interrupt and was killed: state lost); "died" (it exited or crashed on its own).
    """

    status: Literal["ok", "interrupted", "killed", "died"]
    data: str | None = None
    note: str = ""
    duration_s: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    limit: Limit | None = None

    @property
    def alive(self) -> bool:
        return self.status in ("ok", "interrupted")


@dataclass
class SandboxInfo:
    backend: str
    workspace: str
    enforcement: dict[str, str] = field(default_factory=dict)


class Sandbox(abc.ABC):
    """One isolated place to run code. Use as a context manager, or call `close()`.

    Calls are synchronous and serialised per sandbox; for asyncio, run them with `asyncio.to_thread` (the
    environments do) or use several sandboxes.
    """

    backend: str = "abstract"
    limits: SandboxLimits
    workspace: str

    @abc.abstractmethod
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
        """Run `command` (a shell string for /bin/sh, or an argv) and wait for it.

        Code goes in through `stdin` or a file, never the argv (reliability A20). With `keep_background`
        false (the default), every process the command left behind is killed when it returns.
        """

    @abc.abstractmethod
    def read_file(self, path: str, max_bytes: int | None = None) -> bytes: ...

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes | str, *, mode: int = 0o644, parents: bool = True) -> None: ...

    @abc.abstractmethod
    def list_dir(self, path: str = ".") -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def start_process(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        """Start a long-lived process answering one line per request line (a stateful interpreter)."""

    @abc.abstractmethod
    def request(
        self, name: str, line: str, *, timeout: float | None = None, interrupt_grace: float = 2.0
    ) -> ProcessReply:
        """Send one line to a persistent process and wait for its one-line answer. At the deadline the
        process gets SIGINT and `interrupt_grace` seconds to answer; after that it is killed."""

    @abc.abstractmethod
    def stop_process(self, name: str) -> None: ...

    @abc.abstractmethod
    def ping(self) -> dict: ...

    @property
    @abc.abstractmethod
    def alive(self) -> bool: ...

    @abc.abstractmethod
    def info(self) -> SandboxInfo: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
