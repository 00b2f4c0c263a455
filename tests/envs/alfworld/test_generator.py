"""The ALFWorld task generator: deterministic, valid for every task type, with disjoint scene splits."""

from __future__ import annotations

import re

import pytest

from agentenv.envs.alfworld.generator import (
    SPLITS,
    STATION,
    TASK_TYPES,
    GeneratedTask,
    catalog,
    generate,
    mangle,
)

SEEDS = range(12)


@pytest.fixture(scope="module")
def tasks() -> dict[tuple[str, str, int], GeneratedTask]:
    return {(t, s, n): generate(t, s, n) for t in TASK_TYPES for s in SPLITS for n in SEEDS}


def test_the_same_arguments_give_the_same_problem_and_other_seeds_other_ones(tasks):
    for task_type in TASK_TYPES:
        again = generate(task_type, "train", 3)
        assert again.problem == tasks[task_type, "train", 3].problem
        assert len({tasks[task_type, "train", n].problem for n in SEEDS}) == len(SEEDS)


def test_splits_use_their_own_floor_plans(tasks):
    rooms = catalog()["rooms"]
    used = {split: {t.floor_plan for (_, s, _), t in tasks.items() if s == split} for split in SPLITS}
    assert all(rooms[p]["scenes"] == "unseen" for p in used["valid_unseen"])
    assert all(rooms[p]["scenes"] == "seen" for p in used["train"] | used["valid_seen"])
    assert not used["valid_unseen"] & (used["train"] | used["valid_seen"])
    assert {t.problem for (_, s, _), t in tasks.items() if s == "train"}.isdisjoint(
        t.problem for (_, s, _), t in tasks.items() if s == "valid_seen")


def test_every_task_has_its_objects_receptacles_and_station(tasks):
    cat = catalog()
    for (task_type, _, _), task in tasks.items():
        types = [o.type for o in task.objects]
        receps = {r.type for r in task.receptacles}
        assert types.count(task.obj) >= (2 if task_type == "pick_two_obj_and_place" else 1)
        assert task.obj in cat["pickupable"]
        if task.recep is not None:
            assert task.recep in receps and task.obj in cat["can_contain"][task.recep]
        if task_type in STATION:
            station, affordance = STATION[task_type]
            assert station in receps and task.obj in cat["affordances"][affordance]
            assert f"({affordance} " in task.problem
        if task_type == "look_at_obj_in_light":
            assert task.toggle == "DeskLamp" and "DeskLamp" in types and "(toggleable DeskLamp" in task.problem
        assert task.task_desc.startswith("Your task is to: ") and task.task_desc.endswith(".")
        assert task.obj.lower() in task.task_desc


def test_the_goal_does_not_hold_at_the_start(tasks):
    for (task_type, _, _), task in tasks.items():
        if task.recep is None:
            continue
        goal_receps = {mangle(r.id) for r in task.receptacles if r.type == task.recep}
        for obj_id, recep_id in re.findall(r"\(inReceptacle (\S+) (\S+)\)", task.problem):
            if obj_id.startswith(f"{task.obj}_bar_"):
                assert recep_id not in goal_receps, (task_type, task.seed)


def test_ids_are_mangled_like_alfworld_and_declared_once(tasks):
    task = tasks["pick_and_place_simple", "train", 0]
    assert mangle("Apple|-01.65|+00.81|+00.07") == "Apple_bar__minus_01_dot_65_bar__plus_00_dot_81_bar__plus_00_dot_07"
    declared = re.findall(r"^\s+(\S+) - (?:object|receptacle|location)$", task.problem, re.MULTILINE)
    assert len(declared) == len(set(declared))
    assert not re.search(r"[|+.,]", " ".join(declared))


def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="pick_and_place_simple"):
        generate("juggle", "train", 0)
    with pytest.raises(ValueError, match="valid_unseen"):
        generate("pick_and_place_simple", "test", 0)


@pytest.mark.integration
def test_the_real_engine_loads_a_generated_problem_of_each_type():
    pytest.importorskip("textworld", reason="the real ALFWorld engine comes with the alfworld extra")
    from agentenv.envs.alfworld.reference import ReferenceEnv, game_json

    env = ReferenceEnv()
    try:
        for task_type in TASK_TYPES:
            task = generate(task_type, "valid_unseen", 1)
            obs, info = env.reset(game_json(task.problem, task.task_desc))
            assert task.task_desc in obs
            assert "go to" in " ".join(info["admissible_commands"]) and info["won"] is False
    finally:
        env.close()


def test_most_openable_receptacles_start_closed_and_some_open(tasks):
    openable = sum(t.problem.count("(openable ") for t in tasks.values())
    opened = sum(t.problem.count("(opened ") for t in tasks.values())
    assert 0.05 * openable < opened < 0.4 * openable
