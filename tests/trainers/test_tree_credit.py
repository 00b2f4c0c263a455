"""Tree credit assignment: ARPO soft/hard attribution (algorithms.md §2(f).5) and TRACE's tree group
advantage (§5(f).5) [RECONSTRUCTED]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentenv.trainers.advantages import grpo
from agentenv.trainers.grouping import StepTable
from agentenv.trainers.tree_credit import lcp_matrix, tree_attribution, tree_group_advantage

# ----- ARPO attribution -------------------------------------------------------------------------------------


def toy_logp(theta: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """A log-linear policy: logits = theta @ [one-hot(previous token), one-hot(position)]."""
    vocab, positions = theta.shape[0], theta.shape[1] - theta.shape[0] - 1
    out = []
    for p, tok in enumerate(tokens):
        feat = torch.zeros(theta.shape[1], dtype=theta.dtype)
        feat[tokens[p - 1] if p else vocab] = 1.0  # index `vocab` is the begin-of-sequence marker
        feat[vocab + 1 + min(p, positions - 1)] = 1.0
        out.append(torch.log_softmax(theta @ feat, dim=0)[tok])
    return torch.stack(out)


def test_soft_gradient_on_a_shared_token_is_d_times_the_hard_one():
    """§2(f).5: a shared prefix token in d=2 sequences with advantages +1 and -0.2; sum-aggregated losses."""
    episodes = [[0, 1, 2], [0, 1, 3]]  # episode 1 forks from episode 0 after 2 tokens
    advantages, parents, shared, lengths = [1.0, -0.2], [None, 0], [0, 2], [3, 3]
    soft = tree_attribution(advantages, parents, shared, lengths, "soft")
    hard = tree_attribution(advantages, parents, shared, lengths, "hard")
    assert hard[0][0] == pytest.approx([0.4, 0.4, 1.0]) and hard[0][1] == pytest.approx([0.4, 0.4, -0.2])
    assert hard[1][0].tolist() == [1, 1, 1] and hard[1][1].tolist() == [0, 0, 1]  # counted once

    theta0 = torch.randn(4, 4 + 1 + 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def grad(attribution: tuple[list[np.ndarray], list[np.ndarray]], position: int) -> torch.Tensor:
        theta = theta0.clone().requires_grad_(True)
        adv, weight = attribution
        loss = sum(-(weight[i][position] * adv[i][position]) * toy_logp(theta, tokens)[position]
                   for i, tokens in enumerate(episodes))
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        assert theta.grad is not None
        return theta.grad

    for position in (0, 1):  # the shared tokens: identical logp (and ratio) in both copies
        g_soft, g_hard = grad(soft, position), grad(hard, position)
        assert g_hard.abs().max() > 1e-3
        assert torch.allclose(g_soft, 2 * g_hard, atol=1e-12)
    # the unshared last token trains identically in both modes
    assert torch.allclose(grad(soft, 2), grad(hard, 2), atol=1e-12)


def test_soft_is_the_per_episode_broadcast():
    adv, weight = tree_attribution([0.5, -1.0, 2.0], [None, 0, 1], [0, 2, 1], [4, 3, 5], "soft")
    for a, w, value, n in zip(adv, weight, [0.5, -1.0, 2.0], [4, 3, 5], strict=True):
        assert a.tolist() == [value] * n and w.tolist() == [1.0] * n


def test_hard_without_branches_equals_soft():
    parents: list[int | None] = [None, None, 0, None]
    args = ([0.3, -0.7, 1.1, 0.0], parents, [0, 0, 0, 0], [5, 2, 4, 0])
    soft, hard = tree_attribution(*args, "soft"), tree_attribution(*args, "hard")
    for s, h in zip(soft[0] + soft[1], hard[0] + hard[1], strict=True):
        assert np.array_equal(s, h)


def test_grandchild_lcp_is_the_minimum_along_the_path():
    # 0 (root) <- 1 (shares 6) <- 2 (shares 8 with 1); 0 <- 3 (shares 4); 4 is another tree
    parents, shared, lengths = [None, 0, 1, 0, None], [0, 6, 8, 4, 0], [10, 10, 12, 7, 9]
    lcp = lcp_matrix(parents, shared, lengths)
    assert lcp[0, 2] == 6 and lcp[1, 2] == 8 and lcp[2, 3] == 4 and lcp[1, 3] == 4 and lcp[0, 3] == 4
    assert lcp[2, 2] == 12 and (lcp[4, :4] == 0).all() and np.array_equal(lcp, lcp.T)
    a = [1.0, 2.0, 4.0, 8.0, 16.0]
    adv, weight = tree_attribution(a, parents, shared, lengths, "hard")
    assert adv[2][3] == pytest.approx(15 / 4) and weight[2][3] == 0 and weight[0][3] == 1  # all four share it
    assert adv[2][5] == pytest.approx(7 / 3) and weight[2][5] == 0  # {0, 1, 2}
    assert adv[2][7] == pytest.approx(3.0) and weight[2][7] == 0 and weight[1][7] == 1  # {1, 2}
    assert adv[2][9] == pytest.approx(4.0) and weight[2][9] == 1  # its own token
    assert adv[4].tolist() == [16.0] * 9 and weight[4].tolist() == [1.0] * 9


def test_hard_counts_every_distinct_token_once_on_random_trees():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        parents: list[int | None] = [None]
        parents += [int(rng.integers(0, i)) if rng.random() < 0.8 else None for i in range(1, n)]
        lengths = [int(rng.integers(0, 12)) for _ in range(n)]
        shared = [0 if par is None else int(rng.integers(0, min(lengths[par], lengths[i]) + 1))
                  for i, par in enumerate(parents)]
        a = rng.normal(size=n)
        soft_adv, _ = tree_attribution(a, parents, shared, lengths, "soft")
        adv, weight = tree_attribution(a, parents, shared, lengths, "hard")
        distinct = sum(lengths) - sum(s for s, par in zip(shared, parents, strict=True) if par is not None)
        assert sum(float(w.sum()) for w in weight) == distinct
        # the soft total is the hard one times each token's multiplicity
        lcp = lcp_matrix(parents, shared, lengths)
        mult = [np.array([(lcp[i] > p).sum() for p in range(lengths[i])]) for i in range(n)]
        assert sum(float(s.sum()) for s in soft_adv) == pytest.approx(
            sum(float((h * w * m).sum()) for h, w, m in zip(adv, weight, mult, strict=True)))


@pytest.mark.parametrize(("parents", "shared", "lengths", "match"), [
    ([None, 5], [0, 1], [3, 3], "out of range"),
    ([1, 0], [1, 1], [3, 3], "cycle"),
    ([None, 1], [0, 1], [3, 3], "cycle"),
    ([None, 0], [0, 4], [3, 5], "shared"),
    ([None, 0], [0, 3], [3, 2], "shared"),
])
def test_attribution_rejects_bad_trees(parents, shared, lengths, match):
    with pytest.raises(ValueError, match=match):
        tree_attribution([0.0] * len(parents), parents, shared, lengths, "hard")


# ----- TRACE tree group advantage ---------------------------------------------------------------------------


def test_no_branching_equals_grpo():
    """§5(f).5: with only root groups the tree advantage is GRPO's, on every token."""
    outcomes, groups, lengths = [1.0, 0.0, 0.0, 1.0, 0.5, 0.7, 0.2], ["g", "g", "g", "g", "h", "h", "solo"], \
        [3, 5, 1, 4, 2, 6, 3]
    table = StepTable.from_episodes([{"group": g, "outcome": r, "anchors": ["s"]} for r, g in zip(outcomes, groups,
                                                                                                 strict=True)])
    expected = grpo(table)
    none: list[list[tuple[str, int]]] = [[] for _ in outcomes]
    for anchors in (none, [[(f"own{i}", 1)] for i in range(len(outcomes))]):  # none, or singletons
        out = tree_group_advantage(outcomes, groups, anchors, lengths)
        for i, tokens in enumerate(out):
            assert tokens == pytest.approx([expected[i]] * lengths[i])
    for norm in ("std_pop", "none"):
        out = tree_group_advantage(outcomes, groups, [[] for _ in outcomes], lengths, norm=norm)
        assert [t[0] for t in out] == pytest.approx(grpo(table, norm=norm).tolist())


def test_one_anchor_with_three_siblings():
    # episode 0 passes through anchor "a" after 5 tokens; 1 and 2 branch there; 3 is a plain root rollout.
    # Anchor "b" (after 7 tokens) has episode 0 alone, so its tokens fall back to "a".
    outcomes, groups, lengths = [1.0, 0.0, 0.0, 1.0], ["g"] * 4, [9, 8, 7, 6]
    anchors = [[("a", 5), ("b", 7)], [("a", 5)], [("a", 5)], []]
    out = tree_group_advantage(outcomes, groups, anchors, lengths)
    root = 0.5 / (np.sqrt(1 / 3) + 1e-6)  # 1, 0, 0, 1: mean 0.5, sample std sqrt(1/3)
    up, down = (2 / 3) / (np.sqrt(1 / 3) + 1e-6), -(1 / 3) / (np.sqrt(1 / 3) + 1e-6)  # 1, 0, 0 under "a"
    assert out[0] == pytest.approx([root] * 5 + [up] * 4)
    assert out[1] == pytest.approx([-root] * 5 + [down] * 3)
    assert out[2] == pytest.approx([-root] * 5 + [down] * 2)
    assert out[3] == pytest.approx([root] * 6)
    # with no std division the anchor values are the plain centred outcomes
    plain = tree_group_advantage(outcomes, groups, anchors, lengths, norm="none")
    assert plain[0][-1] == pytest.approx(2 / 3) and plain[1][-1] == pytest.approx(-1 / 3)


def test_tree_group_rejects_bad_anchor_lists():
    with pytest.raises(ValueError, match="twice"):
        tree_group_advantage([1.0], ["g"], [[("a", 1), ("a", 2)]], [3])
    with pytest.raises(ValueError, match="non-decreasing"):
        tree_group_advantage([1.0], ["g"], [[("a", 2), ("b", 1)]], [3])
    with pytest.raises(ValueError, match="one entry per episode"):
        tree_group_advantage([1.0, 0.0], ["g"], [[]], [3])
