"""APPO's dual-group advantage with prefix credit (``shared/algorithms.md`` §4(b), §4(d), §9.3).

Initial rollouts and branch rollouts are normalised in separate groups (per prompt), because branches share a
prefix with their parent and would otherwise crowd the group statistics. A branch is never trained on
directly: its advantage is credited to the prefix of the initial rollout it forked from (tokens up to and
including the split token), averaged over all branches that cover a token, and added to that row's own
advantage. Pure numpy on plain arrays; nothing here knows about Trajectory objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

EPS = 1e-6
KINDS = ("init", "branch")


def _group_advantage(outcomes: np.ndarray, keys: Sequence[tuple[Hashable, str]]) -> np.ndarray:
    """``(R - mean) / (std_pop + 1e-6)`` within equal keys; a one-member group gets 0 (what the formula gives)."""
    out = np.zeros_like(outcomes)
    members: dict[tuple[Hashable, str], list[int]] = {}
    for row, key in enumerate(keys):
        members.setdefault(key, []).append(row)
    for rows in members.values():
        if len(rows) == 1:
            continue
        v = outcomes[rows]
        out[rows] = (v - v.mean()) / (v.std() + EPS)
    return out


def dual_group_advantage(outcomes: Sequence[float], groups: Sequence[Hashable], kinds: Sequence[str],
                         parents: Sequence[int | None], splits: Sequence[int | None],
                         masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The per-token advantage of every row (§4(b) ``compute_appo_advantage``).

    Rows are episodes in sequence view. ``masks[i]`` is row i's token mask (1 = trained policy token),
    ``kinds[i]`` is ``"init"`` or ``"branch"``; a branch has ``parents[i]`` = its init row's index and
    ``splits[i]`` = its split token's position in the parent's row (row coordinates, inclusive).

    * ``Â_j = (R_j - mean R) / (std_pop + 1e-6)`` within ``(groups[j], kinds[j])``. A one-member group gets 0
      (the formula's value: the member equals its own mean).
    * Init row i: ``Â_i`` on valid tokens, plus, on valid ``t``, the mean ``Â_b`` over the branches b of i
      with ``t ≤ split_b``.
    * Branch rows: all 0 (their loss mask is 0). Invalid tokens: 0.

    Raises ValueError on mismatched lengths, an unknown kind, a branch whose parent is not an init row (or
    is in another group: a branch continues its parent's prompt), or a split outside the parent's row.
    Returns one float64 array per row, shaped like ``masks[i]``.
    """
    n = len(outcomes)
    for name, seq in (("groups", groups), ("kinds", kinds), ("parents", parents), ("splits", splits),
                      ("masks", masks)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries, outcomes has {n}")
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ValueError(f"row {i}: kind must be 'init' or 'branch', got {kind!r}")
    valid = [np.asarray(m).astype(bool) for m in masks]
    for i, v in enumerate(valid):
        if v.ndim != 1:
            raise ValueError(f"row {i}: mask must be 1-D, got shape {v.shape}")

    children: dict[int, list[tuple[int, int]]] = {}
    for i in range(n):
        if kinds[i] != "branch":
            continue
        parent, split = parents[i], splits[i]
        if parent is None or split is None:
            raise ValueError(f"branch row {i} needs a parent and a split, got {parent!r} and {split!r}")
        if not 0 <= parent < n or kinds[parent] != "init":
            raise ValueError(f"branch row {i}: parent {parent} is not an init row")
        if groups[parent] != groups[i]:
            raise ValueError(f"branch row {i} is in group {groups[i]!r} but its parent in {groups[parent]!r}")
        if not 0 <= split < len(valid[parent]):
            raise ValueError(f"branch row {i}: split {split} outside its parent's row of length "
                             f"{len(valid[parent])}")
        children.setdefault(parent, []).append((i, split))

    hat = _group_advantage(np.asarray(outcomes, dtype=np.float64),
                           [(groups[i], kinds[i]) for i in range(n)])
    out: list[np.ndarray] = []
    for i in range(n):
        adv = np.zeros(valid[i].shape, dtype=np.float64)
        if kinds[i] == "init":
            adv[valid[i]] = hat[i]
            aux = np.zeros_like(adv)
            cnt = np.zeros_like(adv)
            for b, split in children.get(i, []):
                aux[: split + 1] += hat[b]
                cnt[: split + 1] += 1
            covered = (cnt > 0) & valid[i]
            adv[covered] += aux[covered] / cnt[covered]
        out.append(adv)
    return out
