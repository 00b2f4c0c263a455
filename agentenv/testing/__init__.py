"""Fakes, fixtures and fault injection for testing environments, policies and collection without a model.

The project's own tests use these; users test their envs the same way. Besides the fakes here:

* :mod:`.env_faults`: ``FaultyEnv`` wraps any env and raises, hangs, fails to grade or dies at chosen points;
* :mod:`.http_faults`: ``FaultProxy``, an HTTP proxy that answers 5xx/429, resets, stalls, trickles or
  garbles a policy server's answers; :mod:`.tcp_faults`: ``TcpFaultProxy``, partitions, blackholes and
  lost replies between an env client and its server;
* :mod:`.store_faults`: ``DiskFaults``, a store whose writes fail with ENOSPC or EIO;
* :mod:`.killers`: ``Killer`` and finders for env servers, sandboxes, browsers and Ray workers;
* :mod:`.mock_policy`: a scripted OpenAI-compatible policy server; :mod:`.hostile`: the reliability
  catalogue's hostile actions.

The checks that close every such test are :func:`agentenv.ledger.check_ledger` (nothing lost or doubled) and
:mod:`agentenv.census` (nothing left running or open).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from agentenv.env import Env, StepResult
from agentenv.hooks import BranchRequest, TreeStrategy
from agentenv.messages import Observation, observation
from agentenv.parsing import ParsedAction
from agentenv.policy import PolicyError, PolicyOutput, PolicyRequest
from agentenv.rendering import ChatRenderer, ChatTokenizer
from agentenv.testing.tcp_faults import TcpFaultProxy
from agentenv.trajectory import Trajectory


class ScriptedPolicy:
    """Answers each request with ``respond(request)`` (a function) or the next item of a list."""

    wants_expert = False

    def __init__(self, respond: Callable[[PolicyRequest], str] | Sequence[str], name: str = "scripted",
                 latency: float = 0.0, wants_expert: bool = False):
        self.name, self.version, self.latency = name, 0, latency
        self.wants_expert = wants_expert
        self._respond = respond
        self.calls = 0

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        if self.latency:
            await asyncio.sleep(self.latency)
        outs = []
        for r in requests:
            if callable(self._respond):
                text = self._respond(r)
            else:
                text = self._respond[min(self.calls, len(self._respond) - 1)]
            self.calls += 1
            outs.append(PolicyOutput(text=text))
        return outs

    async def aclose(self) -> None:
        return None


class FailingPolicy(ScriptedPolicy):
    """Raises :class:`PolicyError` for the trajectories ``fail_on`` names (all when None), else delegates."""

    def __init__(self, respond: Callable[[PolicyRequest], str] | Sequence[str], fail_on: set[str] | None = None,
                 at_turn: int = 0, hang: bool = False):
        super().__init__(respond, name="failing")
        self.fail_on, self.at_turn, self.hang = fail_on, at_turn, hang

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        for r in requests:
            if (self.fail_on is None or r.trajectory_id in self.fail_on) and r.turn == self.at_turn:
                if self.hang:
                    await asyncio.sleep(3600)
                raise PolicyError(f"injected failure for {r.trajectory_id}")
        return await super().act(requests)


class TokenizingPolicy:
    """Wraps a text policy and adds real token ids (via :class:`ChatRenderer`), with no model.

    The completion is the tokenized text plus an end token; there are no log-probs. Used to test
    prefix-stable rendering and token bookkeeping through the collector cheaply.
    """

    def __init__(self, inner: Any, tokenizer: ChatTokenizer, eos_id: int):
        self.inner, self.renderer, self.eos_id = inner, ChatRenderer(tokenizer), eos_id
        self.name, self.version, self.wants_expert = f"tok-{inner.name}", 0, inner.wants_expert

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        outs = await self.inner.act(requests)
        for r, out in zip(requests, outs, strict=True):
            out.prompt_ids = self.renderer.render(r.messages, r.continuation, r.tools)
            out.completion_ids = [*self.renderer.encode(out.text), self.eos_id]
        return outs

    async def aclose(self) -> None:
        await self.inner.aclose()


def spin(seconds: float) -> int:
    """Compute for ``seconds`` of this thread's CPU time (holding the GIL, as pure-Python env code does)."""
    end, n = time.thread_time() + seconds, 0
    while time.thread_time() < end:
        n += sum(i * i for i in range(200))
    return n


class CountdownEnv(Env):
    """A minimal deterministic env: say the number shown minus one until zero (for collector tests).

    ``raise_at`` / ``hang_at`` inject faults at a turn for seeds in ``faulty_seeds`` (all seeds if None);
    ``step_seconds`` makes each step take that long (blocking, as a slow sync env would);
    ``step_cpu_seconds`` makes it compute for that long (a CPU-bound env: a simulator, a test suite);
    ``needs`` names the custom Ray resources it claims (placement tests).
    """

    family = "test"

    def __init__(self, start: int = 3, raise_at: int | None = None, hang_at: int | None = None,
                 faulty_seeds: set[int] | None = None, step_seconds: float = 0.0, hang_seconds: float = 3.0,
                 step_cpu_seconds: float = 0.0, needs: dict[str, float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.start, self.raise_at, self.hang_at = start, raise_at, hang_at
        self.faulty_seeds, self.step_seconds, self.hang_seconds = faulty_seeds, step_seconds, hang_seconds
        self.value, self.seed_used = start, 0
        self.step_cpu_seconds = step_cpu_seconds

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        return dict(kwargs.get("needs") or {})

    def _faulty(self) -> bool:
        return self.faulty_seeds is None or self.seed_used in self.faulty_seeds

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self.seed_used = int(self.np_random.integers(0, 2**31)) if self.np_random_seed is None else int(
            self.np_random_seed)
        self.value = self.start + int(self.np_random.integers(0, 3))
        return observation(f"Count down from {self.value}. Reply 'Action: <number>'.",
                           admissible=[str(self.value - 1)]), {"task_type": "countdown"}

    def _step(self, action: ParsedAction) -> StepResult:
        if self.step_seconds:
            time.sleep(self.step_seconds)
        if self.step_cpu_seconds:
            spin(self.step_cpu_seconds)
        if self._faulty() and self.raise_at == self.turn:
            raise RuntimeError("injected env failure")
        if self._faulty() and self.hang_at == self.turn:
            time.sleep(self.hang_seconds)
        self.value -= 1
        done = self.value <= 0
        return StepResult(observation("Done!" if done else f"Now {self.value}.",
                                      admissible=[] if done else [str(self.value - 1)]),
                          reward=1.0 if done else 0.0, terminated=done)

    def admissible_actions(self) -> list[str]:
        return [str(self.value - 1)]

    def expert_action(self) -> str | None:
        return f"Action: {self.value - 1}"


class AnyReplyEnv(Env):
    """Every reply is a valid action; after ``turns`` replies the episode ends with reward 1 if the last
    reply has an even number of characters. A tiny random model gets mixed outcomes here, so trainers have
    a signal and tree rollouts have tool boundaries to branch at (tests of trainers and tree rollouts)."""

    family = "test"

    def __init__(self, turns: int = 3, obs_chars: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.turns, self.obs_chars = turns, obs_chars

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        word = ["apple", "river", "stone", "cloud"][int(self.np_random.integers(0, 4))]
        return observation(f"Say anything about {word}, {self.turns} times."), {"task_type": word}

    def parse_action(self, text: str) -> ParsedAction:
        return ParsedAction(text=text, command=text)

    def _step(self, action: ParsedAction) -> StepResult:
        if self.turn < self.turns:
            padding = "x" * self.obs_chars  # a long page or log (``obs_chars``): long-horizon memory tests
            return StepResult(observation(f"Noted ({len(action.text)} characters). Again.{padding}"))
        return StepResult(observation("Done."), reward=float(len(action.text) % 2 == 0), terminated=True)


class ForkAt(TreeStrategy):
    """A tree rollout for tests: ``roots`` episodes per task, each root that gets past ``turn`` forking
    ``count`` children there (``token_offset`` tokens into the turn), within a budget of ``budget``."""

    def __init__(self, budget: int, roots: int = 1, turn: int = 1, count: int = 2, token_offset: int = 0):
        self.total, self.roots, self.turn, self.count, self.token_offset = budget, roots, turn, count, token_offset

    def budget(self, task_index: int) -> int:
        return self.total

    def initial(self, task_index: int) -> int:
        return self.roots

    def request(self) -> BranchRequest:
        return BranchRequest(self.turn, self.count, token_offset=self.token_offset)

    def branches(self, trajectory: Trajectory) -> Sequence[BranchRequest]:
        if trajectory.parent_trajectory_id is not None or len(trajectory.turns) <= self.turn:
            return []
        return [self.request()]


def expert_text(request: PolicyRequest) -> str:
    """A respond function for :class:`ScriptedPolicy` that plays the first admissible action."""
    if request.admissible:
        return f"Action: {request.admissible[0]}"
    return "Action: none"


class FlakyProxy(TcpFaultProxy):
    """A TCP proxy in front of ``target_port`` that resets its first ``drop`` connections (as a crashing or
    restarting server does) and forwards the rest; ``connections`` counts what it accepted."""

    def __init__(self, target_port: int, drop: int = 0):
        super().__init__(target_port, reset_first=drop)


#: the namespace of the test envs below, registered when this module is imported (``resolve_id`` imports it
#: for such an id, so an env server in another process can serve them)
TEST_NAMESPACE = "agentenv-testing"


def _register_test_envs() -> None:
    import gymnasium as gym

    from agentenv.testing.env_faults import FaultyEnv

    entries: dict[str, Any] = {"Countdown-v0": CountdownEnv, "AnyReply-v0": AnyReplyEnv, "Faulty-v0": FaultyEnv}
    for name, entry in entries.items():
        if f"{TEST_NAMESPACE}/{name}" not in gym.registry:
            gym.register(f"{TEST_NAMESPACE}/{name}", entry_point=entry, disable_env_checker=True)


_register_test_envs()
