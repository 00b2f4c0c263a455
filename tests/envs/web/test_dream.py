"""Dream envs (DynaWeb's WorldModelEnv): dreams start from real first pages, apply the world model's Δ, end
at the predicted task end or the horizon, are rewarded by the world model or a judge, clone for free and
are recorded as imagined with their Δ."""

from __future__ import annotations

from dataclasses import replace

import pytest

import agentenv
from agentenv.collector import CollectConfig, Collector, collect
from agentenv.envs.web.delta import format_delta
from agentenv.envs.web.dream import WorldModelEnv, dream_id, real_id
from agentenv.envs.web.transitions import transitions
from agentenv.policies import ExpertPolicy, RandomPolicy, ReplayPolicy, build_tiny_model
from agentenv.policy import PolicyOutput
from agentenv.testing import ForkAt

REAL = "agentenv/MiniWoB-ClickCheckboxes-v0"


@pytest.fixture(scope="module")
def real_episodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("starts")
    _, episodes = collect(REAL, ExpertPolicy(), n_tasks=3, concurrency=3, progress="off", out=out)
    assert all(t.status == "ok" and t.success for t in episodes)
    return out, episodes


class FakeWorldModel:
    """A world model that answers from a table of (page, action) → Δ text, else with ``default``."""

    name, version, wants_expert = "fake-wwm", 0, False

    def __init__(self, table=None, default="reward: 0\ndone: no"):
        self.table, self.default, self.prompts = table or {}, default, []

    async def act(self, requests):
        outs = []
        for r in requests:
            prompt = r.messages[-1]["content"]
            self.prompts.append(prompt)
            outs.append(PolicyOutput(text=self.table.get(prompt, self.default)))
        return outs

    async def aclose(self):
        pass


def oracle(episodes):
    """The real transitions as a world model: perfect on the pages the real episodes visited."""
    found = transitions(episodes)
    return FakeWorldModel({t.messages()[-1]["content"]: t.target() for t in found})


def dream(starts, world_model, **kwargs):
    return WorldModelEnv(real_env=REAL, world_model=world_model, starts=str(starts), **kwargs)


def test_every_text_web_env_has_a_dream_twin():
    ids = {info.id for info in agentenv.registered_envs()}
    web = {info.id for info in agentenv.registered_envs() if info.family == "web"}
    assert {dream_id(i) for i in web} <= ids and dream_id("agentenv/WebShop-v0") in ids
    assert real_id("agentenv/Dream-WebShop-v0") == "agentenv/WebShop-v0" and real_id(REAL) is None
    with pytest.raises(ValueError, match="world_model="):
        agentenv.make(dream_id(REAL))


def test_a_dream_with_a_perfect_world_model_replays_the_real_episode(real_episodes):
    starts, episodes = real_episodes
    env = dream(starts, oracle(episodes))
    try:
        for real in episodes:
            obs, info = env.reset(seed=0)
            real = next(t for t in episodes if t.seed == info["real_seed"])
            assert obs["messages"] == real.turns[0].observation
            for turn in real.turns:
                obs, reward, terminated, _, step = env.step(turn.action)
                assert obs["messages"] == turn.feedback and reward == turn.reward
                assert terminated == turn.terminated and step["is_imagined"] and "delta_error" not in step
            assert terminated and step["won"]
    finally:
        env.close()


def test_no_change_keeps_the_page_and_the_dream_stops_at_the_horizon(real_episodes):
    starts, _ = real_episodes
    env = dream(starts, FakeWorldModel(), max_turns=3)
    try:
        obs, _ = env.reset(seed=1)
        page = obs["messages"][-1]["content"]
        for turn in range(1, 4):
            obs, reward, terminated, truncated, _ = env.step("click(1)")
            assert obs["messages"][-1]["content"] == page and reward == 0 and not terminated
            assert truncated == (turn == 3)
    finally:
        env.close()


def test_a_delta_that_does_not_fit_leaves_the_page_and_says_why(real_episodes):
    starts, _ = real_episodes
    env = dream(starts, FakeWorldModel(default="reward: 1\ndone: yes\n- [99]"))
    try:
        obs, _ = env.reset(seed=1)
        after, reward, terminated, _, info = env.step("click(1)")
        assert after["messages"][-1]["content"] == obs["messages"][-1]["content"]
        assert "no line [99]" in info["delta_error"] and reward == 0 and not terminated
        assert info["delta"] == "reward: 1\ndone: yes\n- [99]"
    finally:
        env.close()


def test_an_invalid_action_never_reaches_the_world_model(real_episodes):
    starts, _ = real_episodes
    model = FakeWorldModel()
    env = dream(starts, model)
    try:
        env.reset(seed=0)
        _, _, _, _, info = env.step("buy everything")
        assert info["action_valid"] is False and info["is_imagined"] and model.prompts == []
        assert "click(1)" in env.action_candidates()  # a random agent dreams too
    finally:
        env.close()


@pytest.mark.parametrize(("verdict", "reward"), [("Yes.", 1.0), ("no", 0.0)])
def test_the_judge_rewards_the_dream_at_its_end(real_episodes, verdict, reward):
    starts, episodes = real_episodes
    judge = FakeWorldModel(default=verdict)
    env = dream(starts, oracle(episodes), reward="judge", judge=judge)
    try:
        _, info = env.reset(seed=2)
        real = next(t for t in episodes if t.seed == info["real_seed"])
        rewards, step = [], {}
        for turn in real.turns:
            _, r, _, _, step = env.step(turn.action)
            rewards.append(r)
        assert rewards == [0.0] * (len(rewards) - 1) + [reward] and len(judge.prompts) == 1
        assert step["judge_verdict"] == verdict and "Did the agent complete the task?" in step["judge_input"]
        assert real.turns[-1].action.strip() in judge.prompts[0]
    finally:
        env.close()


def test_a_cloned_dream_continues_identically(real_episodes):
    starts, episodes = real_episodes
    env, twin = dream(starts, oracle(episodes)), dream(starts, oracle(episodes))
    try:
        _, info = env.reset(seed=0)
        real = next(t for t in episodes if t.seed == info["real_seed"])
        env.step(real.turns[0].action)
        twin.reset(seed=0)
        twin.restore(env.snapshot())
        assert env.step(real.turns[1].action)[:3] == twin.step(real.turns[1].action)[:3]
    finally:
        env.close()
        twin.close()


def test_the_collector_records_dreams_as_imagined_with_their_delta(real_episodes, tmp_path):
    starts, episodes = real_episodes
    env_kwargs = {"real_env": REAL, "world_model": oracle(episodes), "starts": str(starts)}
    env, by_id, picked = WorldModelEnv(**env_kwargs), {t.trajectory_id: t for t in episodes}, []
    for seed in range(3):  # the collector's task seeds: replay, in each dream, the real episode it starts from
        picked.append(replace(by_id[env.reset(seed=seed)[1]["real_trajectory_id"]], trajectory_id=f"t{seed:06d}-s000"))
    env.close()
    replay = ReplayPolicy(picked)
    _, dreams = collect(dream_id(REAL), replay, n_tasks=3, concurrency=3, progress="off",
                        env_kwargs=env_kwargs)
    assert all(t.status == "ok" for t in dreams), [t.error for t in dreams]
    for t in dreams:
        assert t.kind == "dream" and all(turn.is_imagined for turn in t.turns)
        assert all(turn.info["delta"].startswith("reward:") for turn in t.turns)
        assert t.extra["real_trajectory_id"] and isinstance(t.extra["real_seed"], int)
    assert sum(t.success for t in dreams) >= 1


def test_dream_envs_keep_the_env_contract(real_episodes):
    starts, episodes = real_episodes
    report = agentenv.check_env(dream(starts, oracle(episodes)), steps=4)
    report.raise_if_failed()


@pytest.mark.integration
def test_a_real_model_dreams_through_the_shared_runtime(real_episodes, tmp_path):
    starts, _ = real_episodes
    model = build_tiny_model(tmp_path / "tiny")
    env = dream(starts, str(model), max_tokens=16)
    try:
        env.reset(seed=0)
        _, _, _, _, info = env.step("click(1)")
        assert info["is_imagined"] and isinstance(info["delta"], str)
        assert "delta_error" in info  # an untrained model writes no valid Δ: the page stays
    finally:
        env.close()
    assert format_delta  # the Δ text format the world model is trained on


def test_tree_rollouts_fork_dreams_from_snapshots_without_asking_the_world_model_again(real_episodes):
    starts, _ = real_episodes
    model = FakeWorldModel()  # no change: every dream runs to the horizon
    env_kwargs = {"real_env": REAL, "world_model": model, "starts": str(starts), "max_turns": 3}
    config = CollectConfig(env_id=dream_id(REAL), n_tasks=2, concurrency=2, progress="off", env_kwargs=env_kwargs)
    collector = Collector(config, RandomPolicy(seed=3), branching=ForkAt(budget=3))
    collector.run()
    episodes = collector.trajectories
    children = [t for t in episodes if t.parent_trajectory_id is not None]
    assert len(episodes) == 6 and len(children) == 4 and all(t.status == "ok" for t in episodes)
    parents = {t.trajectory_id: t for t in episodes}
    for child in children:
        assert child.turns[0].action == parents[child.parent_trajectory_id].turns[0].action
        assert all(turn.is_imagined for turn in child.turns) and child.kind == "branch"
    valid = sum(turn.action_valid for t in episodes for turn in t.turns)
    copied = sum(child.turns[0].action_valid for child in children)
    assert len(model.prompts) == valid - copied  # a fork restores the dream's state: no step is re-dreamed
