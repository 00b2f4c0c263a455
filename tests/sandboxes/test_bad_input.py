"""Reliability §4.2, the bad-input rows that concern a sandbox, on every backend that claims them.

Each asserts the safe outcome (which limit, on time), and that the host and the sandbox are fine after:
the next command works, nothing is left running (the fixture's census), memory and fds on the host flat.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time

import pytest

from agentenv.sandboxes import SandboxRequestError
from agentenv.sandboxes.output import decode_bytes

GRACE_S = 2.0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def assert_healthy(sandbox) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    assert sandbox.exec("echo ok").stdout == "ok\n"
    assert time.monotonic() - start < 1.0
    assert sandbox.ping()["processes"] == 0


@pytest.mark.parametrize("payload", [
    ["bash", "-c", ":(){ :|:& };:"],
    ["python3", "-c", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"],
])
def test_b01_fork_bomb_is_contained(isolating_sandbox, payload):
    start = time.monotonic()
    result = isolating_sandbox.exec(payload, timeout=3)
    assert time.monotonic() - start < 3 + GRACE_S + 2  # the kill loop may chase a few forks
    assert result.limit in ("processes", "wall_time")
    assert_healthy(isolating_sandbox)


def test_b02_memory_bomb_only_hurts_the_sandbox(any_sandbox):
    before = rss_mib()
    result = any_sandbox.exec(["python3", "-c", "b = bytearray(64 << 30)"])
    assert result.limit == "memory" and "memory limit" in result.describe()
    assert rss_mib() - before < 64
    assert_healthy(any_sandbox)


@pytest.mark.parametrize("command", ["while :; do :; done", "sleep 1000000000", "read line"])
def test_b03_spin_and_block_hit_the_deadline(any_sandbox, command):
    start = time.monotonic()
    result = any_sandbox.exec(command, timeout=1)
    elapsed = time.monotonic() - start
    if command == "read line":  # stdin is /dev/null: EOF at once, no hang
        assert result.exit_code != 0 and elapsed < 1
    else:
        assert result.limit == "wall_time" and elapsed < 1 + GRACE_S
    assert_healthy(any_sandbox)


def test_b03_cpu_time_limit(any_sandbox):
    sandbox = any_sandbox
    sandbox.limits = sandbox.limits.with_(cpu_time_s=1)
    result = sandbox.exec(["python3", "-c", "while True: pass"], timeout=10)
    assert result.limit == "cpu_time"
    assert_healthy(sandbox)


@pytest.mark.parametrize("command", [
    "(sleep 1000000 &); echo started",
    "setsid sleep 1000000 & echo started",
    "sh -c '(sleep 1000000 &) &'; echo started",
    "nohup sleep 1000000 >/dev/null 2>&1 & disown; echo started",
])
def test_b04_orphans_are_reaped_and_do_not_hang_the_step(any_sandbox, command):
    start = time.monotonic()
    result = any_sandbox.exec(command, timeout=5)
    assert result.stdout.strip() == "started"
    assert time.monotonic() - start < 2 + GRACE_S
    assert_healthy(any_sandbox)


def test_b05_zombie_storm_is_reaped(isolating_sandbox):
    code = (
        "import os, time\nfor _ in range(2000):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0: os._exit(0)\nprint('spawned')\n"
    )
    result = isolating_sandbox.exec(["python3", "-c", code], timeout=20)
    assert "spawned" in result.stdout or result.limit == "processes"
    assert_healthy(isolating_sandbox)


@pytest.mark.parametrize("command", [
    "yes",
    "head -c 300000000 /dev/zero | tr '\\0' a",
    "head -c 30000000 /dev/urandom | base64",
    "seq 1 50000",
])
def test_b06_output_flood_is_capped_with_a_marker(any_sandbox, command):
    before = rss_mib()
    result = any_sandbox.exec(command, timeout=3)
    cap = any_sandbox.limits.output_bytes
    assert len(result.stdout.encode()) <= cap + 200
    if command != "seq 1 50000":
        assert result.stdout_dropped > 0 and "[... truncated" in result.stdout
    else:
        assert result.stdout_dropped > 0 and result.stdout.rstrip().endswith("50000")
    assert rss_mib() - before < 64
    assert_healthy(any_sandbox)


def test_b07_binary_garbage_becomes_valid_text(any_sandbox):
    payload = "printf 'a\\377\\376 \\033[31mred\\033[0m \\033]0;title\\007 nul\\000 cr\\rx'; printf \"%08191d\\342\" 0"
    result = any_sandbox.exec(payload)
    text = result.stdout
    json.loads(json.dumps(text))  # serialisable, no lone surrogates
    text.encode("utf-8")
    assert "\x1b" not in text and "\x00" not in text and "\r" not in text
    assert "red" in text and "\ufffd" in text and "\\x00" in text
    assert decode_bytes(b"abc\xe2\x82") == "abc\ufffd"


def test_b08_disk_and_inode_fill_stay_inside(isolating_sandbox):
    host_free = shutil.disk_usage("/").free
    result = isolating_sandbox.exec("fallocate -l 100G big 2>&1 || dd if=/dev/zero of=big bs=1M 2>&1; echo done")
    assert "done" in result.stdout
    files = isolating_sandbox.exec("i=0; while [ $i -lt 200000 ]; do : > f$i || break; i=$((i+1)); done; echo $i",
                                   timeout=20)
    assert files.exit_code == 0 or files.limit is not None
    assert abs(shutil.disk_usage("/").free - host_free) < 0.01 * shutil.disk_usage("/").total
    isolating_sandbox.exec("rm -rf /workspace/*")
    assert_healthy(isolating_sandbox)


def test_b09_fd_exhaustion_stays_inside(any_sandbox):
    fds = len(os.listdir("/proc/self/fd"))
    result = any_sandbox.exec(["python3", "-c", "fs = [open('/dev/null') for _ in range(100000)]"])
    assert "Too many open files" in result.stderr
    assert len(os.listdir("/proc/self/fd")) == fds
    assert_healthy(any_sandbox)


def test_b10_long_actions_are_refused_before_dispatch_or_go_through_stdin(any_sandbox):
    with pytest.raises(ValueError, match="too long"):
        any_sandbox.exec("echo " + "x" * (10 << 20))
    with pytest.raises(ValueError, match="too long"):
        any_sandbox.exec(["echo", "y" * 200_000])
    heredoc = "\n".join(f"line {i}" for i in range(1_000_000))
    result = any_sandbox.exec("wc -l", stdin=heredoc + "\n", timeout=30)
    assert result.stdout.strip() == "1000000"
    assert_healthy(any_sandbox)


@pytest.mark.parametrize("timeout", [1e9, -1, 0])
def test_b17_timeout_arguments_are_clamped(any_sandbox, timeout):
    start = time.monotonic()
    result = any_sandbox.exec("sleep 0.01; echo ok", timeout=timeout)
    assert time.monotonic() - start < 5
    assert result.exit_code == 0 or result.limit == "wall_time"
    with pytest.raises(ValueError, match="number of seconds"):
        any_sandbox.exec("true", timeout="abc")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["a\x00b", "x" * 5000, "../../etc/passwd", "/etc/passwd", "dir/../../../x",
                                  "name\u202egnp.exe", "line\nbreak"])
def test_b18_path_abuse_is_rejected_or_contained(any_sandbox, path):
    try:
        any_sandbox.write_file(path, "data")
    except (ValueError, SandboxRequestError):
        return
    listing = any_sandbox.exec(["find", any_sandbox.workspace, "-type", "f", "-printf", "x"]).stdout
    assert listing == "x"  # it landed inside the workspace
    assert any_sandbox.read_file(path) == b"data"


def test_the_pool_stays_healthy_after_abuse(limits):
    from agentenv.sandboxes import SandboxPool, make_sandbox

    with SandboxPool(lambda: make_sandbox("bwrap", limits), size=2) as pool:
        for payload in (["bash", "-c", ":(){ :|:& };:"], ["python3", "-c", "b = bytearray(64 << 30)"], ["yes"]):
            box = pool.acquire()
            box.exec(payload, timeout=2)
            pool.release(box)
        assert pool.wait_ready(30)
        box = pool.acquire()
        assert_healthy(box)
        pool.release(box)
        assert pool.stats.failed_starts == 0 and pool.stats.discarded_dead == 0


def test_b02_a_cgroup_memory_kill_is_named(limits):
    """Docker bounds the whole sandbox's memory (a cgroup): processes that each stay under the
    per-process limit but together exceed it are OOM-killed, and the result names the memory limit."""
    from tests.sandboxes.conftest import backend_or_skip

    sandbox = backend_or_skip("docker", limits.with_(memory_bytes=256 << 20))
    code = (
        "import os\npids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
        "        b = bytearray(150 << 20)\n        for i in range(0, len(b), 4096): b[i] = 1\n        os._exit(0)\n"
        "    pids.append(pid)\nprint([os.waitpid(p, 0)[1] for p in pids])\n"
    )
    try:
        result = sandbox.exec(["python3", "-c", code], timeout=20)
        assert result.limit == "memory", result
        assert_healthy(sandbox)
    finally:
        sandbox.close()
