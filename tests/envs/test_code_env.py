"""The code interpreter end to end on a real bwrap sandbox: the expert solves every procedural family
through the tool, the session keeps state and survives interrupts, crashes restart with a note, and
the splits and scorers are what they say."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import agentenv  # noqa: F401  (registers the envs)
from agentenv.census import census_guard
from agentenv.envs.code import solvers
from agentenv.envs.code.env import CodeInterpreterEnv, tool_call
from agentenv.envs.code.tasks import SPLIT_SEEDS, make_task, math_score, score


@pytest.fixture
def env():
    env = CodeInterpreterEnv(families=solvers.FAMILIES, cell_timeout=3, pool_size=2)
    yield env
    env.close()


def run_expert(env, seed):  # type: ignore[no-untyped-def]
    _obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        action = env.expert_action()
        assert action is not None
        _, reward, terminated, truncated, step_info = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            return info, step_info, total, steps


def test_the_expert_solves_every_procedural_family_through_the_tool(env):
    seen = {}
    for seed in range(60):
        info, last, reward, steps = run_expert(env, seed)
        assert reward == 1.0 and last["won"], (info["task_type"], info["question"], last)
        assert steps == 2  # one python cell, then the answer
        seen[info["task_type"]] = seen.get(info["task_type"], 0) + 1
    assert len(seen) >= 15  # the draw covers the families


def test_an_expert_episode_and_close_leave_nothing_behind():
    """The resource census (reliability §4) around a whole env life: the warm pool, the sandboxed kernel,
    an interrupted cell, a crashed and restarted kernel, then close."""
    with census_guard(settle_s=5):
        env = CodeInterpreterEnv(families=solvers.FAMILIES, cell_timeout=3, pool_size=2)
        try:
            _, _, reward, _ = run_expert(env, seed=3)
            assert reward == 1.0
            env.reset(seed=4)
            env.step(tool_call("python", code="while True: pass"))
            env.step(tool_call("python", code="import os; os._exit(1)"))
        finally:
            env.close()


def test_session_state_interrupts_and_crashes(env):
    env.reset(seed=0)
    obs, *_ = env.step(tool_call("python", code="x = 21\nx * 2"))
    assert "[value] 42" in obs["messages"][-1]["content"]
    obs, _, _, _, info = env.step(tool_call("python", code="while True: pass"))
    assert "KeyboardInterrupt" in obs["messages"][-1]["content"] and info["cell_status"] == "interrupted"
    obs, *_ = env.step(tool_call("python", code="x"))
    assert "[value] 21" in obs["messages"][-1]["content"]
    obs, _, _, _, info = env.step(tool_call("python", code="import os; os._exit(1)"))
    assert "restarted" in obs["messages"][-1]["content"] and info["session_restarted"]
    obs, *_ = env.step(tool_call("python", code="x"))
    assert "NameError" in obs["messages"][-1]["content"]


def test_malformed_calls_are_error_observations_and_nothing_runs(env):
    env.reset(seed=1)
    for bad in ['<tool_call>{"name": "python", "arguments": {"code": 5}}</tool_call>',
                '<tool_call>{"name": "shell", "arguments": {}}</tool_call>',
                "<tool_call>{not json</tool_call>", "[" * 100_000]:
        obs, reward, terminated, _truncated, info = env.step(bad)
        assert info["action_valid"] is False and reward == 0 and not terminated
        assert obs["messages"][-1]["content"].startswith("Invalid action")
    assert env.sandbox.ping()["processes"] == 1  # only the session: nothing was dispatched


def test_wrong_answers_score_zero_and_the_episode_ends(env):
    env.reset(seed=2)
    _, reward, terminated, _, info = env.step(tool_call("answer", answer="definitely wrong"))
    assert terminated and reward == 0.0 and not info["won"]


def test_an_answer_the_scorer_cannot_parse_is_a_wrong_answer_not_an_env_fault():
    task = make_task("prime_factorization", 3, "test")
    assert score(task, task.reference) == 1.0
    assert score(task, "12 is prime") == 0.0  # reasoning-gym's own scorer raises ValueError on it
    env = CodeInterpreterEnv(families=("prime_factorization",), pool_size=1)
    try:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(tool_call("answer", answer="it is a prime number"))
        assert terminated and reward == 0.0 and not info["won"]
    finally:
        env.close()


def test_splits_are_disjoint_and_seeded():
    train = CodeInterpreterEnv(split="train")
    test = CodeInterpreterEnv(split="test")
    try:
        a = train.reset(seed=5)[1]
        b = train.reset(seed=5)[1]
        c = test.reset(seed=5)[1]
        assert a["question"] == b["question"] and a["task_seed"] == b["task_seed"]
        assert SPLIT_SEEDS["train"][0] <= a["task_seed"] < SPLIT_SEEDS["train"][1]
        assert SPLIT_SEEDS["test"][0] <= c["task_seed"] < SPLIT_SEEDS["test"][1]
    finally:
        train.close()
        test.close()
    with pytest.raises(ValueError, match="split"):
        CodeInterpreterEnv(split="validation")


def test_math_word_problems_are_checked_by_math_verify():
    task = make_task("gsm_symbolic", 5, "train")
    assert score(task, task.reference) == 1.0
    assert score(task, f"{task.reference}.0") == 1.0
    assert score(task, f"\\boxed{{{task.reference}}}") == 1.0
    assert score(task, str(int(float(task.reference)) + 1)) == 0.0
    assert math_score("1/2", "0.5") == 1.0 and math_score("3", "") == 0.0


def test_registered_ids_make_working_envs():
    env = gym.make("agentenv/CodeMath-v0").unwrapped
    try:
        obs, info = env.reset(seed=0)
        assert info["task_type"] == "gsm_symbolic" and obs["tools"][0]["function"]["name"] == "python"
        assert env.expert_action() is None  # no expert for word problems
        out, *_ = env.step(tool_call("python", code="print(2 + 2)"))
        assert "4" in out["messages"][-1]["content"]
    finally:
        env.close()
    assert json.loads(json.dumps(obs))  # observations are plain JSON


def test_the_docker_backend_runs_the_same_session():
    import os

    if not os.environ.get("AGENTENV_DOCKER_HOST") and os.environ.get("AGENTENV_REQUIRE_DOCKER") != "1":
        pytest.skip("no Docker engine (scripts/test.sh starts podman)")
    env = CodeInterpreterEnv(families=solvers.FAMILIES, sandbox="docker")
    try:
        _, _, reward, steps = run_expert(env, seed=11)
        assert env.sandbox.backend == "docker" and reward == 1.0 and steps == 2
    finally:
        env.close()
