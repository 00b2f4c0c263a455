"""Reliability §4.3 rows about the collector and the trainer: a collector killed at random points (F08), a
full or failing disk (F10), hung resets (F13), partial groups (F14), graders that crash or hang (F16) and a
trainer that crashes and recovers (F19). Each ends in the work ledger's check and, where the row owns
resources, the census."""

from __future__ import annotations

import errno
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from agentenv.census import Census, assert_no_leaks
from agentenv.collector import CollectConfig, Collector, StoreUnavailable
from agentenv.ledger import check_ledger, read_ledger, terminal_status
from agentenv.store import TrajectoryStore
from agentenv.testing import CountdownEnv, ScriptedPolicy, expert_text
from agentenv.testing.env_faults import EnvFault, FaultyEnv
from agentenv.testing.store_faults import DiskFaults

COLLECT = [sys.executable, "-c", "import sys; from agentenv.cli import main; main(sys.argv[1:])", "collect",
           "agentenv-testing/Countdown-v0", "--policy", "random", "-g", "2", "-k", "4", "--progress", "off",
           "-e", "step_seconds=0.1"]


def slots(n_tasks: int, group: int) -> list[str]:
    return [f"t{t:06d}-s{s:03d}" for t in range(n_tasks) for s in range(group)]


def collector(tmp_path: Path, env_factory, n_tasks: int = 6, group: int = 2, **cfg) -> Collector:
    config = CollectConfig(env_id="agentenv-testing/Countdown-v0", n_tasks=n_tasks, group_size=group,
                           concurrency=cfg.pop("concurrency", 4), progress="off", **cfg)
    return Collector(config, ScriptedPolicy(expert_text), TrajectoryStore(tmp_path / "store"),
                     env_factory=env_factory)


# ----- F08 ---------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_f08_collector_sigkilled_at_random_points_resumes_without_loss_or_duplicates(tmp_path, reliability,
                                                                                      long_run):
    """SIGKILL the collecting process at random moments (mid-episode, mid-write), resume each time: every
    row committed before a kill survives unchanged, none is stored twice, and the ledger's L1-L3 hold."""
    trials, n = (100, 60) if long_run else (6, 24)
    out = tmp_path / "store"
    cmd = [*COLLECT, "-n", str(n), "--out", str(out)]
    rng = random.Random(8)
    kills, seen = 0, {}
    for _ in range(trials):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(1.0, 2.5))  # a run takes ~5 s: most trials are cut short
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        now = {t.trajectory_id: t.to_row() for t in TrajectoryStore(out).episodes(errors="skip")}
        assert all(now.get(k) == v for k, v in seen.items()), "a committed row changed or vanished after a kill"
        seen = now
        if len(seen) == 2 * n:
            break
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(TrajectoryStore(out).episodes())
    counts = Counter(t.trajectory_id for t in rows)
    assert len(counts) == 2 * n and max(counts.values()) == 1
    report = check_ledger(out, expected_slots=slots(n, 2))
    assert report.ok, report
    assert kills >= 1, "no kill landed mid-run: the trial timing is off"
    reliability.backend = "subprocess"
    reliability.measure(trials=trials, kills=kills, rows=len(rows), duplicates=0,
                        interrupted=report.terminals.get("cancelled", 0))


# ----- F10 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["enospc", "eio"])
def test_f10_a_failing_disk_pauses_intake_and_nothing_is_lost_when_it_recovers(tmp_path, reliability, code):
    run = collector(tmp_path, lambda: CountdownEnv(step_seconds=0.01), n_tasks=10)
    window: dict[str, float] = {}
    ledger = tmp_path / "store" / "ledger.jsonl"

    def fill_then_free(disk: DiskFaults) -> None:
        """The disk fills once the run is under way, and has space again a second later."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (ledger.exists() and b"intent" in ledger.read_bytes()):
            time.sleep(0.01)
        disk.fail(code)
        window["failing"] = time.time()
        time.sleep(1.0)
        window["recovered"] = time.time()
        disk.recover()

    with DiskFaults() as disk:
        threading.Thread(target=fill_then_free, args=(disk,), daemon=True).start()
        summary = run.run()
    assert summary.store_failures >= 1 and disk.failures >= 1
    stored = list(TrajectoryStore(tmp_path / "store").episodes())
    assert len(stored) == 20 and all(t.status == "ok" for t in stored)
    records, _ = read_ledger(tmp_path / "store")
    started_while_failing = [r for r in records if r["e"] == "intent"
                             and window["failing"] + 0.3 < r["t"] < window["recovered"]]
    # intake paused: once the first write failed no new episode started (those in flight may finish)
    assert len(started_while_failing) <= run.config.concurrency, started_while_failing
    assert not list((tmp_path / "store" / "shards").glob(".*")), "a failed write left a temp file"
    report = check_ledger(tmp_path / "store", expected_slots=slots(10, 2))
    assert report.ok, report
    reliability.measure(store_failures=summary.store_failures, started_while_failing=len(started_while_failing),
                        rows=len(stored))


def test_f10_a_disk_that_never_recovers_stops_the_run_typed_and_resume_finishes_it(tmp_path, reliability):
    run = collector(tmp_path, lambda: CountdownEnv(), n_tasks=4, store_stall_timeout=0.8)
    started = time.monotonic()
    with DiskFaults(match="/shards/") as disk, pytest.raises(StoreUnavailable, match="kept failing"):
        disk.fail(errno.ENOSPC)
        run.run()
    stopped_after = time.monotonic() - started
    report = check_ledger(tmp_path / "store")
    assert report.ok, report  # every intent closed (cancelled: never written), no row without a record
    assert report.rows == 0 and report.terminals["cancelled"] >= 1
    again = collector(tmp_path, lambda: CountdownEnv(), n_tasks=4).run()
    assert again.episodes == 8
    assert check_ledger(tmp_path / "store", expected_slots=slots(4, 2)).ok
    reliability.measure(stopped_after_s=round(stopped_after, 2), stall_timeout_s=0.8)


# ----- F07 ---------------------------------------------------------------------------------------------------
class VersionBumpingPolicy(ScriptedPolicy):
    """A policy whose weights change every ``every`` answers (a trainer pushing mid-episode); each answer
    carries the version that produced it, as a server's ``weight_version`` does."""

    def __init__(self, every: int):
        super().__init__(expert_text)
        self.every = every

    async def act(self, requests):
        outs = await super().act(requests)
        for out in outs:
            out.policy_version = self.version
        if self.calls // self.every > self.version:
            self.version = self.calls // self.every
        return outs


def test_f07_weights_changing_mid_episode_are_recorded_per_turn_and_the_staleness_cap_holds(tmp_path, reliability):
    from agentenv.trainers.loop import within_staleness

    policy = VersionBumpingPolicy(every=5)
    config = CollectConfig(env_id="agentenv-testing/Countdown-v0", n_tasks=8, group_size=2, concurrency=4,
                           progress="off")
    Collector(config, policy, TrajectoryStore(tmp_path / "store"),
              env_factory=lambda: CountdownEnv(start=4, step_seconds=0.002)).run()
    episodes = list(TrajectoryStore(tmp_path / "store").episodes())
    changed = 0
    for t in episodes:
        versions = [turn.policy_version for turn in t.turns]
        assert versions == sorted(versions), (t.trajectory_id, versions)  # monotone within an episode
        assert t.policy_version <= versions[0]  # the version at the start, then each turn's own
        changed += versions[0] != versions[-1]
    assert changed > 0, "no episode saw its weights change: the test measures nothing"
    learner = policy.version
    for cap in (0, 1, 2):
        fresh = within_staleness(episodes, learner, cap)
        lags = [learner - turn.policy_version for t in fresh for turn in t.turns]
        assert max(lags, default=0) <= cap
        left_out = [t for t in episodes if t not in fresh]
        assert all(any(learner - turn.policy_version > cap for turn in t.turns) for t in left_out)
    assert check_ledger(tmp_path / "store", expected_slots=slots(8, 2)).ok
    reliability.measure(episodes_with_a_version_change=changed, final_version=learner,
                        fresh_at_cap_1=len(within_staleness(episodes, learner, 1)))


# ----- F13 ---------------------------------------------------------------------------------------------------
def test_f13_a_reset_that_never_completes_is_a_reset_timeout_and_frees_its_slot(tmp_path, reliability):
    probe = collector(tmp_path, lambda: CountdownEnv())
    hung_seed = probe.task_seed(1)
    run = collector(tmp_path, lambda: FaultyEnv(CountdownEnv(), faults=[
        EnvFault("reset", "hang", seeds=(hung_seed,), seconds=30)]), concurrency=2, reset_timeout=0.5)
    started = time.monotonic()
    summary = run.run()
    wall = time.monotonic() - started
    stored = {t.trajectory_id: t for t in TrajectoryStore(tmp_path / "store").episodes()}
    hung = [t for t in stored.values() if t.task_index == 1]
    assert [t.failure_cause for t in hung] == ["reset_timeout", "reset_timeout"]
    assert all(terminal_status(t) == "failed_infra" for t in hung)
    assert all(t.status == "ok" for t in stored.values() if t.task_index != 1)
    # two workers: the hung resets held each slot for reset_timeout only, not for the 30 s hang
    assert wall < 10, wall
    assert summary.failures == Counter({"reset_timeout": 2})
    assert check_ledger(tmp_path / "store", expected_slots=slots(6, 2)).ok
    reliability.measure(wall_s=round(wall, 2), reset_timeout_s=0.5, hang_s=30)


# ----- F16 ---------------------------------------------------------------------------------------------------
def test_f16_a_grader_that_raises_or_hangs_is_failed_infra_never_a_zero(tmp_path, reliability):
    probe = collector(tmp_path, lambda: CountdownEnv())
    raising, hanging = probe.task_seed(0), probe.task_seed(2)
    census = Census.take()
    run = collector(tmp_path, lambda: FaultyEnv(CountdownEnv(), faults=[
        EnvFault("step", "grader", turn=1, seeds=(raising,)),
        EnvFault("step", "grader_hang", turn=0, seeds=(hanging,), seconds=0.3)]), env_timeout=5)
    summary = run.run()
    stored = list(TrajectoryStore(tmp_path / "store").episodes())
    failed = [t for t in stored if t.status == "failed"]
    assert sorted(t.task_index for t in failed) == [0, 0, 2, 2]
    assert {t.failure_cause for t in failed} == {"grader_error"}
    assert all(terminal_status(t) == "failed_infra" for t in failed)
    ok = [t for t in stored if t.status == "ok"]
    assert len(ok) == 8 and all(t.reward == 1.0 for t in ok)  # the histogram has no spurious zeros
    assert summary.failures == Counter({"grader_error": 4})
    assert check_ledger(tmp_path / "store", expected_slots=slots(6, 2)).ok
    assert_no_leaks(census)
    reliability.measure(grader_errors=len(failed), zero_rewards=sum(t.reward == 0 for t in ok))


# ----- F14 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["mask", "refill"])
def test_f14_a_partial_group_is_masked_or_refilled_never_zero_filled(tmp_path, reliability, policy):
    """1 in 20 episodes infra-fails (p = 5%, groups of 8). Advantages are computed over the usable members
    only: each group's GRPO advantages equal the normalisation of its usable members' rewards, failed
    members have no row, and a group below min_usable is dropped whole."""
    from agentenv.trainers.advantages import group_normalise, grpo
    from agentenv.trainers.config import TrainConfig
    from agentenv.trainers.group_policy import mask_groups
    from agentenv.trainers.grouping import StepTable

    n_tasks, group = 12, 8
    retries = 2 if policy == "refill" else 0
    counter = iter(range(10**6))
    run = collector(tmp_path, lambda: FaultyEnv(CountdownEnv(), fault_seed=next(counter), faults=[
        EnvFault("step", "raise", turn=0, probability=0.05)]), n_tasks=n_tasks, group=group, env_retries=retries)
    run.run()
    episodes = list(TrajectoryStore(tmp_path / "store").episodes())
    failed = [t for t in episodes if t.status == "failed"]
    assert failed and all(terminal_status(t) == "failed_infra" for t in failed)
    usable = [t for t in episodes if t.status == "ok"]
    min_usable = 7
    masked = mask_groups(episodes, usable, min_usable)
    for t in masked.usable:  # mixed rewards inside each group, so that advantages are not all 0
        t.reward = float(t.sample_index % 2)
    config = TrainConfig(algo="grpo", group_size=group, min_usable=min_usable)
    table = StepTable.from_episodes([{"group": t.group_id, "outcome": t.reward, "anchors": [None]}
                                     for t in masked.usable])  # what GRPO.rows_and_advantages builds
    advantages = grpo(table, norm=config.norm).tolist()
    per_episode = {t.trajectory_id: a for t, a in zip(masked.usable, advantages, strict=True)}
    assert not set(per_episode) & {t.trajectory_id for t in failed}
    by_group: dict[str, list] = {}
    for t in masked.usable:
        by_group.setdefault(t.group_id, []).append(t)
    for members in by_group.values():
        assert len(members) >= min_usable
        expected = group_normalise([t.reward for t in members], [members[0].group_id] * len(members), config.norm)
        assert [per_episode[t.trajectory_id] for t in members] == pytest.approx(list(expected))
    slots_failed = sum(1 for t in _final(episodes) if t.status == "failed")
    assert masked.infra_failed_rate == pytest.approx(slots_failed / (n_tasks * group))
    if policy == "refill":  # retried on fresh envs: almost every slot ends usable
        assert slots_failed < len(failed)
    assert check_ledger(tmp_path / "store", expected_slots=slots(n_tasks, group)).ok
    reliability.measure(group_policy=policy, infra_failed_rate=round(masked.infra_failed_rate, 4),
                        attempts_failed=len(failed), groups_dropped=masked.groups_dropped)


def _final(episodes):
    from agentenv.trainers.trees import final_attempts

    return final_attempts(episodes)


# ----- F19 ---------------------------------------------------------------------------------------------------
TRAIN = """
import json, sys
from agentenv.trainers.config import TrainConfig
from agentenv.trainers.loop import Trainer
Trainer(TrainConfig(**json.loads(sys.argv[1]))).run()
"""


@pytest.mark.integration
def test_f19_a_trainer_killed_mid_run_recovers_its_version_and_staleness(tiny_model_dir, tmp_path, reliability,
                                                                          long_run):
    """SIGKILL an asynchronous (max_staleness = 1) training run after a checkpoint, resume it: the weight
    version continues from the checkpoint's, every trained turn is within the staleness cap, and the
    version sequence has no gap or repeat across the crash."""
    steps = 100 if long_run else 3
    run = tmp_path / "run"
    cfg = dict(env="agentenv/GuessNumber-v0", env_kwargs={"max_turns": 3}, model=str(tiny_model_dir), out=str(run),
               tasks_per_step=2, group_size=2, concurrency=4, max_tokens=8, lr=1e-3, micro_batch_tokens=2048,
               max_staleness=1, checkpoint_every=1, steps=steps, progress="off")
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, json.dumps(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    checkpoint = run / "checkpoints" / "step-00001" / "trainer_state.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    done = subprocess.run([sys.executable, "-c", TRAIN, json.dumps({**cfg, "resume": True})],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = {}
    for r in records:
        if "policy_version" in r and not r.get("skipped"):
            trained[r["step"]] = r  # a step re-run after the crash replaces its earlier record
    versions = [trained[s]["policy_version"] for s in sorted(trained)]
    assert versions == list(range(1, steps + 1)), versions
    assert max(r.get("staleness_max", 0) for r in trained.values()) <= 1
    for step in range(1, steps):
        for t in TrajectoryStore(run / "rollouts" / f"step-{step:05d}").episodes():
            assert all(step - turn.policy_version <= 1 for turn in t.turns), (step, t.trajectory_id)
    reliability.measure(steps=steps, killed_after_step=len(before),
                        staleness_max=max(r.get("staleness_max", 0) for r in trained.values()))


class LeakyEnv(CountdownEnv):
    """Starts a helper process at reset and forgets it (the bug the run's census exists to catch)."""

    children: ClassVar[list[subprocess.Popen]] = []

    def _reset(self, options):
        LeakyEnv.children.append(subprocess.Popen(["sleep", "60"]))
        return super()._reset(options)


def test_a_run_with_census_reports_clean_after_faults_and_names_a_leak(tmp_path, caplog):
    """``CollectConfig(census=True)``: the run checks itself. Envs that raised were closed, nothing is left
    after the faults above; an env that leaks a process is named in the summary and the log."""
    faulty = collector(tmp_path, lambda: FaultyEnv(CountdownEnv(), faults=[EnvFault("step", "raise", turn=1,
                                                                                     probability=0.5)]), census=True)
    summary = faulty.run()
    assert summary.failures["env_error"] > 0 and summary.census.startswith("census clean"), summary.census
    leaky = collector(tmp_path / "leaky", lambda: LeakyEnv(), n_tasks=2, census=True)
    try:
        summary = leaky.run()
    finally:
        for child in LeakyEnv.children:
            child.kill()
            child.wait()
    assert "resources outlived their owner" in summary.census and "sleep 60" in summary.census
    assert "the run left resources behind" in caplog.text
