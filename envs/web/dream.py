"""DynaWeb's dreams: a trained web world model served as an environment (``agentenv/Dream-<web env>``).

A dream starts from a real first page (a recorded episode of the real env: its task and page, exactly as
the agent saw them), and each action goes to the world model instead of the browser: it writes Δ
(:mod:`.delta`), Δ is applied to the page, and the agent sees the result in the real env's own format.
So the collector, the trainers and tree rollouts run on dreams unchanged, and a dream state is a page and
a history, so cloning one is free (``clone_mode = "snapshot"``).

The dream ends when the world model says the task is over, at the real env's answer action (for envs that
have one) or at the horizon (``max_turns``). The reward is the world model's (``reward="flag"``: the
reward it predicts for each step) or a judge's (``reward="judge"``: a policy reads the task and the dream
and answers yes or no at its end). Every turn is marked imagined and keeps the world model's raw Δ for
audit; a Δ that does not fit the page leaves the page as it was and says why (``info["delta_error"]``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from agentenv.env import Env, StepResult
from agentenv.messages import Message, Observation, content_text, message, observation
from agentenv.parsing import ParsedAction
from agentenv.policy import Policy, PolicyRequest, SamplingParams
from agentenv.trajectory import Trajectory

from .browser_env import page_candidates, page_message, split_page_message
from .delta import DeltaError, apply, parse_delta
from .transitions import world_model_messages

PREFIX = "Dream-"
T = TypeVar("T")

JUDGE_PROMPT = (
    "You judge whether a web agent completed its task. {task}\n\nWhat the agent did, with the page it saw "
    "after each action:\n{transcript}\n\nDid the agent complete the task? Answer with one word: yes or no."
)


def dream_id(real_id: str) -> str:
    """``agentenv/MiniWoB-EnterText-v0`` → ``agentenv/Dream-MiniWoB-EnterText-v0``."""
    namespace, _, name = real_id.rpartition("/")
    return f"{namespace}/{PREFIX}{name}" if namespace else f"{PREFIX}{name}"


def real_id(env_id: str) -> str | None:
    """The real env a dream env imagines (None: ``env_id`` is not a dream env)."""
    namespace, _, name = env_id.rpartition("/")
    if not name.startswith(PREFIX):
        return None
    return f"{namespace}/{name[len(PREFIX):]}" if namespace else name[len(PREFIX):]


class ModelRuntime:
    """A policy on a private event loop, shared by every dream env of the process that names the same model:
    concurrent dream steps (the collector's threads) reach one model, which batches them."""

    _lock = threading.Lock()
    _shared: ClassVar[dict[str, ModelRuntime]] = {}

    def __init__(self, spec: str | Policy):
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="agentenv-world-model", daemon=True).start()
        if isinstance(spec, str):
            from agentenv.policies import make_policy

            self.policy: Policy = make_policy(spec)
        else:
            self.policy = spec
        atexit.register(self.close)

    def close(self) -> None:
        """Close the policy on its loop (its batching task must not outlive the loop), then stop the loop."""
        if self._loop.is_running():
            with contextlib.suppress(Exception):
                self._submit(self.policy.aclose()).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    @classmethod
    def shared(cls, spec: str | Policy) -> ModelRuntime:
        if not isinstance(spec, str):
            return cls(spec)
        with cls._lock:
            if spec not in cls._shared:
                cls._shared[spec] = cls(spec)
            return cls._shared[spec]

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def complete(self, messages: list[Message], max_tokens: int, key: str = "", timeout: float = 600) -> str:
        """The model's greedy reply to ``messages`` (from synchronous code, any thread)."""
        request = PolicyRequest(messages=messages, sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
                                trajectory_id=key)
        return self._submit(self.policy.act([request])).result(timeout)[0].text


class Starts:
    """Real first observations to dream from: the episodes of the real env in trajectory stores."""

    _cache: ClassVar[dict[tuple[str, tuple[str, ...]], list[Trajectory]]] = {}
    _lock = threading.Lock()

    @classmethod
    def load(cls, env_id: str, paths: Sequence[str]) -> list[Trajectory]:
        from agentenv.store import TrajectoryStore

        key = (env_id, tuple(paths))
        with cls._lock:
            if key not in cls._cache:
                found: list[Trajectory] = []
                for path in paths:
                    if not Path(path).is_dir():
                        raise ValueError(f"starts: no trajectory store at {path}")
                    found += [t for t in TrajectoryStore(path).episodes(errors="skip")
                              if t.env_id == env_id and t.turns and t.status == "ok"]
                if not found:
                    raise ValueError(f"starts: {', '.join(paths)} hold no finished episode of {env_id} to start "
                                     f"dreams from; collect some with `agentenv collect {env_id} -o DIR`")
                found.sort(key=lambda t: (t.seed if t.seed is not None else -1, t.trajectory_id))
                unique = {t.seed: t for t in found}  # one start per real task (seed)
                cls._cache[key] = list(unique.values())
            return cls._cache[key]


class WorldModelEnv(Env):
    """See the module docstring. Options: ``world_model`` (a model directory, catalog name or server URL),
    ``starts`` (trajectory stores of real episodes), ``reward`` ("flag" or "judge"), ``judge`` (a policy
    spec), ``max_turns`` (the horizon), ``max_tokens`` (of a Δ)."""

    family: ClassVar[str] = "dream"
    clone_mode: ClassVar[str] = "snapshot"

    def __init__(self, real_env: str, world_model: str | Policy | None = None, starts: str | Sequence[str] = (),
                 reward: str = "flag", judge: str | Policy | None = None, max_turns: int | None = 15,
                 max_tokens: int = 384, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        if world_model is None:
            raise ValueError(f"{dream_id(real_env)} needs world_model=... (a model trained with `agentenv train "
                             "wwm`, or the URL of a server that serves one)")
        if reward not in ("flag", "judge"):
            raise ValueError(f"reward must be flag or judge, got {reward!r}")
        if reward == "judge" and judge is None:
            raise ValueError("reward=judge needs judge=... (a policy spec: a model directory or server URL)")
        paths = [starts] if isinstance(starts, str) else list(starts)
        if not paths:
            raise ValueError(f"{dream_id(real_env)} needs starts=DIR: a trajectory store of real {real_env} "
                             "episodes whose first pages the dreams start from")
        from agentenv.registry import make, resolve_id

        self.real_env = resolve_id(real_env)
        self.real = make(real_env)  # parses actions exactly as the real env; never reset, so no browser
        self.starts = Starts.load(self.real_env, paths)
        self.world_model = ModelRuntime.shared(world_model)
        self.judge = ModelRuntime.shared(judge) if judge is not None else None
        self.reward_mode = reward
        self.max_tokens = max_tokens
        self.start: Trajectory | None = None
        self.task = ""
        self.page = ""
        self.history: list[tuple[str, str]] = []

    def _reset(self, options: dict[str, Any] | None) -> tuple[Observation, dict[str, Any]]:
        self.start = self.starts[int(self.np_random.integers(len(self.starts)))]
        first: list[Message] = [dict(m) for m in self.start.turns[0].observation]  # type: ignore[misc]
        users = [m for m in first if m.get("role") == "user"]
        _, self.task, self.page = split_page_message(content_text(users[-1]["content"]))
        self.history = []
        info = {"real_env": self.real_env, "real_seed": self.start.seed, "real_task_id": self.start.task_id,
                "real_trajectory_id": self.start.trajectory_id, **self.start.extra}
        return observation(*first), info

    def parse_action(self, text: str) -> ParsedAction:
        return self.real.parse_action(text)

    def action_candidates(self) -> list[str] | None:
        return page_candidates(self.page, self.task) if self.start is not None else None

    def _apply(self, action: Any) -> StepResult:
        result = super()._apply(action)
        result.info["is_imagined"] = True  # an invalid action's turn is a dream turn too
        return result

    def _step(self, action: ParsedAction) -> StepResult:
        command = action.command or action.text
        info: dict[str, Any] = {}
        if command.startswith("answer("):
            reward, done, error = 0.0, True, None
            info["stopped_by"] = "answer"
        else:
            raw = self.world_model.complete(world_model_messages(self.task, self.page, command), self.max_tokens,
                                            key=f"dream-{id(self)}")
            info["delta"] = raw
            try:
                delta = parse_delta(raw)
                self.page = apply(self.page, delta)
                reward, done, error = delta.reward, delta.done, delta.error
            except DeltaError as exc:  # the page stays; the dream goes on
                reward, done, error = 0.0, False, None
                info["delta_error"] = str(exc)
        self.history.append((command, self.page))
        last = self.max_turns is not None and self.turn >= self.max_turns
        if self.reward_mode == "judge":
            reward = self._judge(info) if done or last else 0.0
        if done:
            info["won"] = reward > 0
        return StepResult(observation(message("user", page_message(error, self.task, self.page))), reward,
                          terminated=done, info={**info, "error": error})

    def _judge(self, info: dict[str, Any]) -> float:
        assert self.judge is not None
        transcript = "\n\n".join(f"Action {i}: {a}\nPage:\n{p}" for i, (a, p) in enumerate(self.history, 1))
        prompt = JUDGE_PROMPT.format(task=self.task, transcript=transcript)
        verdict = self.judge.complete([{"role": "user", "content": prompt}], 8, key=f"judge-{id(self)}")
        info.update(judge_input=prompt, judge_verdict=verdict)
        return 1.0 if verdict.strip().lower().startswith("yes") else 0.0

    def _snapshot(self) -> Any:
        return {"start": self.start, "task": self.task, "page": self.page, "history": list(self.history)}

    def _restore(self, state: Any) -> None:
        self.start, self.task, self.page = state["start"], state["task"], state["page"]
        self.history = list(state["history"])

    def _close(self) -> None:
        self.real.close()


def register_dreams() -> None:
    """A dream env for every text web env registered so far (MiniWoB++'s pages and the store)."""
    from agentenv.registry import register, registered_envs

    for info in registered_envs():
        if info.family == "web" and real_id(info.id) is None:
            register(dream_id(info.id), "agentenv.envs.web.dream:WorldModelEnv", family="dream",
                     description=f"{info.id} imagined by a learned web world model (DynaWeb); needs world_model= "
                     "and starts=.", kwargs={"real_env": info.id})
