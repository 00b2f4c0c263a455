"""Each trainer with SmolLM2-135M under the same CPU budget: held-out success before and after.

    python benchmarks/training.py [--env alfworld|code] [--minutes 6] [--algos grpo,gigpo,hgpo,dagger] [--quick]

Every algorithm starts from the bundled SmolLM2-135M-Instruct, trains with its §9.8 preset (the group
sizes scaled down to fit a CPU: 2 tasks x 4 samples per step, tree algorithms 2 of them global samples;
LoRA rank 16, bfloat16 autocast, 8 rows per optimizer step, as in the README's DAgger recipe) for a fixed
wall-clock budget (no step starts after it), and is evaluated greedily on the same held-out tasks before
and after: ALFWorld's ``valid_unseen`` split (``--env alfworld``: training on ``train``, one past turn in
the prompt) or the code interpreter's ``test`` split (``--env code``: training on ``train``, the whole
episode in the prompt, which the tree algorithms' sequence view needs). The baseline is the untrained model
on those tasks, measured in the same run (each run evaluates its own step 0: they must agree). The table
shows held-out success, valid actions and, where a teacher labels the states (DAgger), agreement with the
expert, plus the steps each algorithm fit in its budget and the samples it collected.

This is a measurement, not a tuned result: a 135M model succeeds at almost none of these tasks, so the
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


ENVS = {
    "alfworld": ["env=agentenv/ALFWorld-v0", "env_kwargs={split: train, max_turns: 6, lenient: true}",
                 "eval_env_kwargs={split: valid_unseen, max_turns: 6, lenient: true}", "max_tokens=16"],
    "code": ["env=agentenv/CodeInterpreter-v0", "env_kwargs={split: train, max_turns: 4}",
             "eval_env_kwargs={split: test, max_turns: 4}", "max_tokens=128"],
}
TREE = ("arpo", "aepo", "appo", "trace")


def run(env: str, algo: str, minutes: float, eval_tasks: int, out: Path, model: str,
        steps: int | None = None) -> dict[str, object]:
    budget = [f"steps={steps}"] if steps else ["steps=1000", f"max_minutes={minutes}"]
    overrides = [
        *ENVS[env], f"model={model}", f"out={out / algo}", *budget, "eval_every=1000",
        f"eval_tasks={eval_tasks}", "temperature=0.7", "concurrency=8", "progress=log",
        "lora_rank=16", "lora_alpha=32", "amp=true", "minibatch_rows=8",
    ]
    if env == "alfworld" and algo not in TREE:
        overrides.append("window=1")  # the tree algorithms train on whole sequences: every turn in the prompt
    if algo == "dagger":  # the README's recipe (examples/alfworld_dagger.yaml)
        overrides += ["tasks_per_step=4", "group_size=1", "lr=3e-4"]
    else:
        overrides += ["tasks_per_step=2", "group_size=4", "lr=1e-4"]
    if algo in TREE and algo != "trace":
        overrides.append("initial_rollouts=2")
    if algo == "hgpo":
        overrides.append("history=1")  # its context groups cannot look further back than the prompt's window
    config, _ = load_config(algo, overrides=overrides)
    started = time.perf_counter()
    with Trainer(config) as trainer:
        history = trainer.run()
    evals = [r for r in history if "eval_success" in r]
    return {"algo": algo, "before": evals[0], "after": evals[-1], "steps": max(int(r["step"]) for r in history),
            "minutes": (time.perf_counter() - started) / 60,
            "samples": sum(int(r.get("episodes", 0)) for r in history if "rows" in r or "skipped" in r),
            "branches": sum(float(r.get("branches_per_group", 0.0)) * 2 for r in history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", choices=sorted(ENVS), default="alfworld")
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per algorithm")
    parser.add_argument("--steps", type=int, default=None,
                        help="a budget of steps (the same samples for every algorithm) instead of minutes")
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="every run's start: a catalog name or a model directory (a DAgger run's RUN/model)")
    parser.add_argument("--algos", default="grpo,gigpo,hgpo,dagger")
    parser.add_argument("--eval-tasks", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="0.5 minutes each, 2 held-out tasks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    minutes, eval_tasks = (0.5, 2) if args.quick else (args.minutes, args.eval_tasks)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results = [run(args.env, algo, minutes, eval_tasks, out, args.model, args.steps)
                   for algo in args.algos.split(",")]
    held_out = "ALFWorld valid_unseen" if args.env == "alfworld" else "code interpreter test split"
    budget = f"{args.steps} steps" if args.steps else f"{minutes:g} min"
    table = Table(title=f"{held_out}, {eval_tasks} tasks, greedy; {args.model}, {budget} per algorithm on this CPU")
    for column in ("algorithm", "steps", "samples", "forks", "wall min", "success before", "success after",
                   "valid actions", "agrees with expert"):
        table.add_column(column, justify="right")
    for r in results:
        before, after = r["before"], r["after"]
        assert isinstance(before, dict) and isinstance(after, dict)
        agree = ("-" if "eval_teacher_agreement" not in after else
                 f"{before['eval_teacher_agreement']:.2f} → {after['eval_teacher_agreement']:.2f}")
        table.add_row(str(r["algo"]), str(r["steps"]), str(r["samples"]), f"{r['branches']:.0f}",
                      f"{r['minutes']:.1f}", f"{before['eval_success']:.2f}",
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
