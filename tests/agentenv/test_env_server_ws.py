"""agentenv.env_server's WebSocket transport (/sessions/ws) over real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import gymnasium as gym
import httpx
import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from agentenv.env import Env, StepResult
from agentenv.env_server import INSTANCE_HEADER, BackgroundEnvServer
from agentenv.messages import Observation, observation
from agentenv.parsing import ParsedAction
from agentenv.registry import register

register("agentenv/WsCountdown-v0", "agentenv.testing:CountdownEnv", family="test")
pytestmark = pytest.mark.integration


class ThreadReportingEnv(Env):
    """Says in its info which thread ran the step, and hands back numpy values (sanitised by the server)."""

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        return observation("go"), {"n": np.int64(3), "tags": {"b", "a"}}

    def parse_action(self, text: str) -> ParsedAction:
        return ParsedAction(text=text, command=text)

    def _step(self, action: ParsedAction) -> StepResult:
        info = {"thread": threading.current_thread().name, "x": np.float32(0.5), "obj": object()}
        return StepResult(observation("ok"), reward=0.0, info=info)


class InlineEnv(ThreadReportingEnv):
    nonblocking_steps: ClassVar[bool] = True


gym.register("test/WsThreads-v0", entry_point=ThreadReportingEnv, disable_env_checker=True)
gym.register("test/WsInline-v0", entry_point=InlineEnv, disable_env_checker=True)


def ws_url(server: BackgroundEnvServer) -> str:
    return "ws" + server.url[4:] + "/sessions/ws"


def ask(ws: ClientConnection, **message: Any) -> dict[str, Any]:
    ws.send(json.dumps(message))
    reply = json.loads(ws.recv(timeout=10))
    assert isinstance(reply, dict)
    return reply


def ask_raw(ws: ClientConnection, text: str) -> dict[str, Any]:
    ws.send(text)
    reply = json.loads(ws.recv(timeout=10))
    assert isinstance(reply, dict)
    return reply


def assert_error(reply: dict[str, Any], status: int, kind: str, *words: str) -> None:
    assert reply.get("status") == status and reply.get("type") == kind, reply
    assert isinstance(reply.get("error"), str) and "Traceback" not in reply["error"]
    assert "observation" not in reply
    for word in words:
        assert word in reply["error"], reply["error"]


def sessions_open(server: BackgroundEnvServer) -> int:
    return int(httpx.get(f"{server.url}/info").json()["sessions_open"])


def wait_for_sessions(server: BackgroundEnvServer, n: int, within: float = 2.0) -> int:
    deadline = time.monotonic() + within
    while (count := sessions_open(server)) != n and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


@pytest.fixture(scope="module")
def guess() -> Iterator[BackgroundEnvServer]:
    with BackgroundEnvServer("agentenv/GuessNumber-v0") as server:
        yield server


@pytest.fixture
def ws(guess: BackgroundEnvServer) -> Iterator[ClientConnection]:
    with connect(ws_url(guess), compression=None) as conn:
        yield conn


def test_reset_step_expert_close_answer_like_http(ws: ClientConnection, guess: BackgroundEnvServer):
    instance = guess.app.state.instance_id
    assert ws.response is not None and ws.response.headers[INSTANCE_HEADER] == instance
    created = ask(ws, op="reset", seed=3)
    assert set(created) == {"session_id", "observation", "info", "instance_id"} and created["instance_id"] == instance
    with httpx.Client(base_url=guess.url) as c:  # the same episode over HTTP
        http_created = c.post("/sessions", json={"seed": 3}).json()
        assert http_created["observation"] == created["observation"]
        http_action = c.post(f"/sessions/{http_created['session_id']}/expert").json()["action"]
        http_step = c.post(f"/sessions/{http_created['session_id']}/step", json={"action": http_action}).json()
        c.delete(f"/sessions/{http_created['session_id']}")
    expert = ask(ws, op="expert")
    assert expert == {"action": http_action, "instance_id": instance}
    stepped = ask(ws, op="step", action=expert["action"])
    assert stepped == http_step
    assert stepped["info"]["action_valid"] is True
    closed = ask(ws, op="close")
    assert closed == {"closed": True, "session_id": created["session_id"], "instance_id": instance}
    assert_error(ask(ws, op="step", action="x"), 409, "no_session", "reset")
    assert ask(ws, op="close")["closed"] is False


@pytest.mark.parametrize("text, words", [
    ("{bad json", ["not JSON"]),
    ("[1, 2]", ["JSON object"]),
    ('{"action": "x"}', ["op must be one of"]),
    ('{"op": "jump"}', ["op must be one of", "'jump'"]),
    ('{"op": "step"}', ["action must be a string"]),
    ('{"op": "step", "action": 5}', ["action must be a string"]),
    ('{"op": "step", "action": "x", "extra": 1}', ["extra fields", "extra"]),
    ('{"op": "reset", "seed": -1}', ["seed"]),
    ('{"op": "reset", "seed": "abc"}', ["seed"]),
    ('{"op": "reset", "seed": true}', ["seed"]),
    ('{"op": "reset", "options": [1]}', ["options"]),
])
def test_bad_messages_get_an_error_reply_and_the_connection_stays_usable(ws: ClientConnection, text: str,
                                                                         words: list[str]):
    ask(ws, op="reset", seed=1)
    assert_error(ask_raw(ws, text), 422, "bad_request", "bad message", *words)
    stepped = ask(ws, op="step", action="Action: 500")  # the session survived the bad message
    assert "observation" in stepped and stepped["terminated"] is False
    ws.send(b"\xff\xfe not utf-8")  # a binary frame that is not even text
    assert_error(json.loads(ws.recv(timeout=10)), 422, "bad_request", "not JSON")
    assert "observation" in ask(ws, op="step", action="Action: 501")


def test_step_before_reset_and_after_the_end_are_409s(ws: ClientConnection):
    assert_error(ask(ws, op="step", action="x"), 409, "no_session", '{"op": "reset"}')
    assert_error(ask(ws, op="expert"), 409, "no_session")
    ask(ws, op="reset", seed=0)
    for _ in range(20):
        step = ask(ws, op="step", action=ask(ws, op="expert")["action"])
        if step["terminated"] or step["truncated"]:
            break
    assert step["reward"] == 1.0
    assert_error(ask(ws, op="step", action="x"), 409, "episode_ended", "new session")
    assert ask(ws, op="reset", seed=1)["observation"]["messages"]  # the connection goes on


def test_a_reset_replaces_the_connections_session(ws: ClientConnection, guess: BackgroundEnvServer):
    before = sessions_open(guess)
    first = ask(ws, op="reset", seed=1)["session_id"]
    second = ask(ws, op="reset", seed=2)["session_id"]
    assert first != second and sessions_open(guess) == before + 1
    gone = httpx.post(f"{guess.url}/sessions/{first}/step", json={"action": "x"})
    assert gone.status_code == 410 and "reset into a new session" in gone.json()["error"]


def test_a_dropped_connection_frees_its_session_at_once(guess: BackgroundEnvServer):
    before = sessions_open(guess)
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(connect(ws_url(guess), compression=None)) for _ in range(3)]
        ids = [ask(c, op="reset", seed=i)["session_id"] for i, c in enumerate(conns)]
        assert sessions_open(guess) == before + 3
        conns[0].socket.close()  # a crashed client: no close frame
        assert wait_for_sessions(guess, before + 2) == before + 2
        conns[1].close()  # a clean close
        assert wait_for_sessions(guess, before + 1) == before + 1
        gone = httpx.post(f"{guess.url}/sessions/{ids[0]}/step", json={"action": "x"})
        assert gone.status_code == 410 and "WebSocket closed" in gone.json()["error"]
        conns[2].close()
        assert wait_for_sessions(guess, before) == before


def test_the_cap_counts_both_transports_and_refuses_with_a_clear_error():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", max_sessions=2) as server, \
            connect(ws_url(server)) as a, connect(ws_url(server)) as b:
        ask(a, op="reset", seed=0)
        http_sid = httpx.post(f"{server.url}/sessions").json()["session_id"]
        assert_error(ask(b, op="reset", seed=1), 429, "at_capacity", "maximum of 2", "close the WebSocket")
        assert httpx.post(f"{server.url}/sessions").status_code == 429
        a.close()  # frees a slot at once
        deadline = time.monotonic() + 2
        while "session_id" not in (reply := ask(b, op="reset", seed=1)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "session_id" in reply, reply
        assert sessions_open(server) == 2
        httpx.delete(f"{server.url}/sessions/{http_sid}")


def test_idle_websocket_sessions_expire():
    with BackgroundEnvServer("agentenv/GuessNumber-v0", idle_timeout_s=0.3) as server, \
            connect(ws_url(server)) as ws:
        ask(ws, op="reset", seed=0)
        time.sleep(0.8)
        assert sessions_open(server) == 0
        assert_error(ask(ws, op="step", action="Action: 1"), 410, "session_gone", "expired")
        assert "session_id" in ask(ws, op="reset", seed=0)


def test_an_env_error_closes_the_session_not_the_connection():
    with BackgroundEnvServer("agentenv/WsCountdown-v0", {"raise_at": 1}) as server, connect(ws_url(server)) as ws:
        ask(ws, op="reset", seed=1)
        reply = ask(ws, op="step", action=ask(ws, op="expert")["action"])
        assert_error(reply, 502, "env_error", "RuntimeError", "injected env failure", "session was closed")
        assert_error(ask(ws, op="step", action="x"), 410, "session_gone", "raised")
        assert sessions_open(server) == 0
        assert "session_id" in ask(ws, op="reset", seed=2)
        assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


@pytest.mark.parametrize("env_id, inline", [("test/WsThreads-v0", False), ("test/WsInline-v0", True)])
def test_only_envs_that_declare_nonblocking_steps_run_on_the_event_loop(env_id: str, inline: bool):
    with BackgroundEnvServer(env_id) as server, connect(ws_url(server)) as ws:
        created = ask(ws, op="reset")
        assert created["info"] == {"n": 3, "tags": ["a", "b"]}  # infos are made JSON-safe
        step = ask(ws, op="step", action="anything")
        assert step["info"]["x"] == 0.5 and step["info"]["obj"].startswith("<object object")
        loop_thread = server._thread.name
        assert (step["info"]["thread"] == loop_thread) is inline, (step["info"]["thread"], loop_thread)
        http_sid = httpx.post(f"{server.url}/sessions").json()["session_id"]
        http_step = httpx.post(f"{server.url}/sessions/{http_sid}/step", json={"action": "x"}).json()
        assert (http_step["info"]["thread"] == loop_thread) is inline
