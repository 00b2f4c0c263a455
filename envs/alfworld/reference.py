"""The REAL ALFWorld text engine (textworld's ``PddlEnv`` behind ALFWorld's own wrappers), for differential tests.

Why this module exists: our native engine (``envs/alfworld/engine.py``) re-implements ALFWorld's text game for
speed, and it is only trustworthy if it agrees with the real thing. This module *is* the real thing: it builds game
files in ALFWorld's ``game.tw-pddl`` format from the installed ``alfworld`` package's domain and grammar, and plays
them through ``textworld.gym`` with exactly the stack ``alfworld.agents.environment.alfred_tw_env.AlfredTWEnv``
registers: ``EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])``, the ``AlfredDemangler`` (no
shuffling, as in evaluation) and ``AlfredInfos`` wrappers, a 50-step ``Limit``, a synchronous batch of one.

Observations are returned exactly as ALFWorld's TW env returns them, i.e. the raw grammar feedback, *including* the
``-= Welcome to TextWorld, ALFRED! =-`` banner of the intro. ALFWorld's env never strips it; stripping it (and the
task line) is done later by agent code (``BaseAgent.get_task_and_obs``, ReAct-style prompts), so it is not part of
the engine's contract.

Nothing here is imported at package import time: ``alfworld``/``textworld`` are optional (``agentenv[alfworld]``)
and are imported lazily by :func:`_require`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .generator import TASK_TYPES  # ALFWorld's six, in the order of alfred_tw_env.TASK_TYPES

MAX_EPISODE_STEPS = 50
"""ALFWorld's configs (``base_config.yaml``: ``max_nb_steps_per_episode: 50``) and ``register_games``' default."""

TASK_PLACEHOLDER = "UNKNOWN GOAL"
"""The grammar's ``task`` rule is ``Your task is to: UNKNOWN GOAL.``; ``add_task_to_grammar`` replaces this text."""

TASK_PREFIX = "Your task is to: "

SAMPLES_DIR = Path(__file__).resolve().with_name("samples")
"""Hand-written sample problems: ``<task_type>.pddl`` plus ``<task_type>.json`` (task_type, task_desc, walkthrough)."""

_INSTALL_HINT = "the real ALFWorld engine needs the alfworld extra: pip install 'agentenv[alfworld]'"


def _require() -> tuple[Any, Any, Any]:
    """Import textworld, textworld.gym and ALFWorld's wrappers, or fail with the install hint.

    Returns (textworld, textworld.gym, alfred_tw_env module).
    """
    try:
        import textworld
        import textworld.gym
        from alfworld.agents.environment import alfred_tw_env
    except ImportError as exc:  # pragma: no cover - exercised only where the extra is absent
        raise ImportError(_INSTALL_HINT) from exc
    return textworld, textworld.gym, alfred_tw_env


def _alfworld_data_file(name: str) -> str:
    """Read one of the logic files shipped inside the installed alfworld package (``alfworld/data/<name>``)."""
    try:
        return resources.files("alfworld").joinpath("data", name).read_text()
    except ModuleNotFoundError as exc:  # pragma: no cover
        raise ImportError(_INSTALL_HINT) from exc


def alfred_domain() -> str:
    """The ALFRED PDDL domain of the installed alfworld package (``alfworld/data/alfred.pddl``)."""
    return _alfworld_data_file("alfred.pddl")


def alfred_grammar() -> str:
    """The ALFRED text grammar (``alfworld/data/alfred.twl2``) with the task still set to ``UNKNOWN GOAL``."""
    return _alfworld_data_file("alfred.twl2")


def task_text(task_desc: str) -> str:
    """Normalise a task description to the goal phrase that ``add_task_to_grammar`` substitutes.

    ALFWorld substitutes the bare phrase (``put a apple in fridge``) for ``UNKNOWN GOAL`` in
    ``Your task is to: UNKNOWN GOAL.``; our sample files carry the full line the player sees
    (``Your task is to: put a apple in fridge.``). Both spellings are accepted here.
    """
    text = task_desc.strip()
    if text.startswith(TASK_PREFIX):
        text = text[len(TASK_PREFIX) :]
    if text.endswith("."):
        text = text[:-1]
    return text


def game_json(
    problem_pddl: str,
    task_desc: str,
    *,
    walkthrough: list[str] | None = None,
    solvable: bool | None = None,
) -> dict[str, Any]:
    """Build a game file dict in ALFWorld's ``game.tw-pddl`` format.

    The keys are the ones ``alfworld-generate`` writes: ``pddl_domain`` (the domain text), ``grammar`` (the twl2
    grammar with the task injected as ``add_task_to_grammar`` does: a plain ``str.replace`` of ``UNKNOWN GOAL``),
    ``pddl_problem`` (the problem text), ``solvable`` and ``walkthrough``. ``AlfredTWEnv.collect_game_files`` skips
    files whose ``solvable`` is missing or false, so a game meant for training must carry ``solvable: true``;
    textworld's ``PddlEnv.load`` reads only the first three keys and ``walkthrough``.
    """
    grammar = alfred_grammar()
    if TASK_PLACEHOLDER not in grammar:  # pragma: no cover - guards against a changed alfworld release
        raise RuntimeError("the installed alfred.twl2 has no 'UNKNOWN GOAL' placeholder")
    return {
        "pddl_domain": alfred_domain(),
        "grammar": grammar.replace(TASK_PLACEHOLDER, task_text(task_desc)),
        "pddl_problem": problem_pddl,
        "solvable": solvable if solvable is not None else walkthrough is not None,
        "walkthrough": list(walkthrough) if walkthrough is not None else None,
    }


def load_sample(task_type: str) -> tuple[str, dict[str, Any]]:
    """Read one bundled sample: its PDDL problem text and its metadata (``task_type``, ``task_desc``, ``walkthrough``).

    Needs no alfworld install, so the native engine's tests can use the same problems as the golden traces.
    """
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown ALFWorld task type {task_type!r}; expected one of {TASK_TYPES}")
    problem = (SAMPLES_DIR / f"{task_type}.pddl").read_text()
    meta: dict[str, Any] = json.loads((SAMPLES_DIR / f"{task_type}.json").read_text())
    return problem, meta


def sample_game(task_type: str) -> dict[str, Any]:
    """The bundled sample ``task_type`` as a ``game.tw-pddl`` dict (needs the alfworld extra for domain/grammar)."""
    problem, meta = load_sample(task_type)
    return game_json(problem, meta["task_desc"], walkthrough=meta["walkthrough"], solvable=True)


def _unbatch_infos(infos: Mapping[str, Any]) -> dict[str, Any]:
    """The batch env returns ``{key: [value]}``; keep the single value and copy lists so callers may mutate them."""
    out: dict[str, Any] = {}
    for key, values in infos.items():
        value = values[0]
        out[key] = list(value) if isinstance(value, list) else value
    return out


class ReferenceEnv:
    """One ALFWorld game at a time, played through the real textworld + ALFWorld stack.

    ``reset(game)`` accepts a game dict (see :func:`game_json`) or a path to a ``.tw-pddl`` file; a dict is written
    to a private temporary folder (named by its content) because textworld's loader picks its backend from the file
    extension. Each reset reloads and re-translates the game (~0.5-1 s), exactly as ALFWorld's gym env does on every
    episode; a new game also builds a new textworld env.

    ``step`` after the episode is over (won or 50 steps) behaves like ALFWorld's synchronous batch env: the last
    state is returned again and the command has no effect.
    """

    def __init__(self, max_episode_steps: int = MAX_EPISODE_STEPS) -> None:
        self.max_episode_steps = max_episode_steps
        self._env: Any = None
        self._env_path: str | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.done = False

    def _game_path(self, game: Mapping[str, Any] | str | os.PathLike[str]) -> str:
        if isinstance(game, Mapping):
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="agentenv-alfworld-")
            text = json.dumps(dict(game))
            # Named by content: resetting the same game again reuses the loaded env instead of building a new one.
            path = Path(self._tmpdir.name) / f"game-{hashlib.sha256(text.encode()).hexdigest()[:16]}.tw-pddl"
            if not path.exists():
                path.write_text(text)
            return str(path)
        path_str = os.fspath(game)
        if not path_str.endswith(".tw-pddl"):
            raise ValueError(f"textworld only loads ALFWorld games from '*.tw-pddl' files, got {path_str!r}")
        return path_str

    def _make_env(self, path: str) -> Any:
        textworld, tw_gym, alfred_tw_env = _require()
        request_infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
        env_id = tw_gym.register_games(
            [path],
            request_infos,
            batch_size=1,
            asynchronous=False,
            max_episode_steps=self.max_episode_steps,
            wrappers=[alfred_tw_env.AlfredDemangler(shuffle=False), alfred_tw_env.AlfredInfos],
        )
        return tw_gym.make(env_id)

    def reset(self, game: Mapping[str, Any] | str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
        """Start ``game``; returns the intro text and infos (``admissible_commands``, ``won``, ``extra.gamefile``)."""
        path = self._game_path(game)
        if self._env is None or path != self._env_path:
            self.close_env()
            self._env = self._make_env(path)
            self._env_path = path
        obs, infos = self._env.reset()
        self.done = False
        return obs[0], _unbatch_infos(infos)

    def step(self, command: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Play one command; returns (observation, reward, done, infos) as ALFWorld's TW env does (unbatched)."""
        if self._env is None:
            raise RuntimeError("call reset() before step()")
        obs, scores, dones, infos = self._env.step([command])
        self.done = bool(dones[0])
        return obs[0], float(scores[0]), self.done, _unbatch_infos(infos)

    def close_env(self) -> None:
        """Close the current textworld env (keeps the temporary folder for dict games)."""
        if self._env is not None:
            self._env.close()
            self._env = None
            self._env_path = None

    def close(self) -> None:
        """Close the env and delete the temporary game files written for dict games."""
        self.close_env()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> ReferenceEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
