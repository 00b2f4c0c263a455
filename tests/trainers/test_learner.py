"""The learner: exact re-scoring of sampled tokens, gradient accumulation equal to the whole batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from agentenv.policies.embedded import TransformersPolicy
from agentenv.policy import PolicyRequest, SamplingParams
from agentenv.trainers.learner import Learner, LearnerConfig, collate, token_logprobs
from agentenv.trainers.losses import LossConfig
from agentenv.trainers.rows import Row


def sampled_rows(model_dir: Path, temperature: float) -> tuple[TransformersPolicy, list[Row]]:
    policy = TransformersPolicy(str(model_dir))
    requests = [PolicyRequest([{"role": "user", "content": f"count to {i}"}],
                              SamplingParams(max_tokens=6, temperature=temperature, seed=i)) for i in range(3)]
    outs = asyncio.run(policy.act(requests))
    asyncio.run(policy.aclose())
    rows = [Row([*o.prompt_ids, *o.completion_ids], [0] * len(o.prompt_ids) + [1] * len(o.completion_ids),
                [0.0] * len(o.prompt_ids) + list(o.logprobs), i) for i, o in enumerate(outs)]
    return policy, rows


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rescoring_reproduces_the_behaviour_logprobs(tiny_model_dir: Path, temperature: float):
    policy, rows = sampled_rows(tiny_model_dir, temperature)
    batch = collate(rows, [0.0] * len(rows), pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        logp, _ = token_logprobs(policy.model, batch, temperature)
    trained = batch.mask.bool()
    assert torch.allclose(logp[trained], batch.old_logp[trained], atol=1e-4)


def test_micro_batches_accumulate_to_the_whole_batch_gradient(tiny_model_dir: Path):
    _, rows = sampled_rows(tiny_model_dir, 1.0)
    advantages = [1.0, -0.5, 0.25]

    class Capturing(Learner):
        """Keeps the accumulated gradient instead of stepping."""

        def apply_gradients(self) -> float:
            self.gradient = torch.cat([p.grad.flatten() for p in self.model.parameters() if p.grad is not None])
            return 0.0

    def gradient(micro_batch_tokens: int) -> torch.Tensor:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        learner = Capturing(model, LearnerConfig(micro_batch_tokens=micro_batch_tokens), LossConfig(), pad_id=0)
        metrics = learner.update(rows, advantages)
        assert metrics["clip_fraction"] == 0.0 and metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        return learner.gradient

    whole = gradient(10_000)
    split = gradient(1)  # one row per micro-batch
    assert torch.allclose(whole, split, atol=1e-6, rtol=1e-4)
    assert whole.abs().sum() > 0


def test_a_learning_step_raises_the_likelihood_of_positive_advantage_tokens(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    _, rows = sampled_rows(tiny_model_dir, 1.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    learner = Learner(model, LearnerConfig(lr=1e-2), LossConfig(clip_low=10, clip_high=10), pad_id=0)
    batch = collate(rows, [1.0, 1.0, 1.0], pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        before = (token_logprobs(model, batch)[0] * batch.mask).sum()
    learner.update(rows, [1.0, 1.0, 1.0])
    with torch.no_grad():
        after = (token_logprobs(model, batch)[0] * batch.mask).sum()
    assert after > before


def test_kl_with_lora_is_measured_against_the_base_model(tiny_model_dir: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    _, rows = sampled_rows(tiny_model_dir, 1.0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules="all-linear"))
    learner = Learner(model, LearnerConfig(lr=5e-2), LossConfig(kl="low_var_kl", kl_coef=0.1), pad_id=0)
    first = learner.update(rows, [1.0, -1.0, 0.5])
    second = learner.update(rows, [1.0, -1.0, 0.5])
    assert first["kl"] == pytest.approx(0.0, abs=1e-7)  # LoRA's B starts at zero: the policy is the base
    assert second["kl"] > 1e-6  # the adapters moved the policy away from the base, which stays the reference
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with pytest.raises(ValueError, match="reference model"):
        Learner(plain, LearnerConfig(), LossConfig(kl="low_var_kl", kl_coef=0.1), pad_id=0).update(rows, [1.0] * 3)


def test_mixed_precision_keeps_float32_weights_and_rescores_close_to_the_behaviour(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    _, rows = sampled_rows(tiny_model_dir, 1.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    learner = Learner(model, LearnerConfig(lr=1e-3, amp=True), LossConfig(), pad_id=0)
    metrics = learner.update(rows, [1.0, -1.0, 0.5])
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=0.05)  # bfloat16 re-scoring of float32 samples
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(s["exp_avg"].dtype == torch.float32 for s in learner.optimizer.state.values())


def test_mini_batches_make_one_optimizer_step_each_on_shuffled_rows(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    _, rows = sampled_rows(tiny_model_dir, 1.0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    learner = Learner(model, LearnerConfig(lr=5e-2, minibatch_rows=2, epochs=2), LossConfig(), pad_id=0)
    metrics = learner.update(rows, [1.0, -1.0, 0.5])
    assert metrics["optimizer_steps"] == 4 == learner.steps  # ceil(3 / 2) steps in each of 2 epochs
    assert abs(metrics["ratio_mean"] - 1) > 1e-4  # later mini-batches are scored by a policy that moved
    whole = Learner(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), LearnerConfig(),
                    LossConfig(), pad_id=0).update(rows, [1.0, -1.0, 0.5])
    assert whole["optimizer_steps"] == 1 and whole["ratio_mean"] == pytest.approx(1.0, abs=1e-4)


def test_zero_advantage_rows_are_skipped_without_changing_the_gradient(tiny_model_dir: Path):
    import copy

    from transformers import AutoModelForCausalLM

    _, rows = sampled_rows(tiny_model_dir, 1.0)

    class Capturing(Learner):
        def apply_gradients(self) -> float:
            self.gradient = torch.cat([p.grad.flatten() for p in self.model.parameters()])
            return 0.0

    def run(loss: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        learner = Capturing(model, LearnerConfig(), loss, ref_model=copy.deepcopy(model), pad_id=0)
        metrics = learner.update(rows, [1.0, 0.0, -0.5])
        return learner.gradient, metrics

    skipped, fast = run(LossConfig())
    scored, slow = run(LossConfig(kl="kl", kl_coef=0.0))  # a KL term (worth 0) forces every row through
    assert fast["rows_skipped"] == 1 and slow["rows_skipped"] == 0
    assert torch.allclose(skipped, scored, atol=1e-7) and skipped.abs().sum() > 0
    idle = Capturing(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LearnerConfig(), LossConfig(), pad_id=0)
    assert idle.update(rows, [0.0, 0.0, 0.0])["rows_skipped"] == 3
    assert idle.gradient.abs().sum() == 0  # no row was scored, yet the step happens (AdamW's state moves on)
