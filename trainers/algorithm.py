"""What an algorithm is to the training loop: a row view, advantages, a loss and (DAgger) a teacher.

Each algorithm is a short file that picks these pieces (``shared/algorithms.md`` §9.8); the loop, the
learner, the estimators and the loss are shared.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from agentenv.hooks import TeacherMixing
from agentenv.trajectory import Trajectory

from .config import TrainConfig
from .losses import LossConfig
from .rows import Row

ALGORITHMS: dict[str, type[Algorithm]] = {}


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
        return LossConfig(clip_low=c.clip_low, clip_high=c.clip_high, dual_clip=c.dual_clip,
                          aggregation=c.aggregation, kl=c.kl, kl_coef=c.kl_coef,  # type: ignore[arg-type]
                          entropy_coef=c.entropy_coef)

    def teacher(self, step: int) -> TeacherMixing | None:
        return None

    def eval_teacher(self) -> TeacherMixing | None:
        """A teacher that labels the evaluation episodes' states without acting (for teacher agreement)."""
        return None

    def restore(self, steps: Sequence[Sequence[Trajectory]], label_tokens: Callable[[str], list[int]]) -> None:
        """Rebuild state kept across steps from the stored episodes of the steps already done (on resume);
        the policy-gradient algorithms keep none."""
        return None

    @abc.abstractmethod
    def rows_and_advantages(self, trajectories: Sequence[Trajectory],
                            label_tokens: Callable[[str], list[int]]) -> tuple[list[Row], list[float]]:
        """The training rows of a batch of finished episodes and one advantage per row."""


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
    from . import dagger, gigpo, grpo, hgpo  # noqa: F401  (each registers itself)
