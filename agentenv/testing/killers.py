"""Killing the processes a run depends on, on purpose: an env server, a sandbox, a browser, a Ray worker, a
collector or a trainer, now or at a random point of a window (reliability §4's fault rows).

Targets are found the way :mod:`agentenv.census` finds them, by walking ``/proc``: the descendants of a
process (this one by default) whose command line contains a marker. Named finders cover agentenv's own
components::

    with Killer(browser_pids, window=(0.5, 2.0), seed=3) as killer:
        run_the_episodes()
    assert killer.killed  # which pids died, and when
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence

from agentenv.census import BROWSER_MARKER, descendants, process_table

PidFinder = Callable[[], list[int]]


def find_pids(*markers: str, root: int | None = None) -> list[int]:
    """Live descendants of ``root`` (this process) whose command line contains any of ``markers``,
    outermost first."""
    table = process_table()
    found = []
    for proc in descendants(table, root or os.getpid()):
        if proc.state == "Z":
            continue
        try:
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in markers):
            found.append(proc.pid)
    return found


def sandbox_pids(root: int | None = None) -> list[int]:
    """The bubblewrap launchers of this process's local sandboxes (killing one kills its sandbox)."""
    return find_pids("bwrap ", root=root)


def browser_pids(root: int | None = None) -> list[int]:
    """The Chromium main processes agentenv's browser runtime started (they carry its marker)."""
    return [pid for pid in find_pids(BROWSER_MARKER, root=root) if not _is_renderer(pid)]


def ray_worker_pids(root: int | None = None) -> list[int]:
    """The processes of Ray actors playing episodes (``EpisodeWorker``)."""
    return find_pids("ray::EpisodeWorker", root=root)


def _is_renderer(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"--type=" in f.read()
    except OSError:
        return True


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Signal ``pid`` and every descendant (deepest first, so none is re-parented away in between);
    returns the pids signalled. A process that is already gone is skipped."""
    table = process_table()
    pids = [p.pid for p in reversed(descendants(table, pid))] + [pid]
    signalled = []
    for p in pids:
        try:
            os.kill(p, sig)
            signalled.append(p)
        except ProcessLookupError:
            continue
    return signalled


class Killer:
    """Kills what ``targets`` returns at a random moment in ``window`` seconds after start (seeded), from a
    thread; ``repeat`` kills again at each later draw until stopped; ``choose`` kills only that many of the
    targets found, picked at random (None: all). ``killed`` lists ``(seconds after start, pid)``; a draw that
    finds no target is recorded in ``missed``."""

    def __init__(self, targets: PidFinder | Sequence[int], window: tuple[float, float] = (0.0, 0.0),
                 sig: int = signal.SIGKILL, seed: int = 0, repeat: bool = False, tree: bool = False,
                 choose: int | None = None):
        if window[0] < 0 or window[1] < window[0]:
            raise ValueError(f"window must be (low, high) with 0 <= low <= high, got {window}")
        fixed = list(targets) if not callable(targets) else None
        self.targets: PidFinder = (lambda: list(fixed)) if fixed is not None else targets  # type: ignore[assignment]
        self.window, self.sig, self.repeat, self.tree, self.choose = window, sig, repeat, tree, choose
        self._rng = random.Random(seed)
        self.killed: list[tuple[float, int]] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self) -> Killer:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="agentenv-killer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Killer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_at = 0.0
        while True:
            next_at += self._rng.uniform(*self.window)
            if self._stop.wait(max(0.0, self._t0 + next_at - time.monotonic())):
                return
            pids = self.targets()
            if not pids:
                self.missed += 1
            elif self.choose is not None and len(pids) > self.choose:
                pids = self._rng.sample(pids, self.choose)
            for pid in pids:
                signalled = kill_tree(pid, self.sig) if self.tree else _kill(pid, self.sig)
                if signalled:
                    self.killed.append((round(time.monotonic() - self._t0, 3), pid))
            if not self.repeat:
                return


def _kill(pid: int, sig: int) -> list[int]:
    try:
        os.kill(pid, sig)
        return [pid]
    except ProcessLookupError:
        return []
