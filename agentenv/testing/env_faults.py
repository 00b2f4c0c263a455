"""Env faults on demand: a wrapper that makes any env raise, hang, fail to grade or die at chosen points.

``FaultyEnv(inner, faults=[...])`` plays ``inner``'s episodes and injects each :class:`EnvFault` where it
matches (the call, the turn, the seed, a probability). It is itself an agentenv env, so the collector, an env
server or a Ray worker run it like any other; registered as ``agentenv-testing/Faulty-v0`` (the inner env
named by id), it can be served from another process and killed there::

    make("agentenv-testing/Faulty-v0", inner="agentenv/GuessNumber-v0",
         faults=[{"where": "step", "kind": "die", "turn": 2}])

Kinds: ``raise`` (the call raises :class:`InjectedFault`), ``hang`` (it blocks for ``seconds``), ``grader``
(the reward function fails: :class:`~agentenv.env.GraderError`), ``grader_hang`` (the reward function
blocks for ``seconds``, then fails with GraderError) and ``die`` (the process hosting the env is
SIGKILLed: use it where the env runs in a process of its own, an env server or a Ray worker).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agentenv.env import Env, GraderError, StepResult
from agentenv.messages import Observation
from agentenv.parsing import ParsedAction

Where = Literal["reset", "step", "close"]
Kind = Literal["raise", "hang", "grader", "grader_hang", "die"]


class InjectedFault(RuntimeError):
    """The failure a :class:`FaultyEnv` was told to raise."""


@dataclass(frozen=True)
class EnvFault:
    """Inject ``kind`` at ``where``: on ``turn`` (a step's index, from 0; None: every call), for ``seeds``
    (None: every episode), with ``probability`` (drawn from the wrapper's own seeded generator)."""

    where: Where = "step"
    kind: Kind = "raise"
    turn: int | None = None
    seeds: tuple[int, ...] | None = None
    probability: float = 1.0
    seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.where not in ("reset", "step", "close"):
            raise ValueError(f"where must be reset, step or close, got {self.where!r}")
        if self.kind not in ("raise", "hang", "grader", "grader_hang", "die"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.kind.startswith("grader") and self.where != "step":
            raise ValueError("grader faults happen where rewards are computed: where='step'")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @classmethod
    def of(cls, value: EnvFault | Mapping[str, Any]) -> EnvFault:
        return value if isinstance(value, EnvFault) else cls(**dict(value))


class FaultyEnv(Env):
    """Wraps an env (an instance, or an id and its kwargs) and injects ``faults``; ``fault_seed`` seeds the
    draws of faults with a probability below 1. ``injected`` counts what fired, by ``where:kind``."""

    family = "test"

    def __init__(self, inner: Env | str, faults: Iterable[EnvFault | Mapping[str, Any]] = (),
                 inner_kwargs: Mapping[str, Any] | None = None, fault_seed: int = 0, **kwargs: Any):
        super().__init__(max_invalid_actions=None, **kwargs)
        if isinstance(inner, str):
            from agentenv.registry import make

            inner = make(inner, **dict(inner_kwargs or {}))
        assert isinstance(inner, Env)
        self.inner = inner
        self.faults = [EnvFault.of(f) for f in faults]
        self._rng = random.Random(fault_seed)
        self.injected: dict[str, int] = {}
        self._seed: int | None = None
        self.clone_mode = inner.clone_mode  # type: ignore[misc]  # an instance's own, as the inner env's

    def _inject(self, where: Where, turn: int | None) -> None:
        for fault in self.faults:
            if fault.where != where or (fault.turn is not None and fault.turn != turn):
                continue
            if fault.seeds is not None and self._seed not in fault.seeds:
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            key = f"{where}:{fault.kind}"
            self.injected[key] = self.injected.get(key, 0) + 1
            if fault.kind == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault.kind in ("hang", "grader_hang"):
                time.sleep(fault.seconds)
            if fault.kind in ("grader", "grader_hang"):
                raise GraderError(f"injected grader failure at {where} turn {turn}")
            raise InjectedFault(f"injected {fault.kind} at {where} turn {turn}")

    # the wrapper keeps the inner env's whole contract (its limits, parsing and rewards)
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Observation, dict[str, Any]]:
        self._seed = seed
        self._inject("reset", None)
        self.turn = 0
        return self.inner.reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        self._inject("step", self.turn)
        self.turn += 1
        return self.inner.step(action)

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        raise AssertionError("FaultyEnv delegates reset to its inner env")

    def _step(self, action: ParsedAction) -> StepResult:
        raise AssertionError("FaultyEnv delegates step to its inner env")

    def admissible_actions(self) -> list[str] | None:
        return self.inner.admissible_actions()

    def expert_action(self) -> str | None:
        return self.inner.expert_action()

    def _snapshot(self) -> Any:
        return self.inner.snapshot()

    def _restore(self, state: Any) -> None:
        self.inner.restore(state)

    def _close(self) -> None:
        try:
            self._inject("close", None)
        finally:
            self.inner.close()
