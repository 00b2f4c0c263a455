"""The embedded policy server over real HTTP, with the official ``openai`` client and agentenv's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from agentenv.policies.catalog import build_tiny_model
from agentenv.policies.embedded_server import create_embedded_app
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policy import Continuation, PolicyRequest, SamplingParams
from agentenv.serving import ServerThread

pytestmark = pytest.mark.integration

KEY = "test-key"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[ServerThread]:
    app = create_embedded_app(str(tiny_model_dir), api_key=KEY, served_name="tiny", batch_wait_ms=20)
    with ServerThread(app) as running:
        running.app = app
        yield running


@pytest.fixture(scope="module")
def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def _post(server: ServerThread, path: str, body: Any, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def _rescore(model_dir: Path, prompt: list[int], completion: list[int]) -> list[float]:
    """Log-probs of ``completion`` after ``prompt`` computed in-process with transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    return [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(completion)]


def test_models_health_and_api_key(server: ServerThread, sdk: openai.OpenAI) -> None:
    assert httpx.get(server.url + "/health").status_code == 200
    assert [m.id for m in sdk.models.list().data] == ["tiny"]
    denied = httpx.get(server.url + "/v1/models")
    assert denied.status_code == 401 and "API key" in denied.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_chat_with_the_openai_sdk_n_logprobs_and_token_ids(sdk: openai.OpenAI, tiny_model_dir: Path) -> None:
    reply = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=6, n=2, seed=3, logprobs=True,
                                        top_logprobs=3, extra_body={"return_token_ids": True})
    assert len(reply.choices) == 2 and reply.usage is not None and reply.usage.completion_tokens == 12
    first = reply.choices[0]
    assert first.logprobs is not None and first.logprobs.content is not None
    assert len(first.logprobs.content) == 6
    assert all(len(t.top_logprobs) == 3 for t in first.logprobs.content)
    assert all(t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob for t in first.logprobs.content)
    ids = first.model_extra["token_ids"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.decode(ids, skip_special_tokens=True) == first.message.content
    prompt = reply.model_extra["prompt_token_ids"]
    expected = _rescore(tiny_model_dir, prompt, ids)
    assert [t.logprob for t in first.logprobs.content] == pytest.approx(expected, abs=2e-4)


def test_streaming_equals_the_whole_answer(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=10, seed=7)
    chunks = list(sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=10, seed=7, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    completions = list(sdk.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, seed=2,
                                              stream=True))
    plain = sdk.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5, seed=2)
    assert "".join(c.choices[0].text for c in completions) == plain.choices[0].text


def test_stop_sequences_cut_the_text_before_the_stop(sdk: openai.OpenAI) -> None:
    free = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, seed=5).choices[0]
    text = free.message.content or ""
    stop = text.split()[2]  # a word in the middle of the unconstrained answer
    cut = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, seed=5, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.message.content == text[:text.index(stop)]
    streamed = sdk.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, seed=5, stop=stop,
                                           stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[:text.index(stop)]


def test_prompts_as_token_ids_match_rendered_chat(server: ServerThread, tiny_model_dir: Path) -> None:
    chat = _post(server, "/v1/chat/completions", {"messages": HELLO, "max_tokens": 5, "seed": 1,
                                                  "return_token_ids": True}).json()
    prompt = chat["prompt_token_ids"]
    completion = _post(server, "/v1/completions", {"prompt": prompt, "max_tokens": 5, "seed": 1, "logprobs": 2,
                                                   "return_token_ids": True,
                                                   "return_tokens_as_token_ids": True}).json()
    choice = completion["choices"][0]
    assert choice["token_ids"] == chat["choices"][0]["token_ids"]
    assert choice["prompt_token_ids"] == prompt
    assert choice["logprobs"]["tokens"] == [f"token_id:{i}" for i in choice["token_ids"]]


def test_bad_requests_get_clear_4xx_without_tracebacks(server: ServerThread) -> None:
    cases = [
        ({"messages": HELLO, "frobnicate": 1}, 400, "unsupported parameters: frobnicate"),
        ({"messages": HELLO, "model": "gpt-9"}, 404, "does not exist"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        ({"messages": HELLO, "temperature": -1}, 400, "temperature"),
        ({"messages": [{"role": "user", "content": "word " * 3000}]}, 400, "context"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, 400, "text"),
    ]
    for body, status, words in cases:
        response = _post(server, "/v1/chat/completions", body)
        assert response.status_code == status, (body, response.text)
        message = response.json()["error"]["message"]
        assert words in message and "Traceback" not in response.text
    bad_json = httpx.post(server.url + "/v1/chat/completions", content=b"{not json",
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "Traceback" not in bad_json.text
    out_of_vocab = _post(server, "/v1/completions", {"prompt": [10**9]})
    assert out_of_vocab.status_code == 400 and "token ids" in out_of_vocab.json()["error"]["message"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_concurrent_requests_are_batched(server: ServerThread) -> None:
    policy = server.app.state.policy
    before = sum(n for size, n in policy.batch_sizes.items() if size > 1)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                                     timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json={
                "messages": HELLO, "max_tokens": 4, "seed": i}) for i in range(12)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert sum(n for size, n in policy.batch_sizes.items() if size > 1) > before


def test_token_exact_client_round_trip(server: ServerThread, tiny_model_dir: Path) -> None:
    """The client's recorded ids decode to its text, extend the previous turn's exact tokens, and re-scoring
    them in-process reproduces the served log-probs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    async def two_turns() -> tuple[Any, Any]:
        policy = OpenAIPolicy(server.url, api_key=KEY, tokenizer=tokenizer)
        try:
            [first] = await policy.act([PolicyRequest(HELLO, SamplingParams(max_tokens=6, seed=1, top_logprobs=4),
                                                      trajectory_id="ep", turn=0)])
            history = [*HELLO, {"role": "assistant", "content": first.text}, {"role": "user", "content": "More."}]
            cont = Continuation(first.prompt_ids, first.completion_ids, n_messages=2)
            [second] = await policy.act([PolicyRequest(history, SamplingParams(max_tokens=6, seed=2),
                                                       continuation=cont, trajectory_id="ep", turn=1)])
            return first, second
        finally:
            await policy.aclose()

    first, second = asyncio.run(two_turns())
    for out in (first, second):
        assert out.token_source == "sampled" and out.entropy_kind == "exact"
        assert tokenizer.decode(out.completion_ids, skip_special_tokens=True) == out.text
        assert out.logprobs == pytest.approx(_rescore(tiny_model_dir, out.prompt_ids, out.completion_ids), abs=2e-4)
    assert second.prompt_ids[:len(first.prompt_ids) + len(first.completion_ids)] == (
        first.prompt_ids + first.completion_ids)
    assert len(first.top_ids[0]) == 4 and first.top_logprobs[0] == sorted(first.top_logprobs[0], reverse=True)
    prefix = server.app.state.policy.prefix_tokens
    assert prefix["reused"] > 0  # the second turn extended the first's KV prefix (prompt_cache_key)


def test_weight_update_serves_the_new_weights(server: ServerThread, tiny_model_dir: Path,
                                              tmp_path: Path) -> None:
    new_dir = build_tiny_model(tmp_path / "v1", seed=1)
    prompt = {"prompt": [1, 9690, 198, 2683], "max_tokens": 6, "temperature": 0, "logprobs": 1,
              "return_token_ids": True}
    before = _post(server, "/v1/completions", prompt).json()["choices"][0]

    async def update() -> int:
        policy = OpenAIPolicy(server.url, api_key=KEY)
        try:
            await policy.update_weights(str(new_dir), version=1)
            return await policy.refresh_version()
        finally:
            await policy.aclose()

    try:
        assert asyncio.run(update()) == 1
        after = _post(server, "/v1/completions", prompt).json()
        choice = after["choices"][0]
        assert after["weight_version"] == "1"
        assert choice["logprobs"]["token_logprobs"] != before["logprobs"]["token_logprobs"]
        expected = _rescore(new_dir, prompt["prompt"], choice["token_ids"])
        assert choice["logprobs"]["token_logprobs"] == pytest.approx(expected, abs=2e-4)
        missing = _post(server, "/collective_rpc", {"method": "reload_weights",
                                                    "kwargs": {"weights_path": str(tmp_path / "nothing")}})
        assert missing.status_code == 400 and "safetensors" in missing.json()["error"]["message"]
    finally:  # the module's other tests expect the original weights
        asyncio.run(_restore(server, tiny_model_dir))


async def _restore(server: ServerThread, model_dir: Path) -> None:
    policy = OpenAIPolicy(server.url, api_key=KEY)
    await policy.update_weights(str(model_dir), version=0)
    await policy.aclose()


def test_pause_holds_new_requests_until_resume(server: ServerThread) -> None:
    async def scenario() -> tuple[bool, int]:
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                                     timeout=60) as client:
            assert (await client.post("/pause", params={"mode": "wait"})).status_code == 200
            pending = asyncio.create_task(client.post("/v1/chat/completions",
                                                      json={"messages": HELLO, "max_tokens": 2}))
            await asyncio.sleep(0.5)
            held = not pending.done()
            await client.post("/resume")
            return held, (await pending).status_code

    held, status = asyncio.run(scenario())
    assert held and status == 200
    assert json.loads(_post(server, "/pause", None).text)["status"] == "paused"
    _post(server, "/resume", None)


def test_each_copy_of_a_request_keeps_its_cache_hints():
    from agentenv.policies.openai_api import _copies
    from agentenv.policy import PolicyRequest, SamplingParams

    request = PolicyRequest([], SamplingParams(seed=3), prompt_ids=[1, 2], trajectory_id="c", turn=2,
                            prefix_hint="parent")
    copies = _copies(request, 3)
    assert [c.prefix_hint for c in copies] == ["parent"] * 3 and [c.turn for c in copies] == [2] * 3
    assert [c.trajectory_id for c in copies] == ["c", "c#1", "c#2"]
    assert [c.sampling.seed for c in copies] == [3, 4, 5]
