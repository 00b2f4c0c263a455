"""Text-only episodes (an expert's, a person's, a recorded demonstration) in a policy's own tokens.

An episode recorded without token ids cannot be trained on token-exactly. Re-playing its conversation
through the same :class:`~agentenv.prompting.Conversation` the collector uses, and tokenizing each action
the way a teacher's action is tokenized when it acts during collection (``tokenize_action``), gives the
exact prompts the policy would have seen and the actions as its tokens: the episode then reads like one the
policy sampled, with its actor marked ``teacher``. DynaWeb trains on real expert episodes this way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from agentenv.messages import Observation
from agentenv.policy import PolicyError, PolicyRequest
from agentenv.prompting import Conversation, PromptConfig, new_prompt_tokens
from agentenv.trajectory import Trajectory


def tokenize_episode(episode: Trajectory, policy: Any, prompt: PromptConfig | None = None,
                     tools: list[dict[str, Any]] | None = None) -> Trajectory:
    """A copy of ``episode`` whose turns carry ``policy``'s prompt and action tokens (see the module
    docstring). ``prompt`` is the collection's prompt configuration and ``tools`` the env's tool schemas
    (episodes do not record them): both shape the prompt, so they must be the ones the policy would see."""
    if not hasattr(policy, "tokenize_action"):
        raise PolicyError(f"policy {getattr(policy, 'name', policy)!r} cannot tokenize actions (it has no "
                          "tokenizer): a text-only episode needs one to be trained on")
    if not episode.turns:
        return dataclasses.replace(episode, turns=[])
    conversation = Conversation(prompt)
    start = _observation(episode.turns[0].observation, episode.turns[0].admissible)
    if tools:
        start["tools"] = tools
    conversation.start(start)
    turns = []
    for index, turn in enumerate(episode.turns):
        messages = conversation.messages()
        continuation = conversation.continuation(messages)
        request = PolicyRequest(messages=messages, continuation=continuation, tools=tools,
                                trajectory_id=episode.trajectory_id, turn=turn.index)
        out = policy.tokenize_action(request, turn.action)
        prompt_ids, offset = new_prompt_tokens(list(out.prompt_ids or []), continuation)
        completion = list(out.completion_ids or [])
        turns.append(dataclasses.replace(
            turn, prompt_ids=prompt_ids, prompt_offset=offset, completion_ids=completion,
            completion_mask=[0] * len(completion), logprobs=[], top_ids=[], top_logprobs=[], entropies=[],
            entropy_kind="", token_source="teacher", actor="teacher"))
        following = episode.turns[index + 1].admissible if index + 1 < len(episode.turns) else None
        conversation.record(messages, out, out.text, _observation(turn.feedback, following))
    return dataclasses.replace(episode, turns=turns)


def _observation(messages: list[dict[str, Any]], admissible: list[str] | None) -> Observation:
    obs = cast(Observation, {"messages": messages})
    if admissible is not None:
        obs["admissible"] = admissible
    return obs
