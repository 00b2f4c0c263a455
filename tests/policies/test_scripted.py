from __future__ import annotations

import random

import pytest

from agentenv.parsing import ToolCallParser
from agentenv.policies import ExpertPolicy, HumanPolicy, RandomPolicy
from agentenv.policies.scripted import sample_value
from agentenv.policy import Policy, PolicyError, PolicyRequest, SamplingParams

USER = [{"role": "user", "content": "act"}]

GUESS_TOOL = {
    "type": "function",
    "function": {
        "name": "guess",
        "description": "Guess the number.",
        "parameters": {
            "type": "object",
            "properties": {"number": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["number"],
            "additionalProperties": False,
        },
    },
}

MIXED_TOOL = {
    "type": "function",
    "function": {
        "name": "configure",
        "parameters": {
            "type": "object",
            "properties": {
                "ratio": {"type": "number", "minimum": 0.25, "maximum": 0.5},
                "flag": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "label": {"type": "string"},
                "count": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
            },
            "required": ["ratio", "flag", "mode", "label", "count"],
        },
    },
}


def test_scripted_policies_satisfy_the_protocol() -> None:
    for policy in (RandomPolicy(), ExpertPolicy(), HumanPolicy()):
        assert isinstance(policy, Policy)
        assert policy.version == 0
    assert ExpertPolicy().wants_expert and not RandomPolicy().wants_expert


async def test_random_picks_uniformly_among_admissible_actions() -> None:
    policy = RandomPolicy(seed=1)
    admissible = ["go north", "go south", "look"]
    outs = await policy.act([PolicyRequest(USER, admissible=admissible) for _ in range(300)])
    counts = {a: sum(o.text == a for o in outs) for a in admissible}
    assert set(counts) == set(admissible) and all(60 < c < 140 for c in counts.values())
    assert all(o.prompt_ids is None and o.completion_ids is None for o in outs)


async def test_random_prefers_admissible_then_actions_then_tools() -> None:
    policy = RandomPolicy(actions=["wait"])
    [a, b] = await policy.act([PolicyRequest(USER, admissible=["jump"], tools=[GUESS_TOOL]),
                               PolicyRequest(USER, tools=[GUESS_TOOL])])
    assert (a.text, b.text) == ("jump", "wait")


async def test_random_tool_calls_parse_and_respect_the_bounds() -> None:
    policy = RandomPolicy(seed=3)
    parser = ToolCallParser([GUESS_TOOL, MIXED_TOOL])
    outs = await policy.act([PolicyRequest(USER, tools=[GUESS_TOOL, MIXED_TOOL]) for _ in range(200)])
    guesses = []
    for out in outs:
        assert out.text.startswith("<tool_call>") and out.text.endswith("</tool_call>")
        [call] = parser.parse(out.text).tool_calls  # raises if a type, enum or bound is violated
        if call.name == "guess":
            guesses.append(call.arguments["number"])
        else:
            args = call.arguments
            assert 0.25 <= args["ratio"] <= 0.5 and isinstance(args["flag"], bool)
            assert args["mode"] in ("fast", "slow") and 11 <= args["count"] <= 12
            assert isinstance(args["label"], str) and args["label"]
    assert set(guesses) == set(range(1, 8))


def test_sample_value_handles_open_bounds_and_nested_schemas() -> None:
    rng = random.Random(0)
    for _ in range(50):
        assert 5 <= sample_value({"type": "integer", "minimum": 5}, rng) <= 105
        assert sample_value({"type": "integer", "maximum": -3}, rng) <= -3
        assert 2 <= sample_value({"type": "integer", "minimum": 1.5, "maximum": 2.5}, rng) <= 2
        value = sample_value({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "boolean"}}}},
                             rng)
        assert isinstance(value["xs"], list) and all(isinstance(x, bool) for x in value["xs"])
        assert len(sample_value({"type": "string", "minLength": 3, "maxLength": 4}, rng)) in (3, 4)


async def test_random_without_an_action_space_says_to_pass_one() -> None:
    with pytest.raises(PolicyError, match="actions="):
        await RandomPolicy().act([PolicyRequest(USER)])


async def test_random_with_a_request_seed_ignores_request_order() -> None:
    adm = [f"a{i}" for i in range(50)]
    reqs = [PolicyRequest(USER, SamplingParams(seed=s), admissible=adm) for s in range(20)]
    forward = [o.text for o in await RandomPolicy(seed=7).act(reqs)]
    backward = [o.text for o in await RandomPolicy(seed=7).act(reqs[::-1])][::-1]
    assert forward == backward
    assert forward != [o.text for o in await RandomPolicy(seed=8).act(reqs)]


async def test_expert_returns_the_expert_action() -> None:
    [out] = await ExpertPolicy().act([PolicyRequest(USER, expert_action="Action: go east")])
    assert out.text == "Action: go east"


async def test_expert_without_an_expert_action_raises() -> None:
    with pytest.raises(PolicyError, match="this env has no expert"):
        await ExpertPolicy().act([PolicyRequest(USER, trajectory_id="t1", turn=2)])


async def test_human_shows_the_new_messages_and_maps_numbers_to_admissible_actions() -> None:
    printed: list[str] = []
    prompts: list[str] = []
    lines = iter(["2", "say hello\n", "7"])

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(lines)

    policy = HumanPolicy(input_fn=fake_input, print_fn=lambda *a: printed.append(" ".join(map(str, a))))
    messages = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "old room"},
        {"role": "assistant", "content": "go north"},
        {"role": "user", "content": "new room"},
    ]
    adm = ["go north", "go south"]
    outs = await policy.act([PolicyRequest(messages, admissible=adm) for _ in range(3)])
    assert [o.text for o in outs] == ["go south", "say hello", "7"]
    shown = "\n".join(printed)
    assert "new room" in shown and "old room" not in shown and "2. go south" in shown
    assert prompts == ["> "] * 3


async def test_human_end_of_input_is_a_policy_error() -> None:
    def eof(prompt: str) -> str:
        raise EOFError

    with pytest.raises(PolicyError, match="end of file"):
        await HumanPolicy(input_fn=eof, print_fn=lambda *a: None).act([PolicyRequest(USER)])
