"""TRACE's contrast objective and greedy allocator against algorithms.md §5(f).1-4 [RECONSTRUCTED]."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agentenv.trainers.allocation import Anchor, contrast, greedy_allocate, marginal_gain


def test_contrast_values():
    assert contrast(4, 0.5) == pytest.approx(0.875)
    assert contrast(4, 0.9) == pytest.approx(0.3438, abs=5e-5)
    assert contrast(4, 0.1) == pytest.approx(contrast(4, 0.9))
    for n in range(0, 10):
        assert contrast(n, 0.0) == 0 and contrast(n, 1.0) == 0
    for p in np.linspace(0, 1, 11):
        assert contrast(1, float(p)) == pytest.approx(0, abs=1e-12)
    assert contrast(4, 0.5, "pair_count") == pytest.approx(3.0)
    with pytest.raises(ValueError):
        contrast(2, 1.5)


def test_marginal_gain_is_non_increasing_and_matches_the_closed_form():
    for p in np.linspace(0, 1, 21):
        p = float(p)
        gains = [marginal_gain(n, p) for n in range(1, 21)]
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(gains))
        for n in range(1, 21):
            assert gains[n - 1] == pytest.approx(p**n * (1 - p) + (1 - p) ** n * p, abs=1e-12)


def test_budget_is_conserved():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 8))
        floor = int(rng.integers(0, 3))
        budget = floor * k + int(rng.integers(0, 30))
        depths = rng.integers(0, 3, size=k).tolist()
        anchors = [Anchor(i, int(rng.integers(0, 4)) + (d > 0), float(rng.choice([0.0, 1.0, rng.random()])), d)
                   for i, d in enumerate(depths)]
        for objective in ("mixed_prob", "pair_count"):
            alloc = greedy_allocate(anchors, budget, rng, floor=floor, objective=objective)
            assert sum(alloc) == budget and min(alloc) >= floor


def test_floors_over_budget_and_bad_anchors_raise():
    with pytest.raises(ValueError, match="floors"):
        greedy_allocate([Anchor(i, 0, 0.5) for i in range(3)], 5, np.random.default_rng(0), floor=2)
    with pytest.raises(ValueError, match="n >= 1"):
        Anchor("prefix", 0, 0.5, depth=1)
    with pytest.raises(ValueError):
        Anchor("root", 0, -0.1)


def test_certain_anchors_get_nothing_above_the_floor_while_others_have_gain():
    anchors = [Anchor("sure", 0, 1.0), Anchor("hopeless", 0, 0.0), Anchor("mixed", 0, 0.3), Anchor("half", 0, 0.5)]
    alloc = greedy_allocate(anchors, 20, np.random.default_rng(1), floor=2)
    assert alloc[0] == 2 and alloc[1] == 2 and sum(alloc) == 20
    # prefixes (n >= 1, no floor): p in {0, 1} gets nothing
    prefixes = [Anchor("a", 1, 0.0, 1), Anchor("b", 3, 1.0, 1), Anchor("c", 1, 0.6, 2)]
    assert greedy_allocate(prefixes, 7, np.random.default_rng(2)) == [0, 0, 7]
    # only when every gain is 0 is the budget still spent (shallower first, then at random)
    flat = [Anchor("a", 1, 0.0, 2), Anchor("b", 1, 1.0, 1), Anchor("c", 1, 1.0, 1)]
    alloc = greedy_allocate(flat, 6, np.random.default_rng(3))
    assert sum(alloc) == 6 and alloc[0] == 0


def test_uniform_predictor_gives_a_uniform_deterministic_allocation():
    anchors = [Anchor(f"x{i}", 0, 0.5) for i in range(5)]
    for budget in (10, 13, 24):
        alloc = greedy_allocate(anchors, budget, np.random.default_rng(7), floor=2)
        assert sum(alloc) == budget and max(alloc) - min(alloc) <= 1
        assert alloc == greedy_allocate(anchors, budget, np.random.default_rng(7), floor=2)
    # the leftover units go to a seeded random subset
    draws = {tuple(greedy_allocate(anchors, 13, np.random.default_rng(s), floor=2)) for s in range(20)}
    assert len(draws) > 1


def test_ties_prefer_shallower_anchors():
    anchors = [Anchor("deep", 1, 0.5, 3), Anchor("mid", 1, 0.5, 2), Anchor("root", 1, 0.5, 0)]
    assert greedy_allocate(anchors, 1, np.random.default_rng(0)) == [0, 0, 1]
    # after the root's gain drops, the next-shallowest wins
    assert greedy_allocate(anchors, 2, np.random.default_rng(0)) == [0, 1, 1]
    # a larger gain beats depth
    unequal = [Anchor("root", 3, 0.5, 0), Anchor("deep", 1, 0.5, 4)]
    assert greedy_allocate(unequal, 1, np.random.default_rng(0)) == [0, 1]
