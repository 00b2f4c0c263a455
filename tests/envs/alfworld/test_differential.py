"""Differential test: generated problems played in the native engine and in the real one (textworld's
PddlEnv behind ALFWorld's wrappers) give the same observation text, admissible commands, rewards and won
flags at every step.

Each problem is played along two command sequences, one real-engine episode each: the expert's plan, and
seeded random admissible commands (which wander, open, take and put things the expert never touches) with
invalid commands mixed in. The real engine is slow (~1 s per reset, ~70 ms per step), so
the problem count per task type is ``AGENTENV_ALFWORLD_DIFF`` (default 10, the issue's bar).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from agentenv.envs.alfworld.engine import Game
from agentenv.envs.alfworld.expert import Expert
from agentenv.envs.alfworld.generator import TASK_TYPES, generate
from agentenv.envs.alfworld.pddl import parse_problem

PER_TYPE = int(os.environ.get("AGENTENV_ALFWORLD_DIFF", "10"))
INVALID = ["fly to the moon", "take apple 99 from fridge 1", "go to", "open", "move  to ", "GO TO FRIDGE 1", ""]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("textworld", reason="the real ALFWorld engine comes with the alfworld extra")
    from agentenv.envs.alfworld.reference import ReferenceEnv

    env = ReferenceEnv()
    yield env
    env.close()


def sequences(task_type: str, seed: int) -> Iterator[tuple[str, list[str]]]:
    """The expert's plan, then a seeded random walk with invalid commands mixed in."""
    task = generate(task_type, ("train", "valid_seen", "valid_unseen")[seed % 3], seed)
    game = Game(parse_problem(task.problem), task.task_desc)
    game.reset()
    yield "expert", Expert(game, task_type).plan() or []
    rng = random.Random(seed)
    walk, probe = [], game.copy()
    for _ in range(14):
        command = rng.choice(probe.admissible_commands())
        walk.append(command)
        if probe.step(command)[1]:
            break
    for command in INVALID[: 3 + seed % 3]:
        walk.insert(rng.randint(0, len(walk) - 1), command)
    yield "random and invalid", walk


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_native_and_real_engines_agree_step_by_step(real, task_type):
    from agentenv.envs.alfworld.reference import game_json

    compared = 0
    for seed in range(PER_TYPE):
        task = generate(task_type, ("train", "valid_seen", "valid_unseen")[seed % 3], seed)
        game_file = game_json(task.problem, task.task_desc)
        for name, commands in sequences(task_type, seed):
            native = Game(parse_problem(task.problem), task.task_desc)
            where = f"{task_type} seed {seed} ({name})"
            obs, info = real.reset(game_file)
            assert native.reset() == obs, f"{where}: intro"
            assert native.admissible_commands() == info["admissible_commands"], f"{where}: admissible at start"
            for i, command in enumerate(commands):
                text, won = native.step(command)
                obs, reward, done, info = real.step(command)
                step = f"{where} step {i} {command!r}"
                assert text == obs, step
                assert native.admissible_commands() == info["admissible_commands"], step
                assert (won, float(won)) == (info["won"], reward), step
                compared += 1
                if done:
                    break
            if name == "expert" and commands:
                assert native.won and info["won"], where
    assert compared >= PER_TYPE * 5
