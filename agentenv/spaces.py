"""Gymnasium spaces for text agents: free text actions and chat-message observations."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from agentenv.messages import Observation, observation_problems


class TextAction(spaces.Space[str]):
    """Any string up to ``max_length`` characters: the policy's raw output.

    ``gymnasium.spaces.Text`` restricts the character set, which a language model does not respect.
    Sampling gives random printable strings, which an env must answer with an error observation.
    """

    def __init__(self, max_length: int = 100_000, seed: int | np.random.Generator | None = None):
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        n = int(self.np_random.integers(0, 40))
        codes = self.np_random.integers(32, 127, size=n)
        return "".join(chr(int(c)) for c in codes)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"TextAction(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextAction) and other.max_length == self.max_length


class ChatObservation(spaces.Space[Observation]):
    """Observations of the form documented in :mod:`agentenv.messages`."""

    def __init__(self, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> Observation:
        return {"messages": [{"role": "user", "content": "sample"}]}

    def contains(self, x: Any) -> bool:
        return not observation_problems(x)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ChatObservation()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatObservation)
