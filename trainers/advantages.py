"""Advantage estimators as registered pure functions (``shared/algorithms.md`` §1, §6 and §9.3).

Each estimator maps a :class:`~.grouping.StepTable` to one advantage per row (numpy, CPU); the row views
broadcast it over the row's policy tokens. The conventions are verl's and verl-agent's, checked against
their code: sample std (ddof=1) with eps 1e-6 for GRPO and GiGPO, a singleton group keeping its raw reward
(mean 0, std 1), singleton anchor groups getting 0, and HGPO's population std.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Literal

import numpy as np

from .grouping import StepTable, anchor_keys, context_keys, index

EPS = 1e-6
Norm = Literal["std_sample", "std_pop", "none"]
Mode = Literal["mean_norm", "mean_std_norm"]

ADVANTAGES: dict[str, Callable[..., np.ndarray]] = {}


def register(name: str) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register an estimator under ``name`` (``estimator(name)`` finds it)."""
    def wrap(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if name in ADVANTAGES:
            raise ValueError(f"an advantage estimator named {name!r} is already registered")
        ADVANTAGES[name] = fn
        return fn
    return wrap


def estimator(name: str) -> Callable[..., np.ndarray]:
    try:
        return ADVANTAGES[name]
    except KeyError:
        raise ValueError(f"unknown advantage estimator {name!r}; registered: {', '.join(sorted(ADVANTAGES))}") from None


# ----- the shared normaliser ------------------------------------------------------------------------------
def group_normalise(values: np.ndarray, keys: Sequence[Hashable | None], norm: Norm = "std_sample",
                    singleton: Literal["raw", "zero"] = "raw") -> np.ndarray:
    """``(v - mean_group) / (std_group + eps)`` per key (``norm="none"``: no division).

    Rows whose key is None get 0. ``singleton="raw"`` is verl's GRPO quirk (a one-member group has mean 0
    and std 1, so it keeps its value); ``"zero"`` gives it 0, as GiGPO's anchor groups do.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(values)
    for key, rows in index(keys).items():
        if key is None:
            continue
        v = values[rows]
        if len(rows) == 1:
            out[rows] = v if singleton == "raw" else 0.0
            continue
        centred = v - v.mean()
        if norm == "none":
            out[rows] = centred
        else:
            out[rows] = centred / (v.std(ddof=1 if norm == "std_sample" else 0) + EPS)
    return out


def discounted_returns(table: StepTable, gamma: float) -> np.ndarray:
    """``G_t = Σ_k γ^k r_{t+k}`` within each episode."""
    returns = np.zeros(len(table))
    for rows in table.episode_rows().values():
        running = 0.0
        for row in rows[::-1].tolist():
            running = table.reward[row] + gamma * running
            returns[row] = running
    return returns


def _episode_advantage(table: StepTable, norm: Norm, stats_scope: Literal["episodes", "step_rows"],
                       singleton: Literal["raw", "zero"] = "raw") -> np.ndarray:
    """The episode-level group advantage of every row (stats over episodes, or over step rows as verl-agent's
    ``compute_mean_std_cross_all_data`` does, where longer episodes weigh more)."""
    if stats_scope == "step_rows":
        return group_normalise(table.outcome, table.group, norm, singleton)
    first = {ep: int(rows[0]) for ep, rows in table.episode_rows().items()}
    episodes = sorted(first)
    rows = [first[e] for e in episodes]
    per_episode = group_normalise(table.outcome[rows], [table.group[r] for r in rows], norm, singleton)
    lookup = dict(zip(episodes, per_episode.tolist(), strict=True))
    return np.asarray([lookup[e] for e in table.episode.tolist()], dtype=np.float64)


# ----- GRPO -----------------------------------------------------------------------------------------------
@register("grpo")
def grpo(table: StepTable, norm: Norm = "std_sample", singleton: Literal["raw", "zero"] = "raw",
         stats_scope: Literal["episodes", "step_rows"] = "episodes") -> np.ndarray:
    """GRPO (§1b): each episode's outcome against its group's, broadcast to all of the episode's rows."""
    return _episode_advantage(table, norm, stats_scope, singleton)


# ----- GiGPO ----------------------------------------------------------------------------------------------
def anchor_step(returns: np.ndarray, keys: Sequence[Hashable | None], mode: Mode,
                std: Literal["sample", "pop"] = "sample") -> np.ndarray:
    """The step advantage within groups of equal keys: ``G - mean`` (mean_norm) or ``/ (std + eps)``
    (mean_std_norm); a one-member group gives 0."""
    norm: Norm = "none" if mode == "mean_norm" else ("std_sample" if std == "sample" else "std_pop")
    return group_normalise(returns, keys, norm, singleton="zero")


def _norm_of(mode: Mode) -> Norm:
    return "none" if mode == "mean_norm" else "std_sample"


@register("gigpo")
def gigpo(table: StepTable, omega: float = 1.0, mode: Mode = "mean_norm", gamma: float = 0.95,
          stats_scope: Literal["episodes", "step_rows"] = "step_rows") -> np.ndarray:
    """GiGPO (§1b, Eq. 8): ``A = A^E(τ) + ω · A^S(anchor group)``.

    ``mode`` applies to both levels (``mean_norm``: no std division, the core function's default).
    ``stats_scope="step_rows"`` is verl-agent's default for the episode level.
    """
    episode = _episode_advantage(table, _norm_of(mode), stats_scope)
    if omega == 0:
        return episode
    return episode + omega * anchor_step(discounted_returns(table, gamma), anchor_keys(table), mode)


# ----- HGPO -----------------------------------------------------------------------------------------------
@register("hgpo")
def hgpo(table: StepTable, history: int = 2, alpha: float = 1.0, mode: Mode = "mean_std_norm",
         gamma: float = 0.95, base_group: bool = False) -> np.ndarray:
    """HGPO (§6b): the step's return against each of its context groups (levels k = 1..K+1, the steps that
    share the last k observations, with at least 2 members), averaged with weights ``(k+1)^α``.

    Zero-valued items (homogeneous groups) are dropped before weighting, so a finer group that cannot tell
    its members apart defers to the coarser ones; a step with no nonzero item gets 0. ``mean_std_norm``
    divides by the POPULATION std (as the released code does, unlike GiGPO). ``base_group`` adds the GRPO
    episode advantage (stats over step rows, sample std; no std when ``mode == "mean_norm"``) as level 0.
    """
    if history < 0:
        raise ValueError(f"history must be >= 0, got {history}")
    returns = discounted_returns(table, gamma)
    items: list[list[tuple[int, float]]] = [[] for _ in range(len(table))]
    for k in range(1, history + 2):
        keys = context_keys(table, k)
        level = anchor_step(returns, keys, mode, std="pop")
        counts = {key: len(rows) for key, rows in index(keys).items()}
        for row, key in enumerate(keys):
            if key is not None and counts[key] >= 2:
                items[row].append((k, float(level[row])))
    if base_group:
        base = _episode_advantage(table, _norm_of(mode), "step_rows")
        for row in range(len(table)):
            items[row].append((0, float(base[row])))
    out = np.zeros(len(table))
    for row, its in enumerate(items):
        kept = [(k, a) for k, a in its if a != 0]
        if kept:
            weights = np.asarray([(k + 1) ** alpha for k, _ in kept])
            out[row] = float(np.dot(weights, [a for _, a in kept]) / (weights.sum() + EPS))
    return out


@register("none")
def no_advantage(table: StepTable) -> np.ndarray:
    """DAgger's SFT has no advantage."""
    return np.zeros(len(table))
