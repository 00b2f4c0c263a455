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
from agentenv.sandboxes.bwrap import UID_RANGE

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
    """Host processes that belong to sandboxes: children of this test process (bwrap, supervisors, the
    subprocess backend) and anything running under a sandbox uid."""
    me = os.getpid()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        uid = int(fields.get("Uid", "0").split()[0])
        child = int(fields.get("PPid", "0")) == me and "Z" not in fields.get("State", "Z")
        if uid in UID_RANGE or child:
            found.add(int(name))
    return found


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
