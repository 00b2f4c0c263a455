"""The Env base class: the limits, errors and twins every env gets without writing them."""

import asyncio
import time
from typing import Any

import pytest

from agentenv.env import Env, ResetNeeded, StepResult
from agentenv.messages import observation, observation_problems
from agentenv.parsing import ParsedAction


class PingEnv(Env):
    """Answers ``ping`` with ``pong``; ``stop`` ends the episode with reward 1."""

    def __init__(self, step_delay: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.step_delay = step_delay
        self.closed_count = 0

    def _reset(self, options):
        return observation("Say ping or stop."), {"options": options}

    def admissible_actions(self):
        return ["ping", "stop"]

    def _step(self, action: ParsedAction) -> StepResult:
        if self.step_delay:
            time.sleep(self.step_delay)  # a blocking env, as many real ones are
        if action.command == "stop":
            return StepResult(observation("bye"), reward=1.0, terminated=True)
        return StepResult(observation("pong"))

    def _close(self):
        self.closed_count += 1


def _started(**kwargs: Any) -> PingEnv:
    env = PingEnv(**kwargs)
    env.reset(seed=0)
    return env


def test_valid_action_is_applied_and_marked_valid():
    env = _started()
    obs, reward, terminated, truncated, info = env.step("Action: ping")
    assert obs["messages"][0]["content"] == "pong"
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["action_valid"] is True
    assert info["parsed_action"]["command"] == "ping"


def test_invalid_action_is_answered_with_an_error_observation_and_counted():
    env = _started(max_invalid_actions=5)
    obs, _, terminated, truncated, info = env.step("Action: dance")
    assert obs["messages"][0]["content"].startswith("Invalid action:")
    assert obs["admissible"] == ["ping", "stop"]
    assert not observation_problems(obs)
    assert info["action_valid"] is False and "not an admissible action" in info["parse_error"]
    assert (terminated, truncated) == (False, False)
    assert env.invalid_actions == 1


def test_invalid_actions_truncate_at_the_limit_not_before():
    env = _started(max_invalid_actions=3)
    flags = [env.step("Action: dance")[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_truncation_by_invalid_actions_is_labelled_in_info():
    env = _started(max_invalid_actions=2)
    env.step("nonsense here\nand here")
    *_, terminated, truncated, info = env.step("")
    assert truncated is True and terminated is False
    assert info["truncated_by"] == "max_invalid_actions"


def test_no_invalid_action_limit_means_no_truncation():
    env = _started(max_invalid_actions=None)
    results = [env.step("Action: dance") for _ in range(20)]
    assert not any(truncated for *_, truncated, _ in results)


def test_oversized_action_gives_an_error_observation_without_parsing():
    env = _started(max_action_chars=50)
    obs, _, _, _, info = env.step("Action: ping" + " " * 100)
    assert info["action_valid"] is False
    assert "112 characters long; at most 50" in obs["messages"][0]["content"]


def test_non_text_action_gives_an_error_observation():
    env = _started()
    obs, _, _, _, info = env.step(42)  # type: ignore[arg-type]
    assert info["action_valid"] is False
    assert "must be text, got int" in obs["messages"][0]["content"]


def test_max_turns_truncates_and_says_so():
    env = _started(max_turns=3)
    results = [env.step("Action: ping") for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert results[-1][2] is False
    assert results[-1][4]["truncated_by"] == "max_turns"


def test_termination_on_the_last_turn_is_not_truncation():
    env = _started(max_turns=2)
    env.step("ping")
    _, reward, terminated, truncated, info = env.step("stop")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert "truncated_by" not in info


def test_step_before_reset_raises_reset_needed():
    with pytest.raises(ResetNeeded):
        PingEnv().step("ping")


def test_step_after_the_episode_ended_raises_reset_needed():
    env = _started()
    env.step("stop")
    with pytest.raises(ResetNeeded):
        env.step("ping")


def test_reset_after_the_end_starts_a_new_episode_with_fresh_counters():
    env = _started(max_invalid_actions=1)
    env.step("Action: dance")
    env.reset(seed=1)
    assert (env.turn, env.invalid_actions) == (0, 0)
    assert env.step("ping")[4]["action_valid"] is True


def test_render_ansi_returns_the_transcript():
    env = PingEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step("Action: ping")
    assert env.render() == "Say ping or stop.\n> Action: ping\npong"


def test_render_without_a_mode_returns_none():
    env = _started()
    env.step("ping")
    assert env.render() is None


def test_close_is_idempotent_and_releases_once():
    env = _started()
    env.close()
    env.close()
    assert env.closed_count == 1


def test_reset_after_close_is_refused_with_advice():
    env = _started()
    env.close()
    with pytest.raises(RuntimeError, match="make a new env"):
        env.reset()


async def test_async_twins_give_the_sync_results():
    env = PingEnv()
    obs, _ = await env.reset_async(seed=0, options={"k": 1})
    assert obs["messages"][0]["content"] == "Say ping or stop."
    assert (await env.step_async("stop"))[1:3] == (1.0, True)


async def test_step_async_runs_a_blocking_step_off_the_event_loop():
    env = PingEnv(step_delay=0.3)
    env.reset(seed=0)
    finished = asyncio.Event()
    ticks = 0

    async def step():
        try:
            return await env.step_async("ping")
        finally:
            finished.set()

    async def ticker():
        nonlocal ticks
        while not finished.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    (obs, *_), _ = await asyncio.gather(step(), ticker())
    assert obs["messages"][0]["content"] == "pong"
    assert ticks >= 5  # a step that blocked the loop would let the ticker run at most once
