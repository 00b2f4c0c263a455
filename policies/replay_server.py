"""An OpenAI-compatible server that replays recorded completions from a trajectory store.

The server twin of :class:`~.replay.ReplayPolicy`: with it, the HTTP client, the collector and the
trainers' server path run deterministically with no model at all. A request is matched to a recorded turn
by the episode and turn that agentenv's client sends (``prompt_cache_key`` or ``X-Agentenv-Trajectory``,
and ``X-Agentenv-Turn``); requests from other clients are matched by their prompt: the exact prompt token
ids, or else the text of the last message. The answer carries the recorded token ids, log-probs, top-k
and entropies. Weight updates are accepted and recorded (there are no weights to change), so a training
loop can push to it as to a real server; the version it reports follows them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agentenv.policy import PolicyOutput, PolicyRequest, PromptError, SampledToken
from agentenv.serving import serve_app
from agentenv.trajectory import Trajectory, Turn

from .catalog import load_tokenizer
from .openai_api import create_openai_app, sampled_tokens
from .replay import ReplayPolicy


class ReplayModel:
    """Recorded turns served as a model (see the module docstring for how requests are matched)."""

    def __init__(self, trajectories: list[Trajectory] | ReplayPolicy, name: str = "replay", tokenizer: Any = None):
        self.policy = trajectories if isinstance(trajectories, ReplayPolicy) else ReplayPolicy(trajectories)
        self.name = name
        self.version = 0
        self.max_context = 1 << 20
        self.tokenizer = tokenizer
        #: the checkpoint paths pushed to this server, in order
        self.weight_updates: list[str] = []
        self._by_prompt: dict[tuple[int, ...], tuple[Trajectory, Turn]] = {}
        self._by_text: dict[str, tuple[Trajectory, Turn]] = {}
        for trajectory in self.policy.trajectories.values():
            for turn, prompt in trajectory.full_prompts():
                if prompt:
                    self._by_prompt.setdefault(tuple(prompt), (trajectory, turn))
                if turn.observation:
                    self._by_text.setdefault(str(turn.observation[-1].get("content", "")), (trajectory, turn))

    @classmethod
    def from_store(cls, path: str | os.PathLike[str], **kwargs: Any) -> ReplayModel:
        return cls(ReplayPolicy.from_store(path), **kwargs)

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]:
        return [self._answer(r) for r in requests]

    async def stream(self, request: PolicyRequest) -> AsyncIterator[SampledToken | PolicyOutput]:
        out = self._answer(request)
        for token in sampled_tokens(out):
            yield token
        yield out

    def _answer(self, request: PolicyRequest) -> PolicyOutput:
        if self.policy.recorded(request.trajectory_id, request.turn):
            return self.policy.replay(request)
        hit = None
        if request.prompt_ids is not None:
            hit = self._by_prompt.get(tuple(request.prompt_ids))
        elif request.messages:
            hit = self._by_text.get(str(request.messages[-1].get("content", "")))
        if hit is None:
            raise PromptError(f"no recorded turn matches this request (episode {request.trajectory_id!r}, turn "
                              f"{request.turn}); {len(self.policy)} episodes are recorded")
        trajectory, turn = hit
        return self.policy.replay(PolicyRequest([], trajectory_id=trajectory.trajectory_id, turn=turn.index))

    def decode(self, ids: Sequence[int]) -> str:
        # without a tokenizer, streamed text arrives whole in the last chunk
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)) if self.tokenizer else ""

    def token_text(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id])) if self.tokenizer else f"token_id:{token_id}"

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise PromptError("the replay server has no tokenizer: send prompts as token ids")
        return list(self.tokenizer(text).input_ids)

    def load_weights(self, path: str, version: int) -> None:
        self.weight_updates.append(str(path))
        self.version = version

    def clear_prefix_cache(self) -> None:
        pass


def serve_replay(store: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 name: str = "replay", tokenizer: str | None = None) -> None:
    """Serve the recorded turns of the store at ``store`` until interrupted."""
    if not Path(store).is_dir():
        raise ValueError(f"no trajectory store at {store}")
    model = ReplayModel.from_store(store, name=name, tokenizer=load_tokenizer(tokenizer) if tokenizer else None)
    app = create_openai_app(model, api_key=api_key, title="agentenv replay server")
    serve_app(app, host, port, ready=lambda url: f"agentenv policy server (replay): {url}/v1 (model {name}, "
                                                 f"{len(model.policy)} episodes)")
