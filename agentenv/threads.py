"""A thread pool whose threads never keep the process alive.

Sync envs run in threads, and an env call that hangs cannot be interrupted. With
``concurrent.futures.ThreadPoolExecutor`` the interpreter joins every worker at exit, so one hung env call
would hold the process open after the collection has finished and recorded that episode as failed. These
workers are daemon threads: the process exits when the main thread is done, abandoning hung calls.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_STOP = object()


class DaemonThreadPool(ThreadPoolExecutor):
    """``max_workers`` daemon threads, started on demand, fed from one queue.

    A ``ThreadPoolExecutor`` only by type (asyncio's default executor must be one); it overrides every
    method that touches threads and uses none of the base class's machinery, whose workers are joined at exit.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "agentenv"):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.prefix = thread_name_prefix
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._work.put((future, fn, args, kwargs))
            if self._idle <= 0 and len(self._workers) < self.max_workers:
                thread = threading.Thread(target=self._run, name=f"{self.prefix}-{len(self._workers)}", daemon=True)
                self._workers.append(thread)
                thread.start()
            else:
                self._idle -= 1  # an idle worker will take it
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as e:
                    future.set_exception(e)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        item[0].cancel()
            for _ in self._workers:
                self._work.put(_STOP)
        if wait:
            for thread in self._workers:
                thread.join()
