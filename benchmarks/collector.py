"""Collector benchmark: concurrency scaling, store write rate, and prefix reuse of rendered prompts.

    python benchmarks/collector.py [--quick]

1. Throughput at K = 1, 8, 64, 256 concurrent episodes with a policy stub of fixed 50 ms latency and a
   sync env whose steps take 1 ms (run off the event loop, as real sync envs are). Baseline: K = 1 in the
   same run. Targets: >= 0.8*K up to K = 64, >= 100x at K = 256.
2. Store write rate (turns/s, MB/s, overhead per episode) of TrajectoryStore against a plain
   ``pyarrow.parquet.write_table`` of the same rows (baseline) in the same run.
3. Prefix reuse: the fraction of prompt tokens that are an exact prefix of the previous turn's prompt +
   completion, with the real SmolLM2 chat template (target >= 95%). The tokens not reused are the env's
   new observation, so the fraction grows with episode length and completion length; the table shows
   short and long mazes, with bare actions and with ReAct thoughts, plus reused / previous tokens (the
   prefix stability itself, 100% while the history window has not slid).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

import agentenv
from agentenv.collector import CollectConfig, Collector
from agentenv.policy import PolicyOutput, PolicyRequest
from agentenv.store import TrajectoryStore
from agentenv.testing import TokenizingPolicy, expert_text
from agentenv.trajectory import Trajectory, Turn

agentenv.register("agentenv/BenchCountdown-v0", "agentenv.testing:CountdownEnv", family="test")
console = Console(width=max(Console().width, 110))


class FixedLatencyPolicy:
    name, version, wants_expert = "stub-50ms", 0, False

    def __init__(self, latency: float = 0.05):
        self.latency = latency

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        await asyncio.sleep(self.latency)
        return [PolicyOutput(text=expert_text(r)) for r in requests]

    async def aclose(self) -> None: ...


def throughput(k: int, episodes: int, turns: int) -> tuple[float, float]:
    cfg = CollectConfig("agentenv/BenchCountdown-v0", n_tasks=episodes, concurrency=k, progress="off",
                        env_kwargs={"start": turns, "step_seconds": 0.001})
    collector = Collector(cfg, FixedLatencyPolicy())
    t0 = time.perf_counter()
    collector.run()
    wall = time.perf_counter() - t0
    n_turns = sum(len(t.turns) for t in collector.trajectories)
    return n_turns / wall, wall


def fake_trajectory(i: int, turns: int = 10, prompt: int = 200, completion: int = 50) -> Trajectory:
    return Trajectory(
        trajectory_id=f"t{i:06d}-s000", group_id=f"t{i:06d}", task_id=f"t{i:06d}", task_index=i,
        sample_index=0, seed=i, env_id="bench", policy_id="bench",
        turns=[Turn(index=k, observation=[{"role": "user", "content": "You are in a room. " * 20}],
                    action="Action: go north", prompt_ids=list(range(prompt)), prompt_offset=k * 250,
                    completion_ids=list(range(completion)), completion_mask=[1] * completion,
                    logprobs=[-0.5] * completion, feedback=[{"role": "user", "content": "ok"}])
               for k in range(turns)],
    )


def store_rate(n_episodes: int, batch: int) -> dict[str, float]:
    trajs = [fake_trajectory(i) for i in range(n_episodes)]
    with tempfile.TemporaryDirectory() as tmp:
        store = TrajectoryStore(Path(tmp) / "store")
        t0 = time.perf_counter()
        for s in range(0, n_episodes, batch):
            store.write(trajs[s: s + batch])
        ours = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "store").rglob("*.parquet"))
        t0 = time.perf_counter()
        for s in range(0, n_episodes, batch):
            table = pa.Table.from_pylist([t.to_row() for t in trajs[s: s + batch]])
            pq.write_table(table, Path(tmp) / f"baseline-{s}.parquet", compression="zstd")
        base = time.perf_counter() - t0
    turns = n_episodes * 10
    return {"ours_s": ours, "base_s": base, "turns_per_s": turns / ours, "mb_per_s": size / ours / 1e6,
            "ms_per_episode": 1000 * ours / n_episodes, "base_ms_per_episode": 1000 * base / n_episodes}


def prefix_reuse(episodes: int, size: int, thought: bool) -> dict[str, float]:
    """Collect Maze episodes with the expert through the SmolLM2 tokenizer and measure token reuse.

    ``reused`` counts prompt tokens that are the previous turn's exact prompt + completion tokens (what a
    server's prefix cache hits); ``stable`` is reused / previous tokens, 100% when rendering is prefix-stable.
    With ``thought`` the expert writes a one-line ReAct thought before its action, as LLM agents do.
    """
    from transformers import AutoTokenizer

    from agentenv.policies.catalog import resolve_tokenizer
    from agentenv.testing import ScriptedPolicy

    def act(request: PolicyRequest) -> str:
        action = request.expert_action or ""
        return f"Thought: I take the door that leads closer to the exit.\n{action}" if thought else action

    tok = AutoTokenizer.from_pretrained(resolve_tokenizer("smollm2-135m-instruct"))
    policy = TokenizingPolicy(ScriptedPolicy(act, wants_expert=True), tok, tok.eos_token_id)
    cfg = CollectConfig("agentenv/Maze-v0", n_tasks=episodes, concurrency=8, progress="off",
                        env_kwargs={"size": size})
    collector = Collector(cfg, policy)
    collector.run()
    reused = later = previous = turns = 0
    for traj in collector.trajectories:
        last = 0
        for turn in traj.turns:
            full = turn.prompt_offset + len(turn.prompt_ids)
            turns += 1
            if turn.index > 0:
                reused += turn.prompt_offset
                later += full
                previous += last
            last = full + len(turn.completion_ids)
    return {"turns": turns, "reused": reused / later, "stable": reused / previous}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer episodes (a smoke run)")
    args = parser.parse_args()
    turns = 10
    table = Table(title="collector throughput (policy 50 ms, env step 1 ms, 10-turn episodes)")
    for col in ("K", "episodes", "turns/s", "wall s", "ratio vs K=1", "target"):
        table.add_column(col, justify="right")
    base = None
    for k in (1, 8, 64, 256):
        episodes = max(4 if args.quick else 8, k * (1 if args.quick else 3))
        rate, wall = throughput(k, episodes, turns)
        base = base or rate
        target = f">= {0.8 * k:.1f}" if k <= 64 else ">= 100"
        table.add_row(str(k), str(episodes), f"{rate:.1f}", f"{wall:.2f}", f"{rate / base:.1f}x", target)
    console.print(table)

    s = store_rate(200 if args.quick else 2000, batch=32)
    t = Table(title="trajectory store writes (10 turns x 250 tokens per episode, 32 episodes per shard)")
    for col in ("writer", "turns/s", "MB/s", "ms/episode"):
        t.add_column(col, justify="right")
    t.add_row("TrajectoryStore (atomic + fsync + manifest)", f"{s['turns_per_s']:.0f}", f"{s['mb_per_s']:.2f}",
              f"{s['ms_per_episode']:.2f}")
    t.add_row("baseline: pq.write_table", f"{10 * 1000 / s['base_ms_per_episode']:.0f}", "",
              f"{s['base_ms_per_episode']:.2f}")
    t.add_row("ratio (ours / baseline time)", "", "", f"{s['ours_s'] / s['base_s']:.2f}x")
    console.print(t)

    p = Table(title="prompt tokens reused exactly from the previous turn (SmolLM2 template, Maze, expert)")
    for col in ("maze", "completion", "turns", "reused / prompt tokens (turns >= 1)", "reused / previous tokens",
                "target"):
        p.add_column(col, justify="right")
    for size, thought in ((5, False), (5, True), (8, True)):
        r = prefix_reuse(8 if args.quick else 24, size, thought)
        p.add_row(f"{size}x{size}", "thought + action" if thought else "action only", str(r["turns"]),
                  f"{r['reused']:.1%}", f"{r['stable']:.1%}", ">= 95%")
    console.print(p)

if __name__ == "__main__":
    main()
