"""DynaWeb's trainer (§8): expert episodes interleaved into groups of dreams (group_inject or aux_sft), the
GSPO preset, evaluation on the real env, and a run end to end on a dream env in a real browser."""

from __future__ import annotations

import json

import pytest

from agentenv.collector import collect
from agentenv.policies import ExpertPolicy
from agentenv.trainers.config import load_config
from agentenv.trainers.dynaweb import DynaWeb
from agentenv.trajectory import Trajectory, Turn

DREAM = "agentenv/Dream-MiniWoB-ClickCheckboxes-v0"


def config(**options):
    overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in options.items()]
    return load_config("dynaweb", overrides=[f"env={DREAM}", *overrides])[0]


def episode(group: str, sample: int, reward: float, real_seed: int, kind: str = "dream") -> Trajectory:
    turns = [Turn(index=i, observation=[], action="click(1)", prompt_ids=[5, 6, 7] if i == 0 else [8],
                  prompt_offset=0 if i == 0 else 5, completion_ids=[9, 10], completion_mask=[1, 1],
                  logprobs=[-0.5, -0.25]) for i in range(2)]
    return Trajectory(trajectory_id=f"{group}-s{sample}", group_id=group, task_id=group, task_index=0,
                      sample_index=sample, seed=0, env_id=DREAM, turns=turns, reward=reward, kind=kind,
                      extra={"real_seed": real_seed})


def expert(seed: int) -> Trajectory:
    t = episode("real", 0, 1.0, seed, kind="init")
    for turn in t.turns:  # as retokenized: the teacher's tokens, masked out of a sampled episode's loss
        turn.completion_mask, turn.logprobs, turn.actor = [0, 0], [], "teacher"
    return t


def batch(groups: int = 3, size: int = 4) -> list[Trajectory]:
    return [episode(f"g{g}", s, 0.0, real_seed=g) for g in range(groups) for s in range(size)]


def algo(**options) -> DynaWeb:
    a = DynaWeb(config(**options))
    a.experts = {0: expert(0), 1: expert(1)}  # group g2's task has no expert
    return a


def test_the_preset_is_gspo_and_evaluation_runs_on_the_real_env():
    c = config()
    assert (c.ratio, c.clip_low, c.clip_high, c.dual_clip, c.aggregation) == \
        ("sequence", 3e-4, 4e-4, None, "seq-mean-token-mean")
    assert (c.expert_mode, c.expert_mix) == ("group_inject", 0.25)
    assert DynaWeb(c).loss_config().ratio == "sequence"
    assert c.eval_env == "agentenv/MiniWoB-ClickCheckboxes-v0"
    with pytest.raises(ValueError, match="dream env"):
        DynaWeb(load_config("dynaweb", overrides=["env=agentenv/MiniWoB-ClickCheckboxes-v0"])[0])


def test_with_p_mix_zero_every_episode_is_a_dream():
    a = algo(expert_mix=0.0)
    rows, _ = a.rows_and_advantages(batch(), lambda text: [])
    assert len(rows) == 12 and not any(r.sft for r in rows)
    assert all(r.recompute_old_logp for r in rows)  # GSPO's 4e-4 clip: π_old is the learner's own log-probs
    assert a.plan(batch()) == {}


def test_with_p_mix_one_each_group_with_an_expert_gets_exactly_one():
    a = algo(expert_mix=1.0, ratio="token")  # token ratios keep the sampler's log-probs; experts have none
    episodes = batch()
    plan = a.plan(episodes)
    assert set(plan) == {"g0", "g1"}
    rows, advantages = a.rows_and_advantages(episodes, lambda text: [])
    injected = [r for r in rows if r.recompute_old_logp]
    assert len(rows) == 12 and len(injected) == 2 and not any(r.sft for r in rows)
    assert sorted({episodes[r.episode].group_id for r in injected}) == ["g0", "g1"]
    for r in injected:  # the expert's action tokens are trained; its observation tokens are not
        assert sum(r.mask) == 4 and advantages[r.episode] > 0
        assert all(advantages[i] < 0 for i in range(12) if episodes[i].group_id == episodes[r.episode].group_id
                   and i != r.episode)
    assert all(advantages[i] == 0 for i in range(8, 12))  # g2: all dreams failed, no expert: no signal


def test_aux_sft_keeps_the_dreams_and_adds_the_expert_as_an_sft_row():
    a = algo(expert_mix=1.0, expert_mode="aux_sft", aux_sft_coef=0.5)
    rows, advantages = a.rows_and_advantages(batch(), lambda text: [])
    sft = [r for r in rows if r.sft]
    assert len(rows) == 14 and len(sft) == 2 and a.aux_sft_coef() == 0.5
    assert all(sum(r.mask) == 4 and advantages[rows.index(r)] == 0 for r in sft)
    assert all(r.recompute_old_logp for r in rows if not r.sft)
    assert algo(expert_mode="group_inject").aux_sft_coef() == 0.0


def test_the_coins_depend_on_the_step_and_replay_on_resume():
    a = algo(expert_mix=0.5)
    plans = []
    for _ in range(6):
        plans.append(sorted(a.plan(batch(groups=2))))
        a.rows_and_advantages(batch(groups=2), lambda text: [])
    again = algo(expert_mix=0.5)
    again.restore([[]] * 3, lambda text: [])
    assert sorted(again.plan(batch(groups=2))) == plans[3]
    assert len({tuple(p) for p in plans}) > 1


@pytest.mark.integration
def test_a_dynaweb_run_trains_in_dreams_and_evaluates_on_the_real_env(tmp_path, tiny_model_dir):
    from agentenv.trainers.loop import Trainer

    starts = tmp_path / "real"
    collect("agentenv/MiniWoB-ClickCheckboxes-v0", ExpertPolicy(), n_tasks=3, concurrency=3, progress="off",
            out=starts)
    c = config(model=str(tiny_model_dir), out=str(tmp_path / "run"), steps=1, tasks_per_step=2, group_size=2,
               expert_mix=1.0, max_tokens=8, eval_every=1, eval_tasks=2, concurrency=4,
               env_kwargs={"world_model": str(tiny_model_dir), "starts": str(starts), "max_turns": 2,
                           "max_tokens": 8})
    with Trainer(c) as trainer:
        history = trainer.run()
    assert len(trainer.algo.experts) == 3
    update = next(r for r in history if r["step"] == 1 and "loss" in r)
    assert update["experts_interleaved"] == 2 and update["dream_episodes"] == 4
    dreams = list((tmp_path / "run" / "rollouts").rglob("*.parquet"))
    assert dreams
    from agentenv.store import TrajectoryStore

    collected = list(TrajectoryStore(tmp_path / "run" / "rollouts" / "step-00000").episodes())
    assert all(t.env_id == DREAM and t.kind == "dream" for t in collected)
    evaluated = list(TrajectoryStore(tmp_path / "run" / "eval" / "step-00001").episodes())
    assert len(evaluated) == 2 and all(t.env_id == "agentenv/MiniWoB-ClickCheckboxes-v0" for t in evaluated)
    assert all(not turn.is_imagined for t in evaluated for turn in t.turns)
