"""ALFWorld game files on disk: find, read and write them in ALFWorld's own layout.

ALFWorld keeps one game per trial folder, ``<split>/<task_type>-<obj>-<mrecep>-<recep>-<scene>/<trial>/``,
holding ``traj_data.json`` (the task type and its parameters) and ``game.tw-pddl`` (JSON: the PDDL domain, the
text grammar with the task sentence injected, the PDDL problem, ``solvable`` and a ``walkthrough``). Real
ALFWorld data under ``$ALFWORLD_DATA`` and our generated games use the same layout, so one loader serves both
and our games also load in ALFWorld itself. Like ALFWorld, the loader skips movable-receptacle and sliced
tasks (no ALFWorld task type has them) and games not known to be solvable.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .generator import TASK_TYPES, GeneratedTask

#: ALFWorld's data splits; its train / in-distribution / out-of-distribution evaluation sets
DATA_SPLITS = ("train", "valid_seen", "valid_unseen")
log = logging.getLogger(__name__)
_warned: set[str] = set()
_TASK_RULE = re.compile(r'"task"\s*:\s*\[\s*\{\s*"rhs"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)


class GameFileError(ValueError):
    """A game file that cannot be read, naming the file."""


@dataclass(frozen=True)
class GameSpec:
    """What a game file holds that the native engine needs."""

    path: str
    task_type: str
    problem: str
    task_desc: str
    walkthrough: tuple[str, ...] | None = None


def data_root() -> Path | None:
    """``$ALFWORLD_DATA`` (ALFWorld's own variable) when it names an existing folder, else None.

    Importing alfworld sets the variable (and creates ``~/.cache/alfworld``) whether or not data was
    downloaded, so a folder without any split means "no data" (with a warning), not an error.
    """
    root = os.environ.get("ALFWORLD_DATA")
    if not root:
        return None
    path = Path(root).expanduser()
    if not any((base / split).is_dir() for base in (path, path / "json_2.1.1") for split in DATA_SPLITS):
        if root not in _warned:
            _warned.add(root)
            log.warning("ALFWORLD_DATA=%s holds no ALFWorld split; using generated ALFWorld tasks", root)
        return None
    return path


def find_games(root: str | os.PathLike[str], split: str, task_types: Iterable[str] = TASK_TYPES) -> list[Path]:
    """The solvable game files of ``split`` under ``root`` (``root/<split>`` or ALFWorld's
    ``root/json_2.1.1/<split>``), sorted, limited to ``task_types``."""
    if split not in DATA_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(DATA_SPLITS)}")
    base = Path(root).expanduser()
    folder = next((p for p in (base / split, base / "json_2.1.1" / split) if p.is_dir()), None)
    if folder is None:
        raise FileNotFoundError(f"no {split} split under {base} (looked for {split}/ and json_2.1.1/{split}/)")
    wanted = set(task_types)
    games = []
    for traj in sorted(folder.rglob("traj_data.json")):
        trial = traj.parent
        game = trial / "game.tw-pddl"
        if "movable" in str(trial) or "Sliced" in str(trial) or not game.exists():
            continue
        if trial.parent.name.split("-", 1)[0] in wanted and _solvable(game):
            games.append(game)
    return games


def _solvable(game: Path) -> bool:
    try:
        return bool(json.loads(game.read_text()).get("solvable"))
    except (OSError, ValueError):
        return True  # unreadable files are reported by load_game, with their name, when played


def load_game(path: str | os.PathLike[str]) -> GameSpec:
    """Read a ``game.tw-pddl`` file (ALFWorld's or ours)."""
    path = Path(path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GameFileError(f"{path}: not a readable ALFWorld game file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("pddl_problem"), str):
        raise GameFileError(f"{path}: no 'pddl_problem' in the game file")
    task_desc = data.get("task_desc") or _task_from_grammar(data.get("grammar"), path)
    task_type = data.get("task_type") or path.parent.parent.name.split("-", 1)[0]
    walkthrough = data.get("walkthrough")
    return GameSpec(str(path), task_type, data["pddl_problem"], task_desc,
                    tuple(walkthrough) if isinstance(walkthrough, list) else None)


def _task_from_grammar(grammar: Any, path: Path) -> str:
    match = _TASK_RULE.search(grammar) if isinstance(grammar, str) else None
    if match is None:
        raise GameFileError(f"{path}: neither 'task_desc' nor a grammar with a 'task' rule")
    return str(json.loads(f'"{match.group(1)}"'))


def write_game(task: GeneratedTask, out: str | os.PathLike[str], walkthrough: list[str]) -> Path:
    """Write ``task`` under ``out/<split>/`` in ALFWorld's layout; returns the game file's path.

    The file carries the ALFRED domain and grammar when the alfworld package is installed (so ALFWorld itself
    can play it), and always the problem, the task sentence and the expert's walkthrough.
    """
    name = f"{task.task_type}-{task.obj}-None-{task.recep or task.toggle}-{task.floor_plan.removeprefix('FloorPlan')}"
    trial = Path(out) / task.split / name / f"trial_{task.seed:06d}"
    trial.mkdir(parents=True, exist_ok=True)
    game: dict[str, Any] = {"pddl_problem": task.problem, "task_desc": task.task_desc, "task_type": task.task_type,
                            "solvable": True, "walkthrough": walkthrough}
    try:
        from .reference import game_json

        game = {**game_json(task.problem, task.task_desc, walkthrough=walkthrough, solvable=True), **game}
    except ImportError:
        pass
    traj = {"task_type": task.task_type, "generator": task.metadata(),
            "pddl_params": {"object_target": task.obj, "parent_target": task.recep or "",
                            "toggle_target": task.toggle or "", "mrecep_target": "", "object_sliced": False}}
    (trial / "traj_data.json").write_text(json.dumps(traj, indent=1) + "\n")
    path = trial / "game.tw-pddl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(game))
    tmp.replace(path)
    return path
