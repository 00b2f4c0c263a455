"""The resource census of reliability §4: what this process owns, before and after, must be the same.

Take a `Census` before a block of work (an episode, a sandbox's life, a whole run) and check after it that
nothing the block created outlived it: processes, open file descriptors, mounts, temp directories and
sandbox containers. Closing is asynchronous (a sandbox's processes need a moment to exit after `close()`),
so `assert_no_leaks` re-takes the census until it is clean or a settle time has passed::

    from agentenv.census import census_guard

    with census_guard():
        env = make_my_env()
        run_an_episode(env)
        env.close()  # anything `env` started or opened and did not release fails the block

What is compared, and why so:

* **Processes**: every live descendant of this process, found by walking ``/proc`` by parent pid, keyed by
  ``(pid, start time)`` so that a pid the kernel reused for another process cannot pass for the one that
  was there before. Threads are not processes (``/proc`` lists thread groups only). Zombies count: an
  unreaped child is a leak (reliability B05). Chromium started by Playwright descends from this process
  (Python → Playwright's driver → Chromium → renderers), so the browser is covered here; a long-lived
  browser shared across tests is left out with ``ignore_cmdline`` (its tree starts renderers at will).
  Processes that escaped the tree (double fork, ``setsid``) re-parent to init or a subreaper and stop
  being descendants. Two kinds are still counted, as *orphans*: those run by a sandbox uid (the bwrap
  backend gives each sandbox its own host uid when the launcher is root) whose parent is init or one of
  this process's ancestors, since no sandbox is left to own them; and any process, wherever it sits,
  whose command line contains one of the ``marked`` strings (a marker a test or component puts on what it
  starts, such as the browser's ``--agentenv-browser=``). Same-uid processes are not counted by uid alone:
  on a shared machine other sessions start and orphan processes of that uid all the time.
* **File descriptors**: ``/proc/self/fd``, keyed by ``(fd, link target)``; the census's own directory fd
  is left out. Some kinds are ignored by default (`DEFAULT_IGNORE_FD_KINDS`): epoll, eventfd, timerfd
  and inotify instances are created lazily, once, by event loops and libraries that live as long as the
  process, and carry no data. Ignoring them does not hide a leaked asyncio loop: its self-pipe (a socket
  pair) is still counted. Pipes, sockets, files and devices always count.
* **Mounts**: the lines of ``/proc/self/mountinfo`` (mount id and mount point), so a bind or tmpfs left in
  this mount namespace is found. Sandboxes mount inside namespaces of their own, so none should appear.
* **System paths**: named network namespaces, cgroup directories named for agentenv (a sandbox's, only when
  its launcher is this process or one of its descendants) and X display sockets (`system_paths`): what a
  sandbox or a virtual display leaves outside any process tree.
* **Temp paths**: entries of `tempfile.gettempdir` whose names start with the prefixes agentenv's
  components use (`DEFAULT_TEMP_PREFIXES`), keyed by name and inode.
* **Containers**: when a Docker-compatible engine is configured (``$AGENTENV_DOCKER_HOST``,
  ``$DOCKER_HOST`` or the default socket), the containers with agentenv's sandbox label that this process
  created (``agentenv.owner_pid``), or of one run (``run_id``). No engine, or one that does not answer,
  is recorded in `Census.skipped` rather than failing: the census runs where Docker does not.

Measures are reported, not compared (they move for reasons that are no leak): the RSS of this process,
the number of open fds and the free space of the temp directory's file system.

Tolerance is zero: any new process, fd, mount, temp path or container is a leak. The census sees one
process and its tree: this one by default, or another of this user's (``pid=``: an env server started as a
subprocess, whose fds, mounts, RSS, descendants and containers are then counted instead).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

#: fd kinds that event loops and libraries create lazily, once per process; see the module docstring.
DEFAULT_IGNORE_FD_KINDS = frozenset({
    "anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]", "anon_inode:inotify",
})
#: name prefixes of the temp paths agentenv's components create under `tempfile.gettempdir()`: the
#: subprocess sandbox, SWE task checkouts, the ALFWorld reference engine, the vLLM server's log and
#: extension dirs, and Playwright's Chromium profiles and artifacts.
DEFAULT_TEMP_PREFIXES = (
    "agentenv-unsafe-", "agentenv-swe-", "agentenv-alfworld-", "agentenv-vllm-",
    "playwright_chromiumdev_profile-", "playwright-artifacts-",
)
#: host uids of bwrap sandboxes started by a root launcher (`agentenv.sandboxes.bwrap.UID_RANGE`)
SANDBOX_UIDS = range(61000, 62000)
#: the label every agentenv sandbox container carries (`agentenv.sandboxes.docker_engine.LABEL`)
CONTAINER_LABEL = "agentenv.sandbox"
#: on the command line of every Chromium that `agentenv.envs.web.browser` launches: pass it as
#: ``ignore_cmdline`` to leave out a browser shared across tests, or as ``marked`` to count its processes
#: wherever they are (a renderer orphaned by a crashed browser is no longer a descendant)
BROWSER_MARKER = "--agentenv-browser="
CMDLINE_HEAD = 160


@dataclass(frozen=True, order=True)
class ProcessInfo:
    """One process: pid and start time (clock ticks since boot) identify it; the rest explains it."""

    pid: int
    start: int
    ppid: int = field(compare=False)
    uid: int = field(compare=False)
    state: str = field(compare=False)
    cmdline: str = field(compare=False)

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start

    def __str__(self) -> str:
        zombie = " (zombie: not reaped)" if self.state == "Z" else ""
        return f"pid {self.pid} uid {self.uid} ppid {self.ppid}{zombie}: {self.cmdline or '?'}"


@dataclass(frozen=True, order=True)
class FdInfo:
    fd: int
    target: str

    @property
    def kind(self) -> str:
        return fd_kind(self.target)

    def __str__(self) -> str:
        return f"fd {self.fd} -> {self.target}"


@dataclass(frozen=True)
class CensusOptions:
    """What a census looks at; `assert_no_leaks` re-takes the census with the baseline's options."""

    ignore_fd_kinds: frozenset[str] = DEFAULT_IGNORE_FD_KINDS
    temp_prefixes: tuple[str, ...] = DEFAULT_TEMP_PREFIXES
    temp_dir: str | None = None
    ignore_cmdline: tuple[str, ...] = ()
    sandbox_uids: Collection[int] = SANDBOX_UIDS
    marked: tuple[str, ...] = ()
    containers: bool = True
    run_id: str | None = None
    docker_url: str | None = None
    pid: int | None = None
    netns_dir: str = "/run/netns"
    cgroup_root: str = "/sys/fs/cgroup"
    x11_dir: str = "/tmp/.X11-unix"


@dataclass
class Census:
    """A snapshot of what this process owns. Take one with `Census.take`; compare two with `Census.diff`."""

    processes: dict[tuple[int, int], ProcessInfo]
    orphans: dict[tuple[int, int], ProcessInfo]
    fds: frozenset[FdInfo]
    mounts: frozenset[str]
    temp_paths: frozenset[str]
    containers: frozenset[str] | None  # None: not looked at (see `skipped`)
    system_paths: frozenset[str]
    rss_bytes: int
    fd_count: int
    disk_free_bytes: int
    options: CensusOptions
    skipped: dict[str, str] = field(default_factory=dict)
    taken_at: float = field(default_factory=time.time)

    @classmethod
    def take(
        cls,
        *,
        ignore_fd_kinds: Collection[str] = DEFAULT_IGNORE_FD_KINDS,
        temp_prefixes: Sequence[str] = DEFAULT_TEMP_PREFIXES,
        temp_dir: str | None = None,
        ignore_cmdline: Sequence[str] = (),
        sandbox_uids: Collection[int] = SANDBOX_UIDS,
        marked: Sequence[str] = (),
        containers: bool = True,
        run_id: str | None = None,
        docker_url: str | None = None,
        pid: int | None = None,
    ) -> Census:
        """Snapshot this process's resources.

        `ignore_cmdline`: substrings of command lines whose processes (and their whole subtrees) are not
        counted, e.g. the marker of a browser shared across tests. `marked`: substrings of command lines
        whose processes count wherever they are (see the module docstring). `containers=False` skips the engine;
        `run_id` counts one run's containers (label ``agentenv.run``) instead of this process's own.
        `pid`: census that process instead of this one (it must stay alive between the two censuses).
        """
        options = CensusOptions(frozenset(ignore_fd_kinds), tuple(temp_prefixes), temp_dir, tuple(ignore_cmdline),
                                sandbox_uids, tuple(marked), containers, run_id, docker_url, pid)
        return cls.take_with(options)

    @classmethod
    def take_with(cls, options: CensusOptions) -> Census:
        pid = options.pid or os.getpid()
        fds = open_fds(pid)  # first: the engine client below opens (and closes) a socket of its own
        table = process_table()
        tree = descendants(table, pid, options.ignore_cmdline)
        temp_dir = options.temp_dir or tempfile.gettempdir()
        skipped: dict[str, str] = {}
        found_containers: frozenset[str] | None = None
        if options.containers:
            try:
                found_containers = list_containers(options.run_id, options.docker_url, owner=pid)
            except _Skip as why:
                skipped["containers"] = str(why)
        else:
            skipped["containers"] = "not asked for"
        return cls(
            processes={p.key: p for p in tree},
            orphans={p.key: p for p in orphans(table, options.sandbox_uids, tree, options.marked, pid)},
            fds=frozenset(f for f in fds if f.kind not in options.ignore_fd_kinds),
            mounts=mount_entries(pid),
            temp_paths=temp_paths(temp_dir, options.temp_prefixes),
            containers=found_containers,
            system_paths=system_paths(options.netns_dir, options.cgroup_root, options.x11_dir,
                                      owners={pid, *(p.pid for p in tree)}, pid=pid),
            rss_bytes=rss_bytes(pid),
            fd_count=len(fds),
            disk_free_bytes=disk_free(temp_dir),
            options=options,
            skipped=skipped,
        )

    def diff(self, after: Census) -> CensusDiff:
        """What `after` holds that this baseline did not; ``Census.diff(before, after)`` reads the same."""
        before = self
        containers: list[str] = []
        if before.containers is not None and after.containers is not None:
            containers = sorted(after.containers - before.containers)
        return CensusDiff(
            processes=sorted(p for k, p in after.processes.items() if k not in before.processes),
            orphans=sorted(p for k, p in after.orphans.items() if k not in before.orphans),
            fds=sorted(after.fds - before.fds),
            mounts=sorted(after.mounts - before.mounts),
            temp_paths=sorted(after.temp_paths - before.temp_paths),
            containers=containers,
            system_paths=sorted(after.system_paths - before.system_paths),
            rss_delta_bytes=after.rss_bytes - before.rss_bytes,
            fd_count_delta=after.fd_count - before.fd_count,
            disk_free_delta_bytes=after.disk_free_bytes - before.disk_free_bytes,
            skipped={**before.skipped, **after.skipped},
        )


@dataclass
class CensusDiff:
    """Leaks by kind (each list empty when clean) and measures, which are reported but never fail."""

    processes: list[ProcessInfo]
    orphans: list[ProcessInfo]
    fds: list[FdInfo]
    mounts: list[str]
    temp_paths: list[str]
    containers: list[str]
    system_paths: list[str]
    rss_delta_bytes: int
    fd_count_delta: int
    disk_free_delta_bytes: int
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.processes or self.orphans or self.fds or self.mounts or self.temp_paths
                    or self.containers or self.system_paths)

    def __str__(self) -> str:
        lines = ["census clean" if self.clean else "census: resources outlived their owner"]
        sections: list[tuple[str, Sequence[object]]] = [
            ("new processes", self.processes), ("escaped processes (orphaned sandbox uid or marked)", self.orphans),
            ("new file descriptors", self.fds), ("new mounts", self.mounts),
            ("new temp paths", self.temp_paths), ("new containers", self.containers),
            ("new named network namespaces, agentenv cgroups or X displays", self.system_paths),
        ]
        for title, items in sections:
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines += [f"    {item}" for item in items[:50]]
                if len(items) > 50:
                    lines.append(f"    ... and {len(items) - 50} more")
        lines.append(f"  measures: rss {self.rss_delta_bytes / 2**20:+.1f} MiB, fds {self.fd_count_delta:+d}, "
                     f"temp disk free {self.disk_free_delta_bytes / 2**20:+.1f} MiB")
        lines += [f"  not checked: {kind} ({why})" for kind, why in self.skipped.items()]
        return "\n".join(lines)


def settled_diff(before: Census, settle_s: float = 5.0, interval_s: float = 0.05) -> CensusDiff:
    """Re-take the census (with `before`'s options) until nothing is new or `settle_s` has passed; the
    last diff (clean, or what is still there)."""
    deadline = time.monotonic() + settle_s
    while True:
        diff = before.diff(Census.take_with(before.options))
        if diff.clean or time.monotonic() >= deadline:
            return diff
        time.sleep(interval_s)


def assert_no_leaks(before: Census, settle_s: float = 5.0, interval_s: float = 0.05) -> CensusDiff:
    """`settled_diff`, raising `AssertionError` with the diff unless it is clean. Returns the clean diff,
    for its measures."""
    diff = settled_diff(before, settle_s, interval_s)
    if not diff.clean:
        raise AssertionError(str(diff))
    return diff


@contextlib.contextmanager
def census_guard(settle_s: float = 5.0, **options: Any) -> Iterator[Census]:
    """Take the baseline on entry and `assert_no_leaks` on a normal exit (an exception from the block
    propagates as it is: it is the first thing to fix). `options` are those of `Census.take`."""
    before = Census.take(**options)
    yield before
    assert_no_leaks(before, settle_s=settle_s)


# ---- the parts ---------------------------------------------------------------------------------------------


def _read_process(pid: int) -> ProcessInfo | None:
    try:
        stat = open(f"/proc/{pid}/stat", "rb").read().decode(errors="replace")  # noqa: SIM115
        status = open(f"/proc/{pid}/status", "rb").read().decode(errors="replace")  # noqa: SIM115
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115
    except OSError:  # gone meanwhile
        return None
    name_end = stat.rfind(")")
    fields = stat[name_end + 2 :].split()
    uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), -1)
    text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or stat[stat.find("(") : name_end + 1]
    # fields: state(3) ppid(4) ... starttime(22), counted from 1 over the whole line
    return ProcessInfo(pid=pid, start=int(fields[19]), ppid=int(fields[1]), uid=uid, state=fields[0],
                       cmdline=text[:CMDLINE_HEAD])


def process_table() -> dict[int, ProcessInfo]:
    """Every process of the machine that this process can see, by pid."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read_process(int(name))
            if info is not None:
                table[info.pid] = info
    return table


def descendants(table: dict[int, ProcessInfo], root: int, ignore_cmdline: Sequence[str] = ()) -> list[ProcessInfo]:
    children: dict[int, list[ProcessInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found, frontier = [], [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if _cmdline_has(child.pid, ignore_cmdline):
                continue
            found.append(child)
            frontier.append(child.pid)
    return found


def _cmdline_has(pid: int, markers: Sequence[str]) -> bool:
    """Markers are looked for in the full command line: Chromium's run past the head that is kept."""
    if not markers:
        return False
    try:
        full = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")  # noqa: SIM115
    except OSError:
        return False
    return any(marker.encode() in full for marker in markers)


def ancestors(table: dict[int, ProcessInfo], pid: int) -> set[int]:
    found: set[int] = set()
    while pid in table and pid not in found:
        found.add(pid)
        pid = table[pid].ppid
    return found


def orphans(table: dict[int, ProcessInfo], uids: Collection[int], tree: Sequence[ProcessInfo],
            marked: Sequence[str] = (), root: int | None = None) -> list[ProcessInfo]:
    """Processes outside this process's tree that are still ours: sandbox-uid processes re-parented to
    init or to a subreaper among our ancestors (their sandbox is gone: a live sandbox's processes have a
    sandbox-uid parent or the launcher as parent), and processes whose command line holds a marker."""
    me = root or os.getpid()
    mine = {p.pid for p in tree} | {me}
    adopters = (ancestors(table, me) - {me}) | {1}
    return [p for p in table.values() if p.pid not in mine and (
        (p.uid in uids and p.ppid in adopters) or _cmdline_has(p.pid, marked))]


def fd_kind(target: str) -> str:
    """``pipe``, ``socket``, ``anon_inode:[...]`` (as the kernel names it), ``dev`` or ``file``."""
    if target.startswith("pipe:"):
        return "pipe"
    if target.startswith("socket:"):
        return "socket"
    if target.startswith("anon_inode:"):
        return target
    if target.startswith("/dev/"):
        return "dev"
    return "file"


def open_fds(pid: int | None = None) -> list[FdInfo]:
    """A process's open fds. The listing's own fd (its target is this process's fd directory) is left
    out; an fd closed while listed is too."""
    own = {f"/proc/{os.getpid()}/fd", "/proc/self/fd"}
    where = f"/proc/{pid or 'self'}/fd"
    found = []
    for name in os.listdir(where):
        try:
            target = os.readlink(f"{where}/{name}")
        except OSError:
            continue
        if target not in own:
            found.append(FdInfo(int(name), target))
    return found


#: a container engine's own storage mounts, which it makes and drops as containers come and go (podman
#: mounts its overlay store when the first container starts): the engine's state, not a leak of whoever
#: asked for the container. A leaked container's own mounts (``.../overlay/<id>/merged``) still count.
ENGINE_STORAGE_MOUNTS = ("/var/lib/containers/storage/overlay", "/var/lib/docker/overlay2")


def mount_entries(pid: int | None = None) -> frozenset[str]:
    """``"<mount id> <mount point> <fs type> <source>"`` for each mount the process sees, but the container
    engines' storage roots (`ENGINE_STORAGE_MOUNTS`)."""
    entries = set()
    with open(f"/proc/{pid or 'self'}/mountinfo", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] in ENGINE_STORAGE_MOUNTS:
                continue
            after = fields.index("-") if "-" in fields else len(fields)
            tail = fields[after + 1 : after + 3]
            entries.add(" ".join([fields[0], fields[4], *tail]))
    return frozenset(entries)


def temp_paths(directory: str, prefixes: Sequence[str]) -> frozenset[str]:
    """Entries of `directory` named with one of `prefixes`, as ``"<path> (inode N)"``."""
    if not prefixes:
        return frozenset()
    found = set()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(tuple(prefixes)):
                with contextlib.suppress(OSError):
                    found.add(f"{entry.path} (inode {entry.inode()})")
    return frozenset(found)


def system_paths(netns_dir: str = "/run/netns", cgroup_root: str = "/sys/fs/cgroup",
                 x11_dir: str = "/tmp/.X11-unix", owners: Collection[int] | None = None,
                 pid: int | None = None) -> frozenset[str]:
    """Machine-wide things a component can leave behind outside its process tree: named network namespaces
    (``ip netns``), cgroup directories named for agentenv and X displays (an Xvfb's socket, which outlives
    an Xvfb that was killed). Compared by name.

    Cgroups are looked for two levels below ``cgroup_root`` and below the cgroups ``pid`` (this process)
    is in, where a launcher makes its sandboxes'. A sandbox cgroup names its launcher
    (``agentenv-sandbox-<pid>-...``): with ``owners``, only those of these pids count, so another program's
    sandboxes running at the same time are not taken for this one's leaks."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found.update(f"netns {name}" for name in os.listdir(netns_dir))
    for directory in _cgroup_dirs(cgroup_root, pid):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if "agentenv" in entry.name and entry.is_dir(follow_symlinks=False) \
                        and _owned(entry.name, owners):
                    found.add(f"cgroup {entry.path}")
    with contextlib.suppress(OSError):
        found.update(f"X display {name}" for name in os.listdir(x11_dir))
    return frozenset(found)


def _cgroup_dirs(root: str, pid: int | None) -> set[str]:
    """``root``, its children, and the directories of the cgroups ``pid`` is in (v1 and v2)."""
    dirs = {root}
    with contextlib.suppress(OSError), os.scandir(root) as top:
        dirs.update(e.path for e in top if e.is_dir(follow_symlinks=False))
    with contextlib.suppress(OSError), open(f"/proc/{pid or 'self'}/cgroup", encoding="utf-8") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            names = [controllers, *controllers.split(",")] if controllers else [""]
            for name in names:
                candidate = os.path.normpath(os.path.join(root, name, path.lstrip("/")))
                if os.path.isdir(candidate):
                    dirs.add(candidate)
    return dirs


def _owned(name: str, owners: Collection[int] | None) -> bool:
    owner = name.removeprefix("agentenv-sandbox-").split("-")[0]
    if owners is None or not name.startswith("agentenv-sandbox-") or not owner.isdigit():
        return True
    return int(owner) in owners


def rss_bytes(pid: int | None = None) -> int:
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def disk_free(directory: str) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


class _Skip(Exception):
    """The containers could not be listed; the reason is recorded in `Census.skipped`."""


def engine_configured(url: str | None = None) -> str | None:
    """The engine to ask, or None when none is configured: an explicit url, ``$AGENTENV_DOCKER_HOST``,
    ``$DOCKER_HOST``, or the default socket when it exists."""
    url = url or os.environ.get("AGENTENV_DOCKER_HOST") or os.environ.get("DOCKER_HOST")
    if url:
        return url
    return "unix:///var/run/docker.sock" if os.path.exists("/var/run/docker.sock") else None


def list_containers(run_id: str | None = None, url: str | None = None, timeout_s: float = 10.0,
                    connect: Callable[[str, float], Any] | None = None, owner: int | None = None) -> frozenset[str]:
    """Ids and names of agentenv's sandbox containers (any state) that process `owner` (default: this
    one) created, or of `run_id`.

    Raises `_Skip` when no engine is configured, the `docker` package is missing or the engine does not
    answer within `timeout_s` (not the sandbox backend's 60 s: the census must not hang on a dead one).
    """
    url = engine_configured(url)
    if url is None:
        raise _Skip("no Docker engine configured (AGENTENV_DOCKER_HOST)")
    if connect is None:
        try:
            import docker
        except ImportError as exc:
            raise _Skip("the docker package is not installed") from exc

        def connect(url: str, timeout: float) -> Any:
            # A pinned API version: negotiating one costs a /version call, 0.4 s on podman, on every take.
            return docker.DockerClient(base_url=url, version="1.41", timeout=int(max(1, timeout)))
    labels = [CONTAINER_LABEL, f"agentenv.run={run_id}" if run_id else f"agentenv.owner_pid={owner or os.getpid()}"]
    client = None
    try:
        client = connect(url, timeout_s)
        found = client.containers.list(all=True, filters={"label": labels})
        return frozenset(f"{c.short_id} {c.name}" for c in found)
    except _Skip:
        raise
    except Exception as exc:
        raise _Skip(f"the engine at {url} did not answer: {exc}") from exc
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
