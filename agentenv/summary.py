"""The summary of a collection: success, reward, turns, tokens, failures by cause, wall time."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from agentenv.trajectory import Trajectory


@dataclass
class CollectSummary:
    episodes: int = 0
    skipped: int = 0
    successes: int = 0
    reward_sum: float = 0.0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0
    #: store writes that failed and were retried (a full disk, EIO): intake paused meanwhile
    store_failures: int = 0
    #: the resource census's verdict when the run took one (``CollectConfig.census``)
    census: str = ""
    #: per task type (when the env reports one in its reset info): [episodes, successes]
    by_task_type: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, trajectories: Iterable[Trajectory]) -> None:
        for t in trajectories:
            self.episodes += 1
            self.successes += t.success
            self.reward_sum += t.reward
            self.turns += len(t.turns)
            self.truncated += t.truncated
            self.prompt_tokens += sum(len(x.prompt_ids) for x in t.turns)
            self.completion_tokens += sum(len(x.completion_ids) for x in t.turns)
            if t.status == "failed":
                self.failures[t.failure_cause or "unknown"] += 1
            task_type = t.extra.get("task_type")
            if task_type is not None:
                entry = self.by_task_type[str(task_type)]
                entry[0] += 1
                entry[1] += t.success

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.episodes if self.episodes else 0.0

    @property
    def mean_turns(self) -> float:
        return self.turns / self.episodes if self.episodes else 0.0

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.wall_seconds if self.wall_seconds else 0.0

    def table(self, title: str = "collection summary") -> Table:
        table = Table(title=title, show_header=False)
        table.add_column("metric", style="bold")
        table.add_column("value", justify="right")
        rows = [
            ("episodes", f"{self.episodes}" + (f" (+{self.skipped} already done)" if self.skipped else "")),
            ("success rate", f"{self.success_rate:.1%}"),
            ("mean reward", f"{self.mean_reward:.3f}"),
            ("mean turns", f"{self.mean_turns:.2f}"),
            ("truncated", str(self.truncated)),
            ("tokens (prompt new / completion)", f"{self.prompt_tokens:,} / {self.completion_tokens:,}"),
            ("failures", ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "0"),
        ]
        if self.store_failures:
            rows.append(("store write failures (retried)", str(self.store_failures)))
        if self.census:
            rows.append(("resource census", self.census.splitlines()[0]))
        if self.wall_seconds:  # a summary read back from a store has no wall time
            rows += [("wall time", f"{self.wall_seconds:.1f} s"),
                     ("turns/s, tokens/s", f"{self.turns_per_second:.1f}, {self.tokens_per_second:.0f}")]
        for task_type, (n, ok) in sorted(self.by_task_type.items()):
            rows.append((f"success: {task_type}", f"{ok}/{n} ({ok / n:.0%})"))
        for name, value in rows:
            table.add_row(name, value)
        return table

    def print(self, console: Console | None = None, title: str = "collection summary") -> None:
        (console or Console()).print(self.table(title))
