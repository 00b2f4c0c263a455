"""The replay server: recorded completions served over the OpenAI API, so the client and the collector's
server path are tested deterministically without a model."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from agentenv.collector import CollectConfig, Collector
from agentenv.policies.embedded import TransformersPolicy
from agentenv.policies.openai_api import create_openai_app
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policies.replay_server import ReplayModel
from agentenv.policies.scripted import ExpertPolicy
from agentenv.policy import SamplingParams
from agentenv.serving import ServerThread
from agentenv.store import TrajectoryStore

pytestmark = pytest.mark.integration

GUESS = "agentenv/GuessNumber-v0"


def _collect(policy: Any, out: Path, **cfg: Any) -> list[Any]:
    config = CollectConfig(GUESS, n_tasks=3, group_size=2, concurrency=4, progress="off",
                           sampling=SamplingParams(max_tokens=12, top_logprobs=2), **cfg)
    Collector(config, policy, TrajectoryStore(out)).run()
    return sorted(TrajectoryStore(out).episodes(), key=lambda t: t.trajectory_id)


@pytest.fixture(scope="module")
def recorded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Episodes of the tiny model (token-exact, with log-probs) on GuessNumber."""
    out = tmp_path_factory.mktemp("recorded")
    policy = TransformersPolicy(str(tiny_model_dir))
    try:
        _collect(policy, out)
    finally:
        asyncio.run(policy.aclose())
    return out


@pytest.mark.parametrize("token_exact", [True, False], ids=["token-ids", "chat"])
def test_collecting_against_the_replay_server_reproduces_the_episodes(recorded: Path, tiny_model_dir: Path,
                                                                     tmp_path: Path, token_exact: bool) -> None:
    original = sorted(TrajectoryStore(recorded).episodes(), key=lambda t: t.trajectory_id)
    model = ReplayModel.from_store(recorded)
    with ServerThread(create_openai_app(model)) as server:
        client = OpenAIPolicy(server.url + "/v1", tokenizer=str(tiny_model_dir) if token_exact else None)
        replayed = _collect(client, tmp_path / "again")
    assert [t.trajectory_id for t in replayed] == [t.trajectory_id for t in original]
    for old, new in zip(original, replayed, strict=True):
        assert [u.action for u in new.turns] == [u.action for u in old.turns]
        assert [u.reward for u in new.turns] == [u.reward for u in old.turns]
        for u_old, u_new in zip(old.turns, new.turns, strict=True):
            assert u_new.completion_ids == u_old.completion_ids and u_new.logprobs == u_old.logprobs
            assert u_new.top_ids == u_old.top_ids and u_new.token_source == "sampled"
        assert [p for _, p in new.full_prompts()] == [p for _, p in old.full_prompts()]


def test_tool_calls_come_back_in_the_openai_format(tmp_path: Path) -> None:
    expert_store = tmp_path / "expert"
    _collect(ExpertPolicy(), expert_store)
    episode = next(iter(TrajectoryStore(expert_store).episodes()))
    turn = episode.turns[0]
    tools = [{"type": "function", "function": {"name": "guess", "description": "guess a number", "parameters": {
        "type": "object", "properties": {"number": {"type": "integer"}}, "required": ["number"]}}}]
    model = ReplayModel.from_store(expert_store)
    with ServerThread(create_openai_app(model)) as server:
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        reply = sdk.chat.completions.create(model="replay", messages=turn.observation, tools=tools)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        [call] = choice.message.tool_calls
        assert call.type == "function" and call.function.name == "guess"
        assert call.function.arguments == '{"number": 50}' and call.id.startswith("call_")
        plain = sdk.chat.completions.create(model="replay", messages=turn.observation)
        assert plain.choices[0].message.content == turn.action
        unknown = httpx.post(server.url + "/v1/chat/completions",
                             json={"messages": [{"role": "user", "content": "never recorded"}]})
        assert unknown.status_code == 400 and "no recorded turn" in unknown.json()["error"]["message"]


def test_weight_updates_are_recorded_and_versioned(recorded: Path, tiny_model_dir: Path) -> None:
    model = ReplayModel.from_store(recorded)
    with ServerThread(create_openai_app(model)) as server:
        async def push() -> int:
            client = OpenAIPolicy(server.url)
            await client.update_weights(str(tiny_model_dir), version=3)
            version = await client.refresh_version()
            await client.aclose()
            return version

        assert asyncio.run(push()) == 3
    assert model.weight_updates == [str(tiny_model_dir.resolve())] and model.version == 3


def test_serve_policy_command_prints_where_it_listens_and_stops_cleanly(recorded: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agentenv.cli", "serve-policy", "--backend", "replay",
                             "--model", str(recorded), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("agentenv policy server (replay): http://127.0.0.1:"), line
        url = line.split()[4]
        models = httpx.get(url + "/models").json()
        assert [m["id"] for m in models["data"]] == ["replay"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_collects_from_a_served_env_with_a_served_policy(recorded: Path, tiny_model_dir: Path,
                                                            tmp_path: Path) -> None:
    """``agentenv collect http://ENV --policy http://POLICY/v1 --tokenizer T``: both sides over HTTP."""
    from agentenv.cli import main
    from agentenv.env_server import BackgroundEnvServer

    model = ReplayModel.from_store(recorded)
    with ServerThread(create_openai_app(model)) as policy_server, BackgroundEnvServer(GUESS) as env_server:
        main(["collect", env_server.url, "--policy", policy_server.url + "/v1", "--tokenizer", str(tiny_model_dir),
              "-n", "3", "-g", "2", "-k", "4", "--max-tokens", "12", "--top-logprobs", "2", "--progress", "off",
              "--out", str(tmp_path / "served")])
    original = {t.trajectory_id: t for t in TrajectoryStore(recorded).episodes()}
    served = list(TrajectoryStore(tmp_path / "served").episodes())
    assert len(served) == 6 and all(t.status == "ok" for t in served)
    for episode in served:
        assert [u.action for u in episode.turns] == [u.action for u in original[episode.trajectory_id].turns]
        assert all(u.token_source == "sampled" for u in episode.turns)
