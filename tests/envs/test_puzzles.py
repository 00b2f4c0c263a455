"""The puzzle envs: their experts solve them, their seeds matter, and their feedback is true."""

import re

import pytest

import agentenv
from agentenv.envs.puzzles.maze import MOVES


def _guess(number: int) -> str:
    return f'<tool_call>{{"name": "guess", "arguments": {{"number": {number}}}}}</tool_call>'


def _solve_with_expert(env, seed: int) -> tuple[float, bool, bool, int]:
    env.reset(seed=seed)
    for turn in range(1, 1000):
        _, reward, terminated, truncated, info = env.step(env.expert_action())
        assert info["action_valid"] is True
        if terminated or truncated:
            return reward, terminated, truncated, turn
    raise AssertionError("the episode never ended")


@pytest.mark.parametrize("env_id", ["agentenv/GuessNumber-v0", "agentenv/Maze-v0"])
def test_expert_solves_20_seeds_within_the_turn_limit(env_id):
    env = agentenv.make(env_id)
    for seed in range(20):
        reward, terminated, truncated, turns = _solve_with_expert(env, seed)
        assert (reward, terminated, truncated) == (1.0, True, False), f"seed {seed}"
        assert turns <= env.max_turns


# ----- GuessNumber -------------------------------------------------------------------------------------


def test_guess_number_seeds_pick_different_secrets_and_the_same_seed_the_same_one():
    env = agentenv.make("agentenv/GuessNumber-v0")
    secrets = []
    for seed in range(10):
        env.reset(seed=seed)
        secrets.append(env.secret)
    assert len(set(secrets)) > 1
    assert all(1 <= s <= 100 for s in secrets)
    env.reset(seed=3)
    assert env.secret == secrets[3]


def test_guess_number_says_higher_lower_and_correct():
    env = agentenv.make("agentenv/GuessNumber-v0", low=1, high=100)
    env.reset(seed=0)
    env.secret = 40  # a known secret, away from the bounds

    obs, reward, terminated, _, _ = env.step(_guess(39))
    assert "higher" in obs["messages"][0]["content"]
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _, _ = env.step(_guess(41))
    assert "lower" in obs["messages"][0]["content"]
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _, info = env.step(_guess(40))
    assert "correct" in obs["messages"][0]["content"]
    assert (reward, terminated, info["won"]) == (1.0, True, True)


def test_guess_number_feedback_is_a_tool_message():
    env = agentenv.make("agentenv/GuessNumber-v0")
    env.reset(seed=1)
    obs, *_ = env.step(_guess(50))
    assert obs["messages"][0]["role"] == "tool"


def test_guess_number_offers_the_guess_tool_with_its_bounds():
    env = agentenv.make("agentenv/GuessNumber-v0", low=5, high=9)
    obs, _ = env.reset(seed=0)
    (tool,) = obs["tools"]
    assert tool["function"]["name"] == "guess"
    assert tool["function"]["parameters"]["properties"]["number"] == {"type": "integer", "minimum": 5, "maximum": 9}


def test_guess_number_rejects_a_guess_out_of_range_without_using_it():
    env = agentenv.make("agentenv/GuessNumber-v0")
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(_guess(0))
    assert info["action_valid"] is False
    assert "must be >= 1" in obs["messages"][0]["content"]
    assert (reward, terminated) == (0.0, False)


def test_guess_number_runs_out_of_guesses_as_truncation():
    env = agentenv.make("agentenv/GuessNumber-v0", max_turns=2)
    env.reset(seed=0)
    env.secret = 50
    env.step(_guess(1))
    *_, terminated, truncated, info = env.step(_guess(2))
    assert (terminated, truncated, info["truncated_by"]) == (False, True, "max_turns")


def test_guess_number_rejects_empty_range():
    with pytest.raises(ValueError, match="smaller"):
        agentenv.make("agentenv/GuessNumber-v0", low=5, high=5)


# ----- Maze --------------------------------------------------------------------------------------------


def _doors(obs) -> set[str]:
    """The directions the room text says doors lead to."""
    found = re.search(r"Doors lead ([a-z, ]+)\.", obs["messages"][-1]["content"])
    assert found, obs
    return {f"go {d.strip()}" for d in found.group(1).split(",")}


def test_maze_admissible_moves_match_the_doors_and_lead_somewhere():
    env = agentenv.make("agentenv/Maze-v0", size=4)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        for _ in range(15):
            assert set(obs["admissible"]) == _doors(obs)
            row, col = env.pos
            for move in obs["admissible"]:
                dr, dc = MOVES[move]
                assert 0 <= row + dr < 4 and 0 <= col + dc < 4, (seed, env.pos, move)
            obs, _, terminated, _, _ = env.step(f"Action: {obs['admissible'][0]}")
            if terminated:
                break


def test_maze_move_through_a_wall_is_invalid_and_does_not_move():
    env = agentenv.make("agentenv/Maze-v0")
    obs, _ = env.reset(seed=0)
    wall = sorted(set(MOVES) - set(obs["admissible"]))[0]
    obs, _, _, _, info = env.step(f"Action: {wall}")
    assert info["action_valid"] is False
    assert env.pos == (0, 0)
    assert "Choose one of" in obs["messages"][0]["content"]


def test_maze_doors_are_two_way():
    env = agentenv.make("agentenv/Maze-v0", size=5)
    env.reset(seed=7)
    back = {"go north": "go south", "go south": "go north", "go west": "go east", "go east": "go west"}
    for (row, col), moves in env.open.items():
        for move in moves:
            dr, dc = MOVES[move]
            assert back[move] in env.open[(row + dr, col + dc)]


def test_maze_seeds_carve_different_mazes_and_the_same_seed_the_same_one():
    env = agentenv.make("agentenv/Maze-v0")
    mazes = []
    for seed in range(5):
        env.reset(seed=seed)
        mazes.append({cell: frozenset(m) for cell, m in env.open.items()})
    assert len({frozenset(m.items()) for m in mazes}) > 1
    env.reset(seed=2)
    assert {cell: frozenset(m) for cell, m in env.open.items()} == mazes[2]


def test_maze_rejects_a_size_below_two():
    with pytest.raises(ValueError, match="at least 2"):
        agentenv.make("agentenv/Maze-v0", size=1)


def test_maze_takes_a_reply_that_names_exactly_one_open_door():
    env = agentenv.make("agentenv/Maze-v0")
    obs, _ = env.reset(seed=0)
    door = obs["admissible"][0]
    _, _, _, _, info = env.step(f"I think I must {door} now.")
    assert info["action_valid"] is True
    assert env.pos == tuple(a + b for a, b in zip((0, 0), MOVES[door], strict=True))
