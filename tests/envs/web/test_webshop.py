"""The WebShop-style store in a real Chromium: the expert buys what held-out instructions ask for, from
any state, the reward is the store's, and the episode's browser reaches nothing but the store."""

from __future__ import annotations

import pytest

from agentenv.envs.web.webshop import WebShopEnv


@pytest.fixture(scope="module")
def env():
    env = WebShopEnv(split="test")
    yield env
    env.close()


def run_expert(env, **reset):  # type: ignore[no-untyped-def]
    _, info = env.reset(**reset)
    for _ in range(15):
        action = env.expert_action()
        assert action is not None
        _obs, reward, terminated, _, step_info = env.step(action)
        if terminated:
            return info, reward, step_info
    raise AssertionError("the expert did not buy within 15 steps")


@pytest.mark.parametrize("seed", range(4))
def test_the_expert_buys_what_held_out_instructions_ask_for(env, seed):
    info, reward, step_info = run_expert(env, seed=seed)
    assert reward == 1.0 and step_info["won"] and step_info["bought"] == info["asin"]


def test_the_expert_recovers_after_a_wrong_product(env):
    obs, _info = env.reset(seed=11)
    env.step(env.expert_action())  # type the query
    obs, *_ = env.step(env.expert_action())  # search
    page = obs["messages"][-1]["content"]
    results = [line.split("]")[0].strip(" [") for line in page.splitlines() if "] link" in line and "B0" in line]
    expert_pick = env.expert_action()
    wrong = next(r for r in results if f"click({r})" != expert_pick)
    env.step(f"click({wrong})")  # the student opens another product
    for _ in range(10):
        obs, reward, terminated, _, _step_info = env.step(env.expert_action())
        if terminated:
            break
    assert terminated and reward == 1.0


def test_bad_actions_and_blocked_navigation_are_error_observations(env):
    env.reset(seed=2)
    obs, reward, terminated, _, _ = env.step("click(999)")
    assert "no element with id 999" in obs["messages"][-1]["content"] and reward == 0 and not terminated
    obs, *_ = env.step('goto("http://example.com/")')
    assert "not allowed" in obs["messages"][-1]["content"]
    obs, _, _, _, info = env.step("buy the cheapest one")
    assert info["action_valid"] is False
