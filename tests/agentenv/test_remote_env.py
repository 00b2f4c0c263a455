"""RemoteEnv against a real env server on 127.0.0.1: the same episodes as local envs, and clear failures."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentenv
from agentenv.collector import CollectConfig, Collector
from agentenv.env import ResetNeeded
from agentenv.env_server import BackgroundEnvServer
from agentenv.policy import PolicyRequest
from agentenv.registry import register
from agentenv.remote_env import RemoteEnv, RemoteEnvError
from agentenv.store import TrajectoryStore
from agentenv.testing import ScriptedPolicy

register("agentenv/RemoteCountdown-v0", "agentenv.testing:CountdownEnv", family="test")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def guess() -> Iterator[BackgroundEnvServer]:
    with BackgroundEnvServer("agentenv/GuessNumber-v0") as server:
        yield server


@pytest.fixture(scope="module")
def alfworld() -> Iterator[BackgroundEnvServer]:
    with BackgroundEnvServer("agentenv/ALFWorld-v0", {"task_type": "pick_heat_then_place_in_recep"}) as server:
        yield server


def json_roundtrip(x: Any) -> Any:
    return json.loads(json.dumps(x))


def play(env: Any, seed: int, limit: int = 40) -> list[Any]:
    """The whole episode the expert plays: reset, then every (action, obs, reward, flags, info)."""
    obs, info = env.reset(seed=seed)
    record: list[Any] = [json_roundtrip([obs, info])]
    for _ in range(limit):
        action = env.expert_action()
        obs, reward, terminated, truncated, info = env.step(action)
        record.append(json_roundtrip([action, obs, reward, terminated, truncated, info]))
        if terminated or truncated:
            break
    return record


@pytest.mark.parametrize("seed", [0, 7])
def test_a_guess_number_episode_over_http_equals_the_local_one(guess: BackgroundEnvServer, seed: int):
    local = play(agentenv.make("agentenv/GuessNumber-v0"), seed)
    with RemoteEnv(guess.url) as remote:
        assert play(remote, seed) == local
    assert local[-1][1:5][1:3] == [1.0, True]


def test_an_alfworld_episode_over_http_equals_the_local_one(alfworld: BackgroundEnvServer):
    local = play(agentenv.make("agentenv/ALFWorld-v0", task_type="pick_heat_then_place_in_recep"), 4)
    remote = RemoteEnv(alfworld.url)
    assert play(remote, 4) == local
    assert local[-1][2:4] == [1.0, True] and local[-1][5]["won"] is True
    remote.close()


async def test_the_async_twins_play_the_same_episode(guess: BackgroundEnvServer):
    local = play(agentenv.make("agentenv/GuessNumber-v0"), 11)
    remote = RemoteEnv(guess.url)
    obs, info = await remote.reset_async(seed=11)
    record: list[Any] = [json_roundtrip([obs, info])]
    while True:
        action = await remote.expert_action_async()
        obs, reward, terminated, truncated, info = await remote.step_async(action or "")
        record.append(json_roundtrip([action, obs, reward, terminated, truncated, info]))
        if terminated or truncated:
            break
    assert record == local
    with pytest.raises(ResetNeeded):
        await remote.step_async("too late")
    await remote.close_async()
    assert httpx.get(f"{guess.url}/info").json()["sessions_open"] == 0


def test_close_and_reset_free_the_server_sessions(guess: BackgroundEnvServer):
    def open_sessions() -> int:
        return int(httpx.get(f"{guess.url}/info").json()["sessions_open"])

    before = open_sessions()
    env = agentenv.make(guess.url)  # a URL is an env id: the registry makes a RemoteEnv
    assert isinstance(env, RemoteEnv)
    env.reset(seed=1)
    env.reset(seed=2)
    assert open_sessions() == before + 1
    env.close()
    env.close()
    assert open_sessions() == before


def test_misuse_is_caught_on_the_client():
    env = RemoteEnv("http://127.0.0.1:9")
    with pytest.raises(ResetNeeded):
        env.step("Action: go")
    with pytest.raises(ValueError, match="serve-env -e"):
        RemoteEnv("http://127.0.0.1:9", high=5)


def test_a_connection_failure_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(RemoteEnvError, match=rf"env server {url}: POST /sessions failed: ConnectError"):
        RemoteEnv(url, timeout_s=5).reset(seed=0)


def test_an_expired_session_is_a_remote_env_error():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", idle_timeout_s=0.2) as server:
        env = RemoteEnv(server.url)
        env.reset(seed=0)
        time.sleep(0.8)
        with pytest.raises(RemoteEnvError, match=r"no longer has session .*expired"):
            env.step("Action: 1")
        env.reset(seed=0)  # a new episode gets a new session
        env.close()


def test_the_session_cap_raises_or_waits_for_a_free_slot():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", max_sessions=1) as server:
        first = RemoteEnv(server.url)
        first.reset(seed=0)
        with pytest.raises(RemoteEnvError, match=r"session cap.*maximum of 1"):
            RemoteEnv(server.url).reset(seed=1)
        threading.Timer(0.5, first.close).start()
        patient = RemoteEnv(server.url, capacity_wait_s=10)
        obs, _ = patient.reset(seed=1)
        assert obs["messages"]
        patient.close()


def expert(request: PolicyRequest) -> str:
    return request.expert_action or ""


def test_the_collector_runs_remote_episodes_concurrently_into_a_store(guess: BackgroundEnvServer, tmp_path: Path):
    policy = ScriptedPolicy(expert, wants_expert=True)
    remote = Collector(CollectConfig(guess.url, n_tasks=8, concurrency=4, progress="off"), policy,
                       TrajectoryStore(tmp_path / "remote"))
    summary = remote.run()
    local = Collector(CollectConfig("agentenv/GuessNumber-v0", n_tasks=8, concurrency=4, progress="off"),
                      ScriptedPolicy(expert, wants_expert=True))
    local.run()
    stored = sorted(TrajectoryStore(tmp_path / "remote").episodes(), key=lambda t: t.trajectory_id)
    assert summary.wall_seconds > 0 and len(stored) == 8
    assert all(t.status == "ok" and t.reward == 1.0 and t.env_id == guess.url for t in stored)
    mine = sorted(local.trajectories, key=lambda t: t.trajectory_id)
    assert [[(u.action, u.feedback, u.reward) for u in t.turns] for t in stored] == \
        [[(u.action, u.feedback, u.reward) for u in t.turns] for t in mine]
    assert httpx.get(f"{guess.url}/info").json()["sessions_open"] == 0


def test_a_server_restart_mid_episode_is_a_failed_episode_with_the_reason(tmp_path: Path):
    server = BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 5}).start()
    port = int(server.url.rsplit(":", 1)[1])
    servers = [server]

    def restart_at_turn_two(request: PolicyRequest) -> str:
        if request.turn == 2 and len(servers) == 1:
            servers[0].stop()
            servers.append(BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 5}, port=port).start())
        return f"Action: {(request.admissible or ['0'])[0]}"

    cfg = CollectConfig(server.url, n_tasks=1, concurrency=1, progress="off", env_retries=1)
    try:
        Collector(cfg, ScriptedPolicy(restart_at_turn_two), TrajectoryStore(tmp_path / "s")).run()
    finally:
        servers[-1].stop()
    first, retry = sorted(TrajectoryStore(tmp_path / "s").episodes(), key=lambda t: t.attempt)
    assert first.status == "failed" and first.failure_cause == "env_error" and len(first.turns) == 2
    assert f"env server {server.url} restarted" in first.error and "RemoteEnvError" in first.error
    assert retry.attempt == 1 and retry.status == "ok" and retry.reward == 1.0


def test_an_env_error_on_the_server_is_recorded_with_its_message(tmp_path: Path):
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"raise_at": 2}) as server:
        cfg = CollectConfig(server.url, n_tasks=2, concurrency=2, progress="off")
        collector = Collector(cfg, ScriptedPolicy(lambda r: f"Action: {(r.admissible or ['0'])[0]}"))
        collector.run()
    assert [t.status for t in collector.trajectories] == ["failed", "failed"]
    for traj in collector.trajectories:
        assert traj.failure_cause == "env_error" and len(traj.turns) == 1
        assert "the env raised during step: RuntimeError: injected env failure" in traj.error


async def test_hundreds_of_remote_sessions_proceed_together():
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 4, "step_seconds": 0.05}) as server:
        envs = [RemoteEnv(server.url) for _ in range(200)]

        async def episode(env: RemoteEnv, seed: int) -> float:
            obs, _ = await env.reset_async(seed=seed)
            total = 0.0
            while True:
                obs, reward, terminated, truncated, _ = await env.step_async(f"Action: {obs['admissible'][0]}")
                total += reward
                if terminated or truncated:
                    await env.close_async()
                    return total

        t0 = time.monotonic()
        rewards = await asyncio.gather(*(episode(e, i) for i, e in enumerate(envs)))
        elapsed = time.monotonic() - t0
    assert rewards == [1.0] * 200
    assert elapsed < 15, f"200 episodes of 4-6 steps x 50 ms took {elapsed:.1f} s"


def test_a_client_timeout_mid_step_is_an_error_and_close_still_frees_the_session():
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"step_seconds": 0.6}) as server:
        env = RemoteEnv(server.url, timeout_s=0.2)
        obs, _ = env.reset(seed=0)
        with pytest.raises(RemoteEnvError, match=rf"{server.url}: POST /sessions/.*/step failed: ReadTimeout"):
            env.step(f"Action: {obs['admissible'][0]}")
        env.close()  # the DELETE arrives while the step still runs: the env is closed once it returns
        info = httpx.get(f"{server.url}/info").json()
        assert info["sessions_open"] == 0
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
