"""Guess a hidden integer; the env answers "higher" or "lower". Exercises the tool-call action style."""

from __future__ import annotations

from typing import Any

from agentenv.env import Env, StepResult
from agentenv.messages import Observation, message, observation
from agentenv.parsing import ParsedAction, ToolCallParser


class GuessNumberEnv(Env):
    """The hidden number is drawn from ``[low, high]`` by the reset seed; binary search is the expert.

    Reward 1 when the number is found, else 0; the episode is truncated after ``max_turns`` guesses.
    """

    family = "puzzle"
    nonblocking_steps = True  # microsecond steps: the env server runs them on its event loop
    clone_mode = "snapshot"  # two integers of state: a fork restores them instead of re-playing guesses

    def __init__(self, low: int = 1, high: int = 100, max_turns: int = 10, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if low >= high:
            raise ValueError(f"low ({low}) must be smaller than high ({high})")
        self.low, self.high = low, high
        self.tools = [
            {
                "type": "function",
                "function": {
                    "name": "guess",
                    "description": "Guess the hidden number.",
                    "parameters": {
                        "type": "object",
                        "properties": {"number": {"type": "integer", "minimum": low, "maximum": high}},
                        "required": ["number"],
                    },
                },
            }
        ]
        self.parser = ToolCallParser(self.tools, max_calls=1)
        self.secret = low
        self._bounds = (low, high)

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self.secret = int(self.np_random.integers(self.low, self.high + 1))
        self._bounds = (self.low, self.high)
        task = (
            f"I am thinking of an integer between {self.low} and {self.high}. Find it with the guess tool; "
            f"after each guess I say whether the number is higher or lower. You have {self.max_turns} guesses."
        )
        obs = observation(
            message("system", "You are an agent that solves tasks by calling tools. " + self.parser.format_help),
            task,
            tools=self.tools,
        )
        return obs, {"task": task}

    def parse_action(self, text: str) -> ParsedAction:
        return self.parser.parse(text)

    def _snapshot(self) -> tuple[int, tuple[int, int]]:
        return self.secret, self._bounds

    def _restore(self, state: tuple[int, tuple[int, int]]) -> None:
        self.secret, self._bounds = state[0], (state[1][0], state[1][1])

    def _step(self, action: ParsedAction) -> StepResult:
        guess = int(action.tool_calls[0].arguments["number"])
        lo, hi = self._bounds
        if guess == self.secret:
            return StepResult(observation(message("tool", f"{guess} is correct!")), 1.0, terminated=True,
                              info={"won": True})
        if guess < self.secret:
            self._bounds = (max(lo, guess + 1), hi)
            text = f"{guess} is too low: the number is higher."
        else:
            self._bounds = (lo, min(hi, guess - 1))
            text = f"{guess} is too high: the number is lower."
        return StepResult(observation(message("tool", text)), 0.0, info={"won": False})

    def expert_action(self) -> str | None:
        lo, hi = self._bounds
        return f'<tool_call>{{"name": "guess", "arguments": {{"number": {(lo + hi) // 2}}}}}</tool_call>'
