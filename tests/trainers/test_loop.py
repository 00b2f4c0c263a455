"""The training loop end to end on the CPU with the tiny model: collect, update, push, log, checkpoint,
plot, resume; DAgger on the expert's labels; options an algorithm does not use are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentenv.trainers.algorithm import algorithm_options
from agentenv.trainers.config import TrainConfig, load_config
from agentenv.trainers.loop import Trainer

pytestmark = pytest.mark.integration


def config(model: Path, out: Path, **kwargs) -> TrainConfig:
    base = dict(env="agentenv/GuessNumber-v0", env_kwargs={"max_turns": 3}, model=str(model), out=str(out),
                steps=2, tasks_per_step=2, group_size=2, concurrency=4, max_tokens=8, lr=1e-3,
                eval_every=1, eval_tasks=2, micro_batch_tokens=2048)
    return TrainConfig(**{**base, **kwargs})


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_grpo_run_logs_checkpoints_plots_and_resumes(tiny_model_dir: Path, tmp_path: Path):
    run = tmp_path / "grpo"
    history = Trainer(config(tiny_model_dir, run, algo="grpo")).run()
    records = metrics(run)
    assert [r["step"] for r in records] == [0, 1, 2] and history == records
    trained = [r for r in records if r["step"] > 0]
    assert [r["policy_version"] for r in trained] == [1, 2]
    for r in trained:
        assert r["episodes"] == 4 and r["failed"] == 0 and "eval_success" in r
        assert r["rows"] == 4 and r["trained_tokens"] > 0 and r["update_tokens_per_s"] > 0
        assert abs(r["ratio_mean"] - 1) < 1e-3  # one epoch: the update starts on the policy that sampled
    assert (run / "checkpoints" / "step-00002" / "trainer_state.pt").exists()
    assert (run / "plots.png").stat().st_size > 10_000
    again = Trainer(config(tiny_model_dir, run, algo="grpo", steps=3, resume=True))
    assert again.step == 0
    again.run()
    assert [r["step"] for r in metrics(run)][-1] == 3 and again.policy.version == 3


def test_gigpo_and_hgpo_train_on_step_rows(tiny_model_dir: Path, tmp_path: Path):
    for algo in ("gigpo", "hgpo"):
        run = tmp_path / algo
        Trainer(config(tiny_model_dir, run, algo=algo, steps=1, eval_every=0)).run()
        [record] = metrics(run)
        assert record["rows"] >= record["episodes"] and "loss" in record  # one row per turn


def test_dagger_trains_on_the_experts_labels(tiny_model_dir: Path, tmp_path: Path):
    run = tmp_path / "dagger"
    trainer = Trainer(config(tiny_model_dir, run, algo="dagger", env="agentenv/Maze-v0",
                             env_kwargs={"size": 3, "max_turns": 6}, steps=2, eval_every=0, lr=1e-2))
    trainer.run()
    first, second = metrics(run)
    assert second["rows"] > first["rows"] > 0  # the aggregated dataset grows
    assert second["sft_nll"] < first["sft_nll"]
    assert trainer.algo.beta(0) == 1.0 and trainer.algo.beta(1) == 0.5


def test_unused_and_unknown_options_are_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="grpo does not use these options: omega"):
        load_config("grpo", overrides=["omega=0.5"], uses=algorithm_options("grpo"))
    with pytest.raises(ValueError, match="unknown options: learning_rate"):
        load_config("grpo", overrides=["learning_rate=1"], uses=algorithm_options("grpo"))
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("steps: 3\nomega: 0.5\nmode: mean_std_norm\n")
    cfg, explicit = load_config("gigpo", str(cfg_file), ["steps=5"], uses=algorithm_options("gigpo"))
    assert cfg.steps == 5 and cfg.omega == 0.5 and cfg.mode == "mean_std_norm" and "omega" in explicit
    with pytest.raises(ValueError, match="unknown algorithm 'ppo'"):
        algorithm_options("ppo")
    typed, _ = load_config("grpo", overrides=["lr=5e-5", "kl=low_var_kl", "kl_coef=1e-3", "dual_clip=null"],
                           uses=algorithm_options("grpo"))
    assert typed.lr == 5e-5 and typed.kl_coef == 1e-3 and typed.dual_clip is None  # YAML reads 5e-5 as text
    with pytest.raises(ValueError, match="option steps: 'many'"):
        load_config("grpo", overrides=["steps=many"], uses=algorithm_options("grpo"))


def test_fixed_seeds_give_identical_runs(tiny_model_dir: Path, tmp_path: Path):
    import torch

    timing = ("collect_seconds", "update_seconds", "update_tokens_per_s")
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(config(tiny_model_dir, tmp_path / name, algo="grpo", concurrency=1, eval_every=0))
        records = [{k: v for k, v in r.items() if k not in timing} for r in trainer.run()]
        runs.append((records, [p.detach().clone() for p in trainer.learner.model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    import importlib.util

    installed = importlib.util.find_spec("tensorboard") is not None
    assert (tmp_path / "a" / "tensorboard").is_dir() == installed  # TensorBoard logs only when installed
