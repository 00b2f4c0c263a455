"""The ALFWorld expert: wins every generated task from the start and from random mid-episode states, in as
few steps as an unpruned search finds."""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path

import pytest

from agentenv.envs.alfworld.engine import Game
from agentenv.envs.alfworld.expert import Expert
from agentenv.envs.alfworld.generator import SPLITS, TASK_TYPES, generate
from agentenv.envs.alfworld.pddl import parse_problem

SAMPLES = Path(__file__).parents[3] / "envs" / "alfworld" / "samples"


def new_game(task_type: str, split: str, seed: int) -> Game:
    task = generate(task_type, split, seed)
    game = Game(parse_problem(task.problem), task.task_desc)
    game.reset()
    return game


def play(game: Game, plan: list[str]) -> bool:
    won = False
    for command in plan:
        assert command in game.admissible_commands(), command
        _, won = game.step(command)
    return won


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_the_expert_wins_every_generated_task_from_the_start(task_type):
    for split in SPLITS:
        for seed in range(8):
            game = new_game(task_type, split, seed)
            plan = Expert(game, task_type).plan()
            assert plan, (split, seed)
            assert play(game, plan) and game.won, (split, seed, plan)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_the_expert_wins_from_random_mid_episode_states(task_type):
    rng = random.Random(0)
    for seed in range(8):
        game = new_game(task_type, "train", seed)
        expert = Expert(game, task_type)
        for _ in range(rng.randint(1, 12)):  # a student's wandering: random admissible commands
            game.step(rng.choice(game.admissible_commands()))
            if game.won:
                break
        steps = 0
        while not game.won:
            command = expert.next_command()
            assert command is not None and command in game.admissible_commands()
            game.step(command)
            steps += 1
            assert steps <= 30


def shortest_unpruned(game: Game, limit: int) -> int | None:
    """Plain breadth-first search over every admissible command: the true shortest plan length."""
    seen = {game.state.key()}
    frontier = deque([(game.copy(), 0)])
    while frontier:
        node, depth = frontier.popleft()
        if depth == limit:
            continue
        for command in node.admissible_commands():
            child = node.copy()
            _, won = child.step(command)
            if won:
                return depth + 1
            if child.state.key() not in seen:
                seen.add(child.state.key())
                frontier.append((child, depth + 1))
    return None


@pytest.mark.parametrize("name", ["pick_and_place_simple", "look_at_obj_in_light", "pick_heat_then_place_in_recep"])
def test_the_expert_plan_is_as_short_as_an_unpruned_search(name):
    spec = json.loads((SAMPLES / f"{name}.json").read_text())
    game = Game(parse_problem((SAMPLES / f"{name}.pddl").read_text()), spec["task_desc"])
    game.reset()
    plan = Expert(game, name).plan()
    assert plan is not None
    assert len(plan) == shortest_unpruned(game, len(plan)) <= len(spec["walkthrough"])


def test_following_the_expert_searches_once():
    game = new_game("pick_two_obj_and_place", "train", 1)
    expert = Expert(game)
    expert.next_command()
    plans = len(expert._plans)
    while not game.won:
        game.step(expert.next_command() or "")
    assert len(expert._plans) == plans  # every later state was cached by the first search


def test_a_won_game_has_an_empty_plan_and_no_next_command():
    game = new_game("pick_and_place_simple", "train", 0)
    expert = Expert(game)
    play(game, expert.plan() or [])
    assert expert.plan() == [] and expert.next_command() is None
