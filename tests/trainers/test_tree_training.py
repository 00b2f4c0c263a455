"""ARPO, AEPO, APPO and TRACE end to end on the CPU with the tiny model: tree collection inside the
training loop (the group invariant is checked there), their metrics, resume, determinism, and the update
reductions of §3(f).6 and §4(f).4/6."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import agentenv
from agentenv.store import TrajectoryStore
from agentenv.trainers.config import load_config
from agentenv.trainers.learner import Learner, LearnerConfig
from agentenv.trainers.loop import Trainer
from agentenv.trainers.rows import Row

pytestmark = pytest.mark.integration

agentenv.register("agentenv/TestAnyReply-v0", "agentenv.testing:AnyReplyEnv", family="test")


def run(model: Path, out: Path, algo: str, *overrides: str, steps: int = 1):
    cfg, _ = load_config(algo, None, [
        "env=agentenv/TestAnyReply-v0", "env_kwargs={turns: 3}", f"model={model}", f"out={out}", f"steps={steps}",
        "tasks_per_step=2", "group_size=4", "concurrency=4", "max_tokens=6", "lr=1e-3", "eval_every=0",
        "progress=off", "micro_batch_tokens=2048", *([] if algo == "trace" else ["initial_rollouts=2"]), *overrides])
    with Trainer(cfg) as trainer:
        return trainer.run(), trainer


def rollouts(out: Path, step: int = 0):
    return list(TrajectoryStore(out / "rollouts" / f"step-{step:05d}").episodes())


def test_arpo_collects_exact_trees_trains_on_every_sequence_and_resumes(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "arpo"
    [record], _ = run(tiny_model_dir, out, "arpo", "branch_probability=1.0", "checkpoint_every=1")
    episodes = rollouts(out)
    assert len(episodes) == record["episodes"] == 8 and record["rows"] == 8
    assert record["branches_per_group"] > 0 and record["branches_per_group"] + 2 + record["refills_per_group"] == 4
    assert record["generated_tokens_per_sample"] < sum(len(u.completion_ids) for t in episodes for u in t.turns) / 8
    assert {"boundary_entropy", "boundary_entropy_change", "branch_probability_mean"} <= set(record)
    assert all(t.turns[0].top_logprobs for t in episodes)  # the proxy's top-10 were recorded
    history, trainer = run(tiny_model_dir, out, "arpo", "branch_probability=1.0", "resume=true", steps=2)
    assert [r["step"] for r in history] == [2] and trainer.version == 2
    assert len(rollouts(out, 1)) == 8


def test_hard_attribution_trains_each_shared_token_once(tiny_model_dir: Path, tmp_path: Path):
    soft, _ = run(tiny_model_dir, tmp_path / "soft", "arpo", "branch_probability=1.0", "seed=4")
    hard, _ = run(tiny_model_dir, tmp_path / "hard", "arpo", "branch_probability=1.0", "seed=4", "attribution=hard")
    assert soft[0]["branches_per_group"] == hard[0]["branches_per_group"] > 0  # the same trees
    assert hard[0]["trained_tokens"] < soft[0]["trained_tokens"]


def test_same_seed_same_trees(tiny_model_dir: Path, tmp_path: Path):
    def trees(name: str):
        run(tiny_model_dir, tmp_path / name, "arpo", "concurrency=1", "seed=9")
        return sorted((t.trajectory_id, t.parent_trajectory_id, t.branch_turn,
                       tuple(tuple(u.completion_ids) for u in t.turns)) for t in rollouts(tmp_path / name))

    assert trees("a") == trees("b")


def test_aepo_with_pre_monitoring_runs_pilots_that_are_never_trained_on(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "aepo"
    [record], _ = run(tiny_model_dir, out, "aepo", "dynamic_rollouts=true")
    episodes = rollouts(out)
    pilots = [t for t in episodes if t.kind == "pilot"]
    assert len(pilots) == 2 and all("aepo" in t.extra for t in pilots)
    assert record["episodes"] == 8 and record["rows"] == 8 and "pre_monitored_roots_mean" in record
    assert "entropy_adv_multiplier_mean" in record  # computed: the released code's silent no-op is not ours


def test_aepo_with_its_update_flags_off_updates_exactly_as_arpo(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    rows = [Row([1, 2, 3, 4, 5], [0, 0, 1, 1, 1], [0, 0, -3.0, -2.0, -4.0], 0),
            Row([1, 2, 6, 7], [0, 0, 1, 1], [0, 0, -1.0, -5.0], 1)]
    results = []
    for algo, extra in (("arpo", []), ("aepo", ["clip_mode=standard", "entropy_advantage=0"])):
        cfg, _ = load_config(algo, None, [f"model={tiny_model_dir}", *extra])
        from agentenv.trainers.algorithm import algorithm

        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        learner = Learner(model, LearnerConfig(lr=1e-2), algorithm(algo, cfg).loss_config())
        learner.update(rows, [1.0, -0.5])
        results.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_appo_forks_inside_turns_at_the_top_scores_and_trains_only_initial_rows(tiny_model_dir: Path,
                                                                                 tmp_path: Path, caplog):
    out = tmp_path / "appo"
    caplog.set_level(logging.WARNING, "agentenv.train")
    history, _ = run(tiny_model_dir, out, "appo", steps=2)
    assert "no strict candidate" in caplog.text  # step 1: no previous update, Ω ≡ 1, the fallback (§4f.2)
    for step, record in enumerate(history):
        episodes = rollouts(out, step)
        branches = [t for t in episodes if t.kind == "branch"]
        assert len(episodes) == 8 and len(branches) == 4 and record["rows"] == 4  # branch rows never trained
        by_id = {t.trajectory_id: t for t in episodes}
        for b in branches:
            parent = by_id[b.parent_trajectory_id]
            split = b.extra["branch"]["split"]
            row = [*parent.full_prompt_ids(b.branch_turn)]
            kept = b.branch_token_offset or 0
            assert [*b.full_prompt_ids(b.branch_turn), *b.turns[b.branch_turn].completion_ids[:kept]] == \
                [*row, *parent.turns[b.branch_turn].completion_ids[:kept]]
            if kept:
                assert split == len(row) + kept - 1
            else:  # the split was a turn's last token: the fork starts the next turn
                assert parent.turns[b.branch_turn - 1].completion_ids and split < len(row)
        assert {"branch_score_mean", "branch_strict_share", "future_kl_weight_mean"} <= set(record)
    assert history[1]["branch_score_max"] > 0  # after an update, Ω measures a real policy change


def test_trace_spends_exactly_its_budget_and_tracks_the_predictor(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "trace"
    history, _ = run(tiny_model_dir, out, "trace", "predictor=learned", steps=2)
    for step, record in enumerate(history):
        episodes = rollouts(out, step)
        assert len(episodes) == record["episodes"] == 8  # tasks × group_size, however it is split
        assert sum(t.kind == "init" and t.parent_trajectory_id is None for t in episodes) == 4  # the root floors
        assert {"predictor_brier", "predictor_ece"} <= set(record)
    again = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert again["step"] == 2


@pytest.mark.parametrize("algo", ["appo", "trace"])
def test_tree_algorithms_run_in_the_asynchronous_loop(tiny_model_dir: Path, tmp_path: Path, algo: str):
    history, trainer = run(tiny_model_dir, tmp_path / algo, algo, "max_staleness=1", steps=2)
    assert [r["step"] for r in history] == [1, 2] and trainer.version == 2
    assert all(r["episodes"] == 8 and not r.get("skipped") for r in history)
