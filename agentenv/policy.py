"""The policy contract: ``act(batch of requests) -> batch of outputs``, async.

A request carries the conversation as chat messages (for API backends) and, when the previous turn's
tokens are a prefix of this turn's prompt, those exact tokens (:class:`Continuation`) so that token-based
backends extend the sampled tokens instead of re-tokenizing history. An output carries the text and, when
the backend has them, prompt and completion token ids, log-probs, top-k log-probs and entropies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentenv.messages import Message


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    #: how many top log-probs to record per sampled token (0: none)
    top_logprobs: int = 0
    seed: int | None = None
    #: strings that end the completion; the returned text stops before the first one (the sampled token
    #: ids keep every token sampled, as vLLM's do)
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"stop sequences must be non-empty strings, got {self.stop!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.top_logprobs <= 20:
            raise ValueError(f"top_logprobs must be in [0, 20], got {self.top_logprobs}")


@dataclass
class Continuation:
    """The previous turn's exact tokens; ``messages[:n_messages]`` (ending with that turn's assistant
    message) are what they encode, so only ``messages[n_messages:]`` needs rendering."""

    prompt_ids: list[int]
    completion_ids: list[int]
    n_messages: int


@dataclass
class PolicyRequest:
    messages: list[Message]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: list[dict[str, Any]] | None = None
    admissible: list[str] | None = None
    continuation: Continuation | None = None
    #: the exact prompt tokens; when set, backends that take tokens use them instead of rendering messages
    prompt_ids: list[int] | None = None
    #: the env expert's action at this state, filled in when the policy sets ``wants_expert``
    expert_action: str | None = None
    #: actions worth trying at this state (``Env.action_candidates``), filled in when the policy sets
    #: ``wants_candidates``; never shown to a model
    candidates: list[str] | None = None
    #: which episode and turn this is (replay policies look recorded actions up by them)
    trajectory_id: str = ""
    turn: int = 0
    #: another episode whose tokens this prompt probably extends (a fork's parent): a backend with a
    #: per-episode prefix cache may start from that episode's cached keys and values
    prefix_hint: str = ""


@dataclass
class PolicyOutput:
    text: str
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    top_ids: list[list[int]] | None = None
    top_logprobs: list[list[float]] | None = None
    entropies: list[float] | None = None
    entropy_kind: str = ""
    #: "sampled" (exact), "retokenized" (text tokenized again; may drift) or "" (no token ids)
    token_source: str = ""
    finish_reason: str = "stop"
    policy_version: int = 0


@dataclass
class SampledToken:
    """One token as it is sampled, for streaming: its id, log-prob, top-k and the distribution's entropy."""

    id: int
    logprob: float
    top_ids: list[int] = field(default_factory=list)
    top_logprobs: list[float] = field(default_factory=list)
    entropy: float | None = None


@runtime_checkable
class Policy(Protocol):
    """Anything that answers conversations with actions.

    ``name`` identifies the policy in trajectories; ``version`` is the weight version (bumped by trainers);
    ``wants_expert`` asks the collector to fill :attr:`PolicyRequest.expert_action`.
    """

    name: str
    version: int
    wants_expert: bool

    async def act(self, requests: Sequence[PolicyRequest]) -> list[PolicyOutput]: ...

    async def aclose(self) -> None: ...


class PolicyError(RuntimeError):
    """The policy could not produce an action (backend failure, bad configuration)."""


class PolicyUnavailable(PolicyError):
    """The policy's server could not be reached or kept failing (connection errors, 5xx, 429) after the
    client's bounded retries, or gave no answer within its deadline: an infrastructure failure, so the
    episode ends ``failed_infra`` (and may be retried), never as the model's failure or a reward of 0."""


class ModelError(PolicyError):
    """The server answered, but the answer cannot be used as an action: a body that is not JSON, no
    ``choices``, token ids that do not spell the text. Counted per kind (``kind``) in the summary."""

    def __init__(self, message: str, kind: str = "malformed"):
        super().__init__(message)
        self.kind = kind


class PromptError(PolicyError):
    """The request itself is unusable (a prompt that does not render, bad token ids, too long for the
    model): retrying cannot help, and a server answers it with a 400."""
