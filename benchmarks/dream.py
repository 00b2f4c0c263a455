"""Dream steps against real browser steps: the same agent, the same collector, the real env and its dream twin.

    python benchmarks/dream.py --env agentenv/MiniWoB-EnterText-v0 --world-model runs/wwm/model \
        --starts data/et-expert [--episodes 16] [--concurrency 1,8] [--max-turns 4] [--json OUT]

A random agent (it picks among the page's element actions, so it costs nothing to think) plays `--episodes`
episodes on the real env (Chromium) and the same number in `agentenv/Dream-<env>` (the world model writes
each next page), at each concurrency. Reported: env steps per second (all turns / wall time, resets
included), the env's own seconds per step (p50), how many dream steps produced a Δ that did not fit the
page, and the ratio dream / real measured in this run. On a CPU the world model (a 135M transformer writing
Δ token by token) competes with everything else on the machine; on a GPU it is served by vLLM.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from agentenv.collector import collect
from agentenv.envs.web.dream import dream_id
from agentenv.policies import RandomPolicy


def run(env_id: str, env_kwargs: dict[str, Any], episodes: int, concurrency: int) -> dict[str, float]:
    started = time.perf_counter()
    _, found = collect(env_id, RandomPolicy(seed=7), n_tasks=episodes, concurrency=concurrency, progress="off",
                       env_kwargs=env_kwargs, seed=100)
    wall = time.perf_counter() - started
    turns = [turn for t in found for turn in t.turns]
    return {"episodes": float(len(found)), "failed": float(sum(t.status != "ok" for t in found)),
            "steps": float(len(turns)), "wall_s": wall, "steps_per_s": len(turns) / max(wall, 1e-9),
            "step_s_p50": statistics.median([turn.env_seconds for turn in turns]) if turns else 0.0,
            "delta_errors": float(sum("delta_error" in turn.info for turn in turns)),
            "success": sum(t.success for t in found) / max(len(found), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="agentenv/MiniWoB-EnterText-v0")
    parser.add_argument("--world-model", required=True, help="a world model directory (agentenv train wwm)")
    parser.add_argument("--starts", required=True, nargs="+", help="trajectory stores of real episodes")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    print(f"{'env':8} {'K':>3} {'episodes':>8} {'steps':>6} {'wall s':>7} {'steps/s':>8} {'env s/step p50':>15} "
          f"{'bad Δ':>6} {'success':>8}")
    for k in (int(x) for x in args.concurrency.split(",")):
        real = run(args.env, {"max_turns": args.max_turns}, args.episodes, k)
        dreamed = run(dream_id(args.env), {"world_model": args.world_model, "starts": args.starts,
                                           "max_turns": args.max_turns}, args.episodes, k)
        for name, r in (("real", real), ("dream", dreamed)):
            print(f"{name:8} {k:>3} {r['episodes']:>8.0f} {r['steps']:>6.0f} {r['wall_s']:>7.1f} "
                  f"{r['steps_per_s']:>8.2f} {r['step_s_p50']:>15.3f} {r['delta_errors']:>6.0f} {r['success']:>8.2f}")
        ratio = dreamed["steps_per_s"] / max(real["steps_per_s"], 1e-9)
        print(f"{'':8} {k:>3} dream / real steps per second: {ratio:.2f}x")
        results.append({"concurrency": k, "real": real, "dream": dreamed, "ratio": ratio})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
