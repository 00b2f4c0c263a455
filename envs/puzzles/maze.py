"""Walk a randomly carved grid maze to the exit. Exercises the admissible-actions (ALFWorld-like) style."""

from __future__ import annotations

from collections import deque
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction, ReActParser

SYSTEM = (
    "You are an agent in a text maze. Each turn, reply with one short thought and then one admissible action, "
    "exactly in this form:\nThought: the exit is south-east, so I go east.\nAction: go east"
)
MOVES = {"go north": (-1, 0), "go south": (1, 0), "go west": (0, -1), "go east": (0, 1)}


class MazeEnv(Env):
    """A ``size`` x ``size`` perfect maze carved by a seeded depth-first search; start top-left, exit
    bottom-right. The agent sees only its cell's open directions; reward 1 on reaching the exit."""

    family = "puzzle"
    nonblocking_steps = True  # microsecond steps: the env server runs them on its event loop

    def __init__(self, size: int = 4, max_turns: int = 30, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if size < 2:
            raise ValueError(f"size must be at least 2, got {size}")
        self.size = size
        self.open: dict[tuple[int, int], set[str]] = {}
        self.pos = (0, 0)

    def _carve(self) -> None:
        n = self.size
        self.open = {(r, c): set() for r in range(n) for c in range(n)}
        stack, seen = [(0, 0)], {(0, 0)}
        while stack:
            r, c = stack[-1]
            options = [(m, (r + dr, c + dc)) for m, (dr, dc) in MOVES.items()
                       if (r + dr, c + dc) in self.open and (r + dr, c + dc) not in seen]
            if not options:
                stack.pop()
                continue
            move, nxt = options[int(self.np_random.integers(len(options)))]
            self.open[(r, c)].add(move)
            self.open[nxt].add(_opposite(move))
            seen.add(nxt)
            stack.append(nxt)

    def _describe(self) -> str:
        exits = ", ".join(sorted(m.split()[1] for m in self.open[self.pos]))
        return f"You are in room {self.pos}. Doors lead {exits}."

    def parse_action(self, text: str) -> ParsedAction:
        """ReAct, leniently: a reply naming exactly one open door counts, so small models get a signal."""
        return ReActParser(bare_commands=True, lenient=True).parse(text, self.admissible_actions())

    def admissible_actions(self) -> list[str]:
        return sorted(self.open[self.pos])

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self._carve()
        self.pos = (0, 0)
        goal = (self.size - 1, self.size - 1)
        task = f"Find the exit of the maze in room {goal}. Rooms are (row, column); south increases the row."
        obs = observation(
            message("system", SYSTEM),
            f"{task}\n{self._describe()}",
            admissible=self.admissible_actions(),
        )
        return obs, {"task": task}

    def _step(self, action: ParsedAction) -> StepResult:
        assert action.command is not None
        dr, dc = MOVES[action.command]
        self.pos = (self.pos[0] + dr, self.pos[1] + dc)
        won = self.pos == (self.size - 1, self.size - 1)
        text = "You found the exit!" if won else self._describe()
        return StepResult(observation(text, admissible=self.admissible_actions()), float(won), terminated=won,
                          info={"won": won})

    def expert_action(self) -> str | None:
        goal = (self.size - 1, self.size - 1)
        prev: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {self.pos: None}
        queue = deque([self.pos])
        while queue:
            cell = queue.popleft()
            if cell == goal:
                break
            for move in self.open[cell]:
                dr, dc = MOVES[move]
                nxt = (cell[0] + dr, cell[1] + dc)
                if nxt not in prev:
                    prev[nxt] = (cell, move)
                    queue.append(nxt)
        cell, first = goal, None
        while (step := prev.get(cell)) is not None:
            cell, first = step
        return f"Action: {first}" if first else None


def _opposite(move: str) -> str:
    return {"go north": "go south", "go south": "go north", "go west": "go east", "go east": "go west"}[move]
