"""DynaWeb's policy update (algorithms.md §8(f) 2, 3, 5): GSPO's sequence ratio, observation masking, and the
learner's two ways of training on real expert episodes (π_old log-probs recomputed, auxiliary SFT)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from agentenv.trainers.config import TrainConfig
from agentenv.trainers.learner import Learner, LearnerConfig, collate, token_logprobs
from agentenv.trainers.losses import LossConfig, PolicyLoss, ratios
from agentenv.trainers.rows import Row

GSPO = dict(ratio="sequence", clip_low=3e-4, clip_high=4e-4, dual_clip=None, aggregation="seq-mean-token-mean")


def grad_of(loss_fn, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = logp.clone().requires_grad_(True)
    loss = loss_fn(logp)
    loss.backward()
    assert logp.grad is not None
    return loss.detach(), logp.grad


def test_gspo_ratio_is_exp_mean_log_ratio_and_a_clipped_sequence_has_no_gradient():
    old = torch.tensor([[-1.0, -2.0, -0.5]])
    logp = old + torch.tensor([[0.1, -0.1, 0.3]])
    mask = torch.ones(1, 3)
    ratio = ratios(logp, old, mask, "sequence")
    assert torch.allclose(ratio, torch.full((1, 3), math.exp(0.1)), atol=1e-5)
    assert ratio[0, 0].item() == pytest.approx(1.10517, abs=1e-5)
    loss = PolicyLoss(LossConfig(**GSPO))  # type: ignore[arg-type]
    out = loss(logp, old, torch.ones(1, 3), mask)
    assert out.metrics["clip_fraction"] == 1.0
    _, grad = grad_of(lambda lp: loss(lp, old, torch.ones(1, 3), mask).loss, logp)
    assert torch.equal(grad, torch.zeros(1, 3))  # s > 1 + ε_h with Â > 0: clipped, exactly no gradient
    _, grad = grad_of(lambda lp: loss(lp, old, -torch.ones(1, 3), mask).loss, logp)
    assert (grad != 0).all()  # Â < 0: min(sÂ, clip(s)Â) is the unclipped term


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean"])
def test_gspo_equals_token_ppo_when_every_sequence_has_one_token(aggregation: str):
    old = torch.tensor([[-1.0], [-0.5], [-2.0], [-0.2]])
    logp = torch.tensor([[-0.8], [-0.9], [-1.0], [-0.2001]])
    adv, mask = torch.tensor([[1.0], [-1.0], [0.5], [2.0]]), torch.ones(4, 1)
    common = dict(clip_low=0.2, clip_high=0.28, dual_clip=None, aggregation=aggregation)
    token = PolicyLoss(LossConfig(ratio="token", **common))  # type: ignore[arg-type]
    sequence = PolicyLoss(LossConfig(ratio="sequence", **common))  # type: ignore[arg-type]
    v1, g1 = grad_of(lambda lp: token(lp, old, adv, mask).loss, logp)
    v2, g2 = grad_of(lambda lp: sequence(lp, old, adv, mask).loss, logp)
    assert torch.allclose(v1, v2, atol=1e-7) and torch.allclose(g1, g2, atol=1e-7)
    assert (g1 != 0).any() and (g1 == 0).any()  # some tokens are clipped, some are not: both paths compared


@pytest.mark.parametrize("kind", ["token", "sequence"])
def test_observation_tokens_get_no_gradient_and_do_not_change_the_loss(kind: str):
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    old = torch.tensor([[-3.0, -1.0, -0.7, -2.0, -4.0, -0.4, -1.0], [-0.3, -5.0, -1.1, -0.9, -2.0, -1.0, 0.0]])
    logp = old + torch.tensor([[0.5, 0.02, -0.03, 0.9, -0.8, 0.01, 2.0], [-0.01, 1.5, 0.02, 0.03, -3.0, 0.0, 0.0]])
    adv = torch.tensor([[1.0], [-0.5]]) * mask
    loss = PolicyLoss(LossConfig(ratio=kind, clip_low=0.2, clip_high=0.2, dual_clip=None,  # type: ignore[arg-type]
                                 aggregation="seq-mean-token-mean"))
    value, grad = grad_of(lambda lp: loss(lp, old, adv, mask).loss, logp)
    masked = ~mask.bool()
    assert torch.equal(grad[masked], torch.zeros(int(masked.sum())))
    assert (grad[mask.bool()] != 0).all()
    moved, moved_old = logp.clone(), old.clone()
    moved[masked] += torch.linspace(-4.0, 7.0, int(masked.sum()))
    moved_old[masked] -= 3.0
    other = loss(moved, moved_old, adv, mask).loss.detach()
    assert torch.equal(value, other)  # bit-identical


class Capturing(Learner):
    """Keeps the accumulated gradient instead of stepping."""

    def apply_gradients(self) -> float:
        self.gradient = torch.cat([p.grad.flatten() for p in self.model.parameters() if p.grad is not None])
        return 0.0


def model_of(model_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def expert_rows(n: int = 4) -> list[Row]:
    """Token rows with masked observations between trained action tokens and placeholder log-probs."""
    rows = []
    for i in range(n):
        tokens = [(7 * i + 3 * k) % 300 + 5 for k in range(8 + 2 * i)]
        mask = [0, 0, 0, 1, 1, 0, 1, 1] + [1, 0] * i
        rows.append(Row(tokens, mask, [-50.0 if m else 0.0 for m in mask], i))
    return rows


def test_recomputed_old_logprobs_give_ratio_one_at_theta_old(tiny_model_dir: Path):
    rows = [Row(r.tokens, r.mask, r.old_logp, r.episode, recompute_old_logp=True) for r in expert_rows(3)]
    loss = LossConfig(**GSPO)  # type: ignore[arg-type]
    metrics = Capturing(model_of(tiny_model_dir), LearnerConfig(epochs=1), loss).update(rows, [1.0, -0.5, 0.7])
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and metrics["clip_fraction"] == 0.0
    assert all(r.old_logp[3] == -50.0 and r.recompute_old_logp for r in rows)  # the caller's rows are untouched
    plain = [Row(r.tokens, r.mask, r.old_logp, r.episode) for r in rows]
    stale = Capturing(model_of(tiny_model_dir), LearnerConfig(epochs=1), loss).update(plain, [1.0, -0.5, 0.7])
    assert abs(stale["ratio_mean"] - 1.0) > 1.0 and stale["clip_fraction"] > 0


def mixed_rows() -> tuple[list[Row], list[float]]:
    rows = expert_rows(5)
    for i in (1, 4):
        rows[i].sft = True
    return rows, [1.0, 0.0, -0.5, 0.25, 0.0]


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean"])
def test_sft_and_policy_rows_accumulate_to_the_whole_mini_batch_gradient(tiny_model_dir: Path, aggregation: str):
    rows, advantages = mixed_rows()
    rows = [Row(r.tokens, r.mask, [0.0] * len(r), r.episode, recompute_old_logp=not r.sft, sft=r.sft) for r in rows]
    loss = LossConfig(ratio="sequence", aggregation=aggregation)  # type: ignore[arg-type]

    def run(micro_batch_tokens: int, only: str | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        chosen = [r for r in rows if only is None or r.sft == (only == "sft")]
        adv = [a for r, a in zip(rows, advantages, strict=True) if r in chosen]
        learner = Capturing(model_of(tiny_model_dir), LearnerConfig(micro_batch_tokens=micro_batch_tokens,
                                                                    aux_sft_coef=0.3), loss)
        metrics = learner.update(chosen, adv)
        return learner.gradient, metrics

    whole, m_whole = run(10_000)
    split, m_split = run(1)  # one row per micro-batch
    assert torch.allclose(whole, split, atol=1e-6, rtol=1e-4) and whole.abs().sum() > 0
    assert m_whole["loss"] == pytest.approx(m_split["loss"], rel=1e-5)
    assert m_whole["aux_sft_nll"] == pytest.approx(m_split["aux_sft_nll"], rel=1e-5)
    pg, m_pg = run(10_000, "pg")
    sft, m_sft = run(10_000, "sft")
    assert torch.allclose(whole, pg + sft, atol=1e-6, rtol=1e-4)  # L = L_pg + λ·L_sft, each with its normaliser
    assert m_whole["loss"] == pytest.approx(m_pg["loss"] + m_sft["loss"], rel=1e-5)
    assert m_sft["loss"] == pytest.approx(0.3 * m_sft["aux_sft_nll"], rel=1e-6)
    model = model_of(tiny_model_dir)  # λ·NLL by hand: the token mean over all the sft rows' trained tokens
    batch = collate([r for r in rows if r.sft], [0.0, 0.0], pad_id=0, device=torch.device("cpu"))
    (0.3 * -(token_logprobs(model, batch)[0] * batch.mask).sum() / batch.mask.sum()).backward()
    by_hand = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(sft, by_hand, atol=1e-7, rtol=1e-4)
    assert m_whole["rows_skipped"] == 0  # a zero-advantage sft row is not inert


def test_aux_sft_needs_a_coefficient_and_reports_the_nll(tiny_model_dir: Path):
    rows, advantages = mixed_rows()
    with pytest.raises(ValueError, match="aux_sft_coef"):
        Learner(model_of(tiny_model_dir), LearnerConfig(), LossConfig()).update(rows, advantages)
    model = model_of(tiny_model_dir)
    sft = [r for r in rows if r.sft]
    batch = collate(sft, [0.0] * len(sft), pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch)
    expected = float(-(logp * batch.mask).sum() / batch.mask.sum())
    metrics = Learner(model, LearnerConfig(aux_sft_coef=0.1), LossConfig()).update(rows, advantages)
    assert metrics["aux_sft_nll"] == pytest.approx(expected, rel=1e-5) and expected > 0
    plain = Learner(model_of(tiny_model_dir), LearnerConfig(), LossConfig()).update(expert_rows(3), [1.0, 0.0, -1.0])
    assert "aux_sft_nll" not in plain


def test_config_validates_the_dynaweb_options():
    assert TrainConfig().ratio == "token" and TrainConfig().expert_mode == "group_inject"
    for bad in ({"ratio": "row"}, {"expert_mode": "mix"}, {"expert_mix": 1.5}, {"expert_mix": -0.1},
                {"aux_sft_coef": -1.0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)  # type: ignore[arg-type]
