"""Reliability §4.1, the isolation rows, on every backend that isolates (bwrap and docker).

Each test attacks from inside and checks the outside: host files hashed before and after, canary
secrets planted on the host and searched for in everything the sandbox returns, listeners on the host
that must see no connection, and a process outside that must still be alive. The fixture's census checks
that nothing outlives the sandbox.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentenv.sandboxes import SandboxLimits, SandboxPool, SandboxRequestError, SandboxUnavailable, make_sandbox
from agentenv.sandboxes import bwrap as bwrap_backend
from tests.sandboxes.conftest import CANARY, backend_or_skip, sentinel_hashes


def everything(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout + result.stderr


class Listener:
    """A TCP or UDP listener on the host's loopback that counts what reaches it."""

    def __init__(self, kind: int = socket.SOCK_STREAM, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, kind)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        if kind == socket.SOCK_STREAM:
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, args=(kind,))
        self.thread.start()

    def run(self, kind: int) -> None:
        while not self.stop.is_set():
            try:
                if kind == socket.SOCK_STREAM:
                    connection, _ = self.sock.accept()
                    connection.close()
                else:
                    self.sock.recvfrom(4096)
                self.hits += 1
            except OSError:
                continue

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        self.sock.close()
        return self.hits


def test_i01_fail_closed_without_bwrap_or_with_a_broken_one(monkeypatch, tmp_path, limits):
    bwrap_backend.self_check.cache_clear()
    monkeypatch.setenv("AGENTENV_BWRAP", str(tmp_path / "no-such-bwrap"))
    with pytest.raises(SandboxUnavailable, match="not an executable"):
        make_sandbox("bwrap", limits)
    # A bwrap that cannot create namespaces (userns disabled, seccomp'd CI) fails to start: refuse.
    broken = tmp_path / "bwrap-no-userns"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("AGENTENV_BWRAP", str(broken))
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        make_sandbox("bwrap", limits)
    bwrap_backend.self_check.cache_clear()


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-launcher escape needs a root launcher")
def test_i01_i02_a_launcher_that_keeps_root_is_refused(monkeypatch, tmp_path, limits):
    """A bwrap wrapper that drops our `--drop-to` (so the sandbox would stay root with capabilities):
    the self-check must notice and refuse before any agent code runs."""
    real = bwrap_backend.find_bwrap()
    wrapper = tmp_path / "bwrap-keeps-root"
    wrapper.write_text(
        "#!/bin/bash\nargs=()\nskip=0\nfor a in \"$@\"; do\n"
        "  if [ $skip = 1 ]; then skip=0; continue; fi\n"
        "  if [ \"$a\" = --drop-to ]; then skip=1; continue; fi\n"
        "  args+=(\"$a\")\ndone\n"
        f"exec {real} \"${{args[@]}}\"\n"
    )
    wrapper.chmod(0o755)
    bwrap_backend.self_check.cache_clear()
    monkeypatch.setenv("AGENTENV_BWRAP", str(wrapper))
    with pytest.raises(SandboxUnavailable, match=r"capabilities are not dropped|runs as host root"):
        make_sandbox("bwrap", limits)
    bwrap_backend.self_check.cache_clear()


def test_i02_i10_no_capabilities_and_no_privilege_escalation(isolating_sandbox):
    canary = Path("/usr") / f".agentenv-canary-{os.getpid()}"
    result = isolating_sandbox.exec(
        "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; "
        f"(mount -o remount,bind,rw /usr && touch {canary}) 2>&1; "
        "mount -t tmpfs none /tmp 2>&1; "
        "mknod /tmp/dev c 1 3 2>&1; "
        "cp /bin/sh /tmp/suid 2>&1 && chmod u+s /tmp/suid && /tmp/suid -c 'echo euid=$(id -u)'; "
        "sudo -n true 2>&1; echo done"
    )
    fields = dict(line.split(":\t") for line in result.stdout.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert "euid=0" not in result.stdout
    assert not canary.exists()
    uid = isolating_sandbox.exec("id -u").stdout.strip()
    assert uid != "0"


def test_i10_namespaces_ptrace_and_tiocsti_are_denied(limits):
    """bwrap's seccomp filter: no new user namespace, no ptrace of anything, no TIOCSTI."""
    sandbox = make_sandbox("bwrap", limits)
    try:
        host_pid = os.getpid()
        result = sandbox.exec(
            "unshare -r id 2>&1; "
            "python3 -c '\nimport ctypes, fcntl, termios\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"print(\"ptrace\", libc.ptrace(16, {host_pid}, 0, 0), ctypes.get_errno())\n"
            "try:\n    fcntl.ioctl(0, termios.TIOCSTI, b\"x\"); print(\"TIOCSTI worked\")\n"
            "except OSError as e: print(\"tiocsti\", e.errno)\n'"
        )
        assert "uid=0" not in result.stdout
        assert "ptrace -1" in result.stdout and "TIOCSTI worked" not in result.stdout
    finally:
        sandbox.close()


def test_i03_writes_outside_the_workspace_fail_and_the_host_is_unchanged(isolating_sandbox, tmp_path):
    before = sentinel_hashes()
    host_tmp = set(os.listdir("/tmp"))
    result = isolating_sandbox.exec(
        "for f in /etc/passwd /etc/agentenv-x /usr/x /proc/sys/kernel/hostname /sys/kernel/x; do "
        "(echo x > $f) 2>/dev/null && echo WROTE $f; done; "
        "echo tmpdata > /tmp/agentenv-inside; cd /workspace && (echo x > ../../etc/x) 2>/dev/null && echo WROTE up; "
        "echo ok"
    )
    assert "WROTE" not in result.stdout and result.stdout.strip().endswith("ok")
    assert sentinel_hashes() == before
    assert "agentenv-inside" not in set(os.listdir("/tmp")) - host_tmp


def test_i04_symlinks_and_hard_links_cannot_reach_host_files(isolating_sandbox, host_canaries):
    home_canary = host_canaries[0]
    before = sentinel_hashes()
    result = isolating_sandbox.exec(
        f"ln -s {home_canary} l1; cat l1 2>&1; ln -s /etc/hostname l2; (echo x > l2) 2>&1; "
        "ln /etc/passwd hard 2>&1; echo end"
    )
    assert CANARY not in everything(result)
    for path in ("l1", "l2"):
        with pytest.raises(SandboxRequestError, match="escapes the workspace"):
            isolating_sandbox.read_file(path)
        with pytest.raises(SandboxRequestError):
            isolating_sandbox.write_file(path, "x")
    # Swap a link between a workspace file and a host file while the file API reads it.
    isolating_sandbox.write_file("real", "workspace content")
    isolating_sandbox.exec("(while :; do ln -sfn /etc/hostname t; ln -sfn real t; done) &", keep_background=True)
    host_name = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else b"\x00never"
    outcomes = set()
    for _ in range(300):
        try:
            data = isolating_sandbox.read_file("t")
        except SandboxRequestError:
            outcomes.add("refused")
            continue
        assert data != host_name or data == b"workspace content"
        outcomes.add(data)
    isolating_sandbox.exec("true")  # kills the swapper
    assert outcomes <= {"refused", b"workspace content"}
    assert sentinel_hashes() == before


def test_i05_i15_no_host_secret_is_visible(isolating_sandbox, host_canaries):
    paths = " ".join(str(p) for p in host_canaries)
    result = isolating_sandbox.exec(
        "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/1/cmdline /proc/self/cmdline | tr '\\0' ' '; "
        f"cat {paths} 2>&1; ls -la ~ ~/.ssh ~/.aws /run/secrets 2>&1; "
        "cat ~/.cache/huggingface/token 2>&1; echo end"
    )
    assert result.stdout.rstrip().endswith("end")
    assert CANARY not in everything(result)
    assert "AGENTENV_TEST_SECRET" not in result.stdout and "OPENAI_API_KEY" not in result.stdout


def test_i06_only_sandbox_processes_are_visible_and_outside_survives(isolating_sandbox):
    outside = subprocess.Popen(["sleep", "300"])
    try:
        listing = isolating_sandbox.exec("ls /proc | grep -c '^[0-9]'")
        assert int(listing.stdout) < 10
        attack = isolating_sandbox.exec(
            f"kill -9 {outside.pid} 2>&1; kill -9 -1 2>&1; pkill -9 -x python3 2>&1; pkill -9 -x sleep 2>&1; "
            "kill -9 $PPID 2>&1; kill -STOP 1 2>&1; echo still-here"
        )
        assert "still-here" in attack.stdout
        assert outside.poll() is None
        assert isolating_sandbox.exec("echo works").stdout == "works\n"
    finally:
        outside.kill()
        outside.wait()


def test_i07_i08_no_egress_and_no_host_service(isolating_sandbox, tmp_path):
    tcp = Listener()
    udp = Listener(socket.SOCK_DGRAM)
    unix_path = tmp_path / "host.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen(1)
    code = (
        "import socket, time\n"
        "def attempt(label, fn):\n"
        "    t = time.monotonic()\n"
        "    try:\n        fn(); print(label, 'CONNECTED')\n"
        "    except OSError as e: print(label, 'failed', round(time.monotonic() - t, 2))\n"
        f"attempt('tcp-host', lambda: socket.create_connection(('127.0.0.1', {tcp.port}), timeout=2))\n"
        "attempt('tcp-ext', lambda: socket.create_connection(('1.1.1.1', 80), timeout=2))\n"
        "attempt('metadata', lambda: socket.create_connection(('169.254.169.254', 80), timeout=2))\n"
        "attempt('ipv6', lambda: socket.create_connection(('::1', 80), timeout=2))\n"
        "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
        "def udp():\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"    s.sendto(b'x', ('127.0.0.1', {udp.port})); s.sendto(b'x', ('8.8.8.8', 53))\n"
        "attempt('udp', udp)\n"
        "def unix():\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        f"    s.connect('{unix_path}')\n"
        "attempt('unix', unix)\n"
        "attempt('docker', lambda: open('/var/run/docker.sock'))\n"
    )
    try:
        result = isolating_sandbox.exec(["python3", "-c", code], timeout=30)
    finally:
        hits = tcp.close() + udp.close()
        unix.close()
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    for label in ("tcp-host", "tcp-ext", "metadata", "ipv6", "dns", "unix", "docker"):
        assert lines[label].startswith("failed"), (label, result.stdout, result.stderr)
        assert float(lines[label].split()[1]) <= 2.1
    assert hits == 0  # UDP "succeeds" locally in a private netns, but nothing reaches the host


def test_i12_a_new_episode_sees_nothing_of_the_last(limits):
    with SandboxPool(lambda: make_sandbox("bwrap", limits), size=1) as pool:
        first = pool.acquire()
        first.write_file("left.txt", CANARY)
        first.exec(f"echo {CANARY} > /tmp/t; export X={CANARY}; (sleep 1000 &)", keep_background=True)
        pool.release(first)
        second = pool.acquire()
        result = second.exec("ls -A /workspace /tmp; env; ps -e 2>/dev/null | wc -l; cat /tmp/t 2>&1")
        assert CANARY not in everything(result)
        assert second.list_dir() == []
        assert second.ping()["processes"] == 0
        pool.release(second)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_i13_two_sandboxes_cannot_see_each_other(backend, limits):
    first = backend_or_skip(backend, limits)
    second = backend_or_skip(backend, limits)
    try:
        first.write_file("secret.txt", CANARY)
        first.exec(f"echo {CANARY} > /tmp/secret; echo {CANARY} > /dev/shm/secret")
        first.exec(f"sleep 30 {CANARY} &", keep_background=True)
        result = second.exec(
            "cat /tmp/secret /dev/shm/secret /workspace/secret.txt 2>&1; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '"
        )
        assert CANARY not in everything(result)
    finally:
        first.close()
        second.close()


def test_i09_no_allowlist_means_no_network_and_allowlists_are_refused(limits):
    with pytest.raises(TypeError, match="allowlist"):
        SandboxLimits(network=["example.com"])  # type: ignore[arg-type]
    assert limits.network is False


def test_workspace_is_private_and_size_capped(isolating_sandbox):
    info = isolating_sandbox.exec("stat -c '%a %U' /workspace; df -k /workspace | tail -1")
    mode_owner, df_line = info.stdout.splitlines()
    assert int(df_line.split()[1]) <= 64 * 1024 + 1024
    assert stat.S_IMODE(int(mode_owner.split()[0], 8)) & 0o002 == 0 or mode_owner.startswith("1777")
    assert time.monotonic() > 0


def test_i01_docker_fails_closed_without_an_engine_or_its_image(tmp_path, limits):
    with pytest.raises(SandboxUnavailable, match="no Docker engine"):
        make_sandbox("docker", limits, base_url=f"unix://{tmp_path}/no-engine.sock")
    if not os.environ.get("AGENTENV_DOCKER_HOST"):
        pytest.skip("no engine to ask for a missing image")
    with pytest.raises(SandboxUnavailable, match=r"image .* is missing"):
        make_sandbox("docker", limits, image="agentenv-no-such-image:0")


def test_i12_docker_a_new_sandbox_sees_nothing_of_the_last(limits):
    first = backend_or_skip("docker", limits)
    first.write_file("left.txt", CANARY)
    first.exec(f"echo {CANARY} > /tmp/t; (sleep 1000 &)", keep_background=True)
    first.close()
    second = backend_or_skip("docker", limits)
    try:
        assert CANARY not in everything(second.exec("ls -A /workspace /tmp; cat /tmp/t 2>&1; ps -ef 2>/dev/null"))
        assert second.list_dir() == [] and second.ping()["processes"] == 0
    finally:
        second.close()


def test_orphaned_containers_of_dead_processes_are_reaped(limits):
    """F11's reaper: a container whose owner died (a crashed collector) is removed; live ones stay."""
    import socket as socket_module

    from agentenv.sandboxes.docker_engine import LABEL, connect, reap_stale

    if not os.environ.get("AGENTENV_DOCKER_HOST"):
        pytest.skip("no Docker engine")
    client = connect()
    dead = subprocess.Popen(["true"])
    dead.wait()
    image = client.images.get("agentenv-sandbox:latest")
    labels = {LABEL: "1", "agentenv.owner_pid": str(dead.pid), "agentenv.host": socket_module.gethostname()}
    orphan = client.containers.create(image.id, ["/usr/bin/true"], labels=labels)
    live = backend_or_skip("docker", limits)
    try:
        assert reap_stale(client) >= 1
        ids = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
        assert orphan.id not in ids and live.container.id in ids
        assert live.exec("echo alive").stdout == "alive\n"
    finally:
        live.close()


def test_network_only_when_asked_for(limits):
    listener = Listener()
    try:
        code = f"import socket; socket.create_connection(('127.0.0.1', {listener.port}), timeout=2); print('reached')"
        closed = make_sandbox("bwrap", limits)
        opened = make_sandbox("bwrap", limits.with_(network=True))
        try:
            assert "reached" not in closed.exec(["python3", "-c", code]).stdout
            assert opened.exec(["python3", "-c", code]).stdout == "reached\n"
        finally:
            closed.close()
            opened.close()
    finally:
        assert listener.close() == 1


def test_a_sandbox_dies_with_the_process_that_made_it(tmp_path):
    """SIGKILL the host process mid-command: the sandbox and everything in it go too."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\nfrom agentenv.sandboxes import make_sandbox\n"
        "box = make_sandbox('bwrap')\nprint(box.process.pid, flush=True)\n"
        "box.exec('sleep 1000 & sleep 1000', timeout=600)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    bwrap_pid = int(owner.stdout.readline())
    time.sleep(0.5)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{bwrap_pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{bwrap_pid}").exists()
    leftovers = subprocess.run(["pgrep", "-f", "sleep 1000"], capture_output=True, text=True).stdout.split()
    assert leftovers == []
