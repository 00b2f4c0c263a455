"""The real ALFWorld engine harness (``agentenv.envs.alfworld.reference``), its samples and golden traces.

Tests that play the real engine are marked ``integration`` and skip without the alfworld extra; they share one
``ReferenceEnv`` (a reset of the real engine costs ~0.5-1 s). The format checks of the samples and golden traces
run everywhere, since the native engine is tested against those files on machines without the extra.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agentenv.envs.alfworld.reference import (
    MAX_EPISODE_STEPS,
    SAMPLES_DIR,
    TASK_TYPES,
    load_sample,
    task_text,
)

GOLDEN_DIR = Path(__file__).resolve().with_name("golden")
BANNER = "-= Welcome to TextWorld, ALFRED! =-\n\n"
NOTHING = "Nothing happens."


def _golden(task_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN_DIR / f"{task_type}.json").read_text())
    return data


@pytest.fixture(scope="module")
def ref_env():
    pytest.importorskip("textworld", reason="the real ALFWorld engine needs the alfworld extra")
    pytest.importorskip("alfworld", reason="the real ALFWorld engine needs the alfworld extra")
    from agentenv.envs.alfworld.reference import ReferenceEnv

    with ReferenceEnv() as env:
        yield env


# --- files that the native engine's tests rely on (no alfworld needed) ---------------------------------------


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_sample_files_are_complete(task_type: str) -> None:
    problem, meta = load_sample(task_type)
    assert meta["task_type"] == task_type
    assert meta["task_desc"].startswith("Your task is to: ") and meta["task_desc"].endswith(".")
    assert meta["walkthrough"] and all(isinstance(c, str) and c for c in meta["walkthrough"])
    assert problem.lstrip().startswith("(define (problem ") and "(:domain alfred)" in problem
    assert "(:goal" in problem and "(atLocation agent1 loc_bar_" in problem


def test_there_is_one_sample_per_task_type() -> None:
    assert sorted(p.stem for p in SAMPLES_DIR.glob("*.pddl")) == sorted(TASK_TYPES)
    assert sorted(p.stem for p in SAMPLES_DIR.glob("*.json")) == sorted(TASK_TYPES)


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_golden_trace_format(task_type: str) -> None:
    trace = _golden(task_type)
    _, meta = load_sample(task_type)
    assert trace["task_type"] == task_type and trace["walkthrough"] == meta["walkthrough"]
    assert trace["max_episode_steps"] == MAX_EPISODE_STEPS
    names = [ep["name"] for ep in trace["episodes"]]
    assert names[0] == "walkthrough" and names[-1] == "random" and any(n.startswith("explore") for n in names)
    for ep in trace["episodes"]:
        assert ep["reset"]["obs"].startswith(BANNER) and ep["reset"]["obs"].endswith(meta["task_desc"])
        states = [ep["reset"], *ep["steps"]]
        for state in states:
            assert state["admissible_commands"] == sorted(set(state["admissible_commands"]))
        for step in ep["steps"]:
            assert set(step) == {"command", "obs", "admissible_commands", "reward", "done", "won"}
            assert step["reward"] == (1.0 if step["won"] else 0.0)
    # the walkthrough wins at its last command and not before
    steps = trace["episodes"][0]["steps"]
    won_at = next(i for i, s in enumerate(steps) if s["won"])
    assert steps[won_at]["command"] == meta["walkthrough"][-1] and steps[won_at]["done"]
    # the random walk runs into the step limit (or wins before it)
    random_steps = trace["episodes"][-1]["steps"]
    first_done = next(i for i, s in enumerate(random_steps) if s["done"])
    assert first_done == MAX_EPISODE_STEPS - 1 or random_steps[first_done]["won"]


def test_task_text_accepts_both_spellings() -> None:
    assert task_text("Your task is to: put a apple in fridge.") == "put a apple in fridge"
    assert task_text("put a apple in fridge") == "put a apple in fridge"


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentenv.envs.alfworld import reference

    monkeypatch.setitem(sys.modules, "textworld", None)
    with pytest.raises(ImportError, match=r"pip install 'agentenv\[alfworld\]'"):
        reference._require()


# --- the real engine ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_game_json_matches_alfworld_game_files(ref_env: Any) -> None:
    from agentenv.envs.alfworld.reference import alfred_domain, alfred_grammar, game_json

    problem, meta = load_sample("pick_and_place_simple")
    game = game_json(problem, meta["task_desc"], walkthrough=meta["walkthrough"])
    assert list(game) == ["pddl_domain", "grammar", "pddl_problem", "solvable", "walkthrough"]
    assert game["pddl_domain"] == alfred_domain() and game["pddl_problem"] == problem
    assert game["grammar"] == alfred_grammar().replace("UNKNOWN GOAL", "put a saltshaker in drawer")
    assert game["solvable"] is True and game["walkthrough"] == meta["walkthrough"]
    assert game_json(problem, "put a saltshaker in drawer")["solvable"] is False


def _replay(ref_env: Any, task_type: str, episode: dict[str, Any]) -> None:
    """Play a golden episode's commands on the real engine and compare every state with the recording."""
    from agentenv.envs.alfworld.reference import sample_game

    obs, infos = ref_env.reset(sample_game(task_type))
    assert obs == episode["reset"]["obs"] and obs.startswith(BANNER)
    assert infos["admissible_commands"] == episode["reset"]["admissible_commands"]
    assert infos["won"] is False
    for expected in episode["steps"]:
        obs, reward, done, infos = ref_env.step(expected["command"])
        got = {"obs": obs, "admissible_commands": infos["admissible_commands"], "reward": reward, "done": done}
        assert got == {k: expected[k] for k in got}, (episode["name"], expected["command"])
        assert infos["won"] is expected["won"]
        assert all(isinstance(c, str) for c in infos["admissible_commands"])
        assert infos["admissible_commands"] == sorted(infos["admissible_commands"])


@pytest.mark.integration
@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_walkthrough_replays_the_golden_trace_and_wins_at_the_end(ref_env: Any, task_type: str) -> None:
    """Replaying the golden walkthrough episode reproduces every observation; only the winning move wins."""
    episode = _golden(task_type)["episodes"][0]
    _replay(ref_env, task_type, episode)
    won = [s["command"] for s in episode["steps"] if s["won"]]
    assert won and won[0] == load_sample(task_type)[1]["walkthrough"][-1]


@pytest.mark.integration
def test_every_golden_episode_of_one_sample_replays_exactly(ref_env: Any) -> None:
    """The real engine is deterministic: explore, scripted and random episodes replay to the same text."""
    for episode in _golden("look_at_obj_in_light")["episodes"][1:]:
        _replay(ref_env, "look_at_obj_in_light", episode)


@pytest.mark.integration
def test_invalid_commands_change_nothing_and_the_step_limit_holds(ref_env: Any) -> None:
    from agentenv.envs.alfworld.reference import sample_game

    _, infos = ref_env.reset(sample_game("look_at_obj_in_light"))
    before = infos["admissible_commands"]
    for i in range(1, MAX_EPISODE_STEPS + 1):
        command = "fly to the moon" if i % 2 else "take apple 9 from fridge 1"
        obs, reward, done, infos = ref_env.step(command)
        assert obs == NOTHING and reward == 0.0 and infos["admissible_commands"] == before
        assert done is (i == MAX_EPISODE_STEPS), i  # invalid commands count towards the limit
    # once done, the batch env replays the last state whatever the command
    assert ref_env.step("look") == (NOTHING, 0.0, True, infos)


@pytest.mark.integration
def test_reset_accepts_a_game_file_path(ref_env: Any, tmp_path: Path) -> None:
    from agentenv.envs.alfworld.reference import sample_game

    path = tmp_path / "game.tw-pddl"
    path.write_text(json.dumps(sample_game("pick_two_obj_and_place")))
    obs, infos = ref_env.reset(path)
    assert obs == _golden("pick_two_obj_and_place")["episodes"][0]["reset"]["obs"]
    assert infos["extra.gamefile"] == str(path)
    with pytest.raises(ValueError, match="tw-pddl"):
        ref_env.reset(tmp_path / "game.json")
