"""agentenv.env_server over real HTTP on 127.0.0.1: sessions, limits, errors, schema, the serve-env CLI."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import pytest

from agentenv.env import Env, StepResult
from agentenv.env_server import INSTANCE_HEADER, BackgroundEnvServer, to_jsonable
from agentenv.messages import Observation, observation
from agentenv.parsing import ParsedAction
from agentenv.registry import register

REPO = Path(__file__).resolve().parents[2]
register("agentenv/ServerCountdown-v0", "agentenv.testing:CountdownEnv", family="test")


class WeirdInfoEnv(Env):
    """Infos full of values JSON cannot hold as they are."""

    def __init__(self, api_key: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.api_key = api_key

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        return observation("go"), {"n": np.int64(3), "tags": {"b", "a"}, "blob": b"\xff\x00ok"}

    def _step(self, action: ParsedAction) -> StepResult:
        info = {"x": np.float32(0.5), "arr": np.arange(3), "nan": math.nan, "obj": object(), 7: (1, 2)}
        return StepResult(observation("done"), reward=1.0, terminated=True, info=info)


gym.register("test/ServerWeird-v0", entry_point=WeirdInfoEnv, disable_env_checker=True)


@pytest.fixture(scope="module")
def guess() -> Iterator[BackgroundEnvServer]:
    with BackgroundEnvServer("agentenv/GuessNumber-v0") as server:
        yield server


@pytest.fixture
def client(guess: BackgroundEnvServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guess.url, timeout=10) as c:
        yield c


def assert_clean_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    for word in words:
        assert word in body["error"], body["error"]
    return body


pytestmark = pytest.mark.integration


def test_a_session_is_one_episode_with_json_observations(client: httpx.Client):
    created = client.post("/sessions", json={"seed": 3})
    assert created.status_code == 200
    body = created.json()
    assert body["observation"]["messages"][0]["role"] == "system" and body["observation"]["tools"]
    assert body["instance_id"] == created.headers[INSTANCE_HEADER]
    sid = body["session_id"]
    assert len(sid) >= 16
    action = client.post(f"/sessions/{sid}/expert").json()["action"]
    stepped = client.post(f"/sessions/{sid}/step", json={"action": action}).json()
    assert set(stepped) >= {"observation", "reward", "terminated", "truncated", "info"}
    assert stepped["info"]["action_valid"] is True
    assert client.delete(f"/sessions/{sid}").json()["closed"] is True
    assert_clean_error(client.post(f"/sessions/{sid}/step", json={"action": action}), 410, "closed")


def test_health_info_and_the_instance_id_on_every_response(client: httpx.Client, guess: BackgroundEnvServer):
    health = client.get("/health")
    info = client.get("/info").json()
    assert health.json()["status"] == "ok"
    assert info["env_id"] == "agentenv/GuessNumber-v0" and info["family"] == "puzzle"
    assert info["max_sessions"] == 1024 and "TextAction" in info["action_space"]
    ids = {health.headers[INSTANCE_HEADER], info["instance_id"], client.get("/nope").headers[INSTANCE_HEADER]}
    assert ids == {guess.app.state.instance_id}


def test_openapi_lists_the_endpoints_and_models(client: httpx.Client):
    schema = client.get("/openapi.json").json()
    assert {"/sessions", "/sessions/{session_id}/step", "/sessions/{session_id}", "/health", "/info"} <= set(
        schema["paths"])
    assert "delete" in schema["paths"]["/sessions/{session_id}"]
    assert {"StepRequest", "StepResponse", "ResetRequest", "ResetResponse", "ErrorResponse"} <= set(
        schema["components"]["schemas"])


def test_an_unknown_session_is_a_404_with_a_message(client: httpx.Client):
    assert_clean_error(client.post("/sessions/nope/step", json={"action": "x"}), 404, "unknown session")
    assert_clean_error(client.delete("/sessions/nope"), 404, "unknown session")


@pytest.mark.parametrize("content, what", [
    (b"{bad json", "json"),
    (b"{}", "action"),
    (b'{"action": 5}', "action"),
    (b'{"action": "x", "extra": 1}', "extra"),
    (b"[1, 2]", "body"),
])
def test_malformed_requests_are_4xx_with_a_message(client: httpx.Client, content: bytes, what: str):
    sid = client.post("/sessions").json()["session_id"]
    response = client.post(f"/sessions/{sid}/step", content=content, headers={"content-type": "application/json"})
    body = assert_clean_error(response, 422)
    assert what in body["error"].lower()
    assert_clean_error(client.post("/sessions", json={"seed": -1}), 422, "seed")
    assert_clean_error(client.post("/sessions", json={"seed": "abc"}), 422, "seed")
    # the session survives a bad request
    assert client.post(f"/sessions/{sid}/step", json={"action": "x"}).status_code == 200
    client.delete(f"/sessions/{sid}")


def test_an_oversized_body_is_refused_before_it_is_read(client: httpx.Client):
    response = client.post("/sessions/x/step", content=b"x" * (17 * 1024 * 1024),
                           headers={"content-type": "application/json"})
    assert_clean_error(response, 413, "bytes")


def test_stepping_an_ended_episode_is_a_409(client: httpx.Client):
    sid = client.post("/sessions", json={"seed": 0}).json()["session_id"]
    for _ in range(20):
        action = client.post(f"/sessions/{sid}/expert").json()["action"]
        step = client.post(f"/sessions/{sid}/step", json={"action": action}).json()
        if step["terminated"] or step["truncated"]:
            break
    assert_clean_error(client.post(f"/sessions/{sid}/step", json={"action": "x"}), 409, "new session")


def test_the_session_cap_answers_429_with_retry_after():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", max_sessions=2) as server, \
            httpx.Client(base_url=server.url) as c:
        first, second = (c.post("/sessions").json()["session_id"] for _ in range(2))
        refused = c.post("/sessions")
        assert_clean_error(refused, 429, "maximum of 2")
        assert float(refused.headers["retry-after"]) > 0
        c.delete(f"/sessions/{first}")
        assert c.post("/sessions").status_code == 200
        assert c.get("/info").json()["sessions_open"] == 2
        del second


def test_idle_sessions_expire_and_their_ids_say_so():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", idle_timeout_s=0.3) as server, \
            httpx.Client(base_url=server.url) as c:
        idle = c.post("/sessions").json()["session_id"]
        busy = c.post("/sessions").json()["session_id"]
        for _ in range(6):  # a session in use does not expire
            time.sleep(0.1)
            assert c.post(f"/sessions/{busy}/expert").status_code == 200
        assert_clean_error(c.post(f"/sessions/{idle}/step", json={"action": "x"}), 410, "expired")
        time.sleep(0.8)
        assert c.get("/info").json()["sessions_open"] == 0


def test_an_env_that_raises_gets_an_error_json_and_the_server_stays_healthy():
    with BackgroundEnvServer("agentenv/ServerCountdown-v0", {"raise_at": 1}) as server, \
            httpx.Client(base_url=server.url) as c:
        sid = c.post("/sessions", json={"seed": 1}).json()["session_id"]
        action = c.post(f"/sessions/{sid}/expert").json()["action"]
        body = assert_clean_error(c.post(f"/sessions/{sid}/step", json={"action": action}), 502,
                                  "RuntimeError", "injected env failure")
        assert body["type"] == "env_error"
        assert_clean_error(c.post(f"/sessions/{sid}/step", json={"action": "x"}), 410, "raised")
        assert c.get("/health").json()["status"] == "ok"
        assert c.post("/sessions").status_code == 200
        assert c.get("/info").json()["sessions_open"] == 1


def test_non_json_values_in_infos_are_converted_not_a_500_and_credentials_are_not_shown():
    with BackgroundEnvServer("test/ServerWeird-v0", {"api_key": "sk-canary"}) as server, \
            httpx.Client(base_url=server.url) as c:
        assert c.get("/info").json()["env_kwargs"] == {"api_key": "***"}
        created = c.post("/sessions")
        assert created.status_code == 200, created.text
        assert created.json()["info"] == {"n": 3, "tags": ["a", "b"], "blob": "\ufffd\x00ok"}
        step = c.post(f"/sessions/{created.json()['session_id']}/step", json={"action": "anything"})
        assert step.status_code == 200, step.text
        info = step.json()["info"]
        assert info["x"] == 0.5 and info["arr"] == [0, 1, 2] and info["nan"] == "nan" and info["7"] == [1, 2]
        assert info["obj"].startswith("<object object")


def test_to_jsonable_bounds_depth_and_keeps_plain_values():
    deep: list[Any] = []
    node = deep
    for _ in range(100):
        node.append([])
        node = node[0]
    assert isinstance(to_jsonable({"d": deep})["d"], list)
    assert to_jsonable({"a": [1, "b", None, True, 2.5]}) == {"a": [1, "b", None, True, 2.5]}
    assert to_jsonable(math.inf) == "inf"


async def test_concurrent_calls_on_one_session_get_409_and_sessions_run_in_parallel():
    with BackgroundEnvServer("agentenv/ServerCountdown-v0", {"step_seconds": 0.25, "start": 50}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def slow_step(sid: str) -> httpx.Response:  # a valid action: the env sleeps 0.25 s
                action = (await c.post(f"/sessions/{sid}/expert")).json()["action"]
                return await c.post(f"/sessions/{sid}/step", json={"action": action})

            sid = (await c.post("/sessions")).json()["session_id"]
            action = (await c.post(f"/sessions/{sid}/expert")).json()["action"]
            a, b = await asyncio.gather(*(c.post(f"/sessions/{sid}/step", json={"action": action}) for _ in range(2)))
            assert sorted([a.status_code, b.status_code]) == [200, 409]
            assert_clean_error(a if a.status_code == 409 else b, 409, "one request at a time")
            sids = [(await c.post("/sessions")).json()["session_id"] for _ in range(24)]
            t0 = time.monotonic()
            steps = await asyncio.gather(*(slow_step(s) for s in sids))
            elapsed = time.monotonic() - t0
        assert all(r.status_code == 200 and r.json()["info"]["action_valid"] for r in steps)
        assert elapsed < 24 * 0.25 / 4, f"24 slow steps took {elapsed:.2f} s: env calls are serialised"


def test_serve_env_cli_prints_the_ready_line_and_serves():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agentenv.cli", "serve-env", "GuessNumber-v0", "--port", "0",
                             "-e", "high=50", "--max-sessions", "7"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("agentenv env server: http://127.0.0.1:"), line
        assert line.endswith("(env agentenv/GuessNumber-v0)")
        url = line.split()[3]
        assert not url.endswith(":0")
        info = httpx.get(f"{url}/info", timeout=10).json()
        assert info["max_sessions"] == 7 and info["env_kwargs"] == {"high": 50}
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)
