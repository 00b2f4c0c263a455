"""A disk that fails on purpose: the store's file writes raise ENOSPC or EIO while a fault is on.

The fault sits where the real one would: inside the store's atomic write, after part of the shard has
gone to its temp file, so the store's own clean-up runs as it would on a full disk::

    with DiskFaults() as disk:
        disk.fail(errno.ENOSPC)          # from now on every shard and manifest write fails
        ...                               # the collector pauses intake and keeps retrying
        disk.recover()                    # space is back: the pending writes go through
    disk.failures                         # how many writes failed

The work ledger (on the same disk) fails too when ``ledger=True``.
"""

from __future__ import annotations

import errno as errno_module
import os
import threading
from typing import Any, BinaryIO
from unittest import mock


class DiskFaults:
    """Patches :mod:`agentenv.store`'s writes (and, with ``ledger``, the ledger's) while entered; with
    ``match``, only writes to paths containing it fail (``"/shards/"``: the data, not the manifest)."""

    def __init__(self, ledger: bool = False, match: str | None = None):
        self.ledger, self.match = ledger, match
        self.failures = 0
        self.writes = 0
        self._errno: int | None = None
        self._remaining: int | None = None
        self._lock = threading.Lock()
        self._patches: list[Any] = []

    def fail(self, code: int = errno_module.ENOSPC, times: int | None = None) -> None:
        """Make writes fail with ``code`` (``times`` of them, or until :meth:`recover`)."""
        with self._lock:
            self._errno, self._remaining = code, times

    def recover(self) -> None:
        with self._lock:
            self._errno = None

    @property
    def failing(self) -> bool:
        return self._errno is not None

    def _draw(self) -> int | None:
        """The error this write gets (None: it succeeds), counted."""
        with self._lock:
            self.writes += 1
            code = self._errno
            if code is None:
                return None
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._errno = None
            self.failures += 1
            return code

    def _check(self, what: str) -> None:
        code = self._draw()
        if code is not None:
            raise OSError(code, f"{os.strerror(code)} (injected into {what})")

    def __enter__(self) -> DiskFaults:
        from agentenv import ledger, store

        real_atomic_write = store._atomic_write

        def atomic_write(path: Any, write: Any) -> None:
            def failing_write(f: BinaryIO) -> object:
                if self.match is not None and self.match not in str(path):
                    return write(f)
                code = self._draw()
                if code is not None:
                    f.write(b"PAR1")  # part of the file reaches the disk before the error, as it would
                    raise OSError(code, f"{os.strerror(code)} (injected into {path})")
                return write(f)
            real_atomic_write(path, failing_write)

        self._patches = [mock.patch.object(store, "_atomic_write", atomic_write)]
        if self.ledger:
            real_append = ledger.Ledger._append

            def append(ledger_self: Any, records: Any, sync: bool) -> None:
                self._check(str(ledger_self.path))
                real_append(ledger_self, records, sync)
            self._patches.append(mock.patch.object(ledger.Ledger, "_append", append))
        for patch in self._patches:
            patch.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for patch in reversed(self._patches):
            patch.stop()
        self._patches = []
