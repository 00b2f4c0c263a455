"""A seeded generator of ALFWorld problems: the six task types over households built from AI2-THOR floor plans.

A problem is written as ALFWorld writes its own: an ALFRED-domain PDDL problem (objects with mangled
AI2-THOR ids such as ``Apple_bar__minus_01_dot_65_bar__plus_00_dot_81_bar__plus_00_dot_07``, the facts the
domain's actions test, the goal formula of ALFWorld's goal library) plus the task sentence, so the native
engine and the real one (textworld's ``PddlEnv``) play the same file.

Households follow ALFRED's scenes: each of the 120 floor plans (30 kitchens, living rooms, bedrooms and
bathrooms) brings its receptacle and object types (``data/catalog.json``); the generator instantiates them
with varied counts, scatters the task's objects and distractors over receptacles that can hold them, and
leaves most openable receptacles closed and some open. Splits follow ALFWorld's: ``train`` and
``valid_seen`` use floor plans 7-30 of each room type (with different seeds), ``valid_unseen`` the held-out
floor plans 1-6, so its success measures generalisation to unseen layouts and object sets.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS: tuple[str, ...] = ("train", "valid_seen", "valid_unseen")

#: the rooms each task type is generated in (ALFRED's GOALS_VALID)
VALID_ROOMS: dict[str, frozenset[str]] = {
    "pick_and_place_simple": frozenset({"kitchen", "livingroom", "bathroom", "bedroom"}),
    "pick_two_obj_and_place": frozenset({"kitchen", "livingroom", "bathroom", "bedroom"}),
    "look_at_obj_in_light": frozenset({"livingroom", "bedroom"}),
    "pick_clean_then_place_in_recep": frozenset({"kitchen", "bathroom"}),
    "pick_heat_then_place_in_recep": frozenset({"kitchen"}),
    "pick_cool_then_place_in_recep": frozenset({"kitchen"}),
}
#: the receptacle a state-change task needs, and the affordance its object must have
STATION = {"pick_clean_then_place_in_recep": ("SinkBasin", "cleanable"),
           "pick_heat_then_place_in_recep": ("Microwave", "heatable"),
           "pick_cool_then_place_in_recep": ("Fridge", "coolable")}
#: ALFWorld's two task sentences per type (alfworld/gen/goal_library.py)
TEMPLATES: dict[str, tuple[str, str]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "look_at_obj_in_light": ("look at {obj} under the {toggle}", "examine the {obj} with the {toggle}"),
    "pick_clean_then_place_in_recep": ("put a clean {obj} in {recep}", "clean some {obj} and put it in {recep}"),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"),
    "pick_two_obj_and_place": ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
}
#: how many instances of a receptacle type a household gets (others get one)
RECEPTACLE_COUNTS = {"Cabinet": (2, 8), "Drawer": (1, 5), "Shelf": (1, 4), "CounterTop": (1, 2),
                     "StoveBurner": (2, 4), "SideTable": (1, 2), "Dresser": (1, 1), "TowelHolder": (1, 2)}
#: the chance that an openable receptacle (cabinet, drawer, fridge...) starts open
OPEN_AT_START = 0.2
#: receptacles a desk lamp stands on
LAMP_STANDS = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "TVStand")


class GenerationError(ValueError):
    """No household of the split can host the requested task."""


@dataclass(frozen=True)
class Entity:
    """One receptacle or object of a household: its AI2-THOR id and type."""

    id: str
    type: str


@dataclass
class GeneratedTask:
    """A generated problem: the PDDL text and what it asks, in ALFWorld's vocabulary."""

    task_type: str
    split: str
    seed: int
    floor_plan: str
    room: str
    obj: str
    recep: str | None
    toggle: str | None
    task_desc: str
    problem: str
    receptacles: list[Entity] = field(default_factory=list)
    objects: list[Entity] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """What a ``.json`` beside the ``.pddl`` records (everything but the problem and the entity lists)."""
        return {k: getattr(self, k) for k in ("task_type", "split", "seed", "floor_plan", "room", "obj", "recep",
                                               "toggle", "task_desc")}


@cache
def catalog() -> dict[str, Any]:
    """ALFRED's affordances and floor plans (``data/catalog.json``, see scripts/derive_alfworld_catalog.py)."""
    text = resources.files("agentenv.envs.alfworld").joinpath("data", "catalog.json").read_text()
    return dict(json.loads(text))


def mangle(thor_id: str) -> str:
    """An AI2-THOR id as ALFWorld writes it in PDDL (``Apple|-01.65|+00.81`` -> ``Apple_bar__minus_01_dot_65...``)."""
    table = {"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"}
    return "".join(table.get(ch, ch) for ch in thor_id)


def generate(task_type: str, split: str = "train", seed: int = 0) -> GeneratedTask:
    """One problem of ``task_type`` in a household of ``split``; the same arguments give the same problem."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    rng = random.Random(f"alfworld:{task_type}:{split}:{seed}")
    plans = [(name, plan) for name, plan in sorted(catalog()["rooms"].items())
             if plan["scenes"] == ("unseen" if split == "valid_unseen" else "seen")
             and plan["room"] in VALID_ROOMS[task_type]]
    rng.shuffle(plans)
    for name, plan in plans:
        choice = _choose_targets(task_type, plan, rng)
        if choice is not None:
            return _build(task_type, split, seed, name, plan, *choice, rng)
    raise GenerationError(f"no {split} floor plan can host a {task_type} task")


def _choose_targets(task_type: str, plan: dict[str, Any], rng: random.Random
                    ) -> tuple[str, str | None, str | None] | None:
    """(object type, receptacle type, lamp type) for the task in this floor plan, or None if it has none."""
    cat = catalog()
    receps = set(plan["receptacles"])
    objects = [o for o in plan["objects"] if o in cat["pickupable"]]
    if task_type == "look_at_obj_in_light":
        if "DeskLamp" not in plan["lamps"] or not receps & set(LAMP_STANDS) or not objects:
            return None
        return rng.choice(objects), None, "DeskLamp"
    if task_type in STATION:
        station, affordance = STATION[task_type]
        if station not in receps:
            return None
        objects = [o for o in objects if o in cat["affordances"][affordance]]
    station = STATION.get(task_type, ("", ""))[0]
    holds = {o: {r for r in receps if o in cat["can_contain"].get(r, ())} for o in objects}
    # the object must start somewhere other than a goal receptacle, so the goal never holds at the start
    pairs = [(o, r) for o in objects for r in sorted(holds[o]) if r != station and holds[o] - {r}]
    if not pairs:
        return None
    obj, recep = rng.choice(pairs)
    return obj, recep, None


def _build(task_type: str, split: str, seed: int, floor_plan: str, plan: dict[str, Any], obj: str,
           recep: str | None, toggle: str | None, rng: random.Random) -> GeneratedTask:
    cat = catalog()
    used_ids: set[str] = set()
    receptacles = [Entity(_thor_id(t, rng, used_ids), t) for t in plan["receptacles"]
                   for _ in range(rng.randint(*RECEPTACLE_COUNTS.get(t, (1, 1))))]
    rng.shuffle(receptacles)
    holders = {t: [r for r in receptacles if t in cat["can_contain"].get(r.type, ())] for t in plan["objects"]}
    n_targets = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    distractor_types = [t for t in plan["objects"] if t != obj and holders.get(t)]
    distractors = rng.sample(distractor_types, min(len(distractor_types), rng.randint(4, 10)))
    placements: list[tuple[Entity, Entity]] = []
    forbidden = {r.id for r in receptacles if r.type == recep}  # the goal must not hold at the start
    for kind, count in [(obj, n_targets), *((t, rng.randint(1, 2)) for t in distractors)]:
        spots = [r for r in holders.get(kind, []) if kind != obj or r.id not in forbidden]
        for _ in range(count if spots else 0):
            placements.append((Entity(_thor_id(kind, rng, used_ids), kind), rng.choice(spots)))
    if not any(o.type == obj for o, _ in placements):
        raise GenerationError(f"{floor_plan} has nowhere to put a {obj} but the goal receptacle")
    if toggle is not None:
        stands = [r for r in receptacles if r.type in LAMP_STANDS]
        placements.append((Entity(_thor_id(toggle, rng, used_ids), toggle), rng.choice(stands)))
    template = rng.choice(TEMPLATES[task_type])
    task_desc = template.format(obj=obj.lower(), recep=(recep or "").lower(), toggle=(toggle or "").lower())
    problem = _problem_text(f"{task_type}-{split}-{seed}", receptacles, placements, rng,
                            _goal(task_type, obj, recep, toggle))
    return GeneratedTask(task_type, split, seed, floor_plan, plan["room"], obj, recep, toggle,
                         f"Your task is to: {task_desc}.", problem, receptacles, [o for o, _ in placements])


def _thor_id(kind: str, rng: random.Random, used: set[str]) -> str:
    """A fresh AI2-THOR-style id: ``Type|x|y|z`` with signed two-decimal coordinates. Basins are parts of
    their fixture in AI2-THOR (``Sink|x|y|z|SinkBasin``), and ALFWorld's names rely on that form."""
    while True:
        x, y, z = (rng.uniform(-3, 3) for _ in range(3))
        thor = f"{kind}|{x:+06.2f}|{abs(y):+06.2f}|{z:+06.2f}"
        if kind.endswith("Basin"):
            thor = f"{kind.removesuffix('Basin')}{thor.removeprefix(kind)}|{kind}"
        if thor not in used:
            used.add(thor)
            return thor


def _location(rng: random.Random, used: set[str]) -> str:
    while True:
        x, z = rng.randint(-12, 12), rng.randint(-12, 12)
        loc = f"loc|{x}|{z}|{rng.choice((0, 1, 2, 3))}|{rng.choice((0, 30, 45, 60))}"
        if loc not in used:
            used.add(loc)
            return loc


def _problem_text(name: str, receptacles: list[Entity], placements: list[tuple[Entity, Entity]],
                  rng: random.Random, goal: str) -> str:
    cat = catalog()
    used: set[str] = set()
    start = _location(rng, used)
    where = {r.id: _location(rng, used) for r in receptacles}
    objects = [o for o, _ in placements]
    otypes = sorted({o.type for o in objects})
    rtypes = sorted({r.type for r in receptacles})
    decl = ["agent1 - agent", *(f"{t}Type - otype" for t in otypes), *(f"{t}Type - rtype" for t in rtypes),
            *(f"{mangle(o.id)} - object" for o in sorted(objects, key=lambda e: e.id)),
            *(f"{mangle(r.id)} - receptacle" for r in sorted(receptacles, key=lambda e: e.id)),
            *(f"{mangle(loc)} - location" for loc in sorted(used))]
    facts = [f"(atLocation agent1 {mangle(start)})"]
    facts += [f"(receptacleType {mangle(r.id)} {r.type}Type)" for r in receptacles]
    openable = [r for r in receptacles if r.type in cat["openable"]]
    facts += [f"(openable {mangle(r.id)})" for r in openable]
    facts += [f"(opened {mangle(r.id)})" for r in openable if rng.random() < OPEN_AT_START]
    facts += [f"(receptacleAtLocation {mangle(r.id)} {mangle(where[r.id])})" for r in receptacles]
    facts += [f"(canContain {rt}Type {ot}Type)" for rt in rtypes for ot in otypes
              if ot in cat["can_contain"].get(rt, ())]
    for o, r in placements:
        facts += [f"(objectType {mangle(o.id)} {o.type}Type)", f"(inReceptacle {mangle(o.id)} {mangle(r.id)})",
                  f"(objectAtLocation {mangle(o.id)} {mangle(where[r.id])})"]
        if o.type in cat["pickupable"] or o.type in cat["movable_receptacles"]:
            facts.append(f"(pickupable {mangle(o.id)})")
        if o.type in cat["movable_receptacles"]:
            facts.append(f"(isReceptacleObject {mangle(o.id)})")
        facts += [f"({flag} {mangle(o.id)})" for flag in ("cleanable", "heatable", "coolable", "sliceable",
                                                          "toggleable") if o.type in cat["affordances"][flag]]
    indent = "\n        "
    return (f"(define (problem {name})\n    (:domain alfred)\n    (:objects{indent}{indent.join(decl)}\n    )\n"
            f"    (:init{indent}{indent.join(facts)}\n    )\n    {goal}\n)\n")


def _goal(task_type: str, obj: str, recep: str | None, toggle: str | None) -> str:
    """The goal formula of ALFWorld's goal library for this task."""
    placed = f"(objectType ?o {obj}Type) (receptacleType ?r {recep}Type)"
    if task_type == "look_at_obj_in_light":
        return (f"(:goal (and (exists (?ot - object ?r - receptacle ?a - agent ?l - location) (and "
                f"(objectType ?ot {toggle}Type) (toggleable ?ot) (isToggled ?ot) (receptacleAtLocation ?r ?l) "
                f"(atLocation ?a ?l) (inReceptacle ?ot ?r))) "
                f"(exists (?o - object ?a - agent) (and (objectType ?o {obj}Type) (holds ?a ?o)))))")
    if task_type == "pick_two_obj_and_place":
        return (f"(:goal (and (exists (?r - receptacle) (exists (?o1 - object) (and (objectType ?o1 {obj}Type) "
                f"(receptacleType ?r {recep}Type) (inReceptacle ?o1 ?r) (exists (?o2 - object) (and "
                f"(not (= ?o1 ?o2)) (objectType ?o2 {obj}Type) (receptacleType ?r {recep}Type) "
                f"(inReceptacle ?o2 ?r))))))))")
    state = {"pick_clean_then_place_in_recep": "(cleanable ?o) (isClean ?o) ",
             "pick_heat_then_place_in_recep": "(heatable ?o) (isHot ?o) ",
             "pick_cool_then_place_in_recep": "(coolable ?o) (isCool ?o) "}.get(task_type, "")
    return (f"(:goal (and (exists (?r - receptacle) (exists (?o - object) (and {state}{placed} "
            f"(inReceptacle ?o ?r))))))")
