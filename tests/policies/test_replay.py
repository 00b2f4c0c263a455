"""Replay: recorded actions come back with their exact tokens, so a replayed episode is token-exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agentenv
from agentenv.policies import ReplayPolicy, make_policy
from agentenv.policy import Policy, PolicyError, PolicyOutput, PolicyRequest, SamplingParams
from agentenv.prompting import Conversation
from agentenv.rendering import ChatRenderer
from agentenv.trajectory import Trajectory, Turn


def trajectory(tid: str, turns: list[Turn], **kwargs: Any) -> Trajectory:
    return Trajectory(trajectory_id=tid, group_id="g", task_id="t", task_index=0, sample_index=0, seed=0,
                      env_id="agentenv/Maze-v0", turns=turns, **kwargs)


def token_turns() -> list[Turn]:
    return [
        Turn(index=0, observation=[], action="go east", prompt_ids=[1, 2, 3], completion_ids=[10, 11, 2],
             completion_mask=[1, 1, 1], logprobs=[-0.5, -0.25, -0.125], top_ids=[[10], [11], [2]],
             top_logprobs=[[-0.5], [-0.25], [-0.125]], entropies=[1.0, 0.5, 0.25], entropy_kind="exact",
             finish_reason="stop", policy_version=3),
        # turn 1 extends turn 0's context (3 prompt + 3 completion tokens) with 2 new tokens
        Turn(index=1, observation=[], action="go south", prompt_ids=[4, 5], prompt_offset=6,
             completion_ids=[12, 2], logprobs=[-1.0, -2.0], finish_reason="stop", policy_version=3),
    ]


def request(tid: str, turn: int) -> PolicyRequest:
    return PolicyRequest([{"role": "user", "content": "x"}], trajectory_id=tid, turn=turn)


async def test_replay_returns_the_recorded_action_and_tokens() -> None:
    policy = ReplayPolicy.from_trajectories([trajectory("ep-1", token_turns())])
    assert isinstance(policy, Policy) and len(policy) == 1
    first, second = await policy.act([request("ep-1", 0), request("ep-1", 1)])
    assert first.text == "go east" and first.prompt_ids == [1, 2, 3] and first.completion_ids == [10, 11, 2]
    assert first.logprobs == [-0.5, -0.25, -0.125] and first.top_ids == [[10], [11], [2]]
    assert first.entropies == [1.0, 0.5, 0.25] and first.entropy_kind == "exact"
    assert first.policy_version == 3 and first.finish_reason == "stop"
    # the full prompt is rebuilt from the stored offset: turn 0's context + the new tokens
    assert second.prompt_ids == [1, 2, 3, 10, 11, 2, 4, 5] and second.completion_ids == [12, 2]
    assert second.top_ids is None and second.entropies is None


async def test_replay_of_a_text_only_turn_has_no_tokens() -> None:
    turns = [Turn(index=0, observation=[], action="Action: go north")]
    [out] = await ReplayPolicy.from_trajectories([trajectory("ep-2", turns)]).act([request("ep-2", 0)])
    assert out.text == "Action: go north" and out.prompt_ids is None and out.completion_ids is None


async def test_replay_of_a_missing_turn_names_the_trajectory_and_turn() -> None:
    policy = ReplayPolicy.from_trajectories([trajectory("ep-1", token_turns())])
    with pytest.raises(PolicyError, match=r"'ep-1' turn 5: it has 2 recorded turns"):
        await policy.act([request("ep-1", 5)])
    with pytest.raises(PolicyError, match=r"'ep-9' turn 0"):
        await policy.act([request("ep-9", 0)])


async def test_replay_prefers_the_successful_latest_attempt() -> None:
    def attempt(n: int, status: str, action: str) -> Trajectory:
        return trajectory("ep", [Turn(index=0, observation=[], action=action)], attempt=n, status=status)

    policy = ReplayPolicy.from_trajectories(
        [attempt(0, "ok", "first ok"), attempt(1, "failed", "failed retry"), attempt(2, "ok", "second ok")]
    )
    [out] = await policy.act([request("ep", 0)])
    assert out.text == "second ok"


async def play(policy: Any, renderer: ChatRenderer, tid: str, turns: int) -> list[tuple[list[int], PolicyOutput]]:
    """Play Maze with ``policy``, rendering each prompt as the embedded policy does; returns, per turn, the
    prompt that rendering this conversation gives and the policy's output."""
    env = agentenv.make("agentenv/Maze-v0")
    obs, _ = env.reset(seed=3)
    conv = Conversation()
    conv.start(obs)
    played = []
    for turn in range(turns):
        messages = conv.messages()
        cont = conv.continuation(messages)
        [out] = await policy.act([PolicyRequest(messages, SamplingParams(max_tokens=6, seed=turn), continuation=cont,
                                                trajectory_id=tid, turn=turn)])
        played.append((renderer.render(messages, cont), out))
        obs, *_ = env.step(out.text)
        conv.record(messages, out, out.text, obs)
    return played


def record(tid: str, played: list[tuple[list[int], PolicyOutput]]) -> Trajectory:
    """A trajectory the way a collector stores it: each turn's new prompt tokens after the reused context."""
    turns, context = [], []
    for i, (_, out) in enumerate(played):
        assert out.prompt_ids is not None and out.completion_ids is not None
        offset = len(context) if context and out.prompt_ids[: len(context)] == context else 0
        turns.append(Turn(index=i, observation=[], action=out.text, prompt_ids=out.prompt_ids[offset:],
                          prompt_offset=offset, completion_ids=out.completion_ids, logprobs=out.logprobs or [],
                          entropies=out.entropies or [], entropy_kind=out.entropy_kind,
                          finish_reason=out.finish_reason))
        context = out.prompt_ids + out.completion_ids
    return trajectory(tid, turns)


async def test_replaying_a_model_episode_is_token_exact(tiny_policy: Any) -> None:
    renderer = ChatRenderer(tiny_policy.tokenizer)
    original = await play(tiny_policy, renderer, "maze-3", turns=3)
    recorded = record("maze-3", original)
    assert all(t.prompt_offset > 0 for t in recorded.turns[1:])  # the continuation was used
    replayed = await play(ReplayPolicy.from_trajectories([recorded]), renderer, "maze-3", turns=3)
    for (_, want), (rendered, got) in zip(original, replayed, strict=True):
        assert got.text == want.text and got.completion_ids == want.completion_ids
        assert got.prompt_ids == want.prompt_ids == rendered  # the replayed prompt is this conversation's
        assert got.logprobs == want.logprobs


def test_make_policy_replay_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="replay:DIR"):
        make_policy("replay:")
    with pytest.raises(ValueError, match="no trajectory store"):
        make_policy(f"replay:{tmp_path / 'missing'}")


async def test_make_policy_replays_a_store(tmp_path: Path) -> None:
    store_module = pytest.importorskip("agentenv.store")
    store_module.TrajectoryStore(tmp_path / "store").write([trajectory("ep-1", token_turns())])
    policy = make_policy(f"replay:{tmp_path / 'store'}")
    assert isinstance(policy, ReplayPolicy)
    [out] = await policy.act([request("ep-1", 1)])
    assert out.prompt_ids == [1, 2, 3, 10, 11, 2, 4, 5] and out.completion_ids == [12, 2]
