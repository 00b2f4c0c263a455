"""Policies without a model: uniform random actions and the env's own expert.

Both return text only (no token ids), so trajectories they collect have empty token fields.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Sequence
from typing import Any

from agentenv.messages import tool_name, tool_parameters
from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest


class RandomPolicy:
    """Picks uniformly among the admissible actions, else among the env's action candidates (web pages:
    the actions on the page's elements), else among ``actions``, else samples a tool call whose arguments
    satisfy the tool's JSON schema (types, enums, numeric bounds).

    A request with ``sampling.seed`` gets its own generator (seeded by the policy's seed and the request's),
    so its action does not depend on which other requests came first.
    """

    wants_expert = False
    wants_candidates = True

    def __init__(self, seed: int = 0, actions: Sequence[str] | None = None, name: str = "random"):
        self.name = name
        self.version = 0
        self.seed = seed
        self.actions = list(actions) if actions else None
        self._rng = random.Random(seed)

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [PolicyOutput(text=self.choose(r)) for r in requests]

    async def aclose(self) -> None:
        pass

    def choose(self, request: PolicyRequest) -> str:
        seed = request.sampling.seed
        rng = self._rng if seed is None else random.Random(f"{self.seed}:{seed}")
        if request.admissible:
            return rng.choice(request.admissible)
        if request.candidates:
            return rng.choice(request.candidates)
        if self.actions:
            return rng.choice(self.actions)
        if request.tools:
            tool = rng.choice(request.tools)
            call = {"name": tool_name(tool), "arguments": sample_arguments(tool_parameters(tool), rng)}
            return f"<tool_call>{json.dumps(call, ensure_ascii=False)}</tool_call>"
        raise PolicyError(
            "RandomPolicy has no action space for this request: it has no admissible actions and no tools; "
            "pass an action space with RandomPolicy(actions=[...])"
        )


def sample_arguments(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Random arguments for a tool's ``parameters`` schema: every required key, each optional one half the time."""
    props: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    return {key: sample_value(spec, rng) for key, spec in props.items() if key in required or rng.random() < 0.5}


def sample_value(spec: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A random value satisfying a JSON-schema fragment (enum, const, integer, number, boolean, string,
    array, object; anything else gets a short random string)."""
    if spec.get("enum"):
        return rng.choice(list(spec["enum"]))
    if "const" in spec:
        return spec["const"]
    kind = spec.get("type")
    if isinstance(kind, list):  # ["integer", "null"]: take the first concrete type
        kind = next((k for k in kind if k != "null"), None)
    if kind == "integer":
        lo, hi = _bounds(spec, integer=True)
        return rng.randint(int(lo), int(hi))
    if kind == "number":
        lo, hi = _bounds(spec, integer=False)
        return rng.uniform(lo, hi)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array" and depth < 4:
        n = max(int(spec.get("minItems", 1)), 0)
        return [sample_value(spec.get("items") or {}, rng, depth + 1) for _ in range(n)]
    if kind == "object" and depth < 4:
        props: dict[str, Any] = spec.get("properties") or {}
        return {k: sample_value(v, rng, depth + 1) for k, v in props.items()}
    lo_len = int(spec.get("minLength", 1))
    hi_len = max(lo_len, min(int(spec.get("maxLength", 8)), lo_len + 7))
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo_len, hi_len)))


def _bounds(spec: dict[str, Any], integer: bool) -> tuple[float, float]:
    """The [lo, hi] range a number must lie in (exclusive bounds step in by 1 for integers)."""
    step = 1 if integer else 0
    lo: float | None = spec.get("minimum")
    if lo is None and isinstance(spec.get("exclusiveMinimum"), int | float):
        lo = spec["exclusiveMinimum"] + step
    hi: float | None = spec.get("maximum")
    if hi is None and isinstance(spec.get("exclusiveMaximum"), int | float):
        hi = spec["exclusiveMaximum"] - step
    if integer:  # fractional bounds on an integer: round inwards
        lo = None if lo is None else math.ceil(lo)
        hi = None if hi is None else math.floor(hi)
    if lo is None:
        lo = 0 if hi is None else hi - 100
    if hi is None:
        hi = lo + (100 if integer or spec.get("minimum") is not None else 1)
    return lo, max(lo, hi)


class ExpertPolicy:
    """Returns the env's expert action (``request.expert_action``, filled in because ``wants_expert``)."""

    wants_expert = True

    def __init__(self, name: str = "expert"):
        self.name = name
        self.version = 0

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        outputs = []
        for r in requests:
            if r.expert_action is None:
                raise PolicyError(
                    f"this env has no expert (no expert action for trajectory {r.trajectory_id!r} turn {r.turn}); "
                    "ExpertPolicy needs an env whose expert_action() returns an action"
                )
            outputs.append(PolicyOutput(text=r.expert_action))
        return outputs

    async def aclose(self) -> None:
        pass
