"""KL in the reward (§1): each sampled token's k1(old, ref) is charged to its turn's reward, β adapts
towards a target KL, and the presets (§9.8) set each algorithm's released defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentenv.trainers.config import TrainConfig, load_config
from agentenv.trainers.kl_reward import KLReward
from agentenv.trainers.loop import Trainer

pytestmark = pytest.mark.integration


def test_each_turn_pays_beta_times_its_tokens_k1(tiny_model_dir: Path, tmp_path: Path):
    trainer = Trainer(TrainConfig(env="agentenv/GuessNumber-v0", env_kwargs={"max_turns": 3}, model=str(tiny_model_dir),
                                  out=str(tmp_path), tasks_per_step=2, group_size=2, max_tokens=6,
                                  kl_reward_coef=0.5))
    assert trainer.learner.ref_model is not None
    episodes = trainer.collect(0)
    # the behaviour policy is the reference, so k1 is 0; shift the recorded log-probs to know the answer
    for episode in episodes:
        for turn in episode.turns:
            turn.logprobs = [lp + 0.1 for lp in turn.logprobs]
    controller = KLReward(beta=0.5, target=0.01, horizon=100)
    penalised, metrics = controller.apply(episodes, trainer.learner)
    assert metrics["kl_reward"] == pytest.approx(0.1, abs=1e-4) and metrics["kl_reward_coef"] == 0.5
    for before, after in zip(episodes, penalised, strict=True):
        charges = [0.5 * 0.1 * len(t.completion_ids) for t in before.turns]
        assert [a.reward for a in after.turns] == pytest.approx([b.reward - c for b, c in
                                                                 zip(before.turns, charges, strict=True)], abs=1e-4)
        assert after.reward == pytest.approx(before.reward - sum(charges), abs=1e-4)
        assert before.turns[0].reward in (0.0, 1.0)  # the originals are untouched
    assert controller.beta == pytest.approx(0.5 * (1 + 0.2 * 4 / 100))  # KL above target: β grows (clipped)
    KLReward(beta=0.5, target=1.0, horizon=100).apply(episodes, trainer.learner)
    with pytest.raises(ValueError):
        KLReward(beta=-1)


def test_presets_are_the_released_recipes_and_yield_to_the_run_config():
    grpo, _ = load_config("grpo")
    assert (grpo.kl, grpo.kl_coef) == ("low_var_kl", 0.001)
    hgpo, _ = load_config("hgpo")
    assert (hgpo.group_size, hgpo.mode, hgpo.kl_coef, hgpo.history) == (8, "mean_std_norm", 0.01, 2)
    gigpo, explicit = load_config("gigpo", overrides=["kl=null", "group_size=4"])
    assert (gigpo.kl, gigpo.group_size, gigpo.mode, gigpo.omega) == (None, 4, "mean_norm", 1.0)
    assert explicit == {"kl", "group_size"}
    dagger, _ = load_config("dagger")
    assert dagger.kl is None and dagger.group_size == TrainConfig().group_size
