"""The trajectory model: one episode, turn by turn, token-exact.

Everything any trainer needs (``shared/algorithms.md`` §0.1 and §9.6) is recorded at collection time:
the token ids the policy saw and sampled, the behaviour log-probs, top-k log-probs and entropies, the
loss mask (policy tokens only), tree links for branched rollouts, the teacher's action for DAgger, and
the failure status of episodes that did not finish cleanly.

Token layout of a turn. ``prompt_ids`` holds only the tokens *new* at this turn; ``prompt_offset`` is the
number of tokens of the previous turn's context (its full prompt plus its completion) that come before
them. ``prompt_offset == 0`` means the prompt was rendered afresh (first turn, or the history window slid).
So the full prompt of turn k is ``context(k-1)[:prompt_offset] + prompt_ids``, where ``context(k-1)`` is
turn k-1's full prompt followed by its completion; :meth:`Trajectory.full_prompt_ids` rebuilds it. This
keeps storage linear in episode length while the trainer sees exactly the sampled tokens.

Schema evolution (``SCHEMA_VERSION``): adding an optional field with a default is a minor change and keeps
the version; old shards read with the default. Renaming, removing or changing the meaning of a field
bumps the version and adds a function to ``MIGRATIONS`` that upgrades a row dict of the previous version;
readers apply the chain, so every shard ever written stays readable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Status = Literal["ok", "failed"]
#: why an episode failed. The model's causes (its answer was unusable: ``policy_error`` from a policy that
#: raised, ``model_error:KIND`` for a malformed answer) are told apart from the infrastructure's (everything
#: else: an env, grader, worker or policy server that failed), which are retried and never scored as 0.
FailureCause = Literal[
    "env_error", "env_timeout", "reset_timeout", "grader_error", "worker_lost", "policy_error", "policy_timeout",
    "policy_unavailable", "episode_timeout", "cancelled", "internal",
]


def is_model_cause(cause: str | None) -> bool:
    """Whether a failure is the model's (its answer), not the infrastructure's."""
    return cause == "policy_error" or bool(cause and cause.startswith("model_error"))


def is_policy_cause(cause: str | None) -> bool:
    """Whether a failure came from the policy side (so the env that ran the episode is still fit)."""
    return bool(cause) and (is_model_cause(cause) or cause in ("policy_timeout", "policy_unavailable"))
EpisodeKind = Literal["init", "branch", "global_refill", "dream", "expert", "mixed_teacher"]

MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass
class Turn:
    """One step: the observation shown, the policy's action, and what the env answered."""

    index: int
    #: the chat messages the env added before this action (its observation), as a list of dicts
    observation: list[dict[str, Any]]
    action: str
    # --- tokens (empty for policies without token ids: random, expert, human) ---
    prompt_ids: list[int] = field(default_factory=list)
    prompt_offset: int = 0
    completion_ids: list[int] = field(default_factory=list)
    #: 1 for tokens the policy sampled and may be trained on, 0 otherwise (per completion token)
    completion_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    #: "exact" (full distribution) or "topk" (proxy from the top-k log-probs) or "" (not recorded)
    entropy_kind: str = ""
    #: where the token ids come from: "sampled" (the backend's own sampled tokens, exact), "retokenized"
    #: (the text tokenized again by the client because the server returned no ids: may differ from what was
    #: sampled), "teacher" (a text-only teacher's action in the student's tokens, never trained on as a
    #: sample), "missing" (a server returned none) or "" (no tokens)
    token_source: str = ""
    finish_reason: str = ""
    # --- env side ---
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    action_valid: bool = True
    #: the env's answer to this action: its next observation's messages
    feedback: list[dict[str, Any]] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    #: canonical form of the current observation only (no history), for GiGPO/HGPO step groups
    anchor_key: str = ""
    admissible: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # --- who acted ---
    actor: Literal["student", "teacher", "replay"] = "student"
    teacher_action: str | None = None
    teacher_completion_ids: list[int] = field(default_factory=list)
    policy_version: int = 0
    is_imagined: bool = False
    # --- timings (seconds) ---
    policy_seconds: float = 0.0
    env_seconds: float = 0.0

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)


@dataclass
class Trajectory:
    """One episode. ``trajectory_id`` is deterministic, so a resumed collection recognises its work."""

    trajectory_id: str
    group_id: str
    task_id: str
    task_index: int
    sample_index: int
    seed: int | None
    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy_id: str = ""
    policy_version: int = 0
    attempt: int = 0
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    status: Status = "ok"
    failure_cause: str | None = None
    error: str | None = None
    # --- trees (ARPO, AEPO, APPO, TRACE) ---
    tree_id: str | None = None
    parent_trajectory_id: str | None = None
    branch_turn: int | None = None
    branch_token_offset: int | None = None
    kind: str = "init"
    # --- timings (unix seconds) ---
    started_at: float = 0.0
    finished_at: float = 0.0
    #: algorithm-specific records (branch scores, predictor inputs, β, judge verdicts...)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def success(self) -> bool:
        """Solved: ended by the env (terminated) with a positive reward; where the env says whether the task
        was won (``info["won"]`` on the last turn), what it says, since a partly correct answer (a code
        task's format credit, a WebShop purchase that matches some attributes) earns reward unsolved."""
        if self.status != "ok" or not self.terminated:
            return False
        if self.turns and "won" in self.turns[-1].info:
            return bool(self.turns[-1].info["won"])
        return self.reward > 0

    @property
    def wall_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def n_tokens(self) -> int:
        return sum(t.n_tokens for t in self.turns)

    def full_prompt_ids(self, turn: int) -> list[int]:
        """The exact prompt token ids the policy saw at ``turn`` (see the module docstring)."""
        for t, prompt in self.full_prompts():
            if t.index == turn:
                return prompt
        raise IndexError(f"trajectory {self.trajectory_id} has no turn {turn}")

    def full_prompts(self) -> Iterator[tuple[Turn, list[int]]]:
        """Every turn with its exact full prompt, rebuilding each from the previous one in one pass."""
        context: list[int] = []
        for t in self.turns:
            prompt = context[: t.prompt_offset] + t.prompt_ids
            yield t, prompt
            context = prompt + t.completion_ids

    def to_row(self) -> dict[str, Any]:
        """A flat dict for Arrow: nested turns as a list of structs, free-form dicts as JSON strings."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "turns"}
        row["env_kwargs"] = _dumps(self.env_kwargs)
        row["extra"] = _dumps(self.extra)
        row["turns"] = [_turn_row(t) for t in self.turns]
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trajectory:
        version = int(row.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"trajectory written with schema version {version}; this agentenv reads up to {SCHEMA_VERSION}: "
                "upgrade agentenv"
            )
        while version < SCHEMA_VERSION:
            row = MIGRATIONS[version](row)
            version += 1
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in row.items() if k in known}
        data["env_kwargs"] = json.loads(data.get("env_kwargs") or "{}")
        data["extra"] = json.loads(data.get("extra") or "{}")
        data["turns"] = [_turn_from_row(t) for t in (row.get("turns") or [])]
        data["schema_version"] = SCHEMA_VERSION
        return cls(**data)


_TURN_JSON_FIELDS = ("observation", "tool_calls", "feedback", "info")
_TURN_FIELDS = {f.name for f in dataclasses.fields(Turn)}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _turn_row(turn: Turn) -> dict[str, Any]:
    row = {name: getattr(turn, name) for name in _TURN_FIELDS}
    for name in _TURN_JSON_FIELDS:
        row[name] = _dumps(row[name])
    return row


def _turn_from_row(row: dict[str, Any]) -> Turn:
    data = {k: v for k, v in row.items() if k in _TURN_FIELDS}
    for name in _TURN_JSON_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    for name in ("top_ids", "top_logprobs"):
        if data.get(name) is not None:
            data[name] = [list(x) for x in data[name]]
    for name, value in list(data.items()):
        if value is None and name not in ("admissible", "teacher_action"):
            data.pop(name)
    if data.get("admissible") is not None:
        data["admissible"] = list(data["admissible"])
    return Turn(**data)
