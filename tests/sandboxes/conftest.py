"""Sandbox fixtures: one sandbox per test on each backend that claims the row, and the census and canary
checks of reliability §4 (nothing left running, nothing secret seen, nothing outside touched)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentenv.sandboxes import Sandbox, SandboxLimits, SandboxUnavailable, make_sandbox

CANARY = "CANARY_agentenv_7f3a9c1e"
ISOLATING = ("bwrap", "docker")
ALL_BACKENDS = ("bwrap", "docker", "subprocess")
SENTINELS = ("/etc/passwd", "/etc/hostname", "/etc/hosts", "/usr/bin/env")


def docker_required() -> bool:
    return os.environ.get("AGENTENV_REQUIRE_DOCKER") == "1"


def backend_or_skip(backend: str, limits: SandboxLimits, **options: object) -> Sandbox:
    try:
        if backend == "subprocess":
            with pytest.warns(RuntimeWarning):
                return make_sandbox(backend, limits, **options)
        return make_sandbox(backend, limits, **options)
    except SandboxUnavailable as exc:
        if backend == "docker" and not docker_required():
            pytest.skip(f"no Docker engine: {exc} (scripts/test.sh starts podman and requires it)")
        raise


def sandbox_processes() -> set[int]:
    """Live processes below this test process: bwrap, the supervisors and everything inside the sandboxes
    (a sandbox's processes all descend from its bwrap; its init re-parents orphans to itself), and the
    subprocess backend's children. Other test sessions on the machine are not counted."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X"):
            parents[int(name)] = int(fields[1])
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and not _is_browser(pid)]
        found.update(children)
        frontier += children
    return found


def _is_browser(pid: int) -> bool:
    """The web tests' shared Chromium (marked at launch) starts renderers whenever it likes; they are not a
    sandbox's, so its whole tree is left out of the census."""
    try:
        return b"--agentenv-browser=" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def containers() -> set[str]:
    if not os.environ.get("AGENTENV_DOCKER_HOST"):
        return set()
    from agentenv.sandboxes.docker_engine import LABEL, connect

    try:
        client = connect()
    except SandboxUnavailable:
        return set()
    return {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}


def census() -> dict:
    return {"processes": sandbox_processes(), "containers": containers(), "fds": len(os.listdir("/proc/self/fd"))}


def wait_clean(baseline: dict, timeout: float = 5.0) -> dict:
    """The census after a test, given a few seconds for the kernel to finish tearing down."""
    deadline = time.monotonic() + timeout
    while True:
        now = census()
        clean = not (now["processes"] - baseline["processes"]) and not (now["containers"] - baseline["containers"])
        if clean or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def sentinel_hashes() -> dict[str, str]:
    return {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in SENTINELS if Path(path).exists()}


@pytest.fixture
def limits() -> SandboxLimits:
    return SandboxLimits(wall_time_s=10, memory_bytes=1 << 30, processes=48, disk_bytes=64 << 20,
                         tmp_bytes=16 << 20, output_bytes=256 << 10, open_files=256)


@pytest.fixture
def host_canaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Path]]:
    """Fake secrets where real ones live: the host environment, a file in the launcher's home, and files
    named like ~/.ssh keys and the Hugging Face token under a temp HOME-like tree (reliability §4)."""
    monkeypatch.setenv("AGENTENV_TEST_SECRET", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    home_file = Path.home() / f".agentenv-canary-{os.getpid()}"
    home_file.write_text(CANARY)
    planted = [home_file]
    for relative in (".ssh/id_rsa", ".aws/credentials", ".cache/huggingface/token"):
        path = tmp_path / "home" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CANARY)
        planted.append(path)
    yield planted
    home_file.unlink(missing_ok=True)


def make_backend_fixture(backends: tuple[str, ...]):  # type: ignore[no-untyped-def]
    @pytest.fixture(params=backends)
    def fixture(request: pytest.FixtureRequest, limits: SandboxLimits) -> Iterator[Sandbox]:
        baseline = census()
        sandbox = backend_or_skip(request.param, limits)
        try:
            yield sandbox
        finally:
            sandbox.close()
        after = wait_clean(baseline)
        assert not (after["processes"] - baseline["processes"]), "sandbox processes outlived close()"
        assert not (after["containers"] - baseline["containers"]), "containers outlived close()"

    return fixture


isolating_sandbox = make_backend_fixture(ISOLATING)
any_sandbox = make_backend_fixture(ALL_BACKENDS)
