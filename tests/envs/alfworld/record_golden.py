"""Record golden traces of the REAL ALFWorld engine on the bundled sample problems.

Run from the repository root with the alfworld extra installed:

    .venv/bin/python tests/envs/alfworld/record_golden.py

For each sample in ``envs/alfworld/samples`` it writes ``tests/envs/alfworld/golden/<task_type>.json`` with two
episodes played through :class:`agentenv.envs.alfworld.reference.ReferenceEnv`:

* ``walkthrough``: odd and invalid commands first (unknown verbs, wrong object numbers, case and whitespace
  variants), then the sample's winning walkthrough with a ``look`` after every ``go to``, every admissible
  ``examine`` plus ``inventory`` and ``look`` just before the winning command, and one command after the win;
* ``explore-N``: a scripted tour that visits every receptacle and, there, opens it, examines everything examinable,
  uses every usable object twice and closes what it opened (split over several episodes to stay under the limit);
* ``scripted``: for some samples, a hand-written sequence aimed at rarer texts (several states on one object,
  listing order of same-class objects, refused takes and moves, winning by walking to the lamp);
* ``random``: a seeded random walk over the admissible commands (with some invalid ones mixed in) that runs past
  the 50-step limit.

Every step records the observation, the sorted admissible commands, reward, done and won, so the native engine can
be checked against the real one on machines without the alfworld extra. The script fails loudly if a walkthrough
does not win exactly at its last command.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from agentenv.envs.alfworld.reference import MAX_EPISODE_STEPS, TASK_TYPES, ReferenceEnv, load_sample, sample_game

GOLDEN_DIR = Path(__file__).resolve().with_name("golden")
FORMAT_VERSION = 1

#: commands the real engine must answer with "Nothing happens." at the start of every sample (or, for the
#: whitespace variant, treat as "look": PddlEnv strips the command but does not lower-case it)
START_PROBES = [
    "look",
    "inventory",
    "fly to the moon",
    "take apple 9 from fridge 1",
    "  look  ",
    "LOOK",
    "go to  fridge 1",
    "go to fridge",
    "",
    "help",
]
INVALID_COMMANDS = ["fly to the moon", "take apple 9 from fridge 1", "open the pod bay doors", "go to fridge 9", ""]
RANDOM_STEPS = MAX_EPISODE_STEPS + 5
#: per-sample scripted episodes; commands that are not admissible are kept on purpose ("Nothing happens.")
SCRIPTED: dict[str, list[str]] = {
    "pick_heat_then_place_in_recep": [
        "go to fridge 1",
        "open fridge 1",
        "take egg 2 from fridge 1",
        "take lettuce 1 from fridge 1",
        "go to microwave 1",
        "heat egg 2 with microwave 1",
        "examine egg 2",
        "go to sinkbasin 1",
        "clean egg 2 with sinkbasin 1",
        "examine egg 2",
        "go to fridge 1",
        "cool egg 2 with fridge 1",
        "examine egg 2",
        "cool egg 2 with fridge 1",
        "move egg 2 to fridge 1",
        "take lettuce 1 from fridge 1",
        "go to microwave 1",
        "heat lettuce 1 with microwave 1",
        "open microwave 1",
        "take mug 1 from microwave 1",
        "move lettuce 1 to microwave 1",
        "close microwave 1",
        "go to countertop 1",
        "go to stoveburner 1",
        "move lettuce 1 to countertop 1",
        "examine countertop 1",
        "take kettle 1 from stoveburner 1",
        "examine kettle 1",
        "inventory",
        "look",
    ],
    "pick_clean_then_place_in_recep": [
        "go to countertop 1",
        "take knife 1 from countertop 1",
        "go to diningtable 1",
        "slice apple 1 with knife 1",
        "examine knife 1",
        "go to fridge 1",
        "slice egg 1 with knife 1",
        "open fridge 1",
        "move knife 1 to fridge 1",
        "go to sinkbasin 1",
        "clean knife 1 with sinkbasin 1",
        "examine knife 1",
        "move knife 1 to sinkbasin 1",
        "go to diningtable 1",
        "take apple 1 from diningtable 1",
        "examine apple 1",
        "go to sinkbasin 1",
        "clean apple 1 with sinkbasin 1",
        "examine apple 1",
        "go to microwave 1",
        "heat apple 1 with microwave 1",
        "examine apple 1",
        "go to fridge 1",
        "cool apple 1 with fridge 1",
        "examine apple 1",
        "move apple 1 to fridge 1",
        "take egg 1 from fridge 1",
        "examine egg 1",
    ],
    "pick_two_obj_and_place": [
        "go to diningtable 1",
        "take apple 1 from diningtable 1",
        "go to garbagecan 1",
        "move apple 1 to garbagecan 1",
        "go to countertop 2",
        "take apple 2 from countertop 2",
        "go to garbagecan 1",
        "move apple 2 to garbagecan 1",
        "examine garbagecan 1",
        "take apple 1 from garbagecan 1",
        "go to countertop 2",
        "move apple 1 to countertop 2",
        "look",
        "go to fridge 1",
        "open fridge 1",
        "go to garbagecan 1",
        "take apple 2 from garbagecan 1",
        "go to fridge 1",
        "move apple 2 to fridge 1",
        "go to countertop 2",
        "take apple 1 from countertop 2",
        "go to fridge 1",
        "move apple 1 to fridge 1",
    ],
    "look_at_obj_in_light": [
        "use desklamp 1",
        "go to desk 1",
        "use desklamp 1",
        "take mug 1 from desk 1",
        "examine mug 1",
        "go to sidetable 1",
        "use desklamp 1",
        "move mug 1 to sidetable 1",
        "take alarmclock 2 from sidetable 1",
        "examine alarmclock 2",
        "go to drawer 1",
        "open drawer 1",
        "move alarmclock 2 to drawer 1",
        "go to desk 1",
        "look",
    ],
}
EXPLORE_BUDGET = MAX_EPISODE_STEPS - 12  # start a new explore episode before a receptacle's block could hit the limit
RANDOM_INVALID_PROB = 0.15


def _state(obs: str, infos: dict[str, Any]) -> dict[str, Any]:
    return {"obs": obs, "admissible_commands": list(infos["admissible_commands"]), "won": bool(infos["won"])}


class _Recorder:
    def __init__(self, env: ReferenceEnv) -> None:
        self.env = env
        self.steps: list[dict[str, Any]] = []
        self.last_admissible: list[str] = []
        self.step_times: list[float] = []

    def reset(self, game: dict[str, Any]) -> tuple[dict[str, Any], float]:
        self.steps = []
        t0 = time.perf_counter()
        obs, infos = self.env.reset(game)
        elapsed = time.perf_counter() - t0
        self.last_admissible = list(infos["admissible_commands"])
        return _state(obs, infos), elapsed

    def step(self, command: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        obs, reward, done, infos = self.env.step(command)
        self.step_times.append(time.perf_counter() - t0)
        self.last_admissible = list(infos["admissible_commands"])
        record = {"command": command, **_state(obs, infos), "reward": reward, "done": done}
        self.steps.append(record)
        return record


def _walkthrough_commands(walkthrough: list[str]) -> list[str]:
    """The walkthrough, with ``look`` after every move; the examine probes are added live (they need the state)."""
    commands: list[str] = []
    for command in walkthrough[:-1]:
        commands.append(command)
        if command.startswith("go to "):
            commands.append("look")
    return commands


def _explore(rec: _Recorder, game: dict[str, Any], task_type: str) -> list[dict[str, Any]]:
    """Tour every receptacle; a new episode starts whenever the step budget of the current one runs low."""
    episodes: list[dict[str, Any]] = []
    reset_state, _ = rec.reset(game)
    targets = sorted(c[len("go to ") :] for c in rec.last_admissible if c.startswith("go to "))

    def flush() -> None:
        episodes.append({"name": f"explore-{len(episodes) + 1}", "reset": reset_state, "steps": rec.steps})

    for target in targets:
        if len(rec.steps) >= EXPLORE_BUDGET:
            flush()
            reset_state, _ = rec.reset(game)
        if f"go to {target}" not in rec.last_admissible:
            continue  # already there (the initial location holds no receptacle, so this only follows a move)
        rec.step(f"go to {target}")
        if f"open {target}" in rec.last_admissible:
            rec.step(f"open {target}")
        for command in [c for c in rec.last_admissible if c.startswith("examine ")]:
            rec.step(command)
        for obj in [c[len("use ") :] for c in rec.last_admissible if c.startswith("use ")]:
            rec.step(f"use {obj}")
            rec.step(f"use {obj}")
            rec.step(f"examine {obj}")
        if f"close {target}" in rec.last_admissible:
            rec.step(f"close {target}")
            rec.step(f"examine {target}")
        if rec.steps[-1]["done"]:
            raise AssertionError(f"{task_type}: an explore episode ended early: {rec.steps[-1]}")
    flush()
    return episodes


def record_sample(task_type: str, env: ReferenceEnv, seed: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Play both episodes of one sample and return the golden trace plus timings."""
    _, meta = load_sample(task_type)
    walkthrough: list[str] = meta["walkthrough"]
    game = sample_game(task_type)
    rec = _Recorder(env)

    # Episode 1: probes, walkthrough, win.
    reset_state, reset_time = rec.reset(game)
    for command in START_PROBES:
        rec.step(command)
    for command in _walkthrough_commands(walkthrough):
        record = rec.step(command)
        if record["done"]:
            raise AssertionError(f"{task_type}: the episode ended early at {command!r}")
    for command in [c for c in rec.last_admissible if c.startswith("examine ")] + ["inventory", "look"]:
        rec.step(command)
    final = rec.step(walkthrough[-1])
    if not (final["won"] and final["done"] and final["reward"] == 1.0):
        raise AssertionError(f"{task_type}: the walkthrough did not win: {final}")
    rec.step("look")  # after the end: the batch env replays the last state
    episode_walk = {"name": "walkthrough", "reset": reset_state, "steps": rec.steps}

    # Episodes explore-N: visit every receptacle, open/examine/use/close there.
    explore = _explore(rec, game, task_type)

    scripted: list[dict[str, Any]] = []
    if task_type in SCRIPTED:
        reset_state3, _ = rec.reset(game)
        for command in SCRIPTED[task_type]:
            rec.step(command)
        scripted.append({"name": "scripted", "reset": reset_state3, "steps": rec.steps})

    # Last episode: seeded random walk past the step limit.
    rng = random.Random(seed)
    reset_state2, reset_time2 = rec.reset(game)
    for _ in range(RANDOM_STEPS):
        if rng.random() < RANDOM_INVALID_PROB:
            command = rng.choice(INVALID_COMMANDS)
        else:
            command = rng.choice(rec.last_admissible)
        rec.step(command)
    episode_random = {"name": "random", "seed": seed, "reset": reset_state2, "steps": rec.steps}

    trace = {
        "format_version": FORMAT_VERSION,
        "task_type": task_type,
        "task_desc": meta["task_desc"],
        "problem_file": f"envs/alfworld/samples/{task_type}.pddl",
        "walkthrough": walkthrough,
        "max_episode_steps": MAX_EPISODE_STEPS,
        "recorded_with": {pkg: metadata.version(pkg) for pkg in ("alfworld", "textworld")},
        "episodes": [episode_walk, *explore, *scripted, episode_random],
    }
    steps = rec.step_times
    timings = {"reset_s": (reset_time + reset_time2) / 2, "step_s": sum(steps) / len(steps), "steps": len(steps)}
    return trace, timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("task_types", nargs="*", default=list(TASK_TYPES), help="samples to record (default: all)")
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20260101, help="base seed of the random walks")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    with ReferenceEnv() as env:
        for index, task_type in enumerate(args.task_types):
            trace, timings = record_sample(task_type, env, seed=args.seed + TASK_TYPES.index(task_type))
            path = args.out / f"{task_type}.json"
            path.write_text(json.dumps(trace, indent=1) + "\n")
            print(
                f"[{index + 1}/{len(args.task_types)}] {task_type}: reset {timings['reset_s']:.3f} s, "
                f"step {1000 * timings['step_s']:.1f} ms over {timings['steps']} steps -> {path}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
