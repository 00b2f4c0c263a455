"""Where a run's metrics go: ``metrics.jsonl`` (always), TensorBoard (when installed), and a progress bar
over the training steps on a terminal (log lines elsewhere)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

log = logging.getLogger("agentenv.train")
SHOWN = ("success_rate", "eval_success", "eval_teacher_agreement", "reward_mean", "loss", "sft_nll", "kl")


class RunLog:
    def __init__(self, out: Path, total_steps: int, done_steps: int = 0, mode: str = "auto"):
        if mode not in ("auto", "bar", "log", "off"):
            raise ValueError(f"progress must be auto, bar, log or off, got {mode!r}")
        self.out, self.mode = out, ("bar" if sys.stderr.isatty() else "log") if mode == "auto" else mode
        self.total, self.done = total_steps, done_steps
        self._bar: Progress | None = None
        self._task: Any = None
        self._tensorboard: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # tensorboard is optional
            pass

    def __enter__(self) -> RunLog:
        if self.mode == "bar":
            self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[dim]{task.fields[phase]}"),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True))
            self._bar.start()
            self._task = self._bar.add_task("train", total=self.total, completed=self.done, stats="",
                                           phase="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._tensorboard is not None:
            self._tensorboard.close()

    def phase(self, text: str) -> None:
        """What the run is doing now ("collecting step 3"): steps take minutes on a CPU."""
        if self._bar is not None:
            self._bar.update(self._task, phase=text)
        elif self.mode == "log":
            log.info("%s", text)

    def record(self, record: dict[str, Any]) -> None:
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        step = int(record.get("step", 0))
        if self._tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
                    self._tensorboard.add_scalar(key, value, step)
        stats = " ".join(f"{k} {record[k]:.3g}" for k in SHOWN if isinstance(record.get(k), int | float))
        if self._bar is not None:
            self._bar.update(self._task, completed=step, stats=stats)
        elif self.mode == "log":
            log.info("step %d/%d %s", step, self.total, stats)
