"""Embedded transformers policy benchmark: multi-turn collection with and without prefix reuse.

    python benchmarks/embedded_policy.py [--episodes 8] [--max-turns 10]

Collects the same seeded Maze episodes with SmolLM2-135M-Instruct twice in one run: once keeping each
episode's keys/values between turns (the default), once recomputing every prompt from scratch
(``prefix_cache_mb=0``, the baseline). Both runs sample the same tokens, so the ratio is pure speed.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from agentenv.collector import CollectConfig, Collector
from agentenv.policies.embedded import TransformersPolicy
from agentenv.policy import SamplingParams


def run(prefix_cache_mb: float, episodes: int, max_turns: int) -> dict[str, float]:
    policy = TransformersPolicy("smollm2-135m-instruct", prefix_cache_mb=prefix_cache_mb)
    cfg = CollectConfig("agentenv/Maze-v0", n_tasks=episodes, concurrency=episodes, progress="off",
                        env_kwargs={"size": 4, "max_turns": max_turns},
                        sampling=SamplingParams(max_tokens=32, temperature=0.7))
    collector = Collector(cfg, policy)
    start = time.perf_counter()
    summary = collector.run()
    wall = time.perf_counter() - start
    computed, reused = policy.prefix_tokens["computed"], policy.prefix_tokens["reused"]
    return {"wall": wall, "turns": summary.turns, "completion": summary.completion_tokens,
            "prefill": computed, "reused": reused / max(computed + reused, 1),
            "signature": hash(tuple(tuple(t.completion_ids) for tr in collector.trajectories for t in tr.turns))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=10)
    args = parser.parse_args()
    settings = (("prefix reuse", 512), ("baseline: none", 0))
    results = {name: run(mb, args.episodes, args.max_turns) for name, mb in settings}
    table = Table(title=f"SmolLM2-135M on Maze 4x4: {args.episodes} concurrent episodes, <= {args.max_turns} turns")
    for col in ("policy", "turns", "wall s", "turns/s", "completion tok/s", "prompt tokens computed", "reused"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(name, str(r["turns"]), f"{r['wall']:.1f}", f"{r['turns'] / r['wall']:.2f}",
                      f"{r['completion'] / r['wall']:.0f}", f"{r['prefill']:,}", f"{r['reused']:.0%}")
    ours, base = results["prefix reuse"], results["baseline: none"]
    Console(width=120).print(table)
    same = "same tokens" if ours["signature"] == base["signature"] else "TOKENS DIFFER"
    print(f"speed-up of prefix reuse: {base['wall'] / ours['wall']:.2f}x ({same} in both runs)")


if __name__ == "__main__":
    main()
