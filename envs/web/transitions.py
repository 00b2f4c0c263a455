"""Real web transitions and the world model's view of them: what it reads (task, page, action) and writes (Δ).

A transition is one valid action of a recorded web episode: the task line, the page the agent acted on,
the action (as the env understood it), the page it led to, the step's reward and whether the task ended.
Any policy's episodes give them (``agentenv collect`` with the expert, random or a model), so the world
model learns what pages do under good and bad actions alike. Its target is the labeler's Δ
(:mod:`.delta`), optionally preceded by a short reasoning trace that an LLM labeler wrote (DynaWeb's
world model predicts a reasoning trace, then the change).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agentenv.messages import Message, content_text
from agentenv.trajectory import Trajectory

from .browser_env import split_page_message
from .delta import Delta, apply, diff, format_delta
from .page import WebActionError, parse_web_action

WORLD_MODEL_SYSTEM = (
    "Web world model: given a task, a page (a line per element, [id]) and an action, write\n"
    "reward: <r>\ndone: <yes|no>\nthen the page's changes: `- [7]` drops line [7]; `~ [7]` then `| <line>` "
    "replaces it; `+ [7]` then `| <line>` lines insert after it (`+ [^]`: at the top). Text lines are [7]+1, "
    "[7]+2 after [7]. No change: write none."
)


@dataclass(frozen=True)
class Transition:
    env_id: str
    task_id: str
    seed: int | None
    trajectory_id: str
    turn: int
    policy: str
    task: str
    page: str
    action: str
    next_page: str
    reward: float
    done: bool
    error: str | None = None
    #: an LLM labeler's short account of the change (the world model's reasoning target), if labelled
    reasoning: str | None = None

    @property
    def delta(self) -> Delta:
        """The labeler's Δ: the exact change from ``page`` to ``next_page``, with reward, done and error."""
        found = diff(self.page, self.next_page, reward=self.reward, done=self.done, error=self.error)
        return replace(found, reasoning=self.reasoning) if self.reasoning else found

    def target(self) -> str:
        """What the world model is trained to write."""
        return format_delta(self.delta)

    def messages(self) -> list[Message]:
        return world_model_messages(self.task, self.page, self.action)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transition:
        return cls(**data)


def world_model_messages(task: str, page: str, action: str) -> list[Message]:
    """The world model's prompt: the task, the page and the action (the same at training and in dreams)."""
    return [{"role": "system", "content": WORLD_MODEL_SYSTEM},
            {"role": "user", "content": f"{task}\n\nPage:\n{page}\n\nAction: {action}"}]


class TransitionError(ValueError):
    """Recorded episodes that are not text web episodes, or a labeler that does not reproduce a page."""


def transitions(episodes: Iterable[Trajectory], check: bool = True) -> Iterator[Transition]:
    """Every valid action of the finished web ``episodes`` as a transition. With ``check`` the labeler's Δ is
    applied to the page and must give the next page exactly (it always should: a failure is a bug)."""
    for episode in episodes:
        if episode.status != "ok" or not episode.turns:
            continue
        first = _text(episode, episode.turns[0].observation)
        _, task, page = _split(episode, first)
        for turn in episode.turns:
            if not turn.action_valid or not turn.feedback:
                continue
            try:
                action = str(parse_web_action(turn.action))
            except WebActionError:
                continue
            error, _, next_page = _split(episode, _text(episode, turn.feedback), task)
            found = Transition(env_id=episode.env_id, task_id=episode.task_id, seed=episode.seed,
                               trajectory_id=episode.trajectory_id, turn=turn.index, policy=episode.policy_id,
                               task=task, page=page, action=action, next_page=next_page, reward=turn.reward,
                               done=turn.terminated, error=error)
            if check and apply(page, found.delta) != next_page:
                raise TransitionError(f"{episode.trajectory_id} turn {turn.index}: applying the labelled Δ does "
                                      "not reproduce the next page")
            yield found
            page = next_page


def _text(episode: Trajectory, messages: Sequence[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        raise TransitionError(f"{episode.env_id} episode {episode.trajectory_id} has no text page observation "
                              "(world models learn from the text web envs, not the pixel ones)")
    return content_text(users[-1]["content"])


def _split(episode: Trajectory, text: str, task: str | None = None) -> tuple[str | None, str, str]:
    try:
        return split_page_message(text, task)
    except ValueError as exc:
        raise TransitionError(f"{episode.env_id} episode {episode.trajectory_id}: {exc}") from None


def load_transitions(paths: Iterable[str | os.PathLike[str]]) -> list[Transition]:
    """Transitions from trajectory stores (directories) and labelled transition files (``.jsonl``)."""
    from agentenv.store import TrajectoryStore

    found: list[Transition] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += transitions(TrajectoryStore(path).episodes(errors="skip"))
        elif path.suffix == ".jsonl" and path.is_file():
            with path.open() as f:
                found += [Transition.from_dict(json.loads(line)) for line in f if line.strip()]
        else:
            raise FileNotFoundError(f"{path}: expected a trajectory store directory or a transitions .jsonl file")
    return found


def write_transitions(items: Iterable[Transition], path: str | os.PathLike[str]) -> int:
    """Write transitions as JSON lines (atomically); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w") as f:
        for item in items:
            f.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


LABELER_PROMPT = (
    "A web agent acted on a page. Explain in one sentence what the action did and why the page changed "
    "as shown (or why it did not). Write only that sentence.\n\n{task}\n\nPage:\n{page}\n\nAction: {action}\n\n"
    "Change:\n{change}"
)


class LLMLabeler:
    """Adds a reasoning trace to each transition with a policy (any ``make_policy`` spec or a Policy): the
    paper's labels come from a strong LLM; here any model the policy client reaches writes them. The exact
    Δ stays the computed one, so the page is still rebuilt exactly."""

    def __init__(self, policy: Any, max_tokens: int = 96, concurrency: int = 8):
        self.policy, self.max_tokens, self.concurrency = policy, max_tokens, concurrency

    def label(self, items: Sequence[Transition]) -> list[Transition]:
        return asyncio.run(self.alabel(items))

    async def alabel(self, items: Sequence[Transition]) -> list[Transition]:
        from agentenv.policy import PolicyRequest, SamplingParams

        sampling = SamplingParams(max_tokens=self.max_tokens, temperature=0.0)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(index: int, item: Transition) -> Transition:
            change = format_delta(item.delta)
            prompt = LABELER_PROMPT.format(task=item.task, page=item.page, action=item.action, change=change)
            request = PolicyRequest(messages=[{"role": "user", "content": prompt}], sampling=sampling,
                                    trajectory_id=f"label-{index}", turn=0)
            async with gate:
                out = (await self.policy.act([request]))[0]
            reasoning = " ".join(out.text.split())[:400]
            return replace(item, reasoning=reasoning or None)

        try:
            return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))
        finally:
            await self.policy.aclose()
