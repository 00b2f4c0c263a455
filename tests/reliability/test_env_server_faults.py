"""Reliability §4 rows F01, F09, F18 and L09: an env server killed, duplicated, partitioned, paused and fuzzed.

The servers that are killed or paused run in processes of their own, forked from a forkserver that has
agentenv's server modules imported already (``python -m agentenv.cli serve-env`` pays ~5 s of imports per
start on a loaded CI machine; a fork of the preloaded server is ready in a fraction of that, and runs the
same ``serve_env`` the CLI calls). Every test ends with the work ledger checked and, where it starts
processes, the resource census back to its baseline.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agentenv.census import Census, CensusDiff, open_fds, rss_bytes
from agentenv.collector import CollectConfig, Collector
from agentenv.env_server import MAX_BODY_BYTES, BackgroundEnvServer, serve_env
from agentenv.ledger import check_ledger
from agentenv.policy import PolicyRequest
from agentenv.remote_env import RemoteEnv, _sync_connect_flags
from agentenv.store import TrajectoryStore
from agentenv.testing import ScriptedPolicy
from agentenv.testing.tcp_faults import TcpFaultProxy
from agentenv.trajectory import Trajectory

pytestmark = pytest.mark.integration

COUNTDOWN = "agentenv-testing/Countdown-v0"
SLOTS = ["t000000-s000", "t000001-s000"]
_FORKSERVER = multiprocessing.get_context("forkserver")


# ----- an env server in a process of its own -----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``serve_env`` in a forked process on a fixed port, so that it can be killed and started again there."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, **serve: Any):
        self.env_id, self.env_kwargs, self.serve = env_id, dict(env_kwargs or {}), serve
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Any = None
        self.starts = 0

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def start(self, within: float = 60.0) -> ServerProcess:
        if self.process is not None and not self.process.is_alive():
            self.process.close()  # a killed one: its sentinel fd goes now, not at garbage collection
        self.process = _FORKSERVER.Process(target=serve_env, args=(self.env_id, self.env_kwargs), daemon=True,
                                           kwargs={"port": self.port, **self.serve}, name="agentenv-test-env-server")
        self.process.start()
        self.starts += 1
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.process.is_alive():
                raise RuntimeError(f"the env server exited with {self.process.exitcode} before it answered")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the env server on {self.url} did not answer /health within {within} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.process.join(10)
            assert not self.process.is_alive()

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            os.kill(self.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self.kill(signal.SIGTERM)
        if self.process is not None:
            self.process.close()
            self.process = None

    def info(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/info", timeout=5).json())


@pytest.fixture(scope="module", autouse=True)
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Before any test takes its census baseline: start the forkserver (the server's modules preloaded), and
    run one collection into a store (the first one in a process opens a pipe pair that lives as long as the
    process, which is no leak of the test that happens to come first)."""
    _FORKSERVER.set_forkserver_preload(["agentenv.env_server", "agentenv.testing", "agentenv.census"])
    warm = _FORKSERVER.Process(target=time.sleep, args=(0,))
    warm.start()
    warm.join(120)
    warm.close()
    with BackgroundEnvServer(COUNTDOWN) as server:
        collect(server.url, tmp_path_factory.mktemp("warm"), countdown_action, {"transport": "http"}, n_tasks=1)


def census(pid: int | None = None) -> Census:
    """The census of this process (or ``pid``), without temp paths or containers (see `assert_no_leaks_here`)."""
    return Census.take(containers=False, temp_prefixes=(), pid=pid)


def assert_no_leaks_here(before: Census, settle_s: float = 5.0) -> CensusDiff:
    """`agentenv.census.assert_no_leaks` for what an env server and its clients can leak: processes (the
    server's tree) and file descriptors. Mounts and temp paths are machine-wide: neither side makes any, while
    other tests on a shared machine (containers, browsers) make them at any moment: no leak of these tests."""
    deadline = time.monotonic() + settle_s
    while True:
        diff = before.diff(Census.take_with(before.options))
        if not (diff.processes or diff.orphans or diff.fds):
            return diff
        if time.monotonic() >= deadline:
            raise AssertionError(str(diff))
        time.sleep(0.05)


def countdown_action(request: PolicyRequest) -> str:
    return f"Action: {(request.admissible or ['0'])[0]}"


def collect(url: str, store_dir: Path, respond: Callable[[PolicyRequest], str], env_kwargs: dict[str, Any],
            n_tasks: int = 2, env_retries: int = 1) -> list[Trajectory]:
    cfg = CollectConfig(url, n_tasks=n_tasks, concurrency=1, env_retries=env_retries, env_timeout=120,
                        progress="off", env_kwargs=env_kwargs)
    Collector(cfg, ScriptedPolicy(respond), TrajectoryStore(store_dir)).run()
    return sorted(TrajectoryStore(store_dir).episodes(), key=lambda t: t.trajectory_id)


def counts_down_by_one(traj: Trajectory) -> bool:
    """A Countdown episode's feedback goes ``Now n``, ``Now n-1``, ... ``Done!``: a step applied twice skips one."""
    texts = [" ".join(str(m.get("content", "")) for m in t.feedback) for t in traj.turns]
    shown = [int(text.rsplit(" ", 1)[-1].rstrip(".")) for text in texts if text.startswith("Now ")]
    return all(b == a - 1 for a, b in itertools.pairwise(shown)) and \
        all(t.action_valid for t in traj.turns)


def assert_ledger(store_dir: Path, finals: set[str]) -> dict[str, str]:
    report = check_ledger(store_dir, expected_slots=SLOTS)
    assert report.ok, str(report)
    assert set(report.final.values()) <= finals, report.final
    return report.final


# ----- F01 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_f01_env_server_sigkill_mid_step_and_between_steps_fails_infra_then_reruns(
        transport: str, tmp_path: Path, reliability: Any, forkserver: None) -> None:
    """Task 0's server is SIGKILLed while its second step runs, task 1's while the policy thinks; each time
    the test starts it again on the same port. The client fails typed at once (well under the heartbeat),
    the attempt is ``failed_infra`` and its retry, on a fresh session of the new server, completes."""
    reliability.backend = transport
    before = census()
    server = ServerProcess(COUNTDOWN, {"start": 3, "step_seconds": 0.4}).start()
    kills: dict[str, float] = {}
    helpers: list[threading.Thread] = []

    def kill_then_restart(tid: str) -> None:
        kills[tid] = time.time()
        server.kill()
        server.start()

    def respond(request: PolicyRequest) -> str:
        tid = request.trajectory_id
        if request.turn == 1 and tid == SLOTS[0] and tid not in kills:  # mid-step: 0.15 s into a 0.4 s step
            helpers.append(threading.Timer(0.15, kill_then_restart, args=(tid,)))
        elif request.turn == 1 and tid == SLOTS[1] and tid not in kills:  # between steps: dead before the step
            kills[tid] = time.time()
            server.kill()
            helpers.append(threading.Thread(target=server.start))
        else:
            return countdown_action(request)
        helpers[-1].start()
        return countdown_action(request)

    heartbeat_s = 1.0
    try:
        stored = collect(server.url, tmp_path / "store", respond,
                         {"transport": transport, "timeout_s": 30, "connect_wait_s": 60,
                          "ping_interval_s": heartbeat_s, "ping_timeout_s": heartbeat_s})
    finally:
        for helper in helpers:
            helper.join(60)
        server.stop()
    assert [t.trajectory_id for t in stored] == [SLOTS[0], f"{SLOTS[0]}-a1", SLOTS[1], f"{SLOTS[1]}-a1"]
    detect: list[float] = []
    for traj in stored:
        if traj.attempt == 0:
            assert traj.status == "failed" and traj.failure_cause == "env_error", traj.error
            assert "RemoteEnvError" in (traj.error or "") or "EnvServerUnreachable" in (traj.error or ""), traj.error
            assert len(traj.turns) == 1
            assert traj.finished_at is not None
            detect.append(traj.finished_at - kills[traj.trajectory_id])
        else:
            assert traj.status == "ok" and traj.reward == 1.0 and counts_down_by_one(traj)
    assert max(detect) < heartbeat_s, f"the kill was noticed after {max(detect):.2f} s"
    assert assert_ledger(tmp_path / "store", {"completed"}) == dict.fromkeys(SLOTS, "completed")
    assert server.starts == 3
    diff = assert_no_leaks_here(before)
    reliability.measure(kills=len(kills), detect_max_s=round(max(detect), 3), retries=2, rows=len(stored),
                        duplicate_rows=0, leaks=0, rss_delta_mib=round(diff.rss_delta_bytes / 2**20, 1))


# ----- F09 ---------------------------------------------------------------------------------------------
def test_f09_duplicate_delivery_http_lost_or_late_answers_are_resent_and_applied_once(
        tmp_path: Path, reliability: Any) -> None:
    """Over HTTP, task 0's second answer is lost on the way back (the proxy resets the connection after the
    server stepped), and every episode's third step outlasts the client's timeout: each time the client sends
    the step again with the same key and gets the one application's answer."""
    reliability.backend = "http"
    before = census()
    env_kwargs = {"start": 3, "hang_at": 3, "hang_seconds": 0.8}  # the env's turn counts from 1
    with BackgroundEnvServer(COUNTDOWN, env_kwargs) as server, TcpFaultProxy(server.port) as proxy:
        sessions = server.app.state.sessions

        def respond(request: PolicyRequest) -> str:
            if request.trajectory_id == SLOTS[0] and request.turn == 1:
                proxy.lose_replies(1)
            return countdown_action(request)

        started = time.monotonic()
        stored = collect(proxy.url, tmp_path / "store", respond, {"transport": "http", "timeout_s": 0.5})
        elapsed = time.monotonic() - started
        applied, replayed = sessions.steps_applied, sessions.steps_replayed
    assert proxy.lost_replies == 1
    # one row per slot: no failed attempt, no duplicate
    assert [t.trajectory_id for t in stored] == SLOTS, [(t.trajectory_id, t.error) for t in stored]
    assert all(t.status == "ok" and t.reward == 1.0 and counts_down_by_one(t) for t in stored)
    assert applied == sum(len(t.turns) for t in stored), "a step was applied twice (or lost)"
    assert replayed == 3  # the lost answer, and the two late ones
    assert assert_ledger(tmp_path / "store", {"completed"}) == dict.fromkeys(SLOTS, "completed")
    assert_no_leaks_here(before)
    reliability.measure(resent_steps=replayed, applied_steps=applied, rows=len(stored), duplicate_rows=0,
                        wall_s=round(elapsed, 2), leaks=0)


def ws_ask(ws: ClientConnection, **message: Any) -> dict[str, Any]:
    ws.send(json.dumps(message))
    reply = json.loads(ws.recv(timeout=10))
    assert isinstance(reply, dict)
    return reply


def test_f09_duplicate_delivery_ws_a_repeated_key_is_answered_from_memory_and_late_replies_dropped(
        reliability: Any) -> None:
    """Over a WebSocket: a step sent twice with one key is applied once (the repeat gets the same answer), an
    older key is a 409 ``stale_step``, one that skips ahead a 409; and RemoteEnv drops a reply that answers an
    older request instead of taking it for the current step's."""
    reliability.backend = "ws"
    with BackgroundEnvServer(COUNTDOWN, {"start": 5}) as server:
        sessions = server.app.state.sessions
        with connect("ws" + server.url[4:] + "/sessions/ws", compression=None) as ws:
            obs = ws_ask(ws, op="reset", seed=0, id="r")["observation"]
            first = ws_ask(ws, op="step", action=f"Action: {obs['admissible'][0]}", seq=1, id=1)
            again = ws_ask(ws, op="step", action="Action: anything", seq=1, id=2)
            assert (first.pop("id"), again.pop("id")) == (1, 2)
            assert again == first and first["seq"] == 1
            assert (sessions.steps_applied, sessions.steps_replayed) == (1, 1)
            ws_ask(ws, op="step", action=f"Action: {first['observation']['admissible'][0]}", seq=2)
            stale = ws_ask(ws, op="step", action="Action: 1", seq=1, id=3)
            assert (stale["status"], stale["type"], stale["id"]) == (409, "stale_step", 3)
            ahead = ws_ask(ws, op="step", action="Action: 1", seq=9)
            assert (ahead["status"], ahead["type"]) == (409, "step_out_of_order")
            assert sessions.steps_applied == 2

        env = RemoteEnv(server.url, transport="ws")
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(f"Action: {obs['admissible'][0]}")
        shown = int(obs["admissible"][0]) + 1
        env._ws.send(json.dumps({"op": "step", "action": "Action: x", "seq": 1, "id": 999}))  # a duplicate in flight
        obs, _, _, _, info = env.step(f"Action: {obs['admissible'][0]}")
        assert env.stale_replies == 1 and info["action_valid"] is True
        assert obs["messages"][0]["content"] == f"Now {shown - 1}."  # one step on, not two
        env.close()
        applied, replayed = sessions.steps_applied, sessions.steps_replayed
    assert (applied, replayed) == (4, 2)
    reliability.measure(applied_steps=applied, replayed_steps=replayed, stale_replies_dropped=1)


def test_f09_duplicate_delivery_ws_lost_answer_fails_the_attempt_and_its_rerun_is_the_one_row(
        tmp_path: Path, reliability: Any) -> None:
    """Over a WebSocket the session lives on the connection, so a lost answer (the connection reset) cannot
    be asked for again: the attempt is ``failed_infra`` and re-run on a fresh session. The lost step was
    applied once, on the session that died with its connection."""
    reliability.backend = "ws"
    with BackgroundEnvServer(COUNTDOWN, {"start": 3}) as server, TcpFaultProxy(server.port) as proxy:
        sessions = server.app.state.sessions

        def respond(request: PolicyRequest) -> str:
            if request.trajectory_id == SLOTS[0] and request.turn == 1:
                proxy.lose_replies(1)
            return countdown_action(request)

        stored = collect(proxy.url, tmp_path / "store", respond, {"transport": "ws", "timeout_s": 10})
        applied = sessions.steps_applied
    assert [t.trajectory_id for t in stored] == [SLOTS[0], f"{SLOTS[0]}-a1", SLOTS[1]]
    lost = stored[0]
    assert lost.status == "failed" and lost.failure_cause == "env_error" and len(lost.turns) == 1
    assert "connection was lost" in (lost.error or "")
    assert all(t.status == "ok" and counts_down_by_one(t) for t in stored[1:])
    assert applied == sum(len(t.turns) for t in stored) + 1  # + the step whose answer was lost, once
    assert assert_ledger(tmp_path / "store", {"completed"}) == dict.fromkeys(SLOTS, "completed")
    reliability.measure(applied_steps=applied, lost_answers=proxy.lost_replies, rows=len(stored), duplicate_rows=0)


# ----- F18 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_f18_network_partition_and_pause_are_detected_and_no_step_is_applied_twice(
        transport: str, tmp_path: Path, reliability: Any, long_run: bool, forkserver: None) -> None:
    """Task 0's traffic is partitioned (bytes held both ways) as its second step is sent; task 1's server is
    SIGSTOPped then, and SIGCONTed later. Over a WebSocket the heartbeat finds the dead peer long before the
    step timeout (20 s) and the attempt is re-run; over HTTP the step is sent again under its key after the
    client's timeout, and the one application's answer comes back once the path heals."""
    reliability.backend = transport
    partition_s, pause_s = (30.0, 60.0) if long_run else (2.0, 2.0)
    ping_s = 0.25  # over HTTP the step is sent at 0 and again at 1.5 s; the second waits until 3 s: past the heal
    env_kwargs: dict[str, Any] = {"transport": transport, "ping_interval_s": ping_s, "ping_timeout_s": ping_s,
                                  "timeout_s": 20.0 if transport == "ws" else 1.5}
    before = census()
    server = ServerProcess(COUNTDOWN, {"start": 3}).start()
    faults: dict[str, float] = {}
    timers: list[threading.Timer] = []

    def respond(request: PolicyRequest) -> str:
        tid = request.trajectory_id
        if request.turn == 1 and tid == SLOTS[0] and tid not in faults:
            faults[tid] = time.time()
            proxy.partition(partition_s)
        elif request.turn == 1 and tid == SLOTS[1] and tid not in faults:
            faults[tid] = time.time()
            os.kill(server.pid, signal.SIGSTOP)
            timers.append(threading.Timer(pause_s, os.kill, args=(server.pid, signal.SIGCONT)))
            timers[-1].start()
        return countdown_action(request)

    try:
        with TcpFaultProxy(server.port) as proxy:
            stored = collect(proxy.url, tmp_path / "store", respond, env_kwargs)
        for timer in timers:
            timer.join(pause_s + 10)
        info = server.info()
        server_pid = server.pid
    finally:
        server.stop()
    assert server.starts == 1 and server_pid  # paused and resumed, never restarted
    recorded = sum(len(t.turns) for t in stored)
    failed = [t for t in stored if t.status == "failed"]
    assert all(t.failure_cause == "env_error" and "RemoteEnvError" in (t.error or "") for t in failed)
    assert all(counts_down_by_one(t) for t in stored if t.status == "ok")
    # every step applied at most once: each failed attempt may have had one step applied whose answer never came
    assert recorded <= info["steps_applied"] <= recorded + len(failed), (info, recorded, len(failed))
    finals = assert_ledger(tmp_path / "store", {"completed", "failed_infra"})
    detect = [t.finished_at - faults[t.trajectory_id] for t in failed if t.attempt == 0 and t.finished_at]
    if not long_run and transport == "ws":  # the heartbeat notices both, then the rerun completes
        assert [t.trajectory_id for t in stored] == [SLOTS[0], f"{SLOTS[0]}-a1", SLOTS[1], f"{SLOTS[1]}-a1"]
        assert len(detect) == 2 and max(detect) < 3 * ping_s + 0.7 < partition_s, detect  # not the heal
        assert finals == dict.fromkeys(SLOTS, "completed")
    elif not long_run:  # http: the resent step's answer arrives once the path heals: one row per slot
        assert [t.trajectory_id for t in stored] == SLOTS and finals == dict.fromkeys(SLOTS, "completed")
        assert info["steps_replayed"] == 2 and info["steps_applied"] == recorded
    assert_no_leaks_here(before)
    reliability.measure(partition_s=partition_s, pause_s=pause_s, detect_max_s=round(max(detect, default=0.0), 3),
                        failed_attempts=len(failed), applied_steps=info["steps_applied"],
                        replayed_steps=info["steps_replayed"], double_applied=0, restarts=0, leaks=0)


# ----- L09 ---------------------------------------------------------------------------------------------
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
_BODIES: list[bytes] = [
    b"", b"{bad json", b"[]", b"null", b"1e999", b"\xff\xfe\x00", b'{"action": 5}', b'{"action": "x", "seq": -1}',
    b'{"action": "x", "seq": "1"}', b'{"action": "x", "seq": true}', b'{"action": "x", "seq": 1.5}',
    b'{"seed": -3}', b'{"seed": 1180591620717411303424}', b'{"options": [1]}', b'{"extra": 1}',
    b'{"action": "x", "extra": 1}', b'{"seed": NaN}', b"[" * 5000, b'{"action": "\\ud800"}', b"{}",
]


def _random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _fuzz_http(rng: random.Random, sessions: list[str]) -> tuple[str, str, bytes]:
    sid = rng.choice([*sessions[-8:], "nope", "..%2F..", "%00", "x" * 3000, "é"])
    path = rng.choice(["/sessions", f"/sessions/{sid}/step", f"/sessions/{sid}/expert", f"/sessions/{sid}",
                       "/health", "/info", "/sessions/ws", "/" + _random_bytes(rng, 8).hex(), "/sessions//step"])
    method = rng.choice(_METHODS) if rng.random() < 0.4 else ("POST" if "step" in path else rng.choice(_METHODS))
    if rng.random() < 0.5:
        body = rng.choice(_BODIES)
    elif rng.random() < 0.5:
        body = json.dumps({"action": rng.choice(["Action: 2", "", "x" * 1000]),
                           "seq": rng.choice([None, 1, 2, 5, 0, 2**64])}).encode()
    else:
        body = _random_bytes(rng, rng.randrange(64))
    return method, path, body


def _fuzz_ws(rng: random.Random) -> str | bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return _random_bytes(rng, rng.randrange(1, 64))  # a binary frame
    if kind == 1:
        return rng.choice(_BODIES).decode(errors="replace")
    message: dict[str, Any] = {"op": rng.choice(["reset", "step", "expert", "close", "jump", 5, None])}
    for key in rng.sample(["action", "seq", "seed", "options", "id", "extra"], rng.randrange(4)):
        message[key] = rng.choice([None, 1, -1, 2**70, "x", "Action: 2", [1], {"a": 1}, True, 1.5, "é" * 200])
    return json.dumps(message)


_LEGACY = _sync_connect_flags()


def _typed_error(status: int, body: Any) -> bool:
    return 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str) \
        and isinstance(body.get("type"), str) and "Traceback" not in body["error"]


@pytest.mark.timeout(1800)  # 1e5 frames under --long
def test_l09_api_fuzz_gets_typed_4xx_never_5xx_and_the_server_stays_up_and_flat(
        reliability: Any, long_run: bool, forkserver: None) -> None:
    """Random HTTP requests and WebSocket frames (bad JSON, binary, wrong ids and keys, step before reset,
    random methods and paths, bodies and frames over the size limit) against a live server process."""
    reliability.backend = "http+ws"
    frames = 100_000 if long_run else 2_000
    rng = random.Random(9)
    server = ServerProcess(COUNTDOWN, {"start": 3}, max_sessions=16).start()
    sessions: list[str] = []
    counts: dict[str, int] = {"2xx": 0, "4xx": 0, "5xx": 0, "untyped": 0, "ws_closed_too_big": 0}
    bad: list[str] = []

    def check(what: str, status: int, body: Any) -> None:
        if status >= 500:
            counts["5xx"] += 1
            bad.append(f"{what}: {status} {str(body)[:200]}")
        elif status >= 400:
            counts["4xx"] += 1
            if not _typed_error(status, body):
                counts["untyped"] += 1
                bad.append(f"{what}: untyped {status} {str(body)[:200]}")
        else:
            counts["2xx"] += 1

    def http_round(client: httpx.Client, n: int) -> None:
        for i in range(n):
            if i % 500 == 0:  # a body over the limit, with and without a content-length (in the warm-up too)
                big = b"x" * (MAX_BODY_BYTES + 1)
                for content in (big, iter([big[: len(big) // 2], big[len(big) // 2:]])):
                    r = client.post("/sessions", content=content)
                    assert r.status_code == 413
                    check("big body", r.status_code, r.json())
                continue
            if rng.random() < 0.1:
                r = client.post("/sessions", json={"seed": rng.randrange(100)})
                if r.status_code == 200:
                    sessions.append(r.json()["session_id"])
                check("POST /sessions", r.status_code, r.json())
                continue
            method, path, body = _fuzz_http(rng, sessions)
            r = client.request(method, path, content=body, headers={"content-type": "application/json"})
            if method == "HEAD":
                check(f"{method} {path[:60]}", r.status_code, {"error": "", "type": ""} if r.status_code >= 400 else {})
                continue
            try:
                parsed = r.json()
            except ValueError:
                parsed = r.text
            check(f"{method} {path[:60]} {body[:40]!r}", r.status_code, parsed)

    def ws_round(n: int) -> None:
        url = "ws" + server.url[4:] + "/sessions/ws"
        ws = connect(url, compression=None, max_size=None, **_LEGACY)
        try:
            for i in range(n):
                huge = i % 700 == 0
                frame: str | bytes = "x" * (MAX_BODY_BYTES + 1) if huge else _fuzz_ws(rng)
                if rng.random() < 0.05:
                    frame = json.dumps({"op": "reset", "seed": rng.randrange(100)})
                try:
                    ws.send(frame)
                    reply = json.loads(ws.recv(timeout=10))
                except ConnectionClosed as e:
                    # only a frame over the limit ends the connection: the server closes it with 1009 "message
                    # too big" without reading on (the client, still sending, may see the reset before the code)
                    assert huge and (e.rcvd is None or e.rcvd.code == 1009), e
                    counts["ws_closed_too_big"] += 1
                    ws.close()
                    ws = connect(url, compression=None, max_size=None, **_LEGACY)
                    continue
                assert isinstance(reply, dict)
                check(f"ws {str(frame)[:60]}", int(reply.get("status", 200)), reply)
        finally:
            ws.close()

    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            http_round(client, 100)
        ws_round(100)
        instance = server.info()["instance_id"]
        baseline = census(pid=server.pid)
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            http_round(client, frames // 2)
        ws_round(frames - frames // 2)
        elapsed = time.monotonic() - started
        diff = assert_no_leaks_here(baseline)  # the server's fds (and processes) are back to the baseline
        fds_after, rss_after = len(open_fds(server.pid)), rss_bytes(server.pid)
        health = httpx.get(f"{server.url}/health", timeout=5).json()
        alive = server.process.is_alive()
    finally:
        server.stop()
    assert not bad, "\n".join(bad[:20])
    assert counts["5xx"] == 0 and counts["untyped"] == 0 and counts["4xx"] > frames // 3
    assert alive and health == {"status": "ok", "instance_id": instance} and server.starts == 1
    rss_delta_mib = diff.rss_delta_bytes / 2**20
    assert rss_delta_mib < (64 if long_run else 24), f"server RSS grew {rss_delta_mib:.1f} MiB"
    reliability.measure(frames=frames, frames_per_s=round(frames / elapsed), **counts, restarts=0,
                        rss_delta_mib=round(rss_delta_mib, 1), fds_delta=diff.fd_count_delta,
                        fds_after=fds_after, rss_after_mib=round(rss_after / 2**20, 1))

