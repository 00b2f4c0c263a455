"""A Ray cluster of several nodes on one machine, started as a user starts one (``ray start``), for tests,
benchmarks and trying ``--ray`` on a laptop; and a private network namespace to run it in.

Ray's processes talk to each other through the machine's own interface address even when told to use
127.0.0.1, so anything that must keep its traffic on loopback (tests, benchmarks) runs the cluster and its
driver inside a private network namespace (:func:`private_network_command`), where loopback is the only
interface. That namespace also has its own process ids, so every Ray process is gone when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def private_network_command(argv: list[str]) -> list[str]:
    """``argv`` run in new network and process namespaces whose only interface is loopback (``unshare``;
    as a normal user through a user namespace)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        raise RuntimeError("a private network namespace needs unshare (util-linux) and ip (iproute2)")
    user = [] if os.geteuid() == 0 else ["-r"]
    return ["unshare", *user, "-n", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c",
            'ip link set lo up && exec "$@"', "sh", *argv]


def in_private_network() -> bool:
    """True when loopback is this process's only network interface (inside :func:`private_network_command`)."""
    import socket

    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


class LocalRayCluster:
    """A head and more nodes on this machine, each a ``ray start`` (``with`` stops them: every process whose
    command line names this cluster's temp dir, never another cluster's).

    The cluster uses Ray's token authentication with a fresh token, which this process's environment
    carries (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``) so that its drivers, and the ones it starts, connect."""

    def __init__(self, temp_dir: str | Path, port: int = 26379):
        self.temp_dir = Path(temp_dir)
        self.port = port  # outside Ray's worker-port range (10002-19999)
        self.nodes = 0
        #: the processes each ``ray start`` left running (the raylet and its helpers), per node
        self.node_pids: list[set[int]] = []
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        os.environ.update(self.env)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_node(self, num_cpus: int = 1, resources: dict[str, float] | None = None,
                 env: dict[str, str] | None = None) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        head = self.nodes == 0
        argv = [ray, "start", f"--num-cpus={num_cpus}", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        if head:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}"]
        else:
            argv += [f"--address={self.address}"]
        if resources:
            argv.append(f"--resources={json.dumps(resources)}")
        before = set(self.pids())
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **self.env, **(env or {})})
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
        self.nodes += 1
        self.node_pids.append(set(self.pids()) - before)

    def kill_node(self, index: int) -> list[int]:
        """SIGKILL a node whole, as a machine that loses power: its raylet, its helpers and every worker
        process its raylet started; returns the pids killed."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        doomed, stack = set(), list(self.node_pids[index])
        while stack:
            pid = stack.pop()
            if pid not in doomed:
                doomed.add(pid)
                stack += children.get(pid, [])
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return sorted(doomed)

    def pids(self) -> list[int]:
        """The processes of this cluster: those whose command line names its temp dir or its head's address."""
        marks = (str(self.temp_dir).encode(), self.address.encode())
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if any(mark in cmdline for mark in marks):
                found.append(int(entry))
        return found

    def stop(self, grace: float = 5.0) -> None:
        """Disconnect this process's driver (a driver whose cluster vanishes aborts the process), then end
        every process of the cluster."""
        if "ray" in sys.modules:
            import ray

            ray.shutdown()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)

    def __enter__(self) -> LocalRayCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
