"""The sandbox interface, the same on every backend: commands, stdin, env, cwd, files, persistent
processes, deadlines, and a pool that serves warm sandboxes."""

from __future__ import annotations

import json
import os
import time

import pytest

from agentenv.census import census_guard
from agentenv.sandboxes import SandboxDied, SandboxLimits, SandboxPool, SandboxRequestError, make_sandbox
from tests.sandboxes.conftest import ALL_BACKENDS, backend_or_skip

ECHO_SERVER = (
    "import sys, json, time\n"
    "state = {'n': 0}\n"
    "for line in sys.stdin:\n"
    "    req = json.loads(line)\n"
    "    try:\n"
    "        if req.get('sleep'): time.sleep(req['sleep'])\n"
    "    except KeyboardInterrupt:\n"
    "        print(json.dumps({'interrupted': True, 'n': state['n']}), flush=True); continue\n"
    "    state['n'] += 1\n"
    "    print(json.dumps({'n': state['n'], 'echo': req.get('x')}), flush=True)\n"
)


def test_exec_stdin_env_cwd_and_exit_code(any_sandbox):
    result = any_sandbox.exec("cat; echo \"[$GREETING]\"; pwd; echo oops >&2; exit 3",
                              stdin="from stdin\n", env={"GREETING": "hi"})
    assert result.exit_code == 3 and not result.ok
    assert result.stdout.splitlines() == ["from stdin", "[hi]", any_sandbox.workspace]
    assert result.stderr == "oops\n"
    any_sandbox.exec("mkdir -p sub")
    assert any_sandbox.exec("pwd", cwd="sub").stdout.strip().endswith("/sub")
    argv = any_sandbox.exec(["printf", "%s|", "a b", "c"])
    assert argv.stdout == "a b|c|" and argv.ok


def test_files_round_trip_and_listing(any_sandbox):
    payload = bytes(range(256)) * 10
    any_sandbox.write_file("deep/dir/blob.bin", payload)
    assert any_sandbox.read_file("deep/dir/blob.bin") == payload
    assert any_sandbox.read_file("deep/dir/blob.bin", max_bytes=5) == payload[:5]
    assert ("blob.bin", "file") in any_sandbox.list_dir("deep/dir")
    assert any_sandbox.exec("wc -c < deep/dir/blob.bin").stdout.strip() == "2560"
    with pytest.raises(SandboxRequestError, match="No such file"):
        any_sandbox.read_file("missing.txt")
    with pytest.raises(SandboxRequestError, match="not a regular file"):
        any_sandbox.read_file("deep")


def test_persistent_process_keeps_state_and_survives_an_interrupt(any_sandbox):
    any_sandbox.write_file("server.py", ECHO_SERVER)
    any_sandbox.start_process("echo", ["python3", "-u", "server.py"])
    first = any_sandbox.request("echo", json.dumps({"x": "a"}))
    second = any_sandbox.request("echo", json.dumps({"x": "b"}))
    assert first.status == second.status == "ok"
    assert json.loads(second.data) == {"n": 2, "echo": "b"}
    slow = any_sandbox.request("echo", json.dumps({"sleep": 30}), timeout=0.5)
    assert slow.status == "interrupted" and json.loads(slow.data) == {"interrupted": True, "n": 2}
    assert json.loads(any_sandbox.request("echo", json.dumps({"x": "c"})).data)["n"] == 3
    any_sandbox.stop_process("echo")
    with pytest.raises(SandboxRequestError, match="no process named"):
        any_sandbox.request("echo", "{}")


def test_a_process_that_ignores_the_interrupt_is_killed_and_reported(any_sandbox):
    code = (
        "import signal, sys, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "for line in sys.stdin: time.sleep(1e6)\n"
    )
    any_sandbox.write_file("stubborn.py", code)
    any_sandbox.start_process("stubborn", ["python3", "stubborn.py"])
    start = time.monotonic()
    reply = any_sandbox.request("stubborn", "go", timeout=0.5, interrupt_grace=0.5)
    assert reply.status == "killed" and not reply.alive
    assert time.monotonic() - start < 5
    crash = "import os, sys\nfor line in sys.stdin: os._exit(7)\n"
    any_sandbox.write_file("crash.py", crash)
    any_sandbox.start_process("crash", ["python3", "crash.py"])
    died = any_sandbox.request("crash", "go")
    assert died.status == "died" and died.exit_code == 7
    assert any_sandbox.exec("echo still fine").stdout == "still fine\n"


def test_wall_deadline_returns_on_time_and_the_next_call_works(any_sandbox):
    start = time.monotonic()
    result = any_sandbox.exec("sleep 60", timeout=0.5)
    assert result.limit == "wall_time" and result.timed_out
    assert "wall time limit" in result.describe()
    assert time.monotonic() - start < 0.5 + 2
    quick = time.monotonic()
    assert any_sandbox.exec("echo next").stdout == "next\n"
    assert time.monotonic() - quick < 1


def test_a_closed_or_killed_sandbox_says_so(limits):
    sandbox = make_sandbox("bwrap", limits)
    sandbox._kill()  # the sandbox dies under us (reliability F02)
    start = time.monotonic()
    with pytest.raises(SandboxDied):
        sandbox.exec("sleep 60")
    assert time.monotonic() - start < 5
    assert not sandbox.alive
    with pytest.raises(SandboxDied):
        sandbox.exec("true")
    sandbox.close()


def test_pool_serves_warm_sandboxes_and_never_reuses_one(limits):
    prepared = []

    def prepare(sandbox):
        sandbox.write_file("ready.txt", "yes")
        prepared.append(sandbox)

    with SandboxPool(lambda: make_sandbox("bwrap", limits), size=2, prepare=prepare) as pool:
        assert pool.wait_ready(30)
        first = pool.acquire()
        assert first.read_file("ready.txt") == b"yes"
        first.write_file("episode.txt", "A")
        pool.release(first)
        assert not first.alive
        second = pool.acquire()
        assert second is not first
        assert [name for name, _ in second.list_dir()] == ["ready.txt"]
        pool.release(second)
        assert pool.stats.served_warm == 2 and pool.stats.served_cold == 0
    assert all(not sandbox.alive for sandbox in prepared)


def test_limits_validate_and_clamp():
    limits = SandboxLimits(wall_time_s=10, max_timeout_s=60)
    assert limits.clamp_timeout(1e9) == 60 and limits.clamp_timeout(-1) == limits.min_timeout_s
    assert limits.clamp_timeout(None) == 10
    with pytest.raises(ValueError, match="number of seconds"):
        limits.clamp_timeout("abc")
    with pytest.raises(ValueError, match="NaN"):
        limits.clamp_timeout(float("nan"))
    with pytest.raises(TypeError, match="allowlist"):
        SandboxLimits(network="example.com")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        make_sandbox("chroot")


def test_default_cpu_limit_backstops_the_wall_deadline_instead_of_racing_it():
    assert SandboxLimits().rlimits(1)["cpu"] > 1  # a spinner hits the 1 s deadline first (wall_time)
    assert SandboxLimits(cpu_time_s=1).rlimits(10)["cpu"] == 1


def test_subprocess_backend_warns_every_time(limits):
    for _ in range(2):
        sandbox = backend_or_skip("subprocess", limits)
        sandbox.close()


def test_a_process_that_stops_reading_cannot_wedge_the_sandbox(any_sandbox):
    any_sandbox.write_file("deaf.py", "import time\ntime.sleep(1e6)\n")
    any_sandbox.start_process("deaf", ["python3", "deaf.py"])
    start = time.monotonic()
    reply = any_sandbox.request("deaf", "x" * 1_000_000, timeout=1)
    assert reply.status == "killed" and time.monotonic() - start < 5
    assert any_sandbox.exec("echo fine").stdout == "fine\n"


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_closed_sandboxes_leave_no_process_fd_mount_temp_dir_or_container(backend, limits):
    """The resource census of reliability §4 (B04, L03, L04) around whole sandbox lives: start, run a
    command that leaves a background child and a persistent process, close. The first sandbox is made
    before the baseline, so what a backend sets up once per process (its engine client, its uid lock
    directory) is not counted; what each sandbox leaves is."""
    backend_or_skip(backend, limits).close()
    leftover = f"sleep {1000 + os.getpid() % 10_000}.75"  # marked: counted even if it escapes the tree
    with census_guard(settle_s=5, marked=[leftover]):
        for _ in range(2):
            sandbox = backend_or_skip(backend, limits)
            try:
                sandbox.exec(f"({leftover} &) ; echo started")
                sandbox.write_file("server.py", ECHO_SERVER)
                sandbox.start_process("echo", ["python3", "-u", "server.py"])
                assert sandbox.request("echo", json.dumps({"x": 1})).status == "ok"
            finally:
                sandbox.close()


def test_one_watchdog_thread_fires_every_ttl_and_forgets_cancelled_ones():
    """Sandbox lifetimes are served by one thread, not a timer thread each; a cancelled deadline never
    fires, and a churn of cancelled ones does not pile up in its heap."""
    import threading

    from agentenv.sandboxes.watchdog import Watchdog

    dog = Watchdog()
    fired: list[int] = []
    done = threading.Event()
    first = dog.schedule(0.05, lambda: fired.append(1))
    dog.schedule(0.10, lambda: (fired.append(2), done.set()))
    first.cancel()
    for _ in range(1000):
        dog.schedule(3600, lambda: fired.append(3)).cancel()
    assert done.wait(5) and fired == [2]
    assert len(dog._heap) < 600  # the cancelled hour-long deadlines were dropped, not kept for an hour
    assert sum(t.name == "agentenv-sandbox-ttl" for t in threading.enumerate()) >= 1
