"""The resource census finds real leaks (processes, fds, temp dirs, containers) and passes clean blocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace

import pytest

from agentenv.census import (
    CONTAINER_LABEL,
    Census,
    CensusOptions,
    ProcessInfo,
    assert_no_leaks,
    census_guard,
    engine_configured,
    fd_kind,
    orphans,
)


def test_a_child_left_running_is_reported_with_its_command_line_until_reaped():
    before = Census.take()
    child = subprocess.Popen(["sleep", "30"])
    try:
        diff = before.diff(Census.take())
        assert not diff.clean
        assert [p.pid for p in diff.processes] == [child.pid]
        assert "sleep 30" in str(diff) and f"pid {child.pid}" in str(diff)
        with pytest.raises(AssertionError, match="sleep 30"):
            assert_no_leaks(before, settle_s=0.2)
    finally:
        child.kill()
        child.wait()
    assert assert_no_leaks(before, settle_s=0).clean


def test_a_killed_child_that_is_not_reaped_is_a_zombie_leak():
    before = Census.take()
    child = subprocess.Popen(["sleep", "30"])
    child.kill()
    try:
        with pytest.raises(AssertionError, match="zombie"):
            assert_no_leaks(before, settle_s=0.5)
    finally:
        child.wait()
    assert_no_leaks(before, settle_s=0)


def test_a_child_that_exits_within_the_settle_time_passes():
    before = Census.take()
    child = subprocess.Popen(["sleep", "0.3"])
    reaper = threading.Thread(target=child.wait)
    reaper.start()
    assert_no_leaks(before, settle_s=5)
    reaper.join()


def test_threads_are_not_processes():
    before = Census.take()
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert before.diff(Census.take()).clean
    finally:
        stop.set()
        worker.join()


def test_an_fd_left_open_is_reported_and_closing_it_is_clean():
    before = Census.take()
    fd = os.open(sys.executable, os.O_RDONLY)
    try:
        diff = before.diff(Census.take())
        assert [(f.fd, f.kind) for f in diff.fds] == [(fd, "file")]
        assert diff.fd_count_delta == 1 and sys.executable.split("/")[-1] in str(diff)
    finally:
        os.close(fd)
    assert before.diff(Census.take()).clean


def test_pipes_and_a_leaked_event_loop_are_caught_despite_the_ignored_fd_kinds():
    before = Census.take()
    read, write = os.pipe()
    loop = asyncio.new_event_loop()  # epoll is ignored by default; its self-pipe sockets are not
    try:
        kinds = sorted(f.kind for f in before.diff(Census.take()).fds)
        assert kinds == ["pipe", "pipe", "socket", "socket"]
    finally:
        loop.close()
        os.close(read)
        os.close(write)
    assert before.diff(Census.take()).clean
    strict = Census.take(ignore_fd_kinds=())
    loop = asyncio.new_event_loop()
    try:
        assert "anon_inode:[eventpoll]" in {f.kind for f in strict.diff(Census.take(ignore_fd_kinds=())).fds}
    finally:
        loop.close()


def test_another_process_can_be_counted_by_pid():
    """The census of an env server started as a subprocess: its children and fds, not the test's."""
    code = (
        "import os, subprocess, sys\n"
        "for line in sys.stdin:\n"
        "    if line.strip() == 'fd': os.open('/dev/null', os.O_RDONLY)\n"
        "    elif line.strip(): subprocess.Popen(['sleep', '30'])\n"
        "    print('ok', flush=True)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin and server.stdout
    try:
        server.stdin.write("\n")  # the interpreter is up and has imported subprocess
        server.stdin.flush()
        server.stdout.readline()
        before = Census.take(pid=server.pid)
        for line in ("fd\n", "child\n"):
            server.stdin.write(line)
            server.stdin.flush()
            server.stdout.readline()
        diff = before.diff(Census.take(pid=server.pid))
        assert [f.target for f in diff.fds] == ["/dev/null"]
        assert [p.cmdline for p in diff.processes] == ["sleep 30"]
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(server.pid)], check=False)
        server.kill()
        server.wait()


def test_fd_kinds():
    assert fd_kind("pipe:[123]") == "pipe" and fd_kind("socket:[9]") == "socket"
    assert fd_kind("anon_inode:[eventfd]") == "anon_inode:[eventfd]" and fd_kind("/dev/null") == "dev"
    assert fd_kind("/tmp/x (deleted)") == "file"


def test_a_temp_dir_with_an_agentenv_prefix_is_reported():
    before = Census.take()
    leaked = tempfile.mkdtemp(prefix="agentenv-unsafe-")
    other = tempfile.mkdtemp(prefix="someone-else-")
    try:
        diff = before.diff(Census.take())
        assert len(diff.temp_paths) == 1 and diff.temp_paths[0].startswith(leaked + " ")
        custom = Census.take(temp_prefixes=("someone-else-",))
        assert not custom.diff(Census.take(temp_prefixes=("someone-else-",))).temp_paths
    finally:
        shutil.rmtree(leaked)
        shutil.rmtree(other)
    assert before.diff(Census.take()).clean


def test_a_block_that_cleans_up_passes_the_guard():
    with census_guard(settle_s=1):
        subprocess.run(["true"], check=True)
        with open(sys.executable, "rb") as handle:
            handle.read(16)
        with tempfile.TemporaryDirectory(prefix="agentenv-swe-"):
            pass
        asyncio.run(asyncio.sleep(0))


def test_the_guard_raises_with_the_diff_when_something_leaks():
    child = None
    with pytest.raises(AssertionError, match="new processes"), census_guard(settle_s=0.1):
        child = subprocess.Popen(["sleep", "30"])
    assert child is not None
    child.kill()
    child.wait()


def test_a_reused_pid_does_not_mask_a_leak():
    """Processes are keyed by (pid, start time): a new process that got an old pid is still new."""
    before = Census.take()
    child = subprocess.Popen(["sleep", "30"])
    try:
        after = Census.take()
        # other tests' long-lived helpers may be descendants too: take this child's own entry
        (info,) = [p for p in after.processes.values() if p.pid == child.pid]
        # the baseline as if a process with the same pid had existed then and exited since
        earlier = replace(info, start=info.start - 100, cmdline="the previous owner of this pid")
        reused = replace(before, processes={**before.processes, earlier.key: earlier})
        diff = reused.diff(after)
        assert [p.key for p in diff.processes] == [info.key] and "sleep 30" in str(diff)
    finally:
        child.kill()
        child.wait()


def test_ignored_command_lines_leave_out_the_whole_subtree():
    marker = f"--agentenv-census-test={os.getpid()}"
    before = Census.take(ignore_cmdline=[marker])
    parent = subprocess.Popen(["bash", "-c", "sleep 30 & wait", marker], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(before.diff(Census.take()).processes) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(before.diff(Census.take()).processes) == 2  # bash and its sleep
        assert before.diff(Census.take(ignore_cmdline=[marker])).clean
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_sandbox_uid_processes_reparented_to_init_are_orphans():
    me = os.getpid()

    def proc(pid: int, ppid: int, uid: int) -> ProcessInfo:
        return ProcessInfo(pid=pid, start=pid, ppid=ppid, uid=uid, state="S", cmdline=f"p{pid}")

    parent = os.getppid()
    table = {p.pid: p for p in [
        proc(1, 0, 0), proc(parent, 1, 0), proc(me, parent, 0),
        proc(500, me, 61001), proc(501, 500, 61001),  # a live sandbox: bwrap and its child
        proc(600, 1, 61002),  # escaped, adopted by init
        proc(601, parent, 61003),  # adopted by a subreaper among our ancestors
        proc(700, 1, 0),  # someone else's daemon
        proc(800, 42, 61004), proc(42, 1, 0),  # another launcher's sandbox
    ]}
    tree = [table[500], table[501]]
    assert sorted(p.pid for p in orphans(table, range(61000, 62000), tree)) == [600, 601]
    assert orphans(table, (), tree) == []


def test_a_marked_process_that_escaped_the_tree_is_still_counted():
    token = f"{500 + os.getpid() % 10_000}.25"  # a unique sleep argument marks the escapee
    before = Census.take(marked=[f"sleep {token}"])
    subprocess.run(["bash", "-c", f"setsid sleep {token} >/dev/null 2>&1 < /dev/null &"], check=True)
    escaped = []
    try:
        time.sleep(0.1)
        assert before.diff(Census.take()).clean  # re-parented to init: no longer a descendant
        escaped = before.diff(Census.take_with(before.options)).orphans
        assert [p.cmdline for p in escaped] == [f"sleep {token}"]
        with pytest.raises(AssertionError, match=f"sleep {token}"):
            assert_no_leaks(before, settle_s=0.2)
    finally:
        for process in escaped or before.diff(Census.take_with(before.options)).orphans:
            os.kill(process.pid, signal.SIGKILL)
    assert_no_leaks(before, settle_s=5)


def test_without_an_engine_the_containers_are_skipped_and_said_so(monkeypatch):
    monkeypatch.delenv("AGENTENV_DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    if engine_configured() is not None:
        pytest.skip("a default Docker socket exists here")
    census = Census.take()
    assert census.containers is None and "containers" in census.skipped
    diff = census.diff(Census.take())
    assert diff.clean and "not checked: containers" in str(diff)
    monkeypatch.setenv("AGENTENV_DOCKER_HOST", "unix:///nonexistent/agentenv-census.sock")
    start = time.monotonic()
    dead = Census.take()
    assert dead.containers is None and "did not answer" in dead.skipped["containers"]
    assert time.monotonic() - start < 5


def test_a_labelled_container_left_behind_is_reported():
    if not os.environ.get("AGENTENV_DOCKER_HOST"):
        pytest.skip("no Docker engine (scripts/test.sh starts podman)")
    from agentenv.sandboxes.docker_engine import DEFAULT_IMAGE, connect

    client = connect()
    try:
        client.images.get(DEFAULT_IMAGE)
    except Exception:
        client.close()
        pytest.skip(f"the sandbox image {DEFAULT_IMAGE} is missing")
    before = Census.take()
    assert before.containers is not None, before.skipped
    container = client.containers.create(DEFAULT_IMAGE, ["true"], labels={
        CONTAINER_LABEL: "1", "agentenv.owner_pid": str(os.getpid()), "agentenv.run": "census-test"})
    try:
        diff = before.diff(Census.take())
        assert diff.containers == [f"{container.short_id} {container.name}"]
        by_run = Census.take(run_id="census-test")
        assert by_run.containers == frozenset(diff.containers)
    finally:
        container.remove(force=True)
        client.close()
    assert_no_leaks(before, settle_s=5)


def test_a_browser_runtime_leaves_no_browser_process_profile_or_fd_after_close():
    """Chromium is a descendant (Python → Playwright's driver → Chromium), and its profile dir is a temp
    path with a counted prefix; the marker also counts renderers a crashed browser would orphan."""
    pytest.importorskip("playwright")
    from agentenv.census import BROWSER_MARKER
    from agentenv.envs.web.browser import AllowList, BrowserRuntime, BrowserUnavailable, find_chromium

    try:
        find_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    with census_guard(settle_s=5, marked=[BROWSER_MARKER], containers=False) as before:
        runtime = BrowserRuntime()
        try:
            session = runtime.call(runtime.open_session(AllowList(), warm=False))
            during = before.diff(Census.take_with(before.options))
            assert any("chrom" in p.cmdline for p in during.processes) and during.temp_paths
            runtime.call(session.close())
        finally:
            runtime.close()


def test_the_census_constants_match_the_sandbox_backends():
    """Copied, not imported, so that taking a census imports no backend; this keeps the copies honest."""
    from agentenv.census import SANDBOX_UIDS
    from agentenv.sandboxes import bwrap, docker_engine

    assert SANDBOX_UIDS == bwrap.UID_RANGE and CONTAINER_LABEL == docker_engine.LABEL


def test_named_netns_agentenv_cgroups_and_x_displays_left_behind_are_leaks(tmp_path):
    """What lives outside any process tree: a named network namespace, a sandbox's cgroup directory or a
    killed Xvfb's socket outlives its owner, and the census names it."""
    netns, cgroups, x11 = tmp_path / "netns", tmp_path / "cgroup", tmp_path / "x11"
    for d in (netns, cgroups / "system.slice", x11):
        d.mkdir(parents=True)
    options = CensusOptions(containers=False, netns_dir=str(netns), cgroup_root=str(cgroups), x11_dir=str(x11))
    before = Census.take_with(options)
    (netns / "agentenv-ns1").touch()
    (cgroups / "system.slice" / f"agentenv-sandbox-{os.getpid()}-cd34").mkdir()  # this process's sandbox
    (cgroups / "other-service").mkdir()  # not ours: not counted
    (cgroups / "system.slice" / "agentenv-sandbox-999999999-ab12").mkdir()  # another launcher's sandbox
    (x11 / "X99").touch()
    diff = before.diff(Census.take_with(options))
    assert diff.system_paths == sorted(["netns agentenv-ns1", "X display X99",
                                        f"cgroup {cgroups}/system.slice/agentenv-sandbox-{os.getpid()}-cd34"])
    assert not diff.clean and "X display X99" in str(diff)
    for leftover in (netns / "agentenv-ns1", x11 / "X99"):
        leftover.unlink()
    (cgroups / "system.slice" / f"agentenv-sandbox-{os.getpid()}-cd34").rmdir()
    (cgroups / "system.slice" / "agentenv-sandbox-999999999-ab12").rmdir()
    assert before.diff(Census.take_with(options)).clean
