"""A text-only episode in a policy's tokens: exactly what the collector records when that text is the
teacher's action during collection (prompt tokens, offsets and action tokens), turn by turn."""

from __future__ import annotations

import pytest

import agentenv
from agentenv.collector import CollectConfig, Collector, collect
from agentenv.hooks import TeacherMixing
from agentenv.policies import ExpertPolicy, RandomPolicy
from agentenv.policies.embedded import TransformersPolicy
from agentenv.policy import PolicyError
from agentenv.prompting import PromptConfig
from agentenv.retokenize import tokenize_episode


@pytest.mark.parametrize(("env_id", "window"), [("agentenv/Maze-v0", None), ("agentenv/GuessNumber-v0", None),
                                                ("agentenv/Maze-v0", 1)])
def test_a_text_episode_gets_the_tokens_the_collector_would_record(tiny_model_dir, env_id, window):
    student = TransformersPolicy(str(tiny_model_dir))
    prompt = PromptConfig(window=window)
    config = CollectConfig(env_id=env_id, n_tasks=3, concurrency=1, progress="off", prompt=prompt)
    mixed = Collector(config, student, teacher=TeacherMixing(ExpertPolicy(), beta=1.0))
    mixed.run()
    _, text_only = collect(env_id, ExpertPolicy(), n_tasks=3, concurrency=1, progress="off", prompt=prompt)
    by_id = {t.trajectory_id: t for t in mixed.trajectories}
    env = agentenv.make(env_id)
    tools = env.reset(seed=0)[0].get("tools")  # an env's tool schemas are not recorded per episode
    env.close()
    compared = 0
    for episode in text_only:
        assert all(not turn.completion_ids for turn in episode.turns)
        tokens = tokenize_episode(episode, student, prompt, tools=tools)
        reference = by_id[episode.trajectory_id]
        assert len(tokens.turns) == len(reference.turns) >= 1
        for ours, theirs in zip(tokens.turns, reference.turns, strict=True):
            assert ours.action == theirs.action
            assert (ours.prompt_ids, ours.prompt_offset, ours.completion_ids) == \
                (theirs.prompt_ids, theirs.prompt_offset, theirs.completion_ids)
            assert ours.actor == "teacher" and ours.completion_mask == [0] * len(ours.completion_ids)
            compared += 1
        assert [p for _, p in tokens.full_prompts()] == [p for _, p in reference.full_prompts()]
    assert compared >= 6


def test_a_policy_without_a_tokenizer_is_refused():
    _, episodes = collect("agentenv/Maze-v0", ExpertPolicy(), n_tasks=1, progress="off")
    with pytest.raises(PolicyError, match="cannot tokenize"):
        tokenize_episode(episodes[0], RandomPolicy())
