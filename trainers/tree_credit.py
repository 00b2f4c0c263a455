"""Token advantages over rollout trees (``shared/algorithms.md`` §2(b), §5(b), §9.3).

Branched episodes share prefix tokens with their parents. :func:`tree_attribution` decides how a shared token
is credited (ARPO's soft and hard attribution); :func:`tree_group_advantage` is TRACE's tree-structured
group advantage, where the siblings below each anchor form their own group.

**[RECONSTRUCTED]**: ARPO's hard attribution is rebuilt from summaries (the released code implements soft
attribution only, i.e. plain GRPO), and everything about TRACE (§5) is reconstructed from its abstract.
Both are pure functions of plain sequences (no Trajectory objects), numpy on the CPU.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

from .advantages import EPS, Norm, group_normalise

__all__ = ["EPS", "lcp_matrix", "tree_attribution", "tree_group_advantage"]


# ----- tree structure -------------------------------------------------------------------------------------
def _ancestry(parents: Sequence[int | None], shared: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
    """Each episode's path to its root (itself first), after validating the forest."""
    n = len(parents)
    if len(shared) != n or len(lengths) != n:
        raise ValueError(f"parents, shared and lengths must have one entry per episode ({n}, {len(shared)}, "
                         f"{len(lengths)})")
    for i, (par, s, length) in enumerate(zip(parents, shared, lengths, strict=True)):
        if length < 0:
            raise ValueError(f"episode {i}: negative length {length}")
        if par is None:
            continue
        if not 0 <= par < n:
            raise ValueError(f"episode {i}: parent index {par} out of range [0, {n})")
        if not 0 <= s <= min(lengths[par], length):
            raise ValueError(f"episode {i}: shared={s} must lie in [0, min(own length {length}, parent {par}'s "
                             f"length {lengths[par]})]")
    paths: list[list[int]] = []
    for i in range(n):
        path, seen = [i], {i}
        node = parents[i]
        while node is not None:
            if node in seen:
                raise ValueError(f"episode {i}: the parent links form a cycle through episode {node}")
            path.append(node)
            seen.add(node)
            node = parents[node]
        paths.append(path)
    return paths


def lcp_matrix(parents: Sequence[int | None], shared: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
    """``LCP[i, j]``: how many leading tokens episodes i and j share.

    The minimum of ``shared`` over the parent links on the tree path between i and j (through their lowest
    common ancestor); ``lengths[i]`` on the diagonal; 0 across trees. (``shared`` of a root is ignored.)
    """
    paths = _ancestry(parents, shared, lengths)
    n = len(paths)
    out = np.zeros((n, n), dtype=np.int64)
    # the running minimum of shared from each episode up to each of its ancestors
    up: list[dict[int, int]] = []
    for path in paths:
        mins, running = {path[0]: int(lengths[path[0]])}, int(lengths[path[0]])
        for child, anc in itertools.pairwise(path):
            running = min(running, int(shared[child]))
            mins[anc] = running
        up.append(mins)
    for i in range(n):
        for j in range(i, n):
            if paths[i][-1] != paths[j][-1]:
                continue
            lca = next(a for a in paths[i] if a in up[j])
            out[i, j] = out[j, i] = min(up[i][lca], up[j][lca])
    return out


# ----- ARPO: soft and hard attribution --------------------------------------------------------------------
def tree_attribution(advantages: Sequence[float], parents: Sequence[int | None], shared: Sequence[int],
                     lengths: Sequence[int], mode: Literal["soft", "hard"],
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-episode token advantages and token weights (ARPO §2(b)).

    ``soft`` (ARPO's default, plain GRPO): ``A_i`` on every token of episode i, weight 1, so a token shared
    by d episodes is trained d times, once with each copy's advantage; its gradient is the sum of theirs.
    ``hard``: token p of episode i gets the mean advantage of ``S = {j : LCP(i, j) > p} ∪ {i}`` (the
    episodes that contain that very token) and weight 1 only in S's lowest-index member, so it is counted
    once. S is the same set from every member's side (LCP is an ultrametric on a tree), so each shared
    token has exactly one weighted copy. Without branching the two modes agree.
    """
    adv = np.asarray(advantages, dtype=np.float64)
    if len(adv) != len(parents):
        raise ValueError(f"{len(adv)} advantages for {len(parents)} episodes")
    if mode not in ("soft", "hard"):
        raise ValueError(f"unknown attribution mode {mode!r}")
    lcp = lcp_matrix(parents, shared, lengths)
    if mode == "soft":
        return ([np.full(int(n), a) for a, n in zip(adv.tolist(), lengths, strict=True)],
                [np.ones(int(n)) for n in lengths])
    tokens, weights = [], []
    for i, n in enumerate(lengths):
        members = np.flatnonzero(lcp[i] > 0)  # ascending episode index; i itself when n > 0
        inside = lcp[i, members][None, :] > np.arange(int(n))[:, None]  # [token, member]: member holds the token
        tokens.append((inside @ adv[members]) / np.maximum(inside.sum(axis=1), 1))
        weights.append((members[np.argmax(inside, axis=1)] == i).astype(np.float64) if n else np.zeros(0))
    return tokens, weights


# ----- TRACE: tree-structured group advantage -------------------------------------------------------------
def tree_group_advantage(outcomes: Sequence[float], groups: Sequence[Hashable],
                         anchors: Sequence[Sequence[tuple[Hashable, int]]], lengths: Sequence[int],
                         norm: Norm = "std_sample", singleton: Literal["raw", "zero"] = "raw") -> list[np.ndarray]:
    """TRACE's token advantages (§5(b)): a token is judged against the siblings of its deepest anchor.

    ``anchors[i]`` lists the turn-prefix anchors episode i passes through, root to leaf, as ``(anchor id,
    start token)``: its tokens at positions >= start were generated after that anchor. Every anchor's group
    is the episodes listing it (the original continuation and its branches), normalised like GRPO:
    ``(R - mean) / (std + eps)``. A token takes the advantage of the deepest listed anchor whose group has
    >= 2 members and whose start is <= its position; otherwise that of the root group ``groups[i]``, which
    is a plain GRPO group (``singleton`` as in ``grpo``: verl keeps a lone episode's raw reward). Without
    branching every token gets the GRPO advantage. Shared prefix tokens stay per sequence here (soft);
    :func:`tree_attribution` is the place for counting them once.
    """
    r = np.asarray(outcomes, dtype=np.float64)
    n = len(r)
    if not len(groups) == len(anchors) == len(lengths) == n:
        raise ValueError(f"outcomes, groups, anchors and lengths must have one entry per episode ({n}, "
                         f"{len(groups)}, {len(anchors)}, {len(lengths)})")
    members: list[tuple[int, Hashable]] = []  # (episode, anchor id), one per membership
    for i, path in enumerate(anchors):
        ids = [a for a, _ in path]
        if len(set(ids)) != len(ids):
            raise ValueError(f"episode {i} lists an anchor twice: {ids}")
        starts = [int(s) for _, s in path]
        if any(not 0 <= s <= lengths[i] for s in starts) or starts != sorted(starts):
            raise ValueError(f"episode {i}: anchor starts {starts} must be non-decreasing within [0, {lengths[i]}]")
        members += [(i, a) for a in ids]
    root = group_normalise(r, list(groups), norm, singleton)
    keys = [a for _, a in members]
    size = Counter(keys)
    values = group_normalise(r[[i for i, _ in members]], keys, norm, singleton="zero")
    by_member = {m: float(v) for m, v in zip(members, values.tolist(), strict=True)}
    out = []
    for i, path in enumerate(anchors):
        tokens = np.full(int(lengths[i]), root[i])
        for a, start in path:  # root to leaf: deeper anchors overwrite their suffix
            if size[a] >= 2:
                tokens[int(start):] = by_member[(i, a)]
        out.append(tokens)
    return out
