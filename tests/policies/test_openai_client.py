"""The OpenAI-compatible policy client: retries, timeouts, concurrency, token ids, entropy from top-k."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agentenv.policies.openai_client import OpenAIPolicy, topk_entropy
from agentenv.policy import PolicyError, PolicyRequest, PolicyUnavailable, PromptError, SamplingParams
from agentenv.serving import ServerThread
from agentenv.testing import FlakyProxy

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "hi"}]


def _answer(text: str = "ok", ids: bool = True) -> dict[str, Any]:
    top = [{"token": "token_id:7", "logprob": -0.5}, {"token": "token_id:8", "logprob": -1.5}]
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                              "logprobs": {"content": [{"token": "token_id:7", "logprob": -0.5, "top_logprobs": top}]}}
    if ids:
        choice["token_ids"] = [7]
    else:
        choice["logprobs"] = None
    body: dict[str, Any] = {"choices": [choice]}
    if ids:
        body["prompt_token_ids"] = [1, 2, 3]
    return body


class Scripted:
    """A stub OpenAI server whose answers are scripted per call: an int is an HTTP status to fail with."""

    def __init__(self, script: list[Any], delay: float = 0.0):
        self.script, self.delay, self.calls = script, delay, 0
        self.in_flight = self.max_in_flight = 0
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            step = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if isinstance(step, int):
                headers = {"Retry-After": "0.05"} if step == 429 else {}
                return JSONResponse({"error": {"message": f"scripted {step}"}}, status_code=step, headers=headers)
            return step


def _act(policy: OpenAIPolicy, n: int = 1, **sampling: Any) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await policy.act([PolicyRequest(HELLO, SamplingParams(**sampling)) for _ in range(n)])
        finally:
            await policy.aclose()

    return asyncio.run(go())


def test_retries_429_and_5xx_with_backoff_then_succeeds() -> None:
    stub = Scripted([429, 503, 500, _answer("fine")])
    with ServerThread(stub.app) as server:
        policy = OpenAIPolicy(server.url, model="m", backoff_s=0.01)
        [out] = _act(policy)
    assert out.text == "fine" and out.completion_ids == [7] and out.prompt_ids == [1, 2, 3]
    assert stub.calls == 4 and policy.stats["retries"] == 3 and policy.stats["failed"] == 0


def test_client_errors_are_not_retried_and_persistent_failures_give_up() -> None:
    stub = Scripted([400])
    with ServerThread(stub.app) as server:
        policy = OpenAIPolicy(server.url, model="m", backoff_s=0.01)
        with pytest.raises(PromptError, match="HTTP 400: scripted 400"):
            _act(policy)
        assert stub.calls == 1 and policy.stats["retries"] == 0
        stub.script, stub.calls = [502], 0
        stubborn = OpenAIPolicy(server.url, model="m", backoff_s=0.001, max_retries=3)
        with pytest.raises(PolicyUnavailable, match="after 4 attempts; last: HTTP 502"):
            _act(stubborn)
        assert stub.calls == 4


def test_retries_connections_that_the_server_drops() -> None:
    stub = Scripted([_answer("through")])
    with ServerThread(stub.app) as server, FlakyProxy(server.port, drop=2) as proxy:
        policy = OpenAIPolicy(proxy.url, model="m", backoff_s=0.01)
        [out] = _act(policy)
        assert out.text == "through"
        assert proxy.connections >= 3 and policy.stats["retries"] == 2
    with ServerThread(stub.app) as server:
        gone = server.url
    refused = OpenAIPolicy(gone, model="m", backoff_s=0.001, max_retries=2)
    with pytest.raises(PolicyUnavailable, match="connection error"):
        _act(refused)


def test_timeout_and_concurrency_limit() -> None:
    slow = Scripted([_answer()], delay=2.0)
    with ServerThread(slow.app) as server:
        hasty = OpenAIPolicy(server.url, model="m", timeout_s=0.3, max_retries=0)
        with pytest.raises(PolicyUnavailable, match=r"no answer within 0\.3 s"):
            _act(hasty)
    paced = Scripted([_answer()], delay=0.05)
    with ServerThread(paced.app) as server:
        outs = _act(OpenAIPolicy(server.url, model="m", concurrency=3), n=10)
    assert len(outs) == 10 and paced.max_in_flight == 3


def test_a_server_that_trickles_bytes_hits_the_total_deadline() -> None:
    async def scenario() -> float:
        async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(100):  # one byte every 0.1 s: each read is quick, the answer never ends
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.1)

        server = await asyncio.start_server(slowloris, "127.0.0.1", 0)
        policy = OpenAIPolicy(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", model="m",
                              timeout_s=0.5, max_retries=0)
        started = time.monotonic()
        with pytest.raises(PolicyUnavailable, match="no answer within"):
            await policy.act([PolicyRequest(HELLO)])
        await policy.aclose()
        server.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0


def test_a_server_without_token_ids_is_flagged_not_silent(tiny_model_dir: Any) -> None:
    stub = Scripted([_answer("plain text", ids=False)])
    with ServerThread(stub.app) as server:
        with pytest.warns(RuntimeWarning, match="no token ids"):
            [out] = _act(OpenAIPolicy(server.url, model="m"))
        assert out.token_source == "missing" and out.completion_ids is None


def test_topk_entropy_is_exact_with_all_mass_and_a_lower_bound_otherwise() -> None:
    probs = [0.5, 0.25, 0.125, 0.125]
    exact = -sum(p * math.log(p) for p in probs)
    assert topk_entropy([math.log(p) for p in probs]) == pytest.approx(exact)
    for k in (1, 2, 3):
        bound = topk_entropy([math.log(p) for p in probs[:k]])
        assert 0 < bound <= exact + 1e-12
    assert topk_entropy([]) == 0.0


def test_teacher_actions_in_the_served_models_tokens(tiny_model_dir) -> None:
    from agentenv.policies.embedded import TransformersPolicy

    local = TransformersPolicy(str(tiny_model_dir))
    client = OpenAIPolicy("http://127.0.0.1:9/v1", tokenizer=str(tiny_model_dir))
    request = PolicyRequest([{"role": "user", "content": "Where to?"}], SamplingParams())
    assert client.label_tokens("Action: go east") == local.label_tokens("Action: go east")
    ours, theirs = client.tokenize_action(request, "go east"), local.tokenize_action(request, "go east")
    assert (ours.prompt_ids, ours.completion_ids, ours.token_source) == (theirs.prompt_ids, theirs.completion_ids,
                                                                         "teacher")
    with pytest.raises(PolicyError, match="tokenizer"):
        OpenAIPolicy("http://127.0.0.1:9/v1").label_tokens("go east")
