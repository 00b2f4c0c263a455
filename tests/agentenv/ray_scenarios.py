"""Collection on a real local Ray cluster (a head and a second node, each a ``ray start``), run by
``test_ray_collect.py`` inside a private network namespace; prints one JSON object of what it saw.

    python ray_scenarios.py all WORKDIR      # every scenario on one cluster
    python ray_scenarios.py drive STORE ADDR # one collection (the driver the resume scenario kills)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agentenv.collector import CollectConfig, Collector, EnvCreationError
from agentenv.ledger import check_ledger
from agentenv.ray_collect import RayEpisodes, RayOptions
from agentenv.ray_local import LocalRayCluster, in_private_network
from agentenv.store import TrajectoryStore
from agentenv.testing import CountdownEnv, ForkAt, ScriptedPolicy, expert_text
from agentenv.testing.killers import ray_worker_pids

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def collector(store: Path, address: str, n: int, *, concurrency: int = 4, retries: int = 0, workers: int | None = 2,
              **env: Any) -> tuple[Collector, RayEpisodes]:
    runner = RayEpisodes(RayOptions(address, workers=workers, start_timeout=60))
    cfg = CollectConfig(env_id="countdown", n_tasks=n, group_size=2, concurrency=concurrency, env_retries=retries,
                        progress="off", env_timeout=30)
    return Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                     env_factory=functools.partial(CountdownEnv, **env), remote=runner), runner


def ledger(store: Path) -> dict[str, Any]:
    report = check_ledger(store)
    return {"ok": report.ok, "report": str(report)}


def stored(store: Path) -> list[dict[str, Any]]:
    return [{"id": t.trajectory_id, "task": t.task_index, "sample": t.sample_index, "attempt": t.attempt,
             "status": t.status, "cause": t.failure_cause, "error": t.error, "node": t.extra.get("ray_node"),
             "reward": t.reward} for t in TrajectoryStore(store).episodes()]


def placement(work: Path, address: str) -> dict[str, Any]:
    """An env that needs a custom resource runs only on the node that offers it."""
    import ray

    c, runner = collector(work / "placed", address, 6, workers=None, needs={"widget": 1}, step_seconds=0.02)
    summary = c.run()
    widget_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("widget")]
    return {"episodes": stored(work / "placed"), "widget_nodes": widget_nodes, "workers": len(runner.started),
            "failures": dict(summary.failures)}


def missing_resource(work: Path, address: str) -> dict[str, Any]:
    c, _ = collector(work / "missing", address, 2, needs={"nothing_offers_this": 1})
    try:
        c.run()
    except EnvCreationError as e:
        return {"error": str(e)}
    return {"error": None}


def worker_killed(work: Path, address: str) -> dict[str, Any]:
    """SIGKILL one env worker's process mid-run: its episodes fail as worker_lost, are retried, the run ends."""
    store = work / "killed"
    c, runner = collector(store, address, 12, retries=1, step_cpu_seconds=0.05, start=4)
    killed: dict[str, Any] = {}

    def kill_one() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = [s for s in runner.slots if s.handle is not None]
            done = len(list(TrajectoryStore(store).episodes(errors="skip"))) if (store / "shards").exists() else 0
            if len(live) == 2 and done >= 4:
                victim = live[1].where
                killed["found_by_marker"] = int(victim["pid"]) in ray_worker_pids()  # agentenv.testing's finder
                os.kill(int(victim["pid"]), signal.SIGKILL)
                killed.update(victim)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_one, daemon=True)
    thread.start()
    started = time.monotonic()
    summary = c.run()
    thread.join(5)
    return {"episodes": stored(store), "killed": killed, "lost": runner.lost, "seconds": time.monotonic() - started,
            "ledger": ledger(store),
            "failures": dict(summary.failures), "started": runner.started}


def driver_killed(work: Path, address: str) -> dict[str, Any]:
    """SIGKILL the driver mid-run, then run the same collection again: it resumes without duplicates."""
    store = work / "resumed"
    argv = [sys.executable, __file__, "drive", str(store), address]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if (store / "shards").exists() and len(list(TrajectoryStore(store).episodes(errors="skip"))) >= 4:
            break
        time.sleep(0.05)
    committed = len(list(TrajectoryStore(store).episodes(errors="skip")))
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    report = json.loads(second.stdout.strip().splitlines()[-1])
    return {"committed_before_kill": committed, "second": report, "episodes": stored(store), "ledger": ledger(store)}


def kept_workers(work: Path, address: str) -> dict[str, Any]:
    """Two collections (two training steps) on the same kept workers: no new processes, new seeds."""
    runner = RayEpisodes(RayOptions(address, workers=2, start_timeout=60), keep_workers=True)
    runs = []
    for step in range(2):
        cfg = CollectConfig(env_id="countdown", n_tasks=4, group_size=1, concurrency=2, seed=1000 * step,
                            progress="off")
        store = work / f"kept-{step}"
        Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                  env_factory=functools.partial(CountdownEnv, step_seconds=0.01), remote=runner).run()
        runs.append({"pids": sorted(s.where["pid"] for s in runner.slots),
                     "seeds": sorted(t.seed for t in TrajectoryStore(store).episodes()),
                     "ok": sum(t.status == "ok" for t in TrajectoryStore(store).episodes())})
    import asyncio

    asyncio.run(runner.shutdown())
    return {"runs": runs, "slots_after_shutdown": len(runner.slots)}


def node_killed(work: Path, address: str, cluster: LocalRayCluster) -> dict[str, Any]:
    """SIGKILL the second node whole mid-run (raylet, helpers, workers): its episodes fail as worker_lost, its
    worker is started again on the head, the retries finish the run."""
    import ray

    store = work / "node"
    runner = RayEpisodes(RayOptions(address, workers=2, cpus_per_worker=0.5, start_timeout=30))
    cfg = CollectConfig(env_id="countdown", n_tasks=10, group_size=1, concurrency=4, env_retries=1, progress="off",
                        env_timeout=30)
    c = Collector(cfg, ScriptedPolicy(expert_text), TrajectoryStore(store),
                  env_factory=functools.partial(CountdownEnv, step_seconds=0.3, start=4), remote=runner)
    head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and not n["Resources"].get("widget"))
    killed: dict[str, Any] = {}

    def kill_second_node() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = [s for s in runner.slots if s.handle is not None]
            if len(live) == 2 and any(s.where["node"] != head for s in live):
                time.sleep(0.5)  # mid-episode
                killed["pids"] = cluster.kill_node(1)
                killed["at"] = time.monotonic()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_second_node, daemon=True)
    thread.start()
    summary = c.run()
    thread.join(5)
    return {"episodes": stored(store), "killed": killed, "started": runner.started, "head": head,
            "ledger": ledger(store), "failures": dict(summary.failures),
            "seconds_after_kill": time.monotonic() - killed.get("at", 0)}


def training(work: Path, address: str) -> dict[str, Any]:
    """GRPO for two steps with ``ray=ADDRESS``: episodes on the cluster's workers, which reach the embedded
    policy server (a tiny model) that every update is pushed to."""
    from agentenv.policies.catalog import build_tiny_model
    from agentenv.policies.embedded_server import create_embedded_app
    from agentenv.serving import ServerThread
    from agentenv.trainers.config import TrainConfig
    from agentenv.trainers.loop import Trainer

    model = build_tiny_model(work / "tiny")
    with ServerThread(create_embedded_app(str(model), served_name="tiny", batch_wait_ms=5)) as server:
        cfg = TrainConfig(algo="grpo", env="agentenv/GuessNumber-v0", env_kwargs={"max_turns": 3}, model=str(model),
                          out=str(work / "train"), steps=2, tasks_per_step=2, group_size=2, concurrency=4,
                          max_tokens=8, lr=1e-3, eval_every=1, eval_tasks=2, policy=server.url + "/v1",
                          ray=address, ray_workers=2, progress="off", entropy_coef=0.01)
        with Trainer(cfg) as trainer:
            records = trainer.run()
            started = len(trainer.ray_workers.started)
    episodes = [t for step in (work / "train" / "rollouts").iterdir() for t in TrajectoryStore(step).episodes()]
    return {"versions": [r["policy_version"] for r in records], "rows": [r.get("rows") for r in records],
            "nodes": sorted({str(t.extra.get("ray_node"))[:12] for t in episodes}),
            "turn_versions": sorted({turn.policy_version for t in episodes for turn in t.turns}),
            "episodes": len(episodes), "failed": sum(t.status != "ok" for t in episodes), "started": started}


def tree(work: Path, address: str) -> dict[str, Any]:
    """A tree rollout on a snapshot env: forks restore their parent's state on whichever worker plays them."""
    from agentenv.policies import make_policy

    runner = RayEpisodes(RayOptions(address, workers=2))
    cfg = CollectConfig(env_id="agentenv/GuessNumber-v0", env_kwargs={"max_turns": 4}, n_tasks=4, group_size=3,
                        concurrency=4, progress="off")
    store = work / "tree"
    Collector(cfg, make_policy("random"), TrajectoryStore(store), branching=ForkAt(budget=3), remote=runner).run()
    episodes = list(TrajectoryStore(store).episodes())
    by_id = {t.trajectory_id: t for t in episodes}
    forks = [t for t in episodes if t.parent_trajectory_id is not None]
    return {"groups": sorted(Counter(t.group_id for t in episodes).values()), "forks": len(forks),
            "roots_that_forked": sum(len(t.turns) > 1 for t in episodes if t.parent_trajectory_id is None),
            "prefix_matches": sum(f.turns[0].feedback == by_id[f.parent_trajectory_id].turns[0].feedback
                                  for f in forks),
            "tree_ids": sum(bool(t.tree_id) for t in episodes), "episodes": len(episodes),
            "snapshots_sent": runner.snapshots_sent, "clone_modes": sorted({w["clone_mode"] for w in runner.started})}


def command_line(work: Path, address: str) -> dict[str, Any]:
    """``agentenv collect ... --ray ADDRESS`` on a registered env, as a user runs it."""
    store = work / "cli"
    argv = [sys.executable, "-m", "agentenv.cli", "collect", "agentenv/GuessNumber-v0", "-o", str(store), "-p",
            "random", "-n", "4", "-g", "2", "-k", "4", "--progress", "off", "--ray", address, "--ray-workers", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    return {"returncode": done.returncode, "stdout": done.stdout[-3000:], "stderr": done.stderr[-3000:],
            "episodes": stored(store) if (store / "shards").exists() else []}


def drive(store: Path, address: str) -> None:
    c, _ = collector(store, address, 10, step_seconds=0.15, start=3)
    summary = c.run()
    print(json.dumps({"skipped": summary.skipped, "episodes": summary.episodes}))


def main() -> None:
    mode = sys.argv[1]
    if mode == "drive":
        drive(Path(sys.argv[2]), sys.argv[3])
        return
    work = Path(sys.argv[2])
    if not in_private_network():
        raise SystemExit("run me inside agentenv.ray_local.private_network_command: Ray must stay on loopback")
    report: dict[str, Any] = {}
    started = time.monotonic()
    with LocalRayCluster(work / "r", port=26379) as cluster:
        # the head notices a dead node after about 2 s instead of Ray's default 30 s or more
        cluster.add_node(num_cpus=1, env={"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
                                          "RAY_health_check_failure_threshold": "4"})
        cluster.add_node(num_cpus=2, resources={"widget": 2})
        report["cluster_seconds"] = time.monotonic() - started
        import ray

        ray.init(address=cluster.address, log_to_driver=False)
        report["nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        for name, scenario in (("placement", placement), ("missing_resource", missing_resource),
                               ("worker_killed", worker_killed), ("driver_killed", driver_killed),
                               ("kept_workers", kept_workers), ("command_line", command_line),
                               ("training", training), ("tree", tree)):
            t0 = time.monotonic()
            report[name] = scenario(work, cluster.address)
            report[name]["scenario_seconds"] = time.monotonic() - t0
        t0 = time.monotonic()
        report["node_killed"] = node_killed(work, cluster.address, cluster)  # last: the second node is gone
        report["node_killed"]["scenario_seconds"] = time.monotonic() - t0
        ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
