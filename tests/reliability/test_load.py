"""Reliability §4.4 load rows on the collector: a consumer slower than production (L06) and long horizons
with large observations (L08). Sizes are short by default; ``pytest --long`` runs the release sizes."""

from __future__ import annotations

import os
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


# ----- L01: many concurrent episodes against a slow policy server ---------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@pytest.mark.integration
def test_l01_concurrent_20_step_episodes_against_a_policy_server_with_random_latency(tmp_path: Path, reliability,
                                                                                     long_run):
    """Episodes of 20+ steps all at once (128; 256 under --long, the row's size), the mock policy server (its
    own process) answering in 10-500 ms: all complete, the ledger is exact, the census is back to baseline;
    the collector's own overhead per step (a turn's wall time minus the policy's and the env's) is reported.
    On 2 cores the run is CPU-bound (the HTTP client and the server each take a few ms per turn)."""
    from agentenv.policies.openai_client import OpenAIPolicy
    from agentenv.testing.mock_policy import MockPolicyProcess

    concurrency = 256 if long_run else 128
    n_tasks = concurrency // 2
    config = CollectConfig(env_id="agentenv-testing/Countdown-v0", n_tasks=n_tasks, group_size=2,
                           concurrency=concurrency, progress="off", policy_timeout=120)
    with MockPolicyProcess("countdown", latency=(0.01, 0.5), slots=1024) as server:
        policy = OpenAIPolicy(server.url, model="mock", concurrency=concurrency, backoff_s=0.05, timeout_s=120)
        census = Census.take(containers=False)
        started = time.monotonic()
        summary = Collector(config, policy, TrajectoryStore(tmp_path / "store"),
                            env_factory=lambda: CountdownEnv(start=20)).run()
        wall = time.monotonic() - started
        assert_no_leaks(census)
    episodes = list(TrajectoryStore(tmp_path / "store").episodes())
    assert summary.episodes == 2 * n_tasks, summary
    assert all(t.status == "ok" and t.reward == 1.0 for t in episodes), summary.failures
    assert min(len(t.turns) for t in episodes) >= 20
    report = check_ledger(tmp_path / "store", expected_slots=slots(n_tasks, 2))
    assert report.ok, report
    env_s = [turn.env_seconds for t in episodes for turn in t.turns]
    policy_s = [turn.policy_seconds for t in episodes for turn in t.turns]
    turns = len(env_s)
    reliability.backend = "http"
    reliability.measure(episodes=len(episodes), turns=turns, wall_s=round(wall, 1),
                        env_step_p50_ms=round(1e3 * _percentile(env_s, 0.5), 2),
                        env_step_p99_ms=round(1e3 * _percentile(env_s, 0.99), 2),
                        policy_p50_ms=round(1e3 * _percentile(policy_s, 0.5), 1),
                        policy_p99_ms=round(1e3 * _percentile(policy_s, 0.99), 1),
                        concurrency=concurrency,
                        overhead_per_turn_ms=round(1e3 * (wall * concurrency / turns - sum(policy_s) / turns
                                                          - sum(env_s) / turns), 2))


# ----- L02: the adversarial soak -----------------------------------------------------------------------------
class Sampler:
    """Samples this process's RSS and open fd count every ``interval`` seconds, from a thread."""

    def __init__(self, interval: float = 0.25):
        import threading

        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from agentenv.census import open_fds

        t0 = time.monotonic()
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic() - t0, rss_bytes(), len(open_fds())))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def slope(self, column: int) -> float:
        """Least-squares slope per hour over the second half of the samples (the first is warm-up)."""
        half = self.samples[len(self.samples) // 2:]
        if len(half) < 2:
            return 0.0
        xs, ys = [s[0] for s in half], [s[column] for s in half]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


@pytest.mark.integration
def test_l02_adversarial_soak_keeps_every_invariant(tmp_path: Path, reliability, long_run):
    """Episodes of the code env whose model sends the catalogue's hostile actions (A1-A30: fork and memory
    bombs, floods, garbage, escapes, kernel killers, malformed calls), while 1% of policy calls get a 5xx and
    sandboxes are killed at random: every slot ends with one final status (the ledger), nothing leaks (the
    census), and memory and fds stay flat."""
    from agentenv.policies.openai_client import OpenAIPolicy
    from agentenv.testing.http_faults import FaultProxy, status
    from agentenv.testing.killers import Killer, sandbox_pids
    from agentenv.testing.mock_policy import MockPolicyProcess

    # $AGENTENV_SOAK_EPISODES sets another size (a soak of a chosen length); slopes are reported either way
    n_tasks = int(os.environ.get("AGENTENV_SOAK_EPISODES") or (10_000 if long_run else 12))
    soak = long_run or n_tasks >= 200
    config = CollectConfig(env_id="agentenv/CodeInterpreter-v0", n_tasks=n_tasks, concurrency=6, progress="off",
                           env_kwargs={"cell_timeout": 0.5, "max_turns": 2}, env_retries=1, env_timeout=30)
    census = Census.take()
    with MockPolicyProcess("hostile-code") as server, FaultProxy(server.port) as proxy:
        # 1% of policy calls fail with a 5xx (5% in the short run, so that a few happen at all)
        proxy.configure(rates={status(503): 0.01 if soak else 0.05}, seed=2)
        policy = OpenAIPolicy(proxy.url, model="mock", backoff_s=0.01, max_retries=3)
        # one sandbox killed every ~130 s in a soak (about 1% of episodes at ~0.75 episodes/s), every few
        # episodes in the short run
        window = (90.0, 180.0) if soak else (2.0, 4.0)
        with Sampler() as sampler, Killer(sandbox_pids, window=window, seed=5, repeat=True, choose=1) as killer:
            summary = Collector(config, policy, TrajectoryStore(tmp_path / "store")).run()
    assert_no_leaks(census, settle_s=10)
    episodes = list(TrajectoryStore(tmp_path / "store").episodes())
    report = check_ledger(tmp_path / "store", expected_slots=slots(n_tasks, 1))
    assert report.ok, report
    causes = {t.failure_cause for t in episodes if t.status == "failed"}
    assert causes <= {"env_error", "env_timeout", "policy_unavailable"}, causes  # infra only, typed
    ok = [t for t in episodes if t.status == "ok"]
    assert len(ok) >= n_tasks // 2, summary.failures
    actions = {turn.action for t in episodes for turn in t.turns}
    rss_slope = sampler.slope(1) / 2**20
    fd_slope = sampler.slope(2)
    if long_run:  # a short run's slope is mostly warm-up: the release check holds it to the row's bound
        assert rss_slope < 1.0 and abs(fd_slope) < 1.0
    reliability.backend = "bwrap"
    first, last = sampler.samples[0], sampler.samples[-1]
    trend = ({"rss_slope_mib_per_h": round(rss_slope, 2), "fd_slope_per_h": round(fd_slope, 2)} if soak else
             {"rss_growth_mib": round((last[1] - first[1]) / 2**20, 1), "fds_first_last": f"{first[2]}/{last[2]}"})
    reliability.measure(episodes=len(episodes), slots=n_tasks, distinct_actions=len(actions),
                        sandbox_kills=len(killer.killed), policy_5xx=proxy.counts().get(str(status(503)), 0),
                        failures=dict(summary.failures), wall_s=round(sampler.samples[-1][0], 1), **trend, leaks=0)
