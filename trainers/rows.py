"""The two row views of recorded episodes (``shared/algorithms.md`` §9.4) and token-budget batching.

* **Step view** (GiGPO, HGPO, DAgger): one row per turn, the exact prompt the policy saw at that turn (task,
  memory window and current observation, as the collector rendered it) followed by the action's tokens.
  The memory window is the one the collection used (``PromptConfig.window``); nothing is re-rendered, so
  the trainer scores exactly the tokens that were sampled.
* **Sequence view** (GRPO and the tree algorithms): one row per episode, the first prompt followed by
  every turn; only action tokens are trained on, and the observations and tool results between them are
  masked. It needs a prefix-stable episode (each prompt extends the previous context); an episode whose
  history window slid cannot be one row, and says so.

Rows carry the behaviour log-probs of their action tokens, aligned with the tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agentenv.trajectory import Trajectory


@dataclass
class Row:
    """One training row: ``tokens`` = prompt + response; ``mask``/``old_logp`` are per token."""

    tokens: list[int]
    mask: list[int]
    old_logp: list[float]
    episode: int
    turn: int | None = None  # the turn of a step row; None for a sequence row
    #: ``old_logp`` are placeholders (an expert episode the policy did not sample): the learner replaces them
    #: with the pre-update policy's log-probs, so that the ratio starts at 1
    recompute_old_logp: bool = False
    #: trained with the auxiliary SFT loss (λ·NLL) instead of the policy gradient
    sft: bool = False
    #: the episode's id (``episode`` indexes the list the rows were built from, which algorithms filter or
    #: accumulate across steps)
    trajectory_id: str = ""

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def n_trained(self) -> int:
        return sum(self.mask)


class RowViewError(ValueError):
    """An episode cannot be laid out in the requested view (no tokens, or a history window that slid)."""


def _check_tokens(trajectory: Trajectory) -> None:
    if any(not t.completion_ids for t in trajectory.turns):
        raise RowViewError(f"episode {trajectory.trajectory_id} has turns without token ids (a text-only policy "
                           "or a server that returned none); it cannot be trained on token-exactly")


def step_rows(trajectories: Sequence[Trajectory], labels: bool = False,
              label_tokens: Callable[[str], list[int]] | None = None) -> list[Row]:
    """One row per turn. ``labels=True`` uses the teacher's label as the response (DAgger), for the turns
    that have one: its recorded token ids, or ``label_tokens(text)`` for a text-only teacher (an env's
    expert). Labels are targets, not samples, so tokenizing them is exact by definition."""
    rows = []
    for index, trajectory in enumerate(trajectories):
        if not labels:
            _check_tokens(trajectory)
        for turn, prompt in trajectory.full_prompts():
            if labels:
                response = list(turn.teacher_completion_ids)
                if not response and turn.teacher_action is not None and label_tokens is not None:
                    response = label_tokens(turn.teacher_action)
                if not response:
                    continue
                logp, mask = [0.0] * len(response), [1] * len(response)
            else:
                response = list(turn.completion_ids)
                mask = list(turn.completion_mask) or [1] * len(response)
                logp = list(turn.logprobs) if len(turn.logprobs) == len(response) else [0.0] * len(response)
            rows.append(Row([*prompt, *response], [0] * len(prompt) + mask, [0.0] * len(prompt) + logp,
                            index, turn.index, trajectory_id=trajectory.trajectory_id))
    return rows


def sequence_rows(trajectories: Sequence[Trajectory]) -> list[Row]:
    """One row per episode: the first prompt, then each turn's new observation tokens (masked) and action
    tokens (trained)."""
    rows = []
    for index, trajectory in enumerate(trajectories):
        _check_tokens(trajectory)
        tokens: list[int] = []
        mask: list[int] = []
        logp: list[float] = []
        for turn, prompt in trajectory.full_prompts():
            if prompt[:len(tokens)] != tokens:
                raise RowViewError(f"episode {trajectory.trajectory_id}: turn {turn.index}'s prompt does not extend "
                                   "the previous context (the history window slid); use the step view")
            new = prompt[len(tokens):]
            tokens += new
            mask += [0] * len(new)
            logp += [0.0] * len(new)
            response = list(turn.completion_ids)
            tokens += response
            mask += list(turn.completion_mask) or [1] * len(response)
            logp += list(turn.logprobs) if len(turn.logprobs) == len(response) else [0.0] * len(response)
        rows.append(Row(tokens, mask, logp, index, trajectory_id=trajectory.trajectory_id))
    return rows


def pack_by_tokens(lengths: Iterable[int], max_tokens: int) -> list[list[int]]:
    """Group row indices into micro-batches whose padded size (rows × longest row) stays within
    ``max_tokens``, longest rows first; a row longer than the budget gets a batch of its own.

    Packing by tokens rather than by row count keeps memory flat when episode lengths vary tenfold.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(enumerate(lengths), key=lambda x: -x[1])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for row, length in order:
        if current and max(longest, length) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(row)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches
