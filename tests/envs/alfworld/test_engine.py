"""The native ALFWorld engine (``agentenv.envs.alfworld.engine``): texts, admissible lists, goals, golden replay.

The small problem below was played on the real engine (textworld 1.7.0 + alfworld 0.4.2) to record the expected
sentences and lists; the golden-trace test replays the real engine's recordings and needs no alfworld install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentenv.envs.alfworld.engine import HELP_TEXT, NOTHING_HAPPENS, Game, World, demangle_names, display_list
from agentenv.envs.alfworld.pddl import parse_problem

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = sorted((ROOT / "tests" / "envs" / "alfworld" / "golden").glob("*.json"))

PROBLEM = """
(define (problem plan_small)
    (:domain alfred)
    (:objects
        agent1 - agent
        AppleType KnifeType DeskLampType MugType - otype
        CabinetType CounterTopType FridgeType MicrowaveType SinkBasinType DeskType - rtype
        Apple_bar_1 Apple_bar_2 Knife_bar_1 DeskLamp_bar_1 Mug_bar_1 - object
        Cabinet_bar_1 Cabinet_bar_2 CounterTop_bar_1 Fridge_bar_1 Microwave_bar_1 - receptacle
        Sink_bar_1_bar_SinkBasin Desk_bar_1 - receptacle
        loc_bar_1 loc_bar_2 loc_bar_3 loc_bar_4 loc_bar_5 loc_bar_6 loc_bar_9 - location
    )
    (:init
        (= (totalCost) 0)
        (atLocation agent1 loc_bar_9)
        (receptacleType Cabinet_bar_1 CabinetType)
        (receptacleType Cabinet_bar_2 CabinetType)
        (receptacleType CounterTop_bar_1 CounterTopType)
        (receptacleType Fridge_bar_1 FridgeType)
        (receptacleType Microwave_bar_1 MicrowaveType)
        (receptacleType Sink_bar_1_bar_SinkBasin SinkBasinType)
        (receptacleType Desk_bar_1 DeskType)
        (objectType Apple_bar_1 AppleType)
        (objectType Apple_bar_2 AppleType)
        (objectType Knife_bar_1 KnifeType)
        (objectType DeskLamp_bar_1 DeskLampType)
        (objectType Mug_bar_1 MugType)
        (openable Cabinet_bar_1)
        (openable Fridge_bar_1)
        (openable Microwave_bar_1)
        (pickupable Apple_bar_1)
        (pickupable Apple_bar_2)
        (pickupable Knife_bar_1)
        (pickupable Mug_bar_1)
        (cleanable Apple_bar_1)
        (cleanable Apple_bar_2)
        (cleanable Mug_bar_1)
        (heatable Apple_bar_1)
        (heatable Apple_bar_2)
        (heatable Mug_bar_1)
        (coolable Apple_bar_1)
        (coolable Apple_bar_2)
        (coolable Mug_bar_1)
        (sliceable Apple_bar_1)
        (sliceable Apple_bar_2)
        (toggleable DeskLamp_bar_1)
        (isReceptacleObject Mug_bar_1)
        (isCool Apple_bar_2)
        (inReceptacle Apple_bar_1 CounterTop_bar_1)
        (inReceptacle Knife_bar_1 CounterTop_bar_1)
        (inReceptacle Apple_bar_2 Fridge_bar_1)
        (inReceptacle Mug_bar_1 Cabinet_bar_2)
        (inReceptacle DeskLamp_bar_1 Desk_bar_1)
        (objectAtLocation Apple_bar_1 loc_bar_3)
        (objectAtLocation Knife_bar_1 loc_bar_3)
        (objectAtLocation Mug_bar_1 loc_bar_3)
        (objectAtLocation Apple_bar_2 loc_bar_4)
        (objectAtLocation DeskLamp_bar_1 loc_bar_6)
        (receptacleAtLocation Cabinet_bar_1 loc_bar_1)
        (receptacleAtLocation Cabinet_bar_2 loc_bar_3)
        (receptacleAtLocation CounterTop_bar_1 loc_bar_3)
        (receptacleAtLocation Fridge_bar_1 loc_bar_4)
        (receptacleAtLocation Microwave_bar_1 loc_bar_5)
        (receptacleAtLocation Sink_bar_1_bar_SinkBasin loc_bar_2)
        (receptacleAtLocation Desk_bar_1 loc_bar_6)
        (canContain CounterTopType AppleType)
        (canContain CounterTopType KnifeType)
        (canContain CounterTopType MugType)
        (canContain CabinetType AppleType)
        (canContain CabinetType MugType)
        (canContain FridgeType AppleType)
        (canContain MicrowaveType AppleType)
        (canContain SinkBasinType AppleType)
        (canContain DeskType AppleType)
    )
    (:goal GOAL)
)
"""

HEAT_GOAL = """(and (exists (?r - receptacle) (exists (?o - object) (and (heatable ?o) (objectType ?o {obj}Type)
    (receptacleType ?r {recep}Type) (isHot ?o) (inReceptacle ?o ?r)))))"""
GOALS = {
    "pick_and_place_simple": """(and (exists (?r - receptacle) (exists (?o - object) (and (inReceptacle ?o ?r)
        (objectType ?o {obj}Type) (receptacleType ?r {recep}Type)))))""",
    "pick_clean_then_place_in_recep": """(and (exists (?r - receptacle) (exists (?o - object) (and (cleanable ?o)
        (objectType ?o {obj}Type) (receptacleType ?r {recep}Type) (isClean ?o) (inReceptacle ?o ?r)))))""",
    "pick_heat_then_place_in_recep": HEAT_GOAL,
    "pick_cool_then_place_in_recep": """(and (exists (?r - receptacle) (exists (?o - object) (and (coolable ?o)
        (objectType ?o {obj}Type) (receptacleType ?r {recep}Type) (isCool ?o) (inReceptacle ?o ?r)))))""",
    "pick_two_obj_and_place": """(and (exists (?r - receptacle) (exists (?o1 - object) (and
        (objectType ?o1 {obj}Type) (receptacleType ?r {recep}Type) (inReceptacle ?o1 ?r)
        (exists (?o2 - object) (and (not (= ?o1 ?o2)) (objectType ?o2 {obj}Type) (receptacleType ?r {recep}Type)
            (inReceptacle ?o2 ?r)))))))""",
    "look_at_obj_in_light": """(and
        (exists (?ot - object ?r - receptacle ?a - agent ?l - location) (and (objectType ?ot {toggle}Type)
            (toggleable ?ot) (isToggled ?ot) (receptacleAtLocation ?r ?l) (atLocation ?a ?l) (inReceptacle ?ot ?r)))
        (exists (?o - object ?a - agent) (and (objectType ?o {obj}Type) (holds ?a ?o))))""",
}
TASK = "put a hot apple in countertop"


def make_game(goal: str = HEAT_GOAL, task: str = TASK, **fmt: str) -> Game:
    values = {"obj": "Apple", "recep": "CounterTop", "toggle": "DeskLamp", **fmt}
    game = Game.from_pddl(PROBLEM.replace("GOAL", goal.format(**values)), task)
    game.reset()
    return game


def play(game: Game, commands: list[str]) -> list[tuple[str, bool]]:
    return [game.step(command) for command in commands]


# --- names -----------------------------------------------------------------------------------------------------


def test_demangler_numbers_sorted_ids_from_the_top() -> None:
    names = demangle_names([
        "apple_bar__minus_00_dot_47_bar__plus_01_dot_15",
        "apple_bar__plus_01_dot_20_bar__plus_00_dot_90",
        "sink_bar__plus_01_dot_00_bar_sinkbasin",
        "agent1",
        "appletype",
    ])
    assert names["apple_bar__minus_00_dot_47_bar__plus_01_dot_15"] == "apple 2"  # first sorted id, highest number
    assert names["apple_bar__plus_01_dot_20_bar__plus_00_dot_90"] == "apple 1"
    assert names["sink_bar__plus_01_dot_00_bar_sinkbasin"] == "sinkbasin 1"
    assert names["agent1"] == "agent1 "  # no number: ALFWorld keeps a trailing space
    assert names["appletype"] == "appletype "


def test_names_count_only_ids_that_appear_in_facts() -> None:
    text = PROBLEM.replace("Mug_bar_1 - object", "Mug_bar_1 Apple_bar_0 - object").replace("GOAL", "(and)")
    world = World(parse_problem(text))
    assert world.names["apple_bar_1"] == "apple 2"  # apple_bar_0 is declared but in no fact: not counted
    assert "apple_bar_0" not in world.names


def test_display_list() -> None:
    assert display_list([]) == "nothing"
    assert display_list(["a x"]) == "a x"
    assert display_list(["a x", "a y"]) == "a x, and a y"
    assert display_list(["a x", "a y", "a z"]) == "a x, a y, and a z"


# --- texts and admissible lists ---------------------------------------------------------------------------------

INTRO = (
    "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, you see "
    "a cabinet 2, a cabinet 1, a countertop 1, a desk 1, a fridge 1, a microwave 1, and a sinkbasin 1.\n\n"
    "Your task is to: put a hot apple in countertop."
)
GOTOS = ["go to cabinet 1", "go to cabinet 2", "go to countertop 1", "go to desk 1", "go to fridge 1",
         "go to microwave 1", "go to sinkbasin 1"]


def test_intro_and_first_admissible_list() -> None:
    game = make_game()
    assert game.reset() == INTRO
    assert game.admissible_commands() == [*GOTOS, "help", "inventory", "look"]
    assert not game.won


def test_task_line_accepts_the_full_sentence() -> None:
    game = make_game(task="Your task is to: put a hot apple in countertop.")
    assert game.reset() == INTRO


def test_look_in_the_middle_of_the_room_lists_nothing() -> None:
    assert make_game().step("look") == ("You are in the middle of a room. Looking quickly around you, you see nothing.",
                                        False)


def test_goto_arrival_and_shared_location() -> None:
    game = make_game()
    assert game.step("go to countertop 1")[0] == (
        "You arrive at countertop 1. On the countertop 1, you see a apple 2, and a knife 1.")
    assert game.admissible_commands() == [
        "examine cabinet 1", "examine countertop 1", "go to cabinet 2", "go to desk 1", "go to fridge 1",
        "go to microwave 1", "go to sinkbasin 1", "help", "inventory", "look", "take apple 2 from countertop 1",
        "take knife 1 from countertop 1", "take mug 1 from cabinet 1"]
    assert game.step("look")[0] == "You are facing the cabinet 1, and countertop 1. Next to it, you see nothing."
    # cabinet 1 shares the countertop's location: going there is not an action
    assert game.step("go to cabinet 1")[0] == NOTHING_HAPPENS


def test_take_inventory_examine_move_and_the_floor() -> None:
    game = make_game()
    game.step("go to countertop 1")
    assert game.step("examine apple 2")[0] == NOTHING_HAPPENS  # only a held object can be examined
    assert game.step("inventory")[0] == "You are not carrying anything."
    assert game.step("take apple 2 from countertop 1")[0] == "You pick up the apple 2 from the countertop 1."
    assert game.admissible_commands() == [
        "examine apple 2", "examine cabinet 1", "examine countertop 1", "go to cabinet 2", "go to desk 1",
        "go to fridge 1", "go to microwave 1", "go to sinkbasin 1", "help", "inventory", "look",
        "move apple 2 to cabinet 1", "move apple 2 to countertop 1"]
    assert game.step("inventory")[0] == "You are carrying: a apple 2."
    assert game.step("examine apple 2")[0] == "There's nothing special about apple 2."
    assert game.step("take knife 1 from countertop 1")[0] == NOTHING_HAPPENS  # hands are full
    assert game.step("move apple 2 to cabinet 1")[0] == "You move the apple 2 to the cabinet 1."
    assert game.step("examine cabinet 1")[0] == "On the cabinet 1, you see a apple 2, and a mug 1."
    # textworld keeps not_inreceptacle(apple, countertop): the apple now shows "next to" the receptacles here
    assert game.step("look")[0] == "You are facing the cabinet 1, and countertop 1. Next to it, you see a apple 2."


def test_slice_clean_and_examine_states() -> None:
    game = make_game()
    play(game, ["go to countertop 1", "take knife 1 from countertop 1"])
    assert "slice apple 2 with knife 1" in game.admissible_commands()
    assert game.step("slice apple 2 with knife 1")[0] == "You sliced the apple 2 with the knife 1."
    assert game.step("go to sinkbasin 1")[0] == "You arrive at sinkbasin 1. On the sinkbasin 1, you see nothing."
    assert game.step("clean knife 1 with sinkbasin 1")[0] == NOTHING_HAPPENS  # knives are not cleanable here
    assert game.step("go to fridge 1")[0] == "You arrive at fridge 1. The fridge 1 is closed."
    # slicing needs the object at the location only, even inside a closed fridge
    assert "slice apple 1 with knife 1" in game.admissible_commands()
    play(game, ["move knife 1 to countertop 1"])


def test_examine_object_sentences() -> None:
    game = make_game()
    play(game, ["go to countertop 1", "take apple 2 from countertop 1", "go to sinkbasin 1"])
    assert game.step("clean apple 2 with sinkbasin 1")[0] == "You clean the apple 2 using the sinkbasin 1."
    assert game.step("examine apple 2")[0] == "This is a clean apple 2."
    play(game, ["go to microwave 1"])
    assert game.step("heat apple 2 with microwave 1")[0] == "You heat the apple 2 using the microwave 1."
    assert game.step("examine apple 2")[0] == "This is a hot and clean apple 2."
    play(game, ["go to fridge 1"])
    assert game.step("cool apple 2 with fridge 1")[0] == "You cool the apple 2 using the fridge 1."
    assert game.step("examine apple 2")[0] == "This is a cool and clean apple 2."
    play(game, ["go to cabinet 1", "move apple 2 to cabinet 1", "take mug 1 from cabinet 1"])
    assert game.step("examine mug 1")[0] == "This is a normal mug 1. In it, you see nothing."


def test_open_close_and_containers() -> None:
    game = make_game()
    game.step("go to fridge 1")
    assert game.step("take apple 1 from fridge 1")[0] == NOTHING_HAPPENS  # closed
    assert game.step("open fridge 1")[0] == "You open the fridge 1. The fridge 1 is open. In it, you see a apple 1."
    assert "close fridge 1" in game.admissible_commands() and "open fridge 1" not in game.admissible_commands()
    assert game.step("examine fridge 1")[0] == "The fridge 1 is open. In it, you see a apple 1."
    assert game.step("close fridge 1")[0] == "You close the fridge 1."
    assert game.step("examine fridge 1")[0] == "The fridge 1 is closed."
    assert game.step("go to cabinet 2")[0] == "You arrive at cabinet 2. The cabinet 2 is closed."


def test_use_always_turns_on_and_help() -> None:
    game = make_game()
    assert game.step("go to desk 1")[0] == "You arrive at desk 1. On the desk 1, you see a desklamp 1."
    assert game.step("use desklamp 1")[0] == "You turn on the desklamp 1."
    assert game.step("use desklamp 1")[0] == "You turn on the desklamp 1."  # derived after the effect: isToggled
    assert game.step("help")[0] == HELP_TEXT
    assert HELP_TEXT.startswith("Available commands:\n  look:") and HELP_TEXT.endswith("sharp object\n")


def test_invalid_commands_change_nothing() -> None:
    game = make_game()
    game.step("go to countertop 1")
    before = game.state.key()
    for command in ["", "jump", "go to nowhere", "take apple 9 from countertop 1", "take apple 2 from fridge 1",
                    "heat apple 2 with microwave 1", "open countertop 1", "move apple 2 to countertop 1",
                    "slice apple 2 with apple 1", "examine", "use apple 2", "Look"]:
        assert game.step(command) == (NOTHING_HAPPENS, False), command
    assert game.state.key() == before
    assert game.step("  look  ")[0].startswith("You are facing")  # commands are stripped, as textworld does


def test_copy_is_independent() -> None:
    game = make_game()
    twin = game.copy()
    game.step("go to countertop 1")
    game.step("take apple 2 from countertop 1")
    assert twin.state.key() != game.state.key()
    assert twin.step("look")[0].startswith("You are in the middle of a room")
    assert twin.world is game.world


# --- goals ------------------------------------------------------------------------------------------------------

WINS = {
    "pick_and_place_simple": ({"recep": "Cabinet"}, ["go to countertop 1", "take apple 2 from countertop 1",
                                                     "move apple 2 to cabinet 1"]),
    "pick_clean_then_place_in_recep": ({}, ["go to countertop 1", "take apple 2 from countertop 1",
                                            "move apple 2 to countertop 1", "take apple 2 from countertop 1",
                                            "go to sinkbasin 1", "clean apple 2 with sinkbasin 1",
                                            "go to countertop 1", "move apple 2 to countertop 1"]),
    "pick_heat_then_place_in_recep": ({}, ["go to countertop 1", "take apple 2 from countertop 1",
                                           "go to microwave 1", "heat apple 2 with microwave 1", "go to countertop 1",
                                           "move apple 2 to countertop 1"]),
    "pick_cool_then_place_in_recep": ({}, ["go to countertop 1", "take apple 2 from countertop 1",
                                           "go to fridge 1", "cool apple 2 with fridge 1", "go to countertop 1",
                                           "move apple 2 to countertop 1"]),
    "pick_two_obj_and_place": ({}, ["go to fridge 1", "open fridge 1", "take apple 1 from fridge 1",
                                    "go to countertop 1", "move apple 1 to countertop 1"]),
    "look_at_obj_in_light": ({"obj": "Knife"}, ["go to desk 1", "use desklamp 1", "go to countertop 1",
                                                "take knife 1 from countertop 1", "go to desk 1"]),
}


@pytest.mark.parametrize("task_type", sorted(GOALS))
def test_goal_is_won_exactly_at_the_last_step(task_type: str) -> None:
    fmt, commands = WINS[task_type]
    game = make_game(GOALS[task_type], **fmt)
    assert not game.won
    results = play(game, commands)
    assert [won for _, won in results] == [False] * (len(commands) - 1) + [True]
    assert all(text != NOTHING_HAPPENS for text, _ in results)
    assert game.won


def test_won_follows_the_state_back_down() -> None:
    game = make_game(GOALS["look_at_obj_in_light"], obj="Knife")
    play(game, ["go to desk 1", "use desklamp 1", "go to countertop 1", "take knife 1 from countertop 1"])
    assert game.step("go to desk 1")[1] is True
    assert game.step("go to fridge 1")[1] is False  # the lamp is no longer where the agent stands


def test_initially_won_and_or_forall_goals() -> None:
    assert make_game("(and (isCool Apple_bar_2))").won
    assert make_game("(or (isHot Apple_bar_2) (inReceptacle Mug_bar_1 Cabinet_bar_2))").won
    assert not make_game("(forall (?o - object) (pickupable ?o))").won
    # "object" is PDDL's root type: it also ranges over receptacles, locations, the agent and the type names
    assert not make_game("(forall (?o - object) (or (pickupable ?o) (toggleable ?o)))").won
    assert make_game("(forall (?r - receptacle) (exists (?l - location) (receptacleAtLocation ?r ?l)))").won
    assert not make_game("(forall (?r - receptacle) (openable ?r))").won
    assert make_game("(exists (?o - object) (not (pickupable ?o)))").won


# --- golden traces from the real engine ----------------------------------------------------------------------------


def _replay(data: dict[str, Any], episode: dict[str, Any]) -> None:
    game = Game.from_pddl((ROOT / data["problem_file"]).read_text(), data["task_desc"])
    reset = episode["reset"]
    assert game.reset() == reset["obs"]
    assert game.admissible_commands() == reset["admissible_commands"]
    assert game.won == reset["won"]
    for i, step in enumerate(episode["steps"]):
        obs, won = game.step(step["command"])
        where = f"{episode['name']} step {i}: {step['command']!r}"
        assert obs == step["obs"], where
        assert game.admissible_commands() == step["admissible_commands"], where
        assert won == step["won"], where
        if step["done"]:  # the real batch env then repeats its last state; the engine itself has no episode end
            break


@pytest.mark.skipif(not GOLDEN, reason="no golden traces recorded yet")
@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_traces_replay_identically(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["episodes"]
    for episode in data["episodes"]:
        _replay(data, episode)
