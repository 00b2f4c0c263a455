"""Several policy servers behind one client: balancing, sticky episodes, failover, health checks, weight
pushes to every replica, and ``agentenv serve-policy --replicas N``.

The servers are real (agentenv's replay server over HTTP on 127.0.0.1, in threads or as child processes):
each answers the recorded turn of the episode a request names, and the in-process ones record which
episodes and turns reached them, so the tests see where every request went.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from agentenv.policies import make_policy
from agentenv.policies.balanced import BalancedPolicy, policy_client, split_endpoints
from agentenv.policies.openai_api import create_openai_app
from agentenv.policies.openai_client import OpenAIPolicy
from agentenv.policies.replay_server import ReplayModel
from agentenv.policies.replicas import Replicas, gpu_blocks
from agentenv.policies.vllm_server import free_port
from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest, PolicyUnavailable, PromptError
from agentenv.serving import ServerThread
from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory, Turn

EPISODES = [*(f"ep-{i}" for i in range(12)), "fork-1"]
TURNS = 4


def _action(episode: str, turn: int) -> str:
    return f"{episode} says {turn}"


def _trajectories() -> list[Trajectory]:
    return [Trajectory(trajectory_id=e, group_id=e, task_id=e, task_index=i, sample_index=0, seed=i, env_id="test",
                       turns=[Turn(index=t, observation=[{"role": "user", "content": f"{e} {t}"}],
                                   action=_action(e, t), completion_ids=[100 + t], logprobs=[-0.5],
                                   token_source="sampled", finish_reason="stop", policy_version=0)
                              for t in range(TURNS)])
            for i, e in enumerate(EPISODES)]


class Recording(ReplayModel):
    """The replay model, noting every request that reaches it; ``gate`` holds requests while it is clear."""

    def __init__(self) -> None:
        super().__init__(_trajectories())
        self.seen: list[tuple[str, int, str]] = []
        self.gate = threading.Event()
        self.gate.set()

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        self.seen.extend((r.trajectory_id, r.turn, r.prefix_hint) for r in requests)
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # long enough for requests sent together to overlap
        return await super().act(requests)


@contextlib.contextmanager
def serving(n: int) -> Iterator[tuple[list[Recording], list[ServerThread]]]:
    models = [Recording() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(ServerThread(create_openai_app(m))) for m in models]
        stack.callback(lambda: [m.gate.set() for m in models])  # a failed test must not leave requests held
        yield models, servers


def _req(episode: str, turn: int, fork_of: str = "") -> PolicyRequest:
    return PolicyRequest([{"role": "user", "content": f"{episode} {turn}"}], trajectory_id=episode, turn=turn,
                         prefix_hint=fork_of)


def _where(models: list[Recording]) -> dict[str, set[int]]:
    """Which replicas answered each episode."""
    found: dict[str, set[int]] = {}
    for i, model in enumerate(models):
        for episode, _, _ in model.seen:
            found.setdefault(episode, set()).add(i)
    return found


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def _checkpoint(where: Path) -> Path:
    """A directory that passes the weight update's checkpoint check (the replay server loads nothing)."""
    where.mkdir(parents=True)
    (where / "config.json").write_text("{}")
    (where / "model.safetensors").write_bytes(b"")
    return where


def _weight_info(server: ServerThread) -> str:
    return str(httpx.get(server.url + "/weight_info").json()["weight_version"])


# ----- routing -------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_new_episodes_go_to_the_least_busy_replica_and_every_turn_stays_there() -> None:
    with serving(3) as (models, servers):
        policy = BalancedPolicy([s.url + "/v1" for s in servers], model="replay")

        async def scenario() -> list[list[PolicyOutput]]:
            models[0].gate.clear()
            held = asyncio.create_task(policy.act([_req("ep-0", 0)]))  # all idle: the first replica
            await _until(lambda: bool(models[0].seen))
            for i in range(1, 5):  # replica 0 is busy: one at a time, new episodes go to 1 and 2 in turn
                await asyncio.wait_for(policy.act([_req(f"ep-{i}", 0)]), 5.0)  # one sent to 0 would wait
            models[0].gate.set()
            outs = [await held]
            # turn 1 for all five, plus a fork of ep-3 and a new episode, sent together: when the fork is
            # placed, replica 0 has 1 request in flight and replicas 1 and 2 have 2 each
            outs.append(await policy.act([*(_req(f"ep-{i}", 1) for i in range(5)), _req("fork-1", 0, "ep-3"),
                                          _req("ep-5", 0)]))
            for turn in (2, 3):  # stickiness beats load: replica 1 gets 3 requests at a time, the others 2
                outs.append(await policy.act([*(_req(f"ep-{i}", turn) for i in range(5)),
                                              _req("fork-1", turn - 1), _req("ep-5", turn - 1)]))
            await policy.aclose()
            return outs

        outs = asyncio.run(scenario())
    assert _where(models) == {"ep-0": {0}, "ep-1": {1}, "ep-2": {2}, "ep-3": {1}, "ep-4": {2}, "fork-1": {1},
                              "ep-5": {0}}
    assert ("fork-1", 0, "ep-3") in models[1].seen  # the parent's id reached the server (its prefix cache)
    assert outs[1][5].text == _action("fork-1", 0) and outs[3][0].text == _action("ep-0", 3)
    assert all(o.completion_ids and o.token_source == "sampled" for batch in outs for o in batch)
    states = policy.endpoint_stats()
    assert [s.requests for s in states] == [len(m.seen) for m in models] == [7, 11, 8]
    assert [s.outstanding for s in states] == [0, 0, 0] and [s.episodes for s in states] == [2, 3, 2]
    assert policy.stats["failovers"] == 0 and policy.stats["failed"] == 0


@pytest.mark.integration
def test_a_bad_request_is_not_retried_elsewhere_and_no_replica_is_blamed() -> None:
    with serving(2) as (models, servers):
        policy = BalancedPolicy([s.url for s in servers], model="replay")

        async def scenario() -> None:
            with pytest.raises(PromptError, match="no recorded turn"):
                await policy.act([_req("never-recorded", 0)])
            await policy.aclose()

        asyncio.run(scenario())
    assert sum(len(m.seen) for m in models) == 1
    assert all(s.healthy for s in policy.endpoint_stats()) and policy.stats["failovers"] == 0


def test_with_no_replica_answering_the_error_lists_every_endpoint() -> None:
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    policy = BalancedPolicy(urls, model="m", backoff_s=0.001)

    async def scenario() -> None:
        with pytest.raises(PolicyUnavailable, match=r"connection error.*after failing over from .*connection error"):
            await policy.act([_req("ep-0", 0)])
        with pytest.raises(PolicyUnavailable, match="no policy endpoint is healthy") as caught:
            await policy.act([_req("ep-1", 0)])  # one round of health checks first, then the error
        await policy.aclose()
        for url in urls:
            assert f"{url.removesuffix('/v1')}: out (health check: ConnectError" in str(caught.value)

    asyncio.run(scenario())
    assert [s.healthy for s in policy.endpoint_stats()] == [False, False]
    stats = policy.stats
    assert stats["failovers"] == 1 and stats["marked_down"] == 2 and stats["no_endpoint"] == 1


# ----- failures --------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_replica_that_dies_mid_run_is_taken_out_and_rejoins_after_a_health_check() -> None:
    episodes = [f"ep-{i}" for i in range(9)]
    with serving(3) as (models, servers):
        policy = BalancedPolicy([s.url + "/v1" for s in servers], model="replay", health_interval_s=0.2,
                                backoff_s=0.01)

        async def scenario() -> dict[str, list[str]]:
            texts: dict[str, list[str]] = {e: [] for e in episodes}
            for turn in range(TURNS):
                batch = asyncio.create_task(policy.act([_req(e, turn) for e in episodes]))
                if turn == 2:  # replica 1 goes away while this turn's requests are under way
                    await asyncio.sleep(0.005)
                    await asyncio.to_thread(servers[1].stop)
                for e, out in zip(episodes, await batch, strict=True):
                    texts[e].append(out.text)
            down = policy.endpoint_stats()[1]
            assert not down.healthy and down.episodes == 0 and "connection error" in down.last_error
            servers[1].start()  # back on the same port
            await _until(lambda: policy.endpoint_stats()[1].healthy, 5.0)
            before = len(models[1].seen)
            await policy.act([_req(f"ep-{i}", 0) for i in (9, 10, 11)])  # all idle: one each
            assert len(models[1].seen) == before + 1
            await policy.aclose()
            return texts

        texts = asyncio.run(scenario())
    assert texts == {e: [_action(e, t) for t in range(TURNS)] for e in episodes}  # no episode lost a turn
    where = _where(models)
    moved = [e for e in episodes if 1 in where[e]]
    assert len(moved) == 3 and all(len(where[e]) == 2 for e in moved)  # replica 1's episodes went on elsewhere
    assert all(where[e] in ({0}, {2}) for e in episodes if e not in moved)
    stats = policy.stats
    assert 1 <= stats["failovers"] <= 3 and stats["marked_down"] == 1 and stats["rejoined"] == 1


@pytest.mark.integration
def test_weights_reach_every_replica_and_one_that_missed_them_gets_them_before_it_rejoins(tmp_path: Path) -> None:
    v1, v2 = _checkpoint(tmp_path / "v1"), _checkpoint(tmp_path / "v2")
    with serving(3) as (models, servers):
        policy = BalancedPolicy([s.url + "/v1" for s in servers], model="replay", health_interval_s=0.2)

        async def scenario() -> None:
            await policy.update_weights(str(v1), 1)
            assert [_weight_info(s) for s in servers] == ["1", "1", "1"] and policy.version == 1
            assert await policy.refresh_version() == 1
            await asyncio.to_thread(servers[2].stop)
            await policy.update_weights(str(v2), 2)  # replica 2 is down: the others take it, 2 is taken out
            assert [s.healthy for s in policy.endpoint_stats()] == [True, True, False] and policy.version == 2
            assert "weight update failed" in policy.endpoint_stats()[2].last_error
            assert [_weight_info(s) for s in servers[:2]] == ["2", "2"]
            await policy.act([_req("ep-0", 0)])  # requests start the health task on this loop
            servers[2].start()
            await _until(lambda: policy.endpoint_stats()[2].healthy, 5.0)
            assert models[2].weight_updates == [str(v1), str(v2)] and _weight_info(servers[2]) == "2"

            # replica 1 restarts between two requests, with its original weights: no request fails, but the
            # health task sees the version and pushes the weights again
            port = servers[1].port
            await asyncio.to_thread(servers[1].stop)
            fresh = Recording()
            servers[1] = ServerThread(create_openai_app(fresh), port=port).start()
            await _until(lambda: fresh.weight_updates == [str(v2)] and policy.endpoint_stats()[1].healthy, 5.0)
            assert _weight_info(servers[1]) == "2"

            await policy.aclose()  # ends the health task, which would push v2 again to a replica that says 5
            httpx.post(servers[0].url + "/update_weight_version", json={"new_version": "5"})
            with pytest.warns(RuntimeWarning, match="different weight versions"):
                assert await policy.refresh_version() == 2
            await policy.aclose()

        try:
            asyncio.run(scenario())
        finally:
            for s in servers:
                s.stop()
    assert [m.weight_updates for m in models[:2]] == [[str(v1), str(v2)]] * 2
    assert policy.stats["rejoined"] == 2 and policy.stats["marked_down"] == 2


@pytest.mark.integration
def test_a_weight_update_that_reaches_no_replica_raises_and_keeps_the_previous_weights(tmp_path: Path) -> None:
    with serving(2) as (models, servers):
        policy = BalancedPolicy([s.url for s in servers], model="replay", health_interval_s=0.2)

        async def scenario() -> None:
            await policy.update_weights(str(_checkpoint(tmp_path / "v1")), 1)
            with pytest.raises(PolicyError, match=r"reached no policy endpoint.*not a Hugging Face checkpoint"):
                await policy.update_weights(str(tmp_path / "missing"), 2)
            assert policy.version == 1 and not any(s.healthy for s in policy.endpoint_stats())
            await policy.aclose()

        asyncio.run(scenario())
        assert [m.weight_updates for m in models] == [[str(tmp_path / "v1")]] * 2
        # the next update checks the replicas that are out first: both answer and rejoin with its weights
        asyncio.run(policy.update_weights(str(_checkpoint(tmp_path / "v3")), 3))
        assert [m.version for m in models] == [3, 3] and all(s.healthy for s in policy.endpoint_stats())

        async def act() -> str:
            [out] = await policy.act([_req("ep-0", 0)])
            await policy.aclose()
            return out.text

        assert asyncio.run(act()) == _action("ep-0", 0)


@pytest.mark.integration
def test_a_copy_for_another_process_keeps_its_episodes_in_place_and_leaves_the_weights_to_the_original(
        tmp_path: Path) -> None:
    v1, v2 = _checkpoint(tmp_path / "v1"), _checkpoint(tmp_path / "v2")
    with serving(2) as (models, servers):
        policy = BalancedPolicy([s.url for s in servers], model="replay", health_interval_s=0.2)

        async def before() -> None:
            await policy.update_weights(str(v1), 1)
            await policy.act([_req("ep-0", 0), _req("ep-1", 0)])  # one on each replica
            await policy.aclose()

        asyncio.run(before())
        copy = pickle.loads(pickle.dumps(policy))  # what a Ray env worker gets
        fresh = Recording()

        async def in_the_copy() -> None:
            await copy.act([_req("ep-0", 1), _req("ep-1", 1)])
            port = servers[1].port
            await asyncio.to_thread(servers[1].stop)
            await copy.act([_req("ep-1", 2)])  # fails over to replica 0
            servers[1] = ServerThread(create_openai_app(fresh), port=port).start()  # restarted, no weights
            await _until(lambda: copy.endpoint_stats()[1].healthy, 5.0)
            await copy.aclose()

        try:
            asyncio.run(in_the_copy())
            assert fresh.weight_updates == []  # the copy has no weights to push
            asyncio.run(policy.update_weights(str(v2), 2))  # the original's next update reaches it
            assert fresh.weight_updates == [str(v2)] and models[0].weight_updates == [str(v1), str(v2)]
        finally:
            servers[1].stop()
    # the copy kept ep-1 on replica 1 (turn 1) until replica 1 went away (turn 2, refused there)
    assert [m.seen for m in models] == [[("ep-0", 0, ""), ("ep-0", 1, ""), ("ep-1", 2, "")],
                                        [("ep-1", 0, ""), ("ep-1", 1, "")]]


# ----- factories ---------------------------------------------------------------------------------------------------
def test_one_url_makes_a_plain_client_and_several_a_balanced_one() -> None:
    one = policy_client("http://127.0.0.1:9/v1", health_interval_s=1.0, max_retries=2)
    assert isinstance(one, OpenAIPolicy) and one.max_retries == 2
    two = make_policy("http://127.0.0.1:9/v1, http://127.0.0.1:10/v1", concurrency=4, api_key=None)
    assert isinstance(two, BalancedPolicy)
    assert two.base_urls == ["http://127.0.0.1:9", "http://127.0.0.1:10"]
    assert isinstance(make_policy("http://127.0.0.1:9/v1"), OpenAIPolicy)
    with pytest.raises(ValueError, match="listed twice"):
        split_endpoints(["http://127.0.0.1:9/v1", "http://127.0.0.1:9"])
    with pytest.raises(ValueError, match="must start with http"):
        split_endpoints("http://127.0.0.1:9/v1,127.0.0.1:10")


def test_token_exact_mode_shares_one_renderer(tiny_model_dir: Path) -> None:
    policy = BalancedPolicy(["http://127.0.0.1:9", "http://127.0.0.1:10"], tokenizer=str(tiny_model_dir))
    single = OpenAIPolicy("http://127.0.0.1:9", tokenizer=str(tiny_model_dir))
    assert policy.token_exact and policy.label_tokens("go east") == single.label_tokens("go east")
    request = PolicyRequest([{"role": "user", "content": "Where to?"}])
    assert policy.tokenize_action(request, "go").prompt_ids == single.tokenize_action(request, "go").prompt_ids


# ----- serve-policy --replicas ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("recorded")
    TrajectoryStore(where).write(_trajectories())
    return where


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no line from the command"
    return proc.stdout.readline()


def _serve(store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agentenv.cli", "serve-policy", "--replicas", "2", "--backend",
                             "replay", "--model", str(store), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.integration
def test_serve_policy_replicas_prints_the_endpoints_and_sigterm_stops_every_child(store: Path) -> None:
    proc = _serve(store)
    try:
        line = _line(proc)
        assert line.startswith("agentenv policy servers (replay x 2): http://127.0.0.1:"), line
        endpoints = line.split()[-1]
        children = _children(proc.pid)
        assert len(children) == 2
        policy = make_policy(endpoints)
        assert isinstance(policy, BalancedPolicy)

        async def two_episodes() -> list[PolicyOutput]:
            try:
                return await policy.act([_req("ep-0", 0), _req("ep-1", 0)])
            finally:
                await policy.aclose()

        assert [o.text for o in asyncio.run(two_episodes())] == [_action("ep-0", 0), _action("ep-1", 0)]
        assert [s.requests for s in policy.endpoint_stats()] == [1, 1]  # both replicas answered
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not [pid for pid in children if _alive(pid)]
        for url in endpoints.split(","):
            with pytest.raises(httpx.ConnectError):
                httpx.get(url + "/models")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.integration
def test_serve_policy_replicas_stops_the_rest_and_fails_when_one_dies(store: Path) -> None:
    proc = _serve(store)
    try:
        _line(proc)
        children = _children(proc.pid)
        os.kill(children[0], signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
        assert not [pid for pid in children if _alive(pid)]
        assert proc.stderr is not None and "exited with status -9; stopping the others" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_policy_refuses_parallelism_the_backend_would_ignore(cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = cli("serve-policy", "--backend", "embedded", "--tensor-parallel-size", "2")
    assert code == 2 and "--tensor-parallel-size 2: only the vllm backend" in err
    code, _, err = cli("serve-policy", "--backend", "replay", "--replicas", "2", "--data-parallel-size", "2")
    assert code == 2 and "--data-parallel-size 2: only the vllm backend" in err
    code, _, err = cli("serve-policy", "--backend", "vllm", "--vllm-arg=--tensor-parallel-size=2")
    assert code == 2 and "not --vllm-arg" in err
    code, _, err = cli("serve-policy", "--backend", "replay", "--replicas", "0")
    assert code == 2 and "--replicas must be >= 1" in err


def test_vllm_replicas_get_their_own_gpus_and_vllms_parallel_flags() -> None:
    servers = Replicas("vllm", "smollm2-135m-instruct", 2, port=8100, tensor_parallel_size=2, api_key="secret",
                       vllm_args=["--enforce-eager"], gpus=["0", "1", "2", "3", "4"])
    commands = [servers.command(i) for i in range(2)]
    assert [c[c.index("--port") + 1] for c in commands] == ["8100", "8101"]
    assert commands[0][commands[0].index("--tensor-parallel-size") + 1] == "2"
    assert "--vllm-arg=--enforce-eager" in commands[0] and "secret" not in json.dumps(commands)
    assert [servers.child_env(i)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0,1", "2,3"]
    assert servers.child_env(0)["AGENTENV_API_KEY"] == "secret"
    assert gpu_blocks(2, 2, ["4", "5", "6", "7"]) == ["4,5", "6,7"]  # blocks of the devices this process sees
    with pytest.raises(ValueError, match="need 4 GPUs; 3 are visible"):
        Replicas("vllm", "m", 2, tensor_parallel_size=2, gpus=["0", "1", "2"])
    cpu = Replicas("vllm", "m", 2, gpus=[])  # no GPUs: nothing to place, each replica sees what this one sees
    assert cpu.child_env(1).get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")


def test_one_vllm_server_gets_the_parallel_flags(cli: Callable[..., tuple[int, str, str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from agentenv.policies.vllm_server import VLLMServer

    seen: list[list[str]] = []

    def serve_forever(self: VLLMServer) -> int:
        seen.append(self.command())
        return 0

    monkeypatch.setattr(VLLMServer, "serve_forever", serve_forever)
    monkeypatch.setenv("AGENTENV_VLLM_PYTHON", sys.executable)
    code, _, err = cli("serve-policy", "--backend", "vllm", "--tensor-parallel-size", "2", "--data-parallel-size", "2")
    assert code == 0, err
    [command] = seen
    assert command[-4:] == ["--tensor-parallel-size", "2", "--data-parallel-size", "2"]
