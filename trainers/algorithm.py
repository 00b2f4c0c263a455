"""What an algorithm is to the training loop: a row view, advantages, a loss and (DAgger) a teacher.

Each algorithm is a short file that picks these pieces (``shared/algorithms.md`` §9.8); the loop, the
learner, the estimators and the loss are shared.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agentenv.hooks import TeacherMixing, TreeStrategy
from agentenv.prompting import PromptConfig
from agentenv.trajectory import Trajectory

from .config import TrainConfig
from .losses import FutureKL, LossConfig
from .rows import Row

ALGORITHMS: dict[str, type[Algorithm]] = {}


@dataclass(frozen=True)
class BranchContext:
    """What a tree rollout may use to choose branch points (see ``Trainer.branch_context``)."""

    vocab_size: int
    #: the learner's current log-probs of each episode's sampled action tokens, per token of its sequence
    #: row (``logprobs(episodes)[i][t]``)
    logprobs: Callable[[Sequence[Trajectory]], list[list[float]]] | None = None
    #: the same under the weights before the last update (None before the first update)
    previous_logprobs: Callable[[Sequence[Trajectory]], list[list[float]] | None] | None = None
    #: a token's text (APPO never forks after a whitespace-only token)
    token_text: Callable[[int], str] | None = None


class Algorithm(abc.ABC):
    name: ClassVar[str]
    #: the options of :class:`TrainConfig` this algorithm reads besides the common ones
    uses: ClassVar[frozenset[str]] = frozenset()
    #: trains on teacher labels with the SFT loss instead of a policy gradient
    sft: ClassVar[bool] = False
    #: the option values of the released recipe (§9.8), applied under a run's YAML file and overrides
    preset: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            ALGORITHMS[cls.name] = cls

    def __init__(self, config: TrainConfig):
        self.config = config

    def loss_config(self) -> LossConfig:
        c = self.config
        future_kl = None
        if c.future_kl_weight:
            future_kl = FutureKL(decay_rate=c.future_kl_decay, clip=c.future_kl_clip, weight=c.future_kl_weight,
                                 high_only=c.future_kl_high_only, safety_thresh=c.safety_thresh)
        entropy_advantage = 0.0 if c.compat_aepo_entropy_noop else c.entropy_advantage
        return LossConfig(ratio=c.ratio, clip_low=c.clip_low,  # type: ignore[arg-type]
                          clip_high=c.clip_high, dual_clip=c.dual_clip,
                          aggregation=c.aggregation, kl=c.kl if c.kl_coef else None,  # type: ignore[arg-type]
                          kl_coef=c.kl_coef,
                          entropy_coef=c.entropy_coef, clip_mode=c.clip_mode,  # type: ignore[arg-type]
                          entropy_advantage=entropy_advantage, future_kl=future_kl,
                          drop_dual_clipped_sequences=c.drop_dual_clipped)

    def teacher(self, step: int) -> TeacherMixing | None:
        return None

    def prepare(self, policy: Any, prompt: PromptConfig) -> None:
        """Called once the collecting policy exists, before the first step (DynaWeb puts its recorded expert
        episodes in the policy's tokens); nothing by default."""
        return None

    def aux_sft_coef(self) -> float:
        """λ of the auxiliary SFT loss on the rows an algorithm marks ``sft`` (0: it marks none)."""
        return 0.0

    def branching(self, step: int, context: BranchContext) -> TreeStrategy | None:
        """The tree rollout of step ``step``'s collection (None: ``group_size`` independent roots)."""
        return None

    def keeps_previous_weights(self) -> bool:
        """Whether branch selection compares the policy before and after the last update (APPO)."""
        return False

    def sampling_top_logprobs(self) -> int:
        """Top log-probs to record per sampled token (the entropy proxies of ARPO, AEPO and APPO)."""
        return int(getattr(self.config, "top_logprobs", 0) or 0)

    def metrics(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """What this algorithm is about, measured on a step's episodes (branching, entropies...)."""
        return {}

    def eval_teacher(self) -> TeacherMixing | None:
        """A teacher that labels the evaluation episodes' states without acting (for teacher agreement)."""
        return None

    def restore(self, steps: Sequence[Sequence[Trajectory]], label_tokens: Callable[[str], list[int]]) -> None:
        """Rebuild state kept across steps from the stored episodes of the steps already done (on resume);
        the policy-gradient algorithms keep none."""
        return None

    @abc.abstractmethod
    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[Any]]:
        """The training rows of a batch of finished episodes and, per row, one advantage for all its tokens
        or a list with one per token (tree credit assignment)."""


#: the loss options every policy-gradient algorithm reads
RL_OPTIONS = frozenset({"clip_low", "clip_high", "dual_clip", "aggregation", "kl", "kl_coef", "entropy_coef",
                        "kl_reward_coef", "kl_reward_target", "kl_reward_horizon"})


def algorithm(name: str, config: TrainConfig) -> Algorithm:
    _load_builtins()
    try:
        return ALGORITHMS[name](config)
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(sorted(ALGORITHMS))}") from None


def algorithm_options(name: str) -> frozenset[str]:
    _load_builtins()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name].uses


def algorithm_preset(name: str) -> dict[str, Any]:
    algorithm_options(name)
    return dict(ALGORITHMS[name].preset)


def _load_builtins() -> None:
    import importlib

    for module in ("grpo", "gigpo", "hgpo", "dagger", "arpo", "aepo", "appo", "trace", "dynaweb"):
        importlib.import_module(f"{__package__}.{module}")  # each registers itself
