"""Reliability §4.4 load rows on the collector: a consumer slower than production (L06) and long horizons
with large observations (L08). Sizes are short by default; ``pytest --long`` runs the release sizes."""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import pytest

from agentenv import store as store_module
from agentenv.census import Census, assert_no_leaks, rss_bytes
from agentenv.collector import CollectConfig, Collector
from agentenv.ledger import check_ledger
from agentenv.store import TrajectoryStore
from agentenv.testing import AnyReplyEnv, CountdownEnv, ScriptedPolicy, expert_text


def slots(n_tasks: int, group: int) -> list[str]:
    return [f"t{t:06d}-s{s:03d}" for t in range(n_tasks) for s in range(group)]


def test_l06_a_slow_consumer_throttles_the_collector_through_a_bounded_queue(tmp_path: Path, reliability, long_run):
    """The store (the consumer) takes each write ten times longer than the envs take to produce the batch:
    finished episodes wait in a queue that never grows past its cap, the workers wait for room, and every
    episode arrives."""
    n_tasks = 400 if long_run else 100
    real_write = store_module._atomic_write
    writes = []

    def slow_write(path, write):
        if "/shards/" in str(path):
            writes.append(time.monotonic())
            time.sleep(0.25)
        real_write(path, write)

    config = CollectConfig(env_id="agentenv-testing/Countdown-v0", n_tasks=n_tasks, group_size=2, concurrency=16,
                           progress="off")
    run = Collector(config, ScriptedPolicy(expert_text), TrajectoryStore(tmp_path / "store"),
                    env_factory=lambda: CountdownEnv())
    census = Census.take()
    with mock.patch.object(store_module, "_atomic_write", slow_write):
        summary = run.run()
    assert summary.episodes == 2 * n_tasks
    assert run.max_backlog <= run.results_capacity
    assert run.max_backlog == run.results_capacity, "the consumer never fell behind: the test measures nothing"
    assert len(list(TrajectoryStore(tmp_path / "store").episodes())) == 2 * n_tasks  # 0 drops
    report = check_ledger(tmp_path / "store", expected_slots=slots(n_tasks, 2))
    assert report.ok, report
    assert_no_leaks(census)
    reliability.measure(episodes=2 * n_tasks, queue_cap=run.results_capacity, max_queue_depth=run.max_backlog,
                        shard_writes=len(writes), drops=0)


def test_l08_long_horizons_with_large_observations_stay_bounded(tmp_path: Path, reliability, long_run):
    """500-step episodes whose every observation is 100 KB: observations are capped before the prompt and
    the store, so the row holds the capped text, memory stays bounded, and the run finishes."""
    turns, obs_chars, cap = 500, 100_000, 4_000
    episodes = 8 if long_run else 2
    config = CollectConfig(env_id="agentenv-testing/AnyReply-v0", n_tasks=episodes, group_size=1, concurrency=2,
                           progress="off", max_observation_chars=cap, max_turns=turns + 10)
    run = Collector(config, ScriptedPolicy(["ok"]), TrajectoryStore(tmp_path / "store"),
                    env_factory=lambda: AnyReplyEnv(turns=turns, obs_chars=obs_chars, max_turns=turns + 10))
    warm = CollectConfig(env_id="agentenv-testing/AnyReply-v0", n_tasks=1, progress="off")
    Collector(warm, ScriptedPolicy(["ok"]), TrajectoryStore(tmp_path / "warm"),
              env_factory=lambda: AnyReplyEnv(turns=2)).run()  # imports and first-write costs are not the run's
    rss_before = rss_bytes()
    started = time.monotonic()
    summary = run.run()
    wall = time.monotonic() - started
    rss_delta = rss_bytes() - rss_before
    stored = list(TrajectoryStore(tmp_path / "store").episodes())
    assert summary.episodes == episodes and all(t.status == "ok" and len(t.turns) == turns for t in stored)
    for t in stored:
        feedback = [len(m["content"]) for turn in t.turns[:-1] for m in turn.feedback]
        assert max(feedback) <= cap + 64  # the cap plus its marker line
        assert min(feedback) >= cap  # capped, not dropped: head and tail of every observation are kept
    row_bytes = sum(len(m["content"]) for t in stored for turn in t.turns for m in turn.feedback)
    uncapped = episodes * turns * obs_chars
    assert row_bytes < uncapped / 20
    # the run held at most two episodes of capped text at a time (~2 x 500 x 4 KB, twice over for the
    # prompt's copy): far below the 100 MB per episode the raw observations would take
    assert rss_delta < 96 * 2**20, rss_delta
    assert check_ledger(tmp_path / "store", expected_slots=slots(episodes, 1)).ok
    reliability.measure(turns=turns, obs_kb=obs_chars // 1000, cap_chars=cap, rss_delta_mib=round(rss_delta / 2**20, 1),
                        stored_mb=round(row_bytes / 1e6, 2), uncapped_mb=round(uncapped / 1e6, 1),
                        wall_s=round(wall, 1))


@pytest.fixture(autouse=True)
def _quiet_collector_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="agentenv.collect")
