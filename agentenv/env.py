"""The environment contract: a ``gymnasium.Env`` for multi-turn text agents.

Subclasses implement three hooks and get the rest of the contract for free:

* ``_reset(options) -> (Observation, info)`` starts the episode (``self.np_random`` is already seeded),
* ``parse_action(text) -> ParsedAction`` turns the policy's raw text into a command or tool calls,
  raising :class:`~agentenv.parsing.ActionParseError` when it cannot,
* ``_step(parsed) -> StepResult`` applies a parsed action.

The base class enforces what every agentenv env promises: an action that does not parse (or is too long)
is answered with an observation that explains the expected format instead of an exception; after
``max_invalid_actions`` such actions, or ``max_turns`` steps, the episode ends as *truncated* (a limit,
neither success nor failure); ``close()`` may be called any number of times; and ``reset_async`` /
``step_async`` exist for every env, running the sync methods off the event loop unless an I/O-bound
env overrides them with native coroutines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym

from agentenv.messages import Observation, cap_text, observation
from agentenv.parsing import ActionParseError, ParsedAction, ReActParser
from agentenv.spaces import ChatObservation, TextAction


class ResetNeeded(RuntimeError):
    """``step`` was called before ``reset`` or after the episode ended."""


class GraderError(RuntimeError):
    """The env's reward function failed (it raised, or a test suite it runs could not): the episode's
    reward is unknown, not 0, so the collector records an infrastructure failure (``grader_error``) that is
    retried and never trained on as a zero."""


@dataclass
class StepResult:
    observation: Observation
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Env(gym.Env[Observation, str]):
    """Base class of agentenv environments (see the module docstring for the contract)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}  # type: ignore[misc]  # gymnasium: instance var
    #: the environment family shown by ``agentenv envs`` (alfworld, web, code, swe, gui, puzzle...)
    family: ClassVar[str] = "custom"
    #: True declares that ``step`` and ``expert_action`` never block and take microseconds (pure-Python text
    #: worlds), so a server may call them on its event loop instead of hopping to a worker thread. Never set
    #: it on an env that does I/O, sleeps, runs a sandbox or a browser, or may take over a millisecond.
    nonblocking_steps: ClassVar[bool] = False
    #: how a tree rollout clones an episode at a turn: "replay" (a fresh env under the same seed re-plays
    #: the parent's actions, and the collector checks every answer equals the recorded one), "snapshot"
    #: (the env implements ``_snapshot``/``_restore``) or "none" (its state is not a function of seed and
    #: actions: branching refuses it with an error instead of producing diverged children)
    clone_mode: ClassVar[str] = "replay"

    def __init__(
        self,
        *,
        max_turns: int | None = None,
        max_invalid_actions: int | None = 5,
        max_action_chars: int = 20_000,
        invalid_action_reward: float = 0.0,
        render_mode: str | None = None,
    ):
        self.max_turns = max_turns
        self.max_invalid_actions = max_invalid_actions
        self.max_action_chars = max_action_chars
        self.invalid_action_reward = invalid_action_reward
        self.render_mode = render_mode
        self.observation_space = ChatObservation()
        self.action_space = TextAction(max_length=10 * max_action_chars)
        self.turn = 0
        self.invalid_actions = 0
        self._done = True
        self._closed = False
        self._transcript: list[str] = []

    # ----- hooks for subclasses ---------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        raise NotImplementedError  # abstract: every env defines its own reset

    def _step(self, action: ParsedAction) -> StepResult:
        raise NotImplementedError  # abstract: every env defines its own step

    def parse_action(self, text: str) -> ParsedAction:
        """Default: ReAct text (``Action: <command>``), matched against the admissible actions if any."""
        return ReActParser(bare_commands=True).parse(text, self.admissible_actions())

    def admissible_actions(self) -> list[str] | None:
        """The actions that are valid now, for envs that have such a list."""
        return None

    def expert_action(self) -> str | None:
        """The action an expert would take now, as raw action text; ``None`` when the env has no expert."""
        return None

    def action_candidates(self) -> list[str] | None:
        """Actions worth trying now, for exploration without a model (the random policy picks among them);
        unlike ``admissible_actions`` they are not shown to the agent. ``None``: the env offers none."""
        return None

    def _close(self) -> None:
        """Release resources; called once however often ``close`` is called."""

    @classmethod
    def node_resources(cls, kwargs: dict[str, Any]) -> dict[str, float]:
        """The custom Ray resources a node must offer to host one worker of this env built with ``kwargs``
        (a browser, a sandbox engine), so collection on a cluster places it only where it can run. A node
        advertises them at ``ray start --resources='{"chromium": 8}'``: how many such workers it hosts."""
        return {}

    def _snapshot(self) -> Any:
        """The episode's state, for envs with ``clone_mode = "snapshot"`` (restored by ``_restore``)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no snapshots (clone_mode={self.clone_mode!r})")

    def _restore(self, state: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} keeps no snapshots (clone_mode={self.clone_mode!r})")

    def snapshot(self) -> Any:
        """A copy of the running episode's state that :meth:`restore` brings back, on this or another
        instance of the same env (after its ``reset`` with the same seed)."""
        return {"turn": self.turn, "invalid_actions": self.invalid_actions, "done": self._done,
                "transcript": list(self._transcript), "env": self._snapshot()}

    def restore(self, state: Any) -> None:
        self._restore(state["env"])
        self.turn, self.invalid_actions, self._done = state["turn"], state["invalid_actions"], state["done"]
        self._transcript = list(state["transcript"])

    # ----- the gymnasium contract -------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} was closed; make a new env")
        self.turn = 0
        self.invalid_actions = 0
        self._done = False
        obs, info = self._reset(options)
        self._transcript = [_render_obs(obs)] if self.render_mode == "ansi" else []
        return obs, info

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise ResetNeeded("call reset() before step(): the episode has not started or has ended")
        self.turn += 1
        result = self._apply(action)
        if not (result.terminated or result.truncated) and self.max_turns and self.turn >= self.max_turns:
            result.truncated = True
            result.info["truncated_by"] = "max_turns"
        self._done = result.terminated or result.truncated
        if self.render_mode == "ansi":  # kept only when asked: a long episode's pages would pile up in memory
            self._transcript += [f"> {str(action)[:500]}", _render_obs(result.observation)]
        return result.observation, float(result.reward), result.terminated, result.truncated, result.info

    def _apply(self, action: Any) -> StepResult:
        if not isinstance(action, str):
            return self._invalid(f"the action must be text, got {type(action).__name__}")
        if len(action) > self.max_action_chars:
            return self._invalid(
                f"the action is {len(action)} characters long; at most {self.max_action_chars} are accepted"
            )
        try:
            parsed = self.parse_action(action)
        except ActionParseError as e:
            return self._invalid(str(e))
        result = self._step(parsed)
        result.info.setdefault("action_valid", True)
        result.info["parsed_action"] = parsed.to_dict()
        return result

    def _invalid(self, why: str) -> StepResult:
        self.invalid_actions += 1
        info: dict[str, Any] = {"action_valid": False, "parse_error": why}
        limit = self.max_invalid_actions
        truncated = limit is not None and self.invalid_actions >= limit
        if truncated:
            info["truncated_by"] = "max_invalid_actions"
        text = f"Invalid action: {why}"
        adm = self.admissible_actions()
        return StepResult(
            observation(text, admissible=adm) if adm is not None else observation(text),
            reward=self.invalid_action_reward,
            truncated=truncated,
            info=info,
        )

    def render(self) -> str | None:
        return "\n".join(self._transcript) if self.render_mode == "ansi" else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()
        super().close()

    # ----- async twins ------------------------------------------------------------------------------
    async def reset_async(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Async ``reset``; the default runs the sync method in a worker thread so the loop never blocks."""
        return await asyncio.to_thread(lambda: self.reset(seed=seed, options=options))

    async def step_async(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Async ``step``; the default runs the sync method in a worker thread."""
        return await asyncio.to_thread(self.step, action)

    async def expert_action_async(self) -> str | None:
        return await asyncio.to_thread(self.expert_action)

    async def close_async(self) -> None:
        await asyncio.to_thread(self.close)


TRANSCRIPT_CHARS = 4000


def _render_obs(obs: Observation) -> str:
    # Tolerant of malformed observations: the transcript is for people, and a crash here would hide the
    # env's real bug from agentenv.checker's observation_format check. Each entry is capped: a transcript
    # of a long episode of large pages must not hold them all.
    msgs = obs.get("messages", []) if isinstance(obs, dict) else [obs]
    text = "\n".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in msgs)
    return cap_text(text, TRANSCRIPT_CHARS)
