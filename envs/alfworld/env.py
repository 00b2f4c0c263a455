"""``agentenv/ALFWorld-v0``: ALFWorld's text households on the native engine.

Tasks come from real ALFWorld data when ``data_dir`` (or ``$ALFWORLD_DATA``) is given, else from the seeded
generator; either way a reset's seed picks the task, so a seed names the same episode everywhere. The agent
sees what ALFWorld's text env shows (its intro without the TextWorld banner, then each command's feedback)
and the admissible commands; it acts with ReAct text (``Action: go to fridge 1``) or a bare command. As in
ALFWorld, a command that is not admissible is still a step ("Nothing happens."), and an episode ends when
the task is done (reward 1) or after 50 steps.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction, ReActParser, mentioned_actions, normalise_command

from .engine import Game, World
from .expert import Expert
from .games import DATA_SPLITS, GameSpec, data_root, find_games, load_game
from .generator import TASK_TYPES, generate
from .pddl import parse_problem

MAX_STEPS = 50
BANNER = "-= Welcome to TextWorld, ALFRED! =-\n\n"
SYSTEM = (
    "You are an expert agent in a household. Reach the goal of your task by interacting with the room. "
    "Each turn, reply with one short thought and then exactly one admissible action, in this form:\n"
    "Thought: I need to find the apple first.\nAction: go to countertop 1"
)


class ALFWorldEnv(Env):
    """ALFWorld (text). ``task_type`` limits tasks to one of the six types; ``game_file`` plays one file.

    ``lenient=True`` takes a reply that is no admissible command but names exactly one ("I will go to
    fridge 1 now") as that command, which gives small models a signal; ALFWorld itself is strict.
    """

    family = "alfworld"

    def __init__(self, split: str = "train", task_type: str | None = None, data_dir: str | None = None,
                 game_file: str | None = None, max_turns: int = MAX_STEPS, lenient: bool = False, **kwargs: Any):
        kwargs.setdefault("max_invalid_actions", None)  # ALFWorld bounds episodes by steps only
        super().__init__(max_turns=max_turns, **kwargs)
        if split not in DATA_SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(DATA_SPLITS)}")
        if task_type is not None and task_type not in TASK_TYPES:
            raise ValueError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
        self.split, self.task_type = split, task_type
        self.game_files: list[Path] = []
        root = Path(data_dir).expanduser() if data_dir else data_root()
        if game_file is not None:
            self.game_files = [Path(game_file)]
        elif root is not None:
            self.game_files = find_games(root, split, [task_type] if task_type else TASK_TYPES)
            if not self.game_files:
                raise FileNotFoundError(f"no solvable {task_type or 'ALFWorld'} games in {split} under {root}")
        self.parser = ReActParser(bare_commands=True)
        self.lenient = lenient
        self.game: Game | None = None
        self.expert: Expert | None = None
        self.game_spec: GameSpec | None = None
        self._task_index: int | None = None

    def _task(self, seed: int) -> GameSpec:
        if self.game_files:
            return load_game(self.game_files[seed % len(self.game_files)])
        task_type = self.task_type or TASK_TYPES[seed % len(TASK_TYPES)]
        task = generate(task_type, self.split, seed)
        return GameSpec(f"generated:{task_type}:{self.split}:{seed}", task_type, task.problem, task.task_desc)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Observation, dict[str, Any]]:
        """``seed`` picks the task (the seed-th game file, or the generator's seed); ``options={"task": i}``
        picks one without reseeding; with neither, a task is drawn from the env's random generator."""
        self._task_index = seed
        return super().reset(seed=seed, options=options)

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        if options and "task" in options:
            seed = int(options["task"])
        else:
            seed = self._task_index if self._task_index is not None else int(self.np_random.integers(2**31))
        self.game_spec = self._task(seed)
        self.game = Game(world_for(self.game_spec.problem, self.game_spec.task_desc))
        self.expert = Expert(self.game, self.game_spec.task_type)
        intro = self.game.reset().removeprefix(BANNER)
        obs = observation(message("system", SYSTEM), intro, admissible=self.game.admissible_commands())
        spec = self.game_spec
        return obs, {"task_type": spec.task_type, "game": spec.path, "task": spec.task_desc}

    def parse_action(self, text: str) -> ParsedAction:
        return self.parser.parse(text)

    def admissible_actions(self) -> list[str] | None:
        return self.game.admissible_commands() if self.game is not None else None

    def _step(self, action: ParsedAction) -> StepResult:
        assert self.game is not None and action.command is not None
        admissible = self.game.admissible_commands()
        command = _match(action.command, admissible)
        if command not in admissible and self.lenient:
            mentioned = mentioned_actions(action.text, admissible)
            command = mentioned[0] if len(mentioned) == 1 else command
        feedback, won = self.game.step(command)
        info = {"won": won, "action_valid": command in admissible}
        return StepResult(observation(feedback, admissible=self.game.admissible_commands()), float(won),
                          terminated=won, info=info)

    def expert_action(self) -> str | None:
        if self.game is None or self.expert is None or self.game.won:
            return None
        command = self.expert.next_command()
        return None if command is None else f"Action: {command}"


@lru_cache(maxsize=512)
def world_for(problem: str, task_desc: str) -> World:
    """The parsed, indexed problem, shared by every episode of it (a World is read-only once built), so
    a thousand live episodes of one task cost a thousand small states, not a thousand parses."""
    return World(parse_problem(problem), task_desc)


def _match(command: str, admissible: list[str]) -> str:
    """The admissible command ``command`` names (case and spacing aside), else the command as typed."""
    wanted = normalise_command(command)
    return next((a for a in admissible if normalise_command(a) == wanted), command.strip())

