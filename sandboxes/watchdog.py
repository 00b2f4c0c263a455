"""One thread that fires every sandbox's lifetime limit (reliability F12), instead of a timer thread per
sandbox: a pool of hundreds of sandboxes, or a churn of thousands, would otherwise hold as many sleeping
threads."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Deadline:
    """A scheduled call; ``cancel()`` before it fires and it never does."""

    __slots__ = ("cancelled", "fn", "owner", "when")

    def __init__(self, when: float, fn: Callable[[], None], owner: Watchdog):
        self.when, self.fn, self.owner, self.cancelled = when, fn, owner, False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.owner.forget()


class Watchdog:
    """A heap of deadlines served by one daemon thread, started on first use."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def schedule(self, delay: float, fn: Callable[[], None]) -> Deadline:
        deadline = Deadline(time.monotonic() + delay, fn, self)
        with self._wake:
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="agentenv-sandbox-ttl", daemon=True)
                self._thread.start()
            self._wake.notify()
        return deadline

    def forget(self) -> None:
        """Count a cancellation; drop cancelled entries once they are half the heap (a churn of short-lived
        sandboxes must not pile up hours of dead entries)."""
        with self._wake:
            self._cancelled += 1
            if self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, deadline = heapq.heappop(self._heap)
                if deadline.cancelled:
                    self._cancelled = max(0, self._cancelled - 1)
                    continue
            try:
                deadline.fn()
            except Exception:  # a failing callback must not stop the others' deadlines
                continue


WATCHDOG = Watchdog()
