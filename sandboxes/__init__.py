"""Isolated execution of untrusted, model-written code.

`make_sandbox("bwrap" | "docker" | "subprocess")` returns a `Sandbox`: run commands, read and write
files, keep a persistent interpreter, close. `SandboxPool` keeps sandboxes warm for episodes.
"""

from __future__ import annotations

from typing import Any

from agentenv.sandboxes.base import (
    ExecResult,
    ProcessReply,
    Sandbox,
    SandboxDied,
    SandboxError,
    SandboxExpired,
    SandboxLimits,
    SandboxRequestError,
    SandboxStartFailed,
    SandboxUnavailable,
    check_ttl,
)
from agentenv.sandboxes.pool import SandboxPool

BACKENDS = ("bwrap", "docker", "subprocess")

__all__ = [
    "BACKENDS",
    "ExecResult",
    "ProcessReply",
    "Sandbox",
    "SandboxDied",
    "SandboxError",
    "SandboxExpired",
    "SandboxLimits",
    "SandboxPool",
    "SandboxRequestError",
    "SandboxStartFailed",
    "SandboxUnavailable",
    "check_ttl",
    "make_sandbox",
    "sandbox_resources",
]


def sandbox_resources(backend: str) -> dict[str, float]:
    """The custom Ray resource a node must offer to run sandboxes on ``backend`` (``bwrap``: bubblewrap and
    user namespaces; ``docker``: a Docker-compatible engine); the unsafe subprocess backend needs none."""
    return {backend: 1} if backend in ("bwrap", "docker") else {}


def make_sandbox(backend: str = "bwrap", limits: SandboxLimits | None = None, **options: Any) -> Sandbox:
    """A new sandbox on `backend`. Backend options: bwrap `ro_binds`; docker `image`, `binds`, `base_url`.

    There is no silent fallback: a backend that cannot isolate on this machine raises
    `SandboxUnavailable`, and `subprocess` (no isolation) is only used when named.
    """
    if backend == "bwrap":
        from agentenv.sandboxes.bwrap import BwrapSandbox

        return BwrapSandbox(limits, **options)
    if backend == "docker":
        from agentenv.sandboxes.docker_engine import DockerSandbox

        return DockerSandbox(limits, **options)
    if backend == "subprocess":
        from agentenv.sandboxes.unsafe import SubprocessSandbox

        return SubprocessSandbox(limits, **options)
    raise ValueError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
