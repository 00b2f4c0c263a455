"""The process that runs inside every sandbox and does the work the host asks for.

It is started once per sandbox (PID 1 of the sandbox's PID namespace under bwrap and Docker, a child
subreaper under the subprocess backend) and speaks JSON lines on its stdin/stdout: one request, one reply.
Running the work *inside* the sandbox is the point: commands, file reads and writes (so a symlink planted
by the agent resolves inside the sandbox's own view, reliability A13) and the persistent processes of
stateful tools all happen behind the same walls, and the host only ever sees bytes.

Why PID 1: the kernel delivers no signal to a namespace's init from inside the namespace unless init
installed a handler, so `kill -9 -1`, `kill -STOP 1` or `kill $PPID` by the agent cannot take the
supervisor down (A6/A7); init reaps orphans, so zombie storms go away (A5); and when init exits the kernel
kills everything left in the namespace, so closing a sandbox leaves no process behind (A4).

Standard library only, and no import of agentenv: it runs under the host's interpreter with `-I -S`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import resource
import select
import selectors
import signal
import stat
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
PROCESS_MARKERS = (b"Resource temporarily unavailable", b"BlockingIOError", b"fork: retry", b"can't fork")
DRAIN_AFTER_EXIT_S = 0.5
KILL_SETTLE_S = 2.0


class HeadTail:
    """Keeps the first and last `cap // 2` bytes of a stream and counts the rest (reliability A8)."""

    def __init__(self, cap: int) -> None:
        self.cap = max(0, cap)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        half = self.cap // 2
        room = half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.cap - half:
                del self.tail[: len(self.tail) - (self.cap - half)]

    def dump(self) -> dict:
        dropped = self.total - len(self.head) - len(self.tail)
        return {"head": b64(bytes(self.head)), "tail": b64(bytes(self.tail)), "dropped": dropped}

    def contains(self, markers: tuple[bytes, ...]) -> bool:
        return any(m in self.head or m in self.tail for m in markers)


def oom_kills() -> int:
    """The kernel's count of OOM kills in our memory cgroup (Docker/podman mount it read-only; under bwrap
    there is none and this is 0): how a cgroup memory kill, which is a plain SIGKILL, gets its name."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


class Supervisor:
    def __init__(self, workspace: str, pid1: bool, tmp: str = "/tmp") -> None:
        self.workspace = os.path.realpath(workspace)
        self.tmp = os.path.realpath(tmp)
        self.pid1 = pid1
        self.exit_status: dict[int, int] = {}
        self.processes: dict[str, Process] = {}
        self.selector = selectors.DefaultSelector()
        # Control channel: private, close-on-exec copies of the pipes the host gave us; fds 0-2 point at
        # /dev/null so no child ever inherits (and blocks or corrupts) the protocol stream.
        self.control_in = os.fdopen(os.dup(0), "rb", buffering=0)
        self.control_out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        if not pid1:  # adopt orphans, so that what a command leaves behind can still be found and killed
            import ctypes  # (lazily: it costs milliseconds of every sandbox's start-up)

            with contextlib.suppress(Exception):
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.buffer = b""

    # ---- the loop -------------------------------------------------------------------------------------

    def serve(self) -> None:
        self.reply({"ready": True, "pid": os.getpid(), "uid": os.getuid(), "workspace": self.workspace})
        while True:
            line = self.read_request()
            if line is None:
                return
            try:
                request = json.loads(line)
            except ValueError as exc:
                self.reply({"error": f"bad request: {exc}"})
                continue
            op = request.get("op")
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                self.reply({"id": request.get("id"), "error": f"unknown op {op!r}"})
                continue
            try:
                result = handler(request)
            except OSError as exc:
                result = {"error": f"{type(exc).__name__}: {exc.strerror or exc}", "errno": exc.errno}
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["id"] = request.get("id")
            self.reply(result)
            if op == "shutdown":
                return

    def read_request(self) -> bytes | None:
        while b"\n" not in self.buffer:
            self.reap()
            chunk = self.control_in.read(1 << 20)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def watch_host(self) -> None:
        """The control channel became readable while we were busy: keep what the host sent, and if the
        host is gone (EOF), take everything down with us. This, not the parent-death signal, is what
        ties a sandbox to its host: a uid change clears that signal."""
        chunk = self.control_in.read(1 << 20)
        if chunk:
            self.buffer += chunk
            return
        for process in self.processes.values():
            process.close()
        self.kill_strays(keep=set())
        os._exit(0)

    def reply(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.control_out, view) :]

    # ---- process bookkeeping --------------------------------------------------------------------------

    def reap(self) -> None:
        """Collect every exited child: ours (recorded) and orphans re-parented to us (dropped)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exit_status[pid] = status

    def drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 4096):
                pass

    def descendants(self) -> list[int]:
        """Every process below us: in a PID namespace that is everything but us; else walk the tree."""
        me = os.getpid()
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                parents[int(name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
        if self.pid1:
            return [pid for pid in parents if pid != me]
        found: list[int] = []
        frontier = [me]
        while frontier:
            parent = frontier.pop()
            for pid, ppid in parents.items():
                if ppid == parent and pid != me:
                    found.append(pid)
                    frontier.append(pid)
        return found

    def protected(self) -> set[int]:
        return {p.pid for p in self.processes.values() if p.alive()}

    def kill_strays(self, keep: set[int] | None = None) -> int:
        """SIGKILL every process but us and `keep`, repeating until none is left (forks race the kill)."""
        keep = keep if keep is not None else self.protected()
        killed = 0
        deadline = time.monotonic() + KILL_SETTLE_S
        while True:
            strays = [pid for pid in self.descendants() if pid not in keep]
            live = [pid for pid in strays if not self.is_zombie(pid)]
            if not live:
                self.reap()
                return killed
            for pid in live:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            self.reap()
            if time.monotonic() > deadline:
                return killed
            time.sleep(0.002)

    @staticmethod
    def is_zombie(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
        except (OSError, IndexError):
            return True

    def spawn(self, request: dict, stdin_fd: int, stdout_fd: int, stderr_fd: int) -> int:
        argv = request.get("argv") or ["/bin/sh", "-c", request.get("command", "")]
        env = {str(k): str(v) for k, v in (request.get("env") or {}).items()}
        cwd = self.resolve(request.get("cwd") or self.workspace)
        limits = request.get("rlimits") or {}
        pid = os.fork()
        if pid == 0:  # child: own session and group (no controlling TTY, killable as a group), limits, exec
            try:
                os.setsid()
                for name, value in limits.items():
                    which = getattr(resource, f"RLIMIT_{name.upper()}")
                    _soft, hard = resource.getrlimit(which)
                    value = int(value)
                    if hard != resource.RLIM_INFINITY:
                        value = min(value, hard)
                    resource.setrlimit(which, (value, value if name != "cpu" else min_hard(value + 1, hard)))
                os.dup2(stdin_fd, 0)
                os.dup2(stdout_fd, 1)
                os.dup2(stderr_fd, 2)
                os.chdir(cwd)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                os.execvpe(argv[0], argv, env)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    os.write(2, f"sandbox: cannot start {argv[0]!r}: {exc}\n".encode())
            os._exit(127)
        return pid

    def wait_for(self, pid: int, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            self.reap()
            if pid in self.exit_status:
                return self.exit_status.pop(pid)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    # ---- paths ----------------------------------------------------------------------------------------

    def resolve(self, path: str) -> str:
        """A path for the file API: relative paths are under the workspace, and the result (symlinks
        followed) must stay inside the workspace or the sandbox's temp dir (B18, A13)."""
        if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
            raise ValueError("invalid path")
        full = os.path.realpath(os.path.join(self.workspace, path))
        for root in (self.workspace, self.tmp):
            if full == root or full.startswith(root.rstrip("/") + "/"):
                return full
        raise PermissionError(errno.EACCES, f"path escapes the workspace: {path!r}")

    # ---- ops ------------------------------------------------------------------------------------------

    def op_ping(self, request: dict) -> dict:
        self.reap()
        return {"ok": True, "processes": len(self.descendants()), "named": sorted(self.processes)}

    def op_shutdown(self, request: dict) -> dict:
        for process in self.processes.values():
            process.close()
        self.kill_strays(keep=set())
        return {"ok": True}

    def op_kill_strays(self, request: dict) -> dict:
        return {"killed": self.kill_strays()}

    def op_exec(self, request: dict) -> dict:
        timeout = float(request.get("timeout", 30))
        cap = int(request.get("max_output", 1 << 20))
        stdin_data = unb64(request.get("stdin"))
        ooms = oom_kills()
        start = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin_data:
            in_r, in_w = os.pipe()
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
        try:
            pid = self.spawn(request, in_r, out_w, err_w)
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        streams = {out_r: HeadTail(cap), err_r: HeadTail(cap)}
        for fd in streams:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        pending = memoryview(stdin_data)
        if in_w >= 0:
            os.set_blocking(in_w, False)
            self.selector.register(in_w, selectors.EVENT_WRITE)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.selector.register(self.control_in.fileno(), selectors.EVENT_READ)
        deadline = start + timeout
        status: int | None = None
        limit = None
        exited_at: float | None = None
        open_fds = set(streams)
        try:
            while open_fds or status is None:
                now = time.monotonic()
                if status is None and now >= deadline:
                    limit = "wall_time"
                    break
                if status is not None and exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
                    break  # a background process holds the pipes open; stop waiting for it (A4)
                wait = min(deadline - now, 0.05)
                for key, _ in self.selector.select(max(wait, 0)):
                    fd = key.fd
                    if fd == self.wake_r:
                        self.drain_wakeups()
                    elif fd == self.control_in.fileno():
                        self.watch_host()
                    elif fd == in_w:
                        try:
                            sent = os.write(in_w, pending[: 1 << 16])
                            pending = pending[sent:]
                        except (BrokenPipeError, BlockingIOError) as exc:
                            if isinstance(exc, BrokenPipeError):
                                pending = pending[:0]
                        if not pending:
                            self.selector.unregister(in_w)
                            os.close(in_w)
                            in_w = -1
                    else:
                        try:
                            chunk = os.read(fd, 1 << 16)
                        except BlockingIOError:
                            continue
                        if chunk:
                            streams[fd].add(chunk)
                        else:
                            self.selector.unregister(fd)
                            open_fds.discard(fd)
                if status is None:
                    self.reap()
                    if pid in self.exit_status:
                        status = self.exit_status.pop(pid)
                        exited_at = time.monotonic()
        finally:
            if status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            if not request.get("keep_background") or status is None:
                self.kill_strays()
            if status is None:
                status = self.wait_for(pid, KILL_SETTLE_S)
            for fd in list(open_fds):  # read what the killed processes left in the pipes
                with contextlib.suppress(OSError):
                    while chunk := os.read(fd, 1 << 16):
                        streams[fd].add(chunk)
            for fd in [*open_fds, self.wake_r, self.control_in.fileno(), *([in_w] if in_w >= 0 else [])]:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(fd)
            for fd in [*streams, *([in_w] if in_w >= 0 else [])]:
                with contextlib.suppress(OSError):
                    os.close(fd)
        out, err = streams[out_r], streams[err_r]
        exit_code, sig = decode_status(status)
        if oom_kills() > ooms:
            limit = "memory"
        if limit is None:
            limit = self.classify(exit_code, sig, err, request)
        return {
            "exit_code": exit_code,
            "signal": sig,
            "limit": limit,
            "stdout": out.dump(),
            "stderr": err.dump(),
            "duration": time.monotonic() - start,
        }

    def classify(self, exit_code: int | None, sig: int | None, err: HeadTail, request: dict) -> str | None:
        """Which limit, if any, ended or broke the command (the host reports it, reliability §2)."""
        if sig == signal.SIGXCPU:
            return "cpu_time"
        if sig == signal.SIGXFSZ:
            return "disk"
        if err.contains(MEMORY_MARKERS):
            return "memory"
        if err.contains(PROCESS_MARKERS):
            return "processes"  # a fork bomb's first shell may well exit 0
        if exit_code != 0 and self.workspace_full():
            return "disk"
        return None

    def workspace_full(self) -> bool:
        with contextlib.suppress(OSError):
            info = os.statvfs(self.workspace)
            return info.f_bavail * info.f_frsize < 64 * 1024 or (info.f_files > 0 and info.f_favail == 0)
        return False

    def op_read_file(self, request: dict) -> dict:
        path = self.resolve(request["path"])
        max_bytes = int(request.get("max_bytes", 1 << 20))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file")
            size = os.fstat(fd).st_size
            data = os.read(fd, max_bytes) if max_bytes else b""
        finally:
            os.close(fd)
        return {"data": b64(data), "size": size, "truncated": size > len(data)}

    def op_write_file(self, request: dict) -> dict:
        path = self.resolve(request["path"])
        if request.get("parents"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.resolve(path)  # the parents may have been symlinks: check again
        data = unb64(request.get("data"))
        mode = int(request.get("mode", 0o644))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        if request.get("append"):
            flags = (flags & ~os.O_TRUNC) | os.O_APPEND
        fd = os.open(path, flags, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return {"ok": True, "path": path, "size": len(data)}

    def op_list_dir(self, request: dict) -> dict:
        path = self.resolve(request.get("path") or ".")
        entries = []
        for entry in sorted(os.scandir(path), key=lambda e: e.name)[: int(request.get("limit", 1000))]:
            kind = "dir" if entry.is_dir(follow_symlinks=False) else "link" if entry.is_symlink() else "file"
            entries.append({"name": entry.name, "kind": kind})
        return {"entries": entries}

    def op_spawn(self, request: dict) -> dict:
        name = request["name"]
        if name in self.processes and self.processes[name].alive():
            raise ValueError(f"a process named {name!r} is already running")
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err = os.open(os.devnull, os.O_WRONLY)
        try:
            pid = self.spawn(request, in_r, out_w, err)
        finally:
            for fd in (in_r, out_w, err):
                os.close(fd)
        self.processes[name] = Process(self, name, pid, in_w, out_r)
        return {"pid": pid}

    def op_request(self, request: dict) -> dict:
        process = self.processes.get(request["name"])
        if process is None:
            raise ValueError(f"no process named {request['name']!r}")
        result = process.request(
            unb64(request.get("data")),
            float(request.get("timeout", 30)),
            float(request.get("interrupt_grace", 2.0)),
        )
        if not request.get("keep_background"):
            self.kill_strays()
        return result

    def op_stop(self, request: dict) -> dict:
        process = self.processes.pop(request["name"], None)
        if process is not None:
            process.close()
        return {"ok": True}


class Process:
    """A long-lived child speaking one line per request on its stdin/stdout (a stateful interpreter)."""

    def __init__(self, supervisor: Supervisor, name: str, pid: int, stdin_fd: int, stdout_fd: int) -> None:
        self.supervisor, self.name, self.pid = supervisor, name, pid
        self.stdin_fd, self.stdout_fd = stdin_fd, stdout_fd
        os.set_blocking(stdout_fd, False)
        self.buffer = b""
        self.eof = False
        self.status: int | None = None
        self.ooms_at_request: int | None = None

    def alive(self) -> bool:
        if self.status is not None:
            return False
        self.supervisor.reap()
        if self.pid in self.supervisor.exit_status:
            self.status = self.supervisor.exit_status.pop(self.pid)
            return False
        return True

    def request(self, data: bytes, timeout: float, grace: float) -> dict:
        self.ooms_at_request = oom_kills()
        if not self.alive():
            return self.died("the process had already exited")
        start = time.monotonic()
        payload = data if data.endswith(b"\n") else data + b"\n"
        view = memoryview(payload)
        os.set_blocking(self.stdin_fd, False)
        try:  # a process that stops reading must not wedge us: the write shares the request's deadline
            while view:
                if time.monotonic() > start + timeout:
                    self.close()
                    return {"status": "killed", "limit": "wall_time", "note": "did not read its input; killed",
                            "duration": time.monotonic() - start, **self.exit_fields()}
                try:
                    view = view[os.write(self.stdin_fd, view) :]
                except BlockingIOError:
                    select.select([], [self.stdin_fd], [], 0.05)
        except BrokenPipeError:
            return self.died("the process closed its input")
        line = self.read_line(start + timeout)
        if line is not None:
            return {"status": "ok", "data": b64(line), "duration": time.monotonic() - start}
        if self.eof and self.status is None:  # it closed its output: give the exit a moment to land
            self.status = self.supervisor.wait_for(self.pid, 1.0)
        if not self.alive():
            return self.died("the process died while handling the request")
        with contextlib.suppress(ProcessLookupError):  # time limit: interrupt, keep the state if it obeys
            os.kill(self.pid, signal.SIGINT)
        line = self.read_line(time.monotonic() + grace)
        if line is not None:
            return {"status": "interrupted", "data": b64(line), "duration": time.monotonic() - start}
        self.close()
        return {"status": "killed", "limit": "wall_time", "note": "did not stop on interrupt; killed",
                "duration": time.monotonic() - start, **self.exit_fields()}

    def read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self.buffer:
            now = time.monotonic()
            if now >= deadline:
                return None
            try:
                chunk = os.read(self.stdout_fd, 1 << 20)
            except BlockingIOError:
                if not self.alive():
                    with contextlib.suppress(BlockingIOError, OSError):
                        self.buffer += os.read(self.stdout_fd, 1 << 20)
                    if b"\n" not in self.buffer:
                        return None
                    break
                control = self.supervisor.control_in.fileno()
                readable, _, _ = select.select([self.stdout_fd, control], [], [], min(0.05, deadline - now))
                if control in readable:
                    self.supervisor.watch_host()
                continue
            if not chunk:
                self.eof = True
                self.alive()
                if b"\n" not in self.buffer:
                    return None
                break
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def died(self, note: str) -> dict:
        self.close()
        fields = {"status": "died", "note": note, **self.exit_fields()}
        if self.ooms_at_request is not None and oom_kills() > self.ooms_at_request:
            fields.update(limit="memory", note=f"{note}: killed by the memory limit")
        return fields

    def exit_fields(self) -> dict:
        code, sig = decode_status(self.status)
        return {"exit_code": code, "signal": sig}

    def close(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.status = self.supervisor.wait_for(self.pid, KILL_SETTLE_S)
        for fd in (self.stdin_fd, self.stdout_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin_fd = self.stdout_fd = -1


def min_hard(value: int, hard: int) -> int:
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def decode_status(status: int | None) -> tuple[int | None, int | None]:
    if status is None:
        return None, signal.SIGKILL
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def drop_privileges(uid: int, workspace: str) -> None:
    """Under a root launcher bwrap starts us as root with only CAP_SETUID/SETGID/CHOWN: give the private
    tmpfs mounts to the sandbox's own uid and become it, which clears every capability."""
    for path in (workspace, "/tmp"):
        os.chmod(path, 0o755 if path == workspace else 0o1777)
        os.chown(path, uid, uid)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def main() -> None:
    args = sys.argv[1:]
    workspace = args[args.index("--workspace") + 1] if "--workspace" in args else os.getcwd()
    if "--drop-to" in args:
        drop_privileges(int(args[args.index("--drop-to") + 1]), workspace)
    tmp = args[args.index("--tmp") + 1] if "--tmp" in args else "/tmp"
    Supervisor(workspace, pid1=os.getpid() == 1, tmp=tmp).serve()


if __name__ == "__main__":
    main()
