"""The success predictors of algorithms.md §9.7 and TRACE's test §5(f).6 [RECONSTRUCTED]."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from agentenv.trainers.predictor import (
    BetaBernoulliPredictor,
    LearnedPredictor,
    Prefix,
    SuccessPredictor,
    calibration,
    featurise,
)

A = Prefix("find the key in the kitchen", ("go to the drawer", "open the drawer"))
B = Prefix("find the key in the kitchen", ("go to the garden", "dig a hole"))


def test_prefix_depth_and_stable_key():
    assert Prefix("task").depth == 0 and A.depth == 2
    assert A.key() == Prefix(A.root, tuple(A.turns)).key() != B.key()
    # no ambiguity from concatenation
    assert Prefix("ab", ("c",)).key() != Prefix("a", ("bc",)).key()


def test_beta_counts_and_back_off():
    beta = BetaBernoulliPredictor()
    assert isinstance(beta, SuccessPredictor)
    root = Prefix(A.root)
    assert beta.predict([root, A]) == pytest.approx([0.5, 0.5])
    metrics = beta.update([(root, 1.0), (root, 1.0), (root, 0.0), (A, 1.0), (A, 0.5)])
    assert metrics["loss"] == pytest.approx(np.log(2))  # every prediction was 0.5 before the update
    assert beta.predict([root]) == pytest.approx([3 / 5])
    assert beta.predict([A]) == pytest.approx([(1 + 1.5) / (2 + 2)])  # fractional target: half a success
    # B is unseen: its longest seen shorter prefix is the root; A's child backs off to A
    assert beta.predict([B, Prefix(A.root, (*A.turns, "take key"))]) == pytest.approx([3 / 5, 2.5 / 4])
    assert beta.predict([Prefix("another task")]) == pytest.approx([0.5])
    skewed = BetaBernoulliPredictor(prior_a=1, prior_b=3)
    assert skewed.predict([root]) == pytest.approx([0.25])
    with pytest.raises(ValueError):
        beta.update([(root, 1.5)])


def test_beta_state_round_trip_is_json():
    beta = BetaBernoulliPredictor(2.0, 1.0)
    beta.update([(A, 1.0), (Prefix(A.root), 0.0), (B, 0.25)])
    copy = BetaBernoulliPredictor()
    copy.load_state_dict(json.loads(json.dumps(beta.state_dict())))
    probe = [A, B, Prefix(A.root), Prefix(A.root, ("x",)), Prefix("unseen")]
    assert np.array_equal(copy.predict(probe), beta.predict(probe))


def test_features_are_normalised_and_stable():
    idx, val = featurise(A, 64)
    width = 2 * 64 + 10
    assert idx.max() < width and len(set(idx.tolist())) == len(idx)
    root_block = val[idx < 64]
    assert float(np.sum(root_block**2)) == pytest.approx(1.0, rel=1e-5)
    # crc32, not Python's salted hash: the same indices every time
    assert featurise(A, 64)[0].tolist() == idx.tolist()


def test_learned_predictor_separates_a_two_state_toy():
    """§5(f).6: A always succeeds, B always fails; within 200 update steps (fixed seed)."""
    model = LearnedPredictor(seed=0)
    assert isinstance(model, SuccessPredictor)
    for _ in range(200):
        metrics = model.update([(A, 1.0), (B, 0.0)])
        p_a, p_b = model.predict([A, B])
        if p_a > 0.9 and p_b < 0.1:
            break
    assert p_a > 0.9 and p_b < 0.1, (p_a, p_b)
    assert metrics["loss"] < 0.2


def test_learned_predictor_is_deterministic_and_round_trips():
    def trained(seed: int) -> LearnedPredictor:
        model = LearnedPredictor(dim=256, hidden=16, seed=seed, window_steps=2)
        for _ in range(5):
            model.update([(A, 1.0), (B, 0.0), (Prefix(A.root), 0.5)])
        return model

    first, second = trained(3), trained(3)
    probe = [A, B, Prefix(A.root), Prefix("unrelated task", ("a turn",))]
    assert np.array_equal(first.predict(probe), second.predict(probe))
    assert not np.array_equal(first.predict(probe), trained(4).predict(probe))
    assert len(first.replay) == 2

    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    restored = LearnedPredictor(dim=256, hidden=16, seed=99, window_steps=2)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert np.array_equal(restored.predict(probe), first.predict(probe))
    # training continues identically from the checkpoint (optimiser, generator and replay included)
    assert first.update([(B, 1.0)]) == restored.update([(B, 1.0)])
    assert np.array_equal(restored.predict(probe), first.predict(probe))
    with pytest.raises(ValueError, match="config"):
        LearnedPredictor(dim=128, hidden=16, window_steps=2).load_state_dict(first.state_dict())


def test_calibration_hand_example():
    predicted = np.array([0.1, 0.3, 0.7, 0.9])
    outcomes = np.array([0.0, 1.0, 1.0, 1.0])
    out = calibration(predicted, outcomes, bins=5)
    assert out["brier"] == pytest.approx((0.01 + 0.49 + 0.09 + 0.01) / 4)
    # bins [0, .2) [.2, .4) [.6, .8) [.8, 1]: one prediction each
    assert out["ece"] == pytest.approx((0.1 + 0.7 + 0.3 + 0.1) / 4)
    two_bins = calibration(predicted, outcomes, bins=2)
    assert two_bins["ece"] == pytest.approx(0.5 * abs(0.2 - 0.5) + 0.5 * abs(0.8 - 1.0))
    perfect = calibration(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0]))
    assert perfect["brier"] == 0 and perfect["ece"] == 0
    assert np.isnan(calibration(np.zeros(0), np.zeros(0))["brier"])
