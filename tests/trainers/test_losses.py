"""PolicyLoss against algorithms.md §1(f).5-6 and the shared invariants of §9.5."""

from __future__ import annotations

import math

import pytest
import torch

from agentenv.trainers.losses import (
    LossConfig,
    PolicyLoss,
    aggregate,
    clipped_surrogate,
    kl_penalty,
    ratios,
    sft_loss,
)


def grad_of(loss_fn, logp: torch.Tensor) -> tuple[float, torch.Tensor]:
    logp = logp.clone().requires_grad_(True)
    loss = loss_fn(logp)
    loss.backward()
    assert logp.grad is not None
    return float(loss.detach()), logp.grad


def test_at_theta_old_the_gradient_is_minus_advantage_over_token_count():
    old = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -9.0]])
    adv = torch.tensor([[1.0, 1.0, 1.0], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss = PolicyLoss()
    _, grad = grad_of(lambda lp: loss(lp, old, adv, mask).loss, old)
    assert grad == pytest.approx(-adv * mask / mask.sum(), abs=1e-7)


def test_a_clipped_token_has_no_gradient():
    old = torch.tensor([[0.0]])
    logp = torch.tensor([[math.log(1.5)]])  # r = 1.5 > 1 + 0.2
    _, grad = grad_of(lambda lp: PolicyLoss()(lp, old, torch.tensor([[1.0]]), torch.ones(1, 1)).loss, logp)
    assert float(grad) == 0.0
    out = PolicyLoss()(logp, old, torch.tensor([[1.0]]), torch.ones(1, 1))
    assert out.metrics["clip_fraction"] == 1.0 and out.loss.item() == pytest.approx(-1.2)


def test_dual_clip_bounds_a_negative_advantage():
    ratio, adv = torch.tensor([[5.0]]), torch.tensor([[-1.0]])
    loss, active = clipped_surrogate(ratio, adv, 0.2, 0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(3.0) and bool(active)
    logp = torch.tensor([[math.log(5.0)]])
    value, grad = grad_of(lambda lp: PolicyLoss()(lp, torch.zeros(1, 1), adv, torch.ones(1, 1)).loss, logp)
    assert value == pytest.approx(3.0) and float(grad) == 0.0
    plain, _ = clipped_surrogate(ratio, adv, 0.2, 0.2, dual_clip=None)
    assert plain.item() == pytest.approx(5.0)


def test_gspo_with_one_token_sequences_equals_token_ppo():
    old = torch.tensor([[-1.0], [-0.5], [-2.0]])
    logp = torch.tensor([[-0.8], [-0.9], [-1.0]])
    adv, mask = torch.tensor([[1.0], [-1.0], [0.5]]), torch.ones(3, 1)
    token = PolicyLoss(LossConfig(ratio="token"))
    sequence = PolicyLoss(LossConfig(ratio="sequence"))
    v1, g1 = grad_of(lambda lp: token(lp, old, adv, mask).loss, logp)
    v2, g2 = grad_of(lambda lp: sequence(lp, old, adv, mask).loss, logp)
    assert v1 == pytest.approx(v2) and torch.allclose(g1, g2)


def test_sequence_ratio_is_the_exp_mean_log_ratio_over_the_mask():
    logp, old = torch.tensor([[-1.0, -2.0, -5.0]]), torch.tensor([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert ratios(logp, old, mask, "sequence")[0, 0].item() == pytest.approx(math.exp((0.5 - 1.0) / 2))


def test_aggregation_modes_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(values, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(values, mask, "seq-mean-token-sum-norm", max_tokens=5).item() == pytest.approx(10 / 5)
    with pytest.raises(ValueError):
        aggregate(values, mask, "mean")  # type: ignore[arg-type]


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
    assert kl_penalty(logp, ref, "kl").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "mse").item() == pytest.approx(0.125)
    assert kl_penalty(logp, ref, "abs").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "low_var_kl").item() == pytest.approx(math.exp(-0.5) + 0.5 - 1)
    assert kl_penalty(torch.tensor([-30.0]), torch.tensor([0.0]), "low_var_kl").item() == 10.0  # clamped
    assert kl_penalty(logp, logp, "low_var_kl").item() == 0.0


def test_kl_and_entropy_terms_add_to_the_loss():
    logp, old = torch.tensor([[-1.0, -1.0]]), torch.tensor([[-1.0, -1.0]])
    adv, mask = torch.zeros(1, 2), torch.ones(1, 2)
    ref, entropy = torch.tensor([[-1.5, -1.5]]), torch.tensor([[2.0, 4.0]])
    out = PolicyLoss(LossConfig(kl="kl", kl_coef=0.1, entropy_coef=0.01))(logp, old, adv, mask, ref, entropy)
    assert out.loss.item() == pytest.approx(0.1 * 0.5 - 0.01 * 3.0)
    assert out.metrics["kl"] == pytest.approx(0.5) and out.metrics["entropy"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="ref_logp"):
        PolicyLoss(LossConfig(kl="kl", kl_coef=0.1))(logp, old, adv, mask)
    with pytest.raises(ValueError, match="no KL estimator"):
        PolicyLoss(LossConfig(kl_coef=0.1))


def test_token_weights_disabled_reduce_to_vanilla_ppo():
    old = torch.tensor([[-1.0, -2.0]])
    adv, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2)
    loss = PolicyLoss()
    v1, g1 = grad_of(lambda lp: loss(lp, old, adv, mask).loss, old)
    v2, g2 = grad_of(lambda lp: loss(lp, old, adv, mask, token_weights=torch.ones(1, 2)).loss, old)
    assert v1 == v2 and torch.equal(g1, g2)


def test_sft_is_the_mean_negative_log_likelihood_of_the_labels():
    logp = torch.tensor([[-0.5, -1.5, -9.0]])
    out = sft_loss(logp, torch.tensor([[1.0, 1.0, 0.0]]))
    assert out.loss.item() == pytest.approx(1.0)
