"""Live progress of a collection: a rich bar on a terminal, plain log lines elsewhere (CI, files)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agentenv.trajectory import Trajectory

log = logging.getLogger("agentenv.collect")


class CollectProgress:
    """Counts committed episodes, turns, successes and tokens; renders them every ``interval`` seconds."""

    def __init__(self, total: int, done_before: int = 0, mode: str = "auto", interval: float = 5.0,
                 label: str = "collect"):
        if mode not in ("auto", "bar", "log", "off"):
            raise ValueError(f"progress mode must be auto, bar, log or off, got {mode!r}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.total, self.interval, self.label = mode, total, interval, label
        self.done_before = done_before
        self.episodes = self.turns = self.successes = self.failures = self.tokens = 0
        self.started = time.monotonic()
        self._last_log = self.started
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> CollectProgress:
        if self.mode == "bar":
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.done_before,
                                            stats=self.stats())
        elif self.mode == "log":
            log.info("%s: %d episodes to run (%d already done)", self.label, self.total - self.done_before,
                     self.done_before)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.update(self._task, stats=self.stats())
            self._bar.stop()
        elif self.mode == "log":
            self._log_line()

    def add(self, trajectories: list[Trajectory]) -> None:
        for t in trajectories:
            self.episodes += 1
            self.turns += len(t.turns)
            self.successes += t.success
            self.failures += t.status == "failed"
            self.tokens += sum(len(x.completion_ids) + len(x.prompt_ids) for x in t.turns)
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done_before + self.episodes, stats=self.stats())
        elif self.mode == "log" and now - self._last_log >= self.interval:
            self._log_line()

    def stats(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.successes / self.episodes if self.episodes else 0.0
        return (f"{self.turns / elapsed:6.1f} turns/s  success {rate:6.1%}  "
                f"tokens {self.tokens:,}  failed {self.failures}")

    def _log_line(self) -> None:
        self._last_log = time.monotonic()
        log.info("%s: %d/%d episodes  %s", self.label, self.done_before + self.episodes, self.total, self.stats())
