"""Warm sandboxes, ready before an episode asks, so that no episode waits for a start-up.

A sandbox is never handed out twice: an episode gets a fresh one (its own mounts, PID namespace and
workspace, so nothing leaks from one episode to the next, reliability I12) and the pool starts the next
in the background. `prepare` runs on each sandbox while it is warming: copy a repository in, start an
interpreter. That is what makes an episode's reset cost a queue pop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentenv.sandboxes.base import Sandbox, SandboxError

log = logging.getLogger(__name__)


@dataclass
class PoolStats:
    started: int = 0
    served_warm: int = 0
    served_cold: int = 0
    failed_starts: int = 0
    discarded_dead: int = 0


class SandboxPool:
    def __init__(
        self,
        factory: Callable[[], Sandbox],
        size: int = 2,
        *,
        prepare: Callable[[Sandbox], None] | None = None,
        workers: int = 1,
    ) -> None:
        if size < 0:
            raise ValueError("pool size must be >= 0")
        self.factory, self.size, self.prepare = factory, size, prepare
        self.warm: queue.Queue[Sandbox] = queue.Queue()
        self.stats = PoolStats()
        self.closed = threading.Event()
        self.wanted = threading.Semaphore(size)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._fill, name=f"sandbox-pool-{i}", daemon=True)
                        for i in range(workers if size else 0)]
        for thread in self.threads:
            thread.start()

    def _new(self) -> Sandbox:
        sandbox = self.factory()
        try:
            if self.prepare is not None:
                self.prepare(sandbox)
        except BaseException:
            sandbox.close()
            raise
        with self.lock:
            self.stats.started += 1
        return sandbox

    def _fill(self) -> None:
        backoff = 0.1
        while not self.closed.is_set():
            if not self.wanted.acquire(timeout=0.2):
                continue
            try:
                sandbox = self._new()
            except Exception as exc:
                with self.lock:
                    self.stats.failed_starts += 1
                log.warning("sandbox pool: a sandbox failed to start: %s", exc)
                self.wanted.release()
                self.closed.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.1
            if self.closed.is_set():
                sandbox.close()
                return
            self.warm.put(sandbox)

    def acquire(self, min_life_s: float = 0.0) -> Sandbox:
        """A ready sandbox: a warm one if there is one, else one started now. A warm one that died while
        it waited, or has less than `min_life_s` left of its TTL (an episode it could not finish), is
        closed instead of served."""
        if self.closed.is_set():
            raise SandboxError("the sandbox pool is closed")
        while True:
            try:
                sandbox = self.warm.get_nowait()
            except queue.Empty:
                break
            self.wanted.release()
            if sandbox.alive and getattr(sandbox, "remaining_s", float("inf")) >= min_life_s:
                with self.lock:
                    self.stats.served_warm += 1
                return sandbox
            with self.lock:
                self.stats.discarded_dead += 1
            sandbox.close()
        sandbox = self._new()
        with self.lock:
            self.stats.served_cold += 1
        return sandbox

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until `size` sandboxes are warm (for benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        while self.warm.qsize() < self.size:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def release(self, sandbox: Sandbox) -> None:
        """Give back a sandbox after an episode: it is closed, never reused."""
        sandbox.close()

    def close(self) -> None:
        self.closed.set()
        for thread in self.threads:
            thread.join(timeout=30)
        while True:
            try:
                self.warm.get_nowait().close()
            except queue.Empty:
                return

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
