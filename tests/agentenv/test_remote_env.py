"""RemoteEnv against a real env server on 127.0.0.1: the same episodes as local envs, and clear failures,
over both transports (WebSocket, the default, and HTTP)."""

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


@pytest.fixture(params=["ws", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_sessions(url: str) -> int:
    return int(httpx.get(f"{url}/info").json()["sessions_open"])


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
def test_a_guess_number_remote_episode_equals_the_local_one(guess: BackgroundEnvServer, seed: int, transport: str):
    local = play(agentenv.make("agentenv/GuessNumber-v0"), seed)
    with RemoteEnv(guess.url, transport=transport) as remote:
        assert remote.transport == transport
        assert play(remote, seed) == local
    assert local[-1][1:5][1:3] == [1.0, True]


def test_an_alfworld_remote_episode_equals_the_local_one(alfworld: BackgroundEnvServer, transport: str):
    local = play(agentenv.make("agentenv/ALFWorld-v0", task_type="pick_heat_then_place_in_recep"), 4)
    remote = RemoteEnv(alfworld.url, transport=transport)
    assert play(remote, 4) == local
    assert local[-1][2:4] == [1.0, True] and local[-1][5]["won"] is True
    remote.close()


async def test_the_async_twins_play_the_same_episode(guess: BackgroundEnvServer, transport: str):
    local = play(agentenv.make("agentenv/GuessNumber-v0"), 11)
    remote = RemoteEnv(guess.url, transport=transport)
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


def test_close_and_reset_free_the_server_sessions(guess: BackgroundEnvServer, transport: str):
    before = open_sessions(guess.url)
    env = agentenv.make(guess.url, transport=transport)  # a URL is an env id: the registry makes a RemoteEnv
    assert isinstance(env, RemoteEnv) and env.transport == transport
    env.reset(seed=1)
    env.reset(seed=2)
    assert open_sessions(guess.url) == before + 1
    env.close()
    env.close()
    deadline = time.monotonic() + 2  # over a WebSocket the server learns of the close asynchronously
    while open_sessions(guess.url) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_sessions(guess.url) == before


def test_websocket_is_the_default_transport_and_a_bad_one_is_refused():
    assert RemoteEnv("http://127.0.0.1:9").transport == "ws"
    assert RemoteEnv("http://127.0.0.1:9").ws_url == "ws://127.0.0.1:9/sessions/ws"
    assert RemoteEnv("https://example.org/env/").ws_url == "wss://example.org/env/sessions/ws"
    with pytest.raises(ValueError, match="transport"):
        RemoteEnv("http://127.0.0.1:9", transport="grpc")


def test_a_client_that_dies_frees_its_session_at_once_over_websocket(guess: BackgroundEnvServer):
    before = open_sessions(guess.url)
    env = RemoteEnv(guess.url, transport="ws")
    env.reset(seed=3)
    assert open_sessions(guess.url) == before + 1
    env._ws.socket.close()  # the process dies: no close frame, no DELETE; the server's idle timeout is 600 s
    deadline = time.monotonic() + 2
    while open_sessions(guess.url) != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_sessions(guess.url) == before
    with pytest.raises(RemoteEnvError, match=rf"env server {guess.url}: WebSocket step failed: .*lost"):
        env.step("Action: 1")
    env.reset(seed=3)  # a new episode opens a new connection
    env.close()


async def test_a_session_opened_in_one_loop_is_usable_from_another_thread(guess: BackgroundEnvServer):
    """The collector's case: the env is built in a worker thread, driven from the loop; and the reverse."""
    local = play(agentenv.make("agentenv/GuessNumber-v0"), 5, limit=1)
    env = RemoteEnv(guess.url, transport="ws")
    await env.reset_async(seed=5)
    action = await asyncio.to_thread(env.expert_action)  # a sync call from another thread: run on our loop
    stepped = await asyncio.to_thread(asyncio.run, env.step_async(action or ""))  # an async call from another loop
    assert json_roundtrip([action, *stepped]) == local[1] and env.turn == 1
    with pytest.raises(RuntimeError, match="would block that loop"):  # never a deadlock
        env.step("Action: 1")
    await env.close_async()


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
        RemoteEnv(url, timeout_s=5, transport="http").reset(seed=0)
    refused = rf"env server {url}: WebSocket reset failed: cannot open .*ConnectionRefused"
    with pytest.raises(RemoteEnvError, match=refused):
        RemoteEnv(url, timeout_s=5, transport="ws").reset(seed=0)
    with pytest.raises(RemoteEnvError, match=refused):
        asyncio.run(RemoteEnv(url, timeout_s=5, transport="ws").reset_async(seed=0))


def test_an_expired_session_is_a_remote_env_error(transport: str):
    with BackgroundEnvServer("agentenv/GuessNumber-v0", idle_timeout_s=0.2) as server:
        env = RemoteEnv(server.url, transport=transport)
        env.reset(seed=0)
        time.sleep(0.8)
        with pytest.raises(RemoteEnvError, match=r"no longer has session .*expired"):
            env.step("Action: 1")
        env.reset(seed=0)  # a new episode gets a new session
        env.close()


def test_the_session_cap_raises_or_waits_for_a_free_slot(transport: str):
    with BackgroundEnvServer("agentenv/GuessNumber-v0", max_sessions=1) as server:
        first = RemoteEnv(server.url, transport=transport)
        first.reset(seed=0)
        with pytest.raises(RemoteEnvError, match=r"session cap.*maximum of 1"):
            RemoteEnv(server.url, transport=transport).reset(seed=1)
        threading.Timer(0.5, first.close).start()
        patient = RemoteEnv(server.url, capacity_wait_s=10, transport=transport)
        obs, _ = patient.reset(seed=1)
        assert obs["messages"]
        patient.close()


def expert(request: PolicyRequest) -> str:
    return request.expert_action or ""


def test_the_collector_runs_remote_episodes_concurrently_into_a_store(guess: BackgroundEnvServer, tmp_path: Path,
                                                                       transport: str):
    policy = ScriptedPolicy(expert, wants_expert=True)
    cfg = CollectConfig(guess.url, n_tasks=8, concurrency=4, progress="off", env_kwargs={"transport": transport})
    remote = Collector(cfg, policy, TrajectoryStore(tmp_path / "remote"))
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
    deadline = time.monotonic() + 2
    while open_sessions(guess.url) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_sessions(guess.url) == 0


def test_a_server_restart_mid_episode_is_a_failed_episode_with_the_reason(tmp_path: Path, transport: str):
    server = BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 5}).start()
    port = int(server.url.rsplit(":", 1)[1])
    servers = [server]

    def restart_at_turn_two(request: PolicyRequest) -> str:
        if request.turn == 2 and len(servers) == 1:
            servers[0].stop()
            servers.append(BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 5}, port=port).start())
        return f"Action: {(request.admissible or ['0'])[0]}"

    cfg = CollectConfig(server.url, n_tasks=1, concurrency=1, progress="off", env_retries=1,
                        env_kwargs={"transport": transport})
    try:
        Collector(cfg, ScriptedPolicy(restart_at_turn_two), TrajectoryStore(tmp_path / "s")).run()
    finally:
        servers[-1].stop()
    first, retry = sorted(TrajectoryStore(tmp_path / "s").episodes(), key=lambda t: t.attempt)
    assert first.status == "failed" and first.failure_cause == "env_error" and len(first.turns) == 2
    assert "RemoteEnvError" in first.error
    if transport == "http":  # the new server's instance id differs
        assert f"env server {server.url} restarted" in first.error
    else:  # the WebSocket, and the session on it, went down with the old server
        assert f"env server {server.url}: WebSocket step failed: the WebSocket connection was lost" in first.error
        assert "episode are lost" in first.error
    assert retry.attempt == 1 and retry.status == "ok" and retry.reward == 1.0


def test_an_env_error_on_the_server_is_recorded_with_its_message(tmp_path: Path, transport: str):
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"raise_at": 2}) as server:
        cfg = CollectConfig(server.url, n_tasks=2, concurrency=2, progress="off", env_kwargs={"transport": transport})
        collector = Collector(cfg, ScriptedPolicy(lambda r: f"Action: {(r.admissible or ['0'])[0]}"))
        collector.run()
    assert [t.status for t in collector.trajectories] == ["failed", "failed"]
    for traj in collector.trajectories:
        assert traj.failure_cause == "env_error" and len(traj.turns) == 1
        assert "the env raised during step: RuntimeError: injected env failure" in traj.error


async def test_hundreds_of_remote_sessions_proceed_together(transport: str):
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"start": 4, "step_seconds": 0.05}) as server:
        envs = [RemoteEnv(server.url, transport=transport) for _ in range(200)]

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


def test_a_client_timeout_mid_step_is_an_error_and_close_still_frees_the_session(transport: str):
    """Over HTTP the step is sent once more with the same key (0.2 s after the first), and that re-send must
    time out too: the step lasts long enough (2 s) that even a slow machine cannot see it finish in time."""
    with BackgroundEnvServer("agentenv/RemoteCountdown-v0", {"step_seconds": 2.0}) as server:
        env = RemoteEnv(server.url, timeout_s=0.2, transport=transport)
        obs, _ = env.reset(seed=0)
        failure = "POST /sessions/.*/step failed: ReadTimeout" if transport == "http" else \
            "WebSocket step failed: TimeoutError: no answer within 0.2 s"
        with pytest.raises(RemoteEnvError, match=rf"{server.url}: {failure}"):
            env.step(f"Action: {obs['admissible'][0]}")
        env.close()  # the DELETE (or the closed WebSocket) arrives while the step still runs
        deadline = time.monotonic() + 5
        while open_sessions(server.url) and time.monotonic() < deadline:
            time.sleep(0.01)
        info = httpx.get(f"{server.url}/info").json()
        assert info["sessions_open"] == 0
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
