"""Real web transitions from collected episodes (expert and random policies, MiniWoB++ and the store, in a
real Chromium): the labeler's Δ rebuilds every real next page exactly, and its text reads back equal."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest

from agentenv.collector import collect
from agentenv.envs.web.delta import apply, format_delta, parse_delta
from agentenv.envs.web.transitions import (
    LLMLabeler,
    TransitionError,
    load_transitions,
    transitions,
    world_model_messages,
    write_transitions,
)
from agentenv.policies import ExpertPolicy, RandomPolicy
from agentenv.policy import PolicyOutput

pytestmark = pytest.mark.integration

ENVS = ["agentenv/MiniWoB-ClickCheckboxes-v0", "agentenv/MiniWoB-EnterText-v0",
        "agentenv/MiniWoB-ClickCollapsible-v0", "agentenv/MiniWoB-ChooseList-v0", "agentenv/MiniWoB-ClickTab-v0",
        "agentenv/WebShop-v0"]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    found = []
    for env_id in ENVS:
        for name, policy in (("expert", ExpertPolicy()), ("random", RandomPolicy(seed=1))):
            if name == "expert" and env_id.endswith("ClickTab-v0"):
                continue  # no expert for this task
            _, got = collect(env_id, policy, n_tasks=2, concurrency=2, progress="off", seed=5,
                             env_kwargs={"max_turns": 6}, out=tmp_path_factory.mktemp("store"))
            found += got
    return found


def test_every_collected_transition_is_rebuilt_exactly(episodes):
    found = list(transitions(episodes, check=False))
    assert len({t.env_id for t in found}) == len(ENVS)
    assert {t.policy for t in found} >= {"expert", "random"}
    changed = 0
    for t in found:
        delta = t.delta
        assert apply(t.page, delta) == t.next_page, (t.env_id, t.action)
        assert parse_delta(format_delta(delta)) == delta
        changed += not delta.is_empty
    assert changed >= len(found) // 3  # most actions change something (checked boxes, new pages)
    assert any(t.done and t.reward > 0 for t in found) and any(not t.done for t in found)


def test_transitions_follow_the_pages_the_agent_saw(episodes):
    by_episode: dict[str, list] = {}
    for t in transitions(episodes):
        by_episode.setdefault(f"{t.env_id}/{t.policy}/{t.trajectory_id}", []).append(t)
    for chain in by_episode.values():
        for before, after in itertools.pairwise(chain):
            assert after.page == before.next_page and after.turn > before.turn
        assert all(t.task == chain[0].task and t.task for t in chain)


def test_a_store_of_pixel_episodes_is_refused_with_the_reason(tmp_path):
    _, got = collect("agentenv/GUI-MiniWoB-ClickTest-v0", ExpertPolicy(), n_tasks=1, progress="off", out=tmp_path)
    with pytest.raises(TransitionError, match="text web envs"):
        list(transitions(got))


def test_transitions_files_round_trip(episodes, tmp_path):
    found = list(transitions(episodes))
    assert write_transitions(found, tmp_path / "t.jsonl") == len(found)
    assert load_transitions([tmp_path / "t.jsonl"]) == found


class EchoJudge:
    """A stand-in labeler model: answers with the first line of the change it was shown."""

    name, version, wants_expert = "echo", 0, False
    seen: ClassVar[list[str]] = []

    async def act(self, requests):
        self.seen.extend(r.messages[-1]["content"] for r in requests)
        return [PolicyOutput(text="It changed: " + r.messages[-1]["content"].split("Change:\n")[1].split("\n")[2])
                for r in requests]

    async def aclose(self):
        pass


def test_the_llm_labeler_adds_a_reasoning_trace_that_leads_the_target(episodes):
    found = [t for t in transitions(episodes) if not t.delta.is_empty][:3]
    labelled = LLMLabeler(EchoJudge()).label(found)
    for before, after in zip(found, labelled, strict=True):
        assert after.reasoning and after.reasoning.startswith("It changed:")
        assert after.target().startswith(f"think: {after.reasoning}\nreward:")
        assert parse_delta(after.target()) == before.delta
        assert apply(after.page, parse_delta(after.target())) == after.next_page
    assert all("Action: " in prompt and "Page:" in prompt for prompt in EchoJudge.seen)


def test_the_world_model_prompt_holds_task_page_and_action():
    messages = world_model_messages("Task: buy", "URL: x\n[1] button \"Buy\"", "click(1)")
    assert messages[0]["role"] == "system" and "reward:" in messages[0]["content"]
    assert messages[1]["content"].endswith("Page:\nURL: x\n[1] button \"Buy\"\n\nAction: click(1)")
