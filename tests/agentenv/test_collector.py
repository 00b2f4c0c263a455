"""The collector: scheduling, failure boundaries, timeouts, resume, and the branching/teacher hooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

import agentenv
from agentenv.collector import CollectConfig, Collector
from agentenv.hooks import BranchRequest, TeacherMixing
from agentenv.policy import PolicyOutput, PolicyRequest
from agentenv.testing import CountdownEnv, FailingPolicy, ScriptedPolicy, expert_text

agentenv.register("agentenv/TestCountdown-v0", "agentenv.testing:CountdownEnv", family="test")


def run(policy, env_id="agentenv/TestCountdown-v0", store=None, **cfg) -> Collector:
    cfg.setdefault("progress", "off")
    collector = Collector(CollectConfig(env_id, **cfg), policy, store)
    collector.summary = collector.run()
    return collector


def test_runs_every_task_and_sample_once_with_groups_sharing_the_seed():
    c = run(ScriptedPolicy(expert_text), n_tasks=5, group_size=3, concurrency=4)
    ids = sorted(t.trajectory_id for t in c.trajectories)
    assert ids == sorted(f"t{i:06d}-s{j:03d}" for i in range(5) for j in range(3))
    for t in c.trajectories:
        assert t.group_id == f"t{t.task_index:06d}" and t.seed == t.task_index
        assert t.status == "ok" and t.success and t.terminated and not t.truncated
    first_obs = {}
    for t in c.trajectories:
        first_obs.setdefault(t.group_id, set()).add(t.turns[0].observation[0]["content"])
    assert all(len(v) == 1 for v in first_obs.values())
    assert c.summary.episodes == 15 and c.summary.success_rate == 1.0


def test_env_that_raises_fails_only_its_episode():
    c = run(ScriptedPolicy(expert_text), n_tasks=4, env_kwargs={"raise_at": 2, "faulty_seeds": {1}})
    by_id = {t.trajectory_id: t for t in c.trajectories}
    bad = by_id["t000001-s000"]
    assert bad.status == "failed" and bad.failure_cause == "env_error"
    assert "injected env failure" in bad.error and len(bad.turns) == 1
    assert all(t.status == "ok" for k, t in by_id.items() if k != "t000001-s000")
    assert c.summary.failures == {"env_error": 1}


def test_env_that_hangs_times_out_and_the_run_goes_on():
    t0 = time.monotonic()
    c = run(ScriptedPolicy(expert_text), n_tasks=3, concurrency=3, env_timeout=0.3,
            env_kwargs={"hang_at": 1, "faulty_seeds": {0}, "hang_seconds": 2.0})
    by_id = {t.trajectory_id: t for t in c.trajectories}
    assert by_id["t000000-s000"].failure_cause == "env_timeout"
    assert by_id["t000001-s000"].status == by_id["t000002-s000"].status == "ok"
    assert time.monotonic() - t0 < 1.9  # did not wait for the hung step


def test_policy_failure_and_policy_hang_are_recorded_with_their_cause():
    c = run(FailingPolicy(expert_text, fail_on={"t000001-s000"}, at_turn=2), n_tasks=3)
    by_id = {t.trajectory_id: t for t in c.trajectories}
    assert by_id["t000001-s000"].failure_cause == "policy_error" and len(by_id["t000001-s000"].turns) == 2
    assert "injected failure" in by_id["t000001-s000"].error
    c = run(FailingPolicy(expert_text, fail_on={"t000000-s000"}, hang=True), n_tasks=2, policy_timeout=0.2)
    by_id = {t.trajectory_id: t for t in c.trajectories}
    assert by_id["t000000-s000"].failure_cause == "policy_timeout" and by_id["t000001-s000"].status == "ok"


def test_episode_timeout_ends_a_slow_episode():
    c = run(ScriptedPolicy(expert_text, latency=0.1), n_tasks=1, episode_timeout=0.25)
    (t,) = c.trajectories
    assert t.failure_cause == "episode_timeout" and 1 <= len(t.turns) <= 3


def test_env_failures_are_retried_on_a_fresh_env_and_every_attempt_is_recorded():
    c = run(ScriptedPolicy(expert_text), n_tasks=2, env_retries=2, env_kwargs={"raise_at": 1, "faulty_seeds": {1}})
    ids = sorted(t.trajectory_id for t in c.trajectories)
    assert ids == ["t000000-s000", "t000001-s000", "t000001-s000-a1", "t000001-s000-a2"]
    assert [t.attempt for t in c.trajectories if t.task_index == 1] == [0, 1, 2]


def test_episodes_are_scheduled_one_by_one_not_in_lock_step():
    """A long episode blocks until every short one is done: lock-step batches would deadlock here."""
    shorts_done = asyncio.Event()
    finished: list[str] = []

    class Gated:
        name, version, wants_expert = "gated", 0, False

        async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
            r = requests[0]
            if r.trajectory_id == "t000000-s000" and r.turn == 1:
                await asyncio.wait_for(shorts_done.wait(), 5)
            return [PolicyOutput(text=expert_text(r))]

        async def aclose(self) -> None: ...

    def on_turn(traj, turn):
        if turn.terminated and traj.task_index != 0:
            finished.append(traj.trajectory_id)
            if len(finished) == 6:
                shorts_done.set()

    cfg = CollectConfig("agentenv/TestCountdown-v0", n_tasks=7, concurrency=2, progress="off")
    c = Collector(cfg, Gated(), on_turn=on_turn)
    c.run()
    assert all(t.status == "ok" for t in c.trajectories) and len(finished) == 6


def test_sync_env_steps_do_not_block_the_event_loop():
    t0 = time.monotonic()
    c = run(ScriptedPolicy(expert_text), n_tasks=8, concurrency=8, env_kwargs={"step_seconds": 0.15, "start": 1})
    elapsed = time.monotonic() - t0
    turns = sum(len(t.turns) for t in c.trajectories)
    assert turns >= 8 * 2
    assert elapsed < 0.6 * turns * 0.15  # serial would take turns * 0.15 s


def test_same_seed_gives_the_same_trajectories():
    from agentenv.policies import RandomPolicy

    def actions(seed):
        c = run(RandomPolicy(seed=seed), env_id="agentenv/Maze-v0", n_tasks=3, group_size=2, concurrency=3,
                seed=seed)
        return {t.trajectory_id: [x.action for x in t.turns] for t in c.trajectories}

    assert actions(7) == actions(7)
    assert actions(7) != actions(8)


def test_branching_hook_replays_the_prefix_and_links_child_to_parent():
    class AtTurnOne:
        def branches(self, traj):
            return [BranchRequest(turn=1, count=2)] if traj.parent_trajectory_id is None else []

    cfg = CollectConfig("agentenv/TestCountdown-v0", n_tasks=2, progress="off")
    c = Collector(cfg, ScriptedPolicy(expert_text), branching=AtTurnOne())
    c.run()
    parents = {t.trajectory_id: t for t in c.trajectories if t.parent_trajectory_id is None}
    children = [t for t in c.trajectories if t.parent_trajectory_id is not None]
    assert len(parents) == 2 and len(children) == 4
    for child in children:
        parent = parents[child.parent_trajectory_id]
        assert child.branch_turn == 1 and child.kind == "branch" and child.tree_id == parent.trajectory_id
        assert child.turns[0] == parent.turns[0]  # the copied prefix
        assert child.turns[1].observation == parent.turns[1].observation
        assert child.trajectory_id.startswith(parent.trajectory_id + "-b1.")
        assert child.success


def test_teacher_mixing_records_labels_at_every_state_and_acts_with_probability_beta():
    teacher = ScriptedPolicy(expert_text, name="teacher")
    student = ScriptedPolicy(["Action: nonsense"], name="student")
    cfg = CollectConfig("agentenv/TestCountdown-v0", n_tasks=2, progress="off")
    c = Collector(cfg, student, teacher=TeacherMixing(teacher, beta=0.0))
    c.run()
    for t in c.trajectories:
        assert all(x.actor == "student" and x.teacher_action and x.teacher_action.startswith("Action: ")
                   for x in t.turns)
        assert all(x.teacher_action != x.action for x in t.turns)
    c = Collector(cfg, student, teacher=TeacherMixing(teacher, beta=1.0))
    c.run()
    for t in c.trajectories:
        assert t.success and all(x.actor == "teacher" and x.action == x.teacher_action for x in t.turns)
        assert all(x.info["teacher_beta"] == 1.0 for x in t.turns)  # the β each coin used is recorded
    coins = TeacherMixing(teacher, beta=0.5, seed=3)
    flips = [coins.teacher_acts("t000000-s000", k) for k in range(200)]
    assert flips == [coins.teacher_acts("t000000-s000", k) for k in range(200)]
    assert 60 < sum(flips) < 140


def test_resume_skips_finished_episodes(tmp_path):
    from agentenv.store import TrajectoryStore

    store = TrajectoryStore(tmp_path / "run")
    run(ScriptedPolicy(expert_text), store=store, n_tasks=3, group_size=2)
    first = {t.trajectory_id: t for t in store.episodes()}
    assert len(first) == 6
    again = run(ScriptedPolicy(expert_text), store=TrajectoryStore(tmp_path / "run"), n_tasks=5, group_size=2)
    assert again.summary.skipped == 6 and again.summary.episodes == 4
    ids = [t.trajectory_id for t in TrajectoryStore(tmp_path / "run").episodes()]
    assert len(ids) == len(set(ids)) == 10


def test_resume_with_another_configuration_is_refused(tmp_path):
    from agentenv.store import TrajectoryStore

    run(ScriptedPolicy(expert_text), store=TrajectoryStore(tmp_path / "run"), n_tasks=1)
    with pytest.raises(ValueError, match="seed"):
        run(ScriptedPolicy(expert_text), store=TrajectoryStore(tmp_path / "run"), n_tasks=1, seed=5)


def test_invalid_actions_are_recorded_and_the_limit_truncates():
    c = run(ScriptedPolicy(["I do not know"]), n_tasks=1, env_kwargs={"max_invalid_actions": 3})
    (t,) = c.trajectories
    assert t.status == "ok" and t.truncated and not t.terminated and len(t.turns) == 3
    assert all(not x.action_valid and "Invalid action" in x.feedback[0]["content"] for x in t.turns)


def test_collector_turn_cap_truncates():
    c = run(ScriptedPolicy(["Action: 99"]), n_tasks=1, max_turns=4, env_kwargs={"max_invalid_actions": None})
    (t,) = c.trajectories
    assert t.truncated and len(t.turns) == 4 and t.extra["truncated_by"] == "collector_max_turns"


def test_countdown_env_is_deterministic_under_its_seed():
    a, b = CountdownEnv(), CountdownEnv()
    assert a.reset(seed=4)[0] == b.reset(seed=4)[0]


def test_an_env_that_cannot_be_created_stops_the_run_before_anything_is_written(tmp_path):
    from agentenv.collector import EnvCreationError
    from agentenv.store import TrajectoryStore

    store = TrajectoryStore(tmp_path / "store")
    cfg = CollectConfig("agentenv/Maze-v0", n_tasks=2, env_kwargs={"size": 1}, progress="off")
    with pytest.raises(EnvCreationError, match="size must be at least 2"):
        Collector(cfg, ScriptedPolicy(expert_text), store).run()
    assert len(store) == 0


def test_success_is_what_the_env_says_when_it_says_whether_the_task_was_won():
    from agentenv.trajectory import Trajectory, Turn

    def ended(reward: float, info: dict) -> Trajectory:
        turn = Turn(index=0, observation=[], action="a", reward=reward, terminated=True, info=info)
        return Trajectory("t", "g", "t", 0, 0, 0, "e", turns=[turn], reward=reward, terminated=True)

    assert not ended(0.01, {"won": False}).success  # format credit for a wrong answer is not a solve
    assert ended(1.0, {"won": True}).success and ended(0.5, {}).success and not ended(0.0, {}).success
    unfinished = ended(1.0, {"won": True})
    unfinished.terminated = False
    assert not unfinished.success


def test_an_env_slow_to_close_is_given_up_on_with_a_warning_and_no_task_outlives_the_run(caplog):
    class SlowClose(CountdownEnv):
        def close(self) -> None:
            time.sleep(0.5)

    c = Collector(CollectConfig("agentenv/TestCountdown-v0", progress="off"), ScriptedPolicy(expert_text))

    async def main() -> set[asyncio.Task]:
        c._discard(SlowClose())
        await c._finish_closing(timeout=0.05)
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    with caplog.at_level("WARNING", logger="agentenv.collect"):
        left = asyncio.run(main())
    assert left == set() and not c._closing
    assert "1 env(s) did not close within 0 s" in caplog.text
