"""agentenv/ALFWorld-v0: tasks from the generator or from ALFWorld-layout files, ALFWorld's step rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agentenv
from agentenv.envs.alfworld.engine import Game
from agentenv.envs.alfworld.expert import Expert
from agentenv.envs.alfworld.games import GameFileError, find_games, load_game, write_game
from agentenv.envs.alfworld.generator import TASK_TYPES, generate
from agentenv.envs.alfworld.pddl import parse_problem


def test_a_seed_names_one_task_and_the_intro_is_alfworlds_without_the_banner():
    env = agentenv.make("agentenv/ALFWorld-v0", task_type="pick_heat_then_place_in_recep")
    obs, info = env.reset(seed=4)
    again, _ = agentenv.make("agentenv/ALFWorld-v0", task_type="pick_heat_then_place_in_recep").reset(seed=4)
    assert obs == again
    intro = obs["messages"][1]["content"]
    assert intro.startswith("You are in the middle of a room. Looking quickly around you, you see ")
    assert intro.endswith(info["task"]) and "Welcome to TextWorld" not in intro
    assert info["task_type"] == "pick_heat_then_place_in_recep"
    assert "look" in obs["admissible"] and "inventory" in obs["admissible"]


def test_the_expert_solves_each_task_type_through_the_env():
    for task_type in TASK_TYPES:
        env = agentenv.make("agentenv/ALFWorld-v0", task_type=task_type, split="valid_unseen")
        env.reset(seed=2)
        for _ in range(30):
            _, reward, terminated, truncated, info = env.step(env.expert_action())
            if terminated or truncated:
                break
        assert terminated and reward == 1.0 and info["won"], task_type


def test_an_inadmissible_command_is_a_step_that_changes_nothing():
    env = agentenv.make("agentenv/ALFWorld-v0")
    obs, _ = env.reset(seed=0)
    after, reward, terminated, truncated, info = env.step("Thought: why not.\nAction: fly to the moon")
    assert after["messages"][0]["content"] == "Nothing happens."
    assert info["action_valid"] is False and reward == 0 and not (terminated or truncated)
    assert after["admissible"] == obs["admissible"]
    _, _, _, _, info = env.step("  GO TO   " + obs["admissible"][0].removeprefix("go to "))
    assert info["action_valid"] is True  # case and spacing are forgiven, as admissible matching does


def test_fifty_steps_end_the_episode_as_truncated():
    env = agentenv.make("agentenv/ALFWorld-v0")
    env.reset(seed=1)
    for step in range(1, 51):
        _, _, terminated, truncated, _ = env.step("look")
        assert not terminated and truncated == (step == 50)


def test_bad_arguments_are_errors_naming_the_choices():
    with pytest.raises(ValueError, match="valid_unseen"):
        agentenv.make("agentenv/ALFWorld-v0", split="test")
    with pytest.raises(ValueError, match="pick_two_obj_and_place"):
        agentenv.make("agentenv/ALFWorld-v0", task_type="fold_laundry")
    with pytest.raises(FileNotFoundError, match="valid_seen"):
        agentenv.make("agentenv/ALFWorld-v0", split="valid_seen", data_dir="/nonexistent/alfworld")


def write_tasks(root: Path, split: str, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        task = generate(TASK_TYPES[i % 6], split, i)
        plan = Expert(Game(parse_problem(task.problem), task.task_desc)).plan()
        paths.append(write_game(task, root, plan or []))
    return paths


def test_games_written_in_alfworlds_layout_are_found_loaded_and_played(tmp_path):
    written = write_tasks(tmp_path, "valid_seen", 6)
    assert sorted(find_games(tmp_path, "valid_seen")) == sorted(written)
    assert len(find_games(tmp_path, "valid_seen", ["pick_two_obj_and_place"])) == 1
    spec = load_game(written[0])
    assert spec.task_type == TASK_TYPES[0] and spec.walkthrough
    env = agentenv.make("agentenv/ALFWorld-v0", split="valid_seen", data_dir=str(tmp_path))
    _, info = env.reset(seed=3)
    assert info["game"] in {str(p) for p in written}


def test_the_task_is_read_from_the_grammar_when_the_file_has_only_alfworlds_keys(tmp_path):
    [path] = write_tasks(tmp_path, "train", 1)
    data = json.loads(path.read_text())
    grammar = '{"task": [{"rhs": "Your task is to: put a \\"mug\\" in sinkbasin."}], "intro": []}'
    data = {"pddl_problem": data["pddl_problem"], "grammar": grammar, "solvable": True}
    path.write_text(json.dumps(data))
    assert load_game(path).task_desc == 'Your task is to: put a "mug" in sinkbasin.'


def test_unsolvable_and_unreadable_files_are_skipped_or_named(tmp_path):
    first, second = write_tasks(tmp_path, "train", 2)
    data = json.loads(first.read_text())
    first.write_text(json.dumps({**data, "solvable": False}))
    assert find_games(tmp_path, "train") == [second]
    second.write_text("{not json")
    with pytest.raises(GameFileError, match=str(second)):
        load_game(second)


def test_the_generate_command_writes_games_the_env_plays(tmp_path, capsys):
    from agentenv.cli import main

    main(["alfworld", "generate", "--n", "4", "--split", "valid_unseen", "--out", str(tmp_path)])
    assert "wrote 4 valid_unseen games" in capsys.readouterr().out
    games = find_games(tmp_path, "valid_unseen")
    assert len(games) == 4
    for path in games:
        spec = load_game(path)
        game = Game(parse_problem(spec.problem), spec.task_desc)
        game.reset()
        won = False
        for command in spec.walkthrough or ():
            _, won = game.step(command)
        assert won, path


def test_alfworld_data_is_used_when_it_holds_a_split_and_ignored_when_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))  # importing alfworld creates such an empty folder
    _, info = agentenv.make("agentenv/ALFWorld-v0").reset(seed=0)
    assert info["game"].startswith("generated:")
    written = write_tasks(tmp_path, "train", 2)
    _, info = agentenv.make("agentenv/ALFWorld-v0").reset(seed=1)
    assert info["game"] in {str(p) for p in written}


def test_episodes_of_one_task_share_its_parsed_world():
    a, b = agentenv.make("agentenv/ALFWorld-v0"), agentenv.make("agentenv/ALFWorld-v0")
    a.reset(seed=7)
    b.reset(seed=7)
    assert a.game is not None and b.game is not None
    assert a.game.world is b.game.world and a.game.state is not b.game.state


def test_lenient_takes_a_reply_that_names_exactly_one_admissible_command():
    strict, lenient = agentenv.make("agentenv/ALFWorld-v0"), agentenv.make("agentenv/ALFWorld-v0", lenient=True)
    obs, _ = strict.reset(seed=5)
    lenient.reset(seed=5)
    target = next(a for a in obs["admissible"] if a.startswith("go to "))
    reply = f"I think I should {target} now."
    assert strict.step(reply)[4]["action_valid"] is False
    after, _, _, _, info = lenient.step(reply)
    assert info["action_valid"] is True and after["messages"][0]["content"].startswith("You arrive at")
    first, second = [a for a in after["admissible"] if a.startswith("go to ")][:2]
    assert lenient.step(f"{first} or {second}?")[4]["action_valid"] is False  # two named: still invalid


def test_the_expert_collection_bar_succeeds_everywhere_and_a_rerun_adds_nothing(tmp_path, capsys):
    from agentenv.cli import main
    from agentenv.store import TrajectoryStore

    argv = ["collect", "agentenv/ALFWorld-v0", "--policy", "expert", "-n", "6", "-g", "1", "-k", "3",
            "--out", str(tmp_path), "--progress", "off"]
    main(argv)
    episodes = list(TrajectoryStore(tmp_path).episodes())
    assert len(episodes) == 6 and all(t.success for t in episodes)
    assert len({t.extra.get("task_type") for t in episodes}) == 6
    main(argv)
    assert "+6 already done" in capsys.readouterr().out and len(TrajectoryStore(tmp_path)) == 6
