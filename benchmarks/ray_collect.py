"""The same collection locally and on a local Ray cluster (a head and a second node, two env workers):
throughput as a ratio, the per-episode overhead Ray adds, and the store's write rate.

    python benchmarks/ray_collect.py [--episodes 24] [--io-step 0.25] [--cpu-step 0.1] [--tiny 400]
        [--store-episodes 2000]

It re-runs itself inside a private network namespace (Ray's traffic stays on loopback), starts the
cluster with ``ray start`` (head: 1 CPU, second node: 1 CPU) and collects ``CountdownEnv`` episodes
(4 to 6 turns) with the scripted expert policy, so the env is the only cost:

* I/O-bound episodes of >= 1 s (each step sleeps ``--io-step``): local at concurrency 4 against Ray with
  two workers at the same total concurrency. Ray's per-episode overhead is the driver's round trip for an
  episode minus the episode's own duration (measured in the worker); target: under 5% of episode time.
* CPU-bound episodes (each step computes ``--cpu-step`` s holding the GIL, as pure-Python simulators do):
  local at concurrency 2 (threads, one interpreter) against two Ray workers; target: >= 1.6x throughput.
* Scheduling: ``--tiny`` one-turn episodes that cost nothing: episodes per second and overhead per episode.
* Store: ``--store-episodes`` realistic trajectories (8 turns of 300 prompt + 40 sampled tokens with
  log-probs) written in the collector's batches: episodes and MB per second.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentenv.collector import CollectConfig, Collector
from agentenv.ray_collect import RayEpisodes, RayOptions
from agentenv.ray_local import LocalRayCluster, in_private_network, private_network_command
from agentenv.store import TrajectoryStore
from agentenv.testing import CountdownEnv, ScriptedPolicy, expert_text
from agentenv.trajectory import Trajectory, Turn

OVERHEAD_TARGET = 0.05
SPEEDUP_TARGET = 1.6
console = Console(width=max(Console().width, 120))


def run(work: Path, name: str, n: int, concurrency: int, address: str | None, **env: Any) -> dict[str, float]:
    """One collection; returns its wall time, episodes per second and per-episode timings."""
    store = work / name
    remote = RayEpisodes(RayOptions(address, workers=2)) if address else None
    cfg = CollectConfig(env_id="countdown", n_tasks=n, group_size=1, concurrency=concurrency, progress="off")
    collector = Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                          env_factory=functools.partial(CountdownEnv, **{"start": 4, **env}), remote=remote)
    cpu = time.process_time()
    summary = collector.run()
    cpu = time.process_time() - cpu
    print(f"{name}: {summary.episodes} episodes in {summary.wall_seconds:.1f} s", file=sys.stderr, flush=True)
    episodes = list(TrajectoryStore(store).episodes())
    assert len(episodes) == n and all(t.status == "ok" for t in episodes), summary.failures
    span = max(t.finished_at for t in episodes) - min(t.started_at for t in episodes)
    own = [t.wall_seconds for t in episodes]
    trips = [float(t.extra["ray_round_trip_s"]) for t in episodes if "ray_round_trip_s" in t.extra]
    overhead = [trip - t.wall_seconds for t, trip in zip(episodes, trips, strict=False)] if trips else []
    return {"wall": summary.wall_seconds, "span": span, "eps": n / summary.wall_seconds, "eps_span": n / span,
            "episode_s": statistics.mean(own), "overhead_s": statistics.mean(overhead) if overhead else 0.0,
            "overhead_p90_s": sorted(overhead)[int(0.9 * (len(overhead) - 1))] if overhead else 0.0,
            "nodes": len({t.extra.get("ray_node") for t in episodes}), "driver_cpu_ms": 1e3 * cpu / n}


def store_rate(work: Path, n: int) -> dict[str, float]:
    rng = random.Random(0)
    episodes = []
    for i in range(n):
        traj = Trajectory(trajectory_id=f"t{i:06d}-s000", group_id=f"t{i:06d}", task_id=str(i), task_index=i,
                          sample_index=0, seed=i, env_id="bench", status="ok", reward=1.0)
        for k in range(8):
            completion = [rng.randrange(50_000) for _ in range(40)]
            traj.turns.append(Turn(index=k, observation=[{"role": "user", "content": "x" * 600}], action="y" * 120,
                                   prompt_ids=[rng.randrange(50_000) for _ in range(300)], completion_ids=completion,
                                   completion_mask=[1] * 40, logprobs=[-rng.random() for _ in completion],
                                   feedback=[{"role": "user", "content": "z" * 300}]))
        episodes.append(traj)
    store = TrajectoryStore(work / "store-rate")
    started = time.perf_counter()
    for start in range(0, n, 64):  # the collector's writer commits what has arrived, in batches
        store.write(episodes[start:start + 64])
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in (work / "store-rate").rglob("*") if f.is_file())
    return {"episodes_per_s": n / seconds, "mb_per_s": size / seconds / 1e6, "kb_per_episode": size / n / 1e3}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    out: dict[str, Any] = {}
    try:
        with LocalRayCluster(work / "r", port=26379) as cluster:
            t0 = time.perf_counter()
            cluster.add_node(num_cpus=1)
            cluster.add_node(num_cpus=1)
            out["cluster_start_s"] = time.perf_counter() - t0
            import ray

            ray.init(address=cluster.address, log_to_driver=False)
            n = args.episodes
            out["io_local"] = run(work, "io-local", n, 4, None, step_seconds=args.io_step)
            out["io_ray"] = run(work, "io-ray", n, 4, cluster.address, step_seconds=args.io_step)
            out["cpu_local"] = run(work, "cpu-local", n, 2, None, step_cpu_seconds=args.cpu_step)
            out["cpu_ray"] = run(work, "cpu-ray", n, 2, cluster.address, step_cpu_seconds=args.cpu_step)
            out["tiny_local"] = run(work, "tiny-local", args.tiny, 8, None, start=1)
            out["tiny_ray"] = run(work, "tiny-ray", args.tiny, 8, cluster.address, start=1)
            ray.shutdown()
        out["store"] = store_rate(work, args.store_episodes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def show(r: dict[str, Any]) -> bool:
    table = Table(title="collection: local vs a local Ray cluster (head + 1 node, 2 env workers)")
    for column in ("workload", "where", "episodes/s", "episodes/s (first to last episode)", "episode s",
                   "Ray overhead / episode", "p90", "driver CPU / episode", "nodes"):
        table.add_column(column, justify="right" if column not in ("workload", "where") else "left")
    for label, key in (("I/O-bound, >= 1 s", "io"), ("CPU-bound", "cpu"), ("tiny (scheduling)", "tiny")):
        for where in ("local", "ray"):
            m = r[f"{key}_{where}"]
            table.add_row(label if where == "local" else "", where, f"{m['eps']:.2f}", f"{m['eps_span']:.2f}",
                          f"{m['episode_s']:.3f}", f"{1e3 * m['overhead_s']:.1f} ms" if where == "ray" else "-",
                          f"{1e3 * m['overhead_p90_s']:.1f} ms" if where == "ray" else "-",
                          f"{m['driver_cpu_ms']:.1f} ms", str(m["nodes"]))
    console.print(table)
    io, cpu = r["io_ray"], r["cpu_ray"]
    overhead = io["overhead_s"] / io["episode_s"]
    speedup = cpu["eps"] / r["cpu_local"]["eps"]
    speedup_span = cpu["eps_span"] / r["cpu_local"]["eps_span"]
    store = r["store"]
    console.print(f"cluster start (2 x ray start): {r['cluster_start_s']:.1f} s; store: "
                  f"{store['episodes_per_s']:.0f} episodes/s, {store['mb_per_s']:.1f} MB/s "
                  f"({store['kb_per_episode']:.0f} kB per 8-turn episode)")
    console.print(f"Ray overhead on >= 1 s episodes: {overhead:.2%} of episode time (target < {OVERHEAD_TARGET:.0%}); "
                  f"CPU-bound throughput with two workers: {speedup:.2f}x local with worker start, "
                  f"{speedup_span:.2f}x first to last episode (target >= {SPEEDUP_TARGET}x)")
    ok = overhead < OVERHEAD_TARGET and speedup >= SPEEDUP_TARGET
    console.print("targets met" if ok else "[red]a target was missed[/]")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--io-step", type=float, default=0.25)
    parser.add_argument("--cpu-step", type=float, default=0.1)
    parser.add_argument("--tiny", type=int, default=400)
    parser.add_argument("--store-episodes", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the run inside the namespace
    args = parser.parse_args()
    if not in_private_network():
        done = subprocess.run(private_network_command([sys.executable, __file__, *sys.argv[1:], "--json"]),
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(done.returncode)
        sys.exit(0 if show(json.loads(done.stdout.strip().splitlines()[-1])) else 1)
    result = measure(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
