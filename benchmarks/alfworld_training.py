"""Each trainer on ALFWorld with SmolLM2-135M under the same CPU budget: held-out success before and after.

    python benchmarks/alfworld_training.py [--minutes 6] [--algos grpo,gigpo,hgpo,dagger] [--quick]

Every algorithm starts from the bundled SmolLM2-135M-Instruct, trains on ALFWorld's ``train`` split with
its §9.8 preset (the group sizes scaled down to fit a CPU: 2 tasks x 4 samples per step; LoRA rank 16,
bfloat16 autocast, 8 rows per optimizer step, as in the README's DAgger recipe) for a fixed
wall-clock budget (no step starts after it), and is evaluated greedily on the same held-out
``valid_unseen`` tasks before and after. The baseline is the untrained model on those tasks, measured in
the same run (each run evaluates its own step 0: they must agree). The table shows held-out success, valid
actions and, where a teacher labels the states (DAgger), agreement with ALFWorld's expert, plus the steps
each algorithm fit in its budget.

This is a measurement, not a tuned result: a 135M model succeeds at almost no ALFWorld task, so the
policy-gradient trainers' groups rarely hold a success to learn from within minutes, while DAgger learns
from the expert's labels at every visited state from its first step.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentenv.trainers.config import load_config
from agentenv.trainers.loop import Trainer

console = Console(width=max(Console().width, 120))


def run(algo: str, minutes: float, eval_tasks: int, out: Path) -> dict[str, object]:
    overrides = [
        "env=agentenv/ALFWorld-v0", "env_kwargs={split: train, max_turns: 6, lenient: true}",
        "eval_env_kwargs={split: valid_unseen, max_turns: 6, lenient: true}", f"out={out / algo}",
        "steps=1000", f"max_minutes={minutes}", "eval_every=1000", f"eval_tasks={eval_tasks}",
        "max_tokens=16", "temperature=0.7", "window=1", "concurrency=8", "progress=log",
        "lora_rank=16", "lora_alpha=32", "amp=true", "minibatch_rows=8",
    ]
    if algo == "dagger":  # the README's recipe (examples/alfworld_dagger.yaml)
        overrides += ["tasks_per_step=4", "group_size=1", "lr=3e-4"]
    else:
        overrides += ["tasks_per_step=2", "group_size=4", "lr=1e-4"]
    if algo == "hgpo":
        overrides.append("history=1")  # its context groups cannot look further back than the prompt's window
    config, _ = load_config(algo, overrides=overrides)
    started = time.perf_counter()
    with Trainer(config) as trainer:
        history = trainer.run()
    evals = [r for r in history if "eval_success" in r]
    return {"algo": algo, "before": evals[0], "after": evals[-1], "steps": max(int(r["step"]) for r in history),
            "minutes": (time.perf_counter() - started) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per algorithm")
    parser.add_argument("--algos", default="grpo,gigpo,hgpo,dagger")
    parser.add_argument("--eval-tasks", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="0.5 minutes each, 2 held-out tasks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    minutes, eval_tasks = (0.5, 2) if args.quick else (args.minutes, args.eval_tasks)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results = [run(algo, minutes, eval_tasks, out) for algo in args.algos.split(",")]
    table = Table(title=f"ALFWorld valid_unseen, {eval_tasks} tasks, greedy; SmolLM2-135M, {minutes:g} min per "
                        "algorithm on this CPU")
    for column in ("algorithm", "steps", "wall min", "success before", "success after", "valid actions",
                   "agrees with expert"):
        table.add_column(column, justify="right")
    for r in results:
        before, after = r["before"], r["after"]
        assert isinstance(before, dict) and isinstance(after, dict)
        agree = ("-" if "eval_teacher_agreement" not in after else
                 f"{before['eval_teacher_agreement']:.2f} → {after['eval_teacher_agreement']:.2f}")
        table.add_row(str(r["algo"]), str(r["steps"]), f"{r['minutes']:.1f}", f"{before['eval_success']:.2f}",
                      f"{after['eval_success']:.2f}",
                      f"{before['eval_valid_actions']:.2f} → {after['eval_valid_actions']:.2f}", agree)
    console.print(table)
    gains = {str(r["algo"]): r["after"]["eval_success"] - r["before"]["eval_success"]  # type: ignore[index]
             for r in results}
    console.print("success after − before (baseline: the untrained model, same tasks): "
                  + ", ".join(f"{k} {v:+.2f}" for k, v in gains.items()))
    console.print_json(json.dumps({str(r["algo"]): {"before": r["before"], "after": r["after"]} for r in results}))


if __name__ == "__main__":
    main()
