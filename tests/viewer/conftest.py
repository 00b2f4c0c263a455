"""Fixtures for the viewer's API and page tests: a small but real training run, and a damaged store.

The run's episodes come from the real collector and the tiny model (token ids, masks, log-probs and
entropies are real); a few fields the tiny setup cannot produce (a teacher's action, an imagined turn, a
screenshot, a failed episode, advantages) are then set on some episodes so the page has each to show.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import agentenv
from agentenv.collector import CollectConfig, Collector
from agentenv.hooks import TreeStrategy
from agentenv.policy import SamplingParams
from agentenv.store import TrajectoryStore
from agentenv.testing import ForkAt
from agentenv.trajectory import Trajectory

agentenv.register("agentenv/ViewerAnyReply-v0", "agentenv.testing:AnyReplyEnv", family="test")

#: a 1×1 PNG, as a GUI env's screenshot would be sent (OpenAI image_url content part)
PIXEL = "data:image/png;base64," + base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2216bc80000000049454e44ae426082")).decode()

METRIC_KEYS = ("success_rate", "reward_mean", "loss", "kl", "entropy", "update_tokens_per_s", "policy_version")


def _collect(policy: object, n_tasks: int, group_size: int, seed: int, branching: TreeStrategy | None = None
             ) -> list[Trajectory]:
    cfg = CollectConfig("agentenv/ViewerAnyReply-v0", n_tasks=n_tasks, group_size=group_size, concurrency=4,
                        seed=seed, sampling=SamplingParams(max_tokens=6, top_logprobs=3), progress="off")
    collector = Collector(cfg, policy, None, branching=branching)  # type: ignore[arg-type]
    collector.run()
    return list(collector.trajectories)


def _trained(t: Trajectory) -> int:
    return sum(sum(u.completion_mask) for u in t.turns)


def _metrics(steps: int, scale: float) -> str:
    rows = [{"step": s + 1, "success_rate": scale * s / steps, "reward_mean": scale * (s + 1) / (steps + 1),
             "loss": 1.0 / (s + 1), "kl": 0.01 * s, "entropy": 2.0 - 0.1 * s, "update_tokens_per_s": 1000.0 + s,
             "policy_version": s + 1, "episodes": 16} for s in range(steps)]
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="session")
def viewer_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """``RUNS/demo-run``: metrics.jsonl (5 steps), config.json naming the tiny model, ``rollouts/step-00000``
    (4 groups of 4 flat episodes, task_index 0-3, plus one tree group of 6, ``t000004``) with
    ``advantages.jsonl``, and ``eval/step-00000``. ``RUNS/baseline`` is a second run with metrics only, for
    side-by-side plots: pass ``viewer_run.parent`` to see both."""
    from agentenv.policies.embedded import TransformersPolicy

    root = tmp_path_factory.mktemp("viewer-runs")
    run = root / "demo-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(_metrics(5, 1.0))
    (run / "config.json").write_text(json.dumps({"model": str(tiny_model_dir), "algorithm": "grpo"}))
    policy = TransformersPolicy(str(tiny_model_dir), name="tiny")
    try:
        flat = _collect(policy, n_tasks=4, group_size=4, seed=3)
        tree = _collect(policy, n_tasks=1, group_size=2, seed=11, branching=ForkAt(budget=6, roots=2))
        evaluation = _collect(policy, n_tasks=2, group_size=2, seed=99)
    finally:
        asyncio.run(policy.aclose())
    for t in tree:  # its own group id, after the flat groups t000000-t000003
        t.group_id = "t000004"
        t.task_index = 4
        t.trajectory_id = t.trajectory_id.replace("t000000", "t000004", 1)
        t.tree_id = t.tree_id.replace("t000000", "t000004", 1) if t.tree_id else None
        if t.parent_trajectory_id:
            t.parent_trajectory_id = t.parent_trajectory_id.replace("t000000", "t000004", 1)
    first = flat[0]
    first.turns[0].observation.append({"role": "user", "content": [
        {"type": "text", "text": "A screenshot:"}, {"type": "image_url", "image_url": {"url": PIXEL}}]})
    first.turns[1].teacher_action = "the teacher's reply"
    for t in flat[::3]:  # a token the policy did not sample (e.g. an appended stop token) is masked
        t.turns[-1].completion_mask = [*t.turns[-1].completion_mask[:-1], 0]
    first.turns[2].is_imagined = True
    failed = flat[5]
    failed.status, failed.failure_cause, failed.error = "failed", "env_timeout", "TimeoutError: step took 120 s"
    failed.terminated, failed.turns = False, failed.turns[:1]  # timed out in its second step
    for t in flat[8:]:
        t.policy_version = 1
    step = TrajectoryStore(run / "rollouts" / "step-00000")
    step.write(flat[:10])
    step.write(flat[10:] + tree)
    advantages = [{"trajectory_id": t.trajectory_id, "turn": None, "advantage": round(t.reward - 0.5, 3)}
                  for t in flat]
    advantages += [{"trajectory_id": t.trajectory_id, "turn": None,  # tree credit: one value per trained token
                    "advantage": [round(t.reward - 0.5 + k / 100, 3) for k in range(_trained(t))]} for t in tree]
    (step.directory / "advantages.jsonl").write_text("".join(json.dumps(a) + "\n" for a in advantages))
    TrajectoryStore(run / "eval" / "step-00000").write(evaluation)
    (root / "baseline").mkdir()
    (root / "baseline" / "metrics.jsonl").write_text(_metrics(4, 0.5))
    return run


@pytest.fixture(scope="session")
def viewer_corrupt_store(tmp_path_factory: pytest.TempPathFactory, viewer_run: Path) -> Path:
    """A store of three shards: the demo run's first shard, a copy of it truncated to half its bytes, and
    a shard of two episodes whose file lacks the optional columns ``kind`` and ``failure_cause``."""
    source = TrajectoryStore(viewer_run / "rollouts" / "step-00000")
    good = source.shard_paths()[0]
    store = tmp_path_factory.mktemp("viewer-corrupt") / "damaged"
    (store / "shards").mkdir(parents=True)
    (store / "shards" / good.name).write_bytes(good.read_bytes())
    data = good.read_bytes()
    (store / "shards" / "shard-000002-0000dead.parquet").write_bytes(data[: len(data) // 2])
    table = pq.read_table(source.shard_paths()[1]).slice(0, 2).drop_columns(["kind", "failure_cause"])
    pq.write_table(table, store / "shards" / "shard-000003-0000beef.parquet")
    return store
