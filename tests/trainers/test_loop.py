"""The training loop end to end on the CPU with the tiny model: collect, update, push, log, checkpoint,
plot, resume; DAgger on the expert's labels; options an algorithm does not use are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentenv.parsing import ParsedAction
from agentenv.store import TrajectoryStore
from agentenv.testing import CountdownEnv
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
        if r["rows_skipped"] < r["rows"]:  # rows with advantage 0 are not scored (no KL or entropy term here)
            assert abs(r["ratio_mean"] - 1) < 1e-3  # one epoch: the update starts on the policy that sampled
    assert (run / "checkpoints" / "step-00002" / "trainer_state.pt").exists()
    assert (run / "plots.png").stat().st_size > 10_000
    from agentenv.trainers.advantages import group_normalise

    step = run / "rollouts" / "step-00000"
    recorded = {r["trajectory_id"]: r for r in map(json.loads, (step / "advantages.jsonl").read_text().splitlines())}
    episodes = sorted(TrajectoryStore(step).episodes(), key=lambda t: t.trajectory_id)
    assert sorted(recorded) == [t.trajectory_id for t in episodes] and all(r["turn"] is None for r in recorded.values())
    for group in {t.group_id for t in episodes}:  # GRPO: the group-normalised rewards
        members = [t for t in episodes if t.group_id == group]
        expected = group_normalise([t.reward for t in members], [group] * len(members), TrainConfig().norm)
        assert [recorded[t.trajectory_id]["advantage"] for t in members] == pytest.approx(expected, abs=1e-6)
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
    resumed = Trainer(config(tiny_model_dir, run, algo="dagger", env="agentenv/Maze-v0",
                             env_kwargs={"size": 3, "max_turns": 6}, steps=3, eval_every=0, lr=1e-2, resume=True))
    resumed.run()
    third = metrics(run)[-1]
    from agentenv.store import TrajectoryStore

    labelled = sum(turn.teacher_action is not None
                   for t in TrajectoryStore(run / "rollouts" / "step-00002").episodes() for turn in t.turns)
    assert third["step"] == 3 and third["rows"] == second["rows"] + labelled  # the dataset survives a resume


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

    runs = []
    for name in ("a", "b"):
        trainer = Trainer(config(tiny_model_dir, tmp_path / name, algo="grpo", concurrency=1, eval_every=0))
        records = [{k: v for k, v in r.items() if not k.endswith(("_seconds", "_per_s"))} for r in trainer.run()]
        runs.append((records, [p.detach().clone() for p in trainer.learner.model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    import importlib.util

    installed = importlib.util.find_spec("tensorboard") is not None
    assert (tmp_path / "a" / "tensorboard").is_dir() == installed  # TensorBoard logs only when installed


def test_async_collection_overlaps_the_update_within_the_staleness_bound(tiny_model_dir: Path, tmp_path: Path):
    run = tmp_path / "async"
    trainer = Trainer(config(tiny_model_dir, run, algo="grpo", steps=3, eval_every=0, max_staleness=1,
                             entropy_coef=0.01))  # an entropy bonus: the weights move without a success
    records = trainer.run()
    assert [r["policy_version"] for r in records] == [1, 2, 3] and trainer.policy.version == 3
    assert trainer.learner.model is not trainer.policy.model  # the collecting copy is not the trained module
    for r in records:
        assert r["staleness_max"] <= 1 and r["stale_dropped"] == 0 and r["rows"] == 4
    for r in records[1:]:  # collected while the previous step updated: waited less than it took
        assert r["collect_wait_seconds"] < r["collect_seconds"]
    # the copy serves exactly the learner's weights after the last push
    learner = dict(trainer.learner.model.state_dict())
    assert all(torch.equal(v, learner[k]) for k, v in trainer.policy.model.state_dict().items())
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    assert any(not torch.equal(v, learner[k]) for k, v in start.items())  # three updates moved the weights


def test_episodes_beyond_the_staleness_bound_are_dropped_and_counted(tiny_model_dir: Path, tmp_path: Path):
    trainer = Trainer(config(tiny_model_dir, tmp_path / "stale", algo="grpo", max_staleness=1))
    episodes = trainer.collect(0)
    trainer.version = 2  # two updates happened since these were sampled (version 0)
    record = trainer.learn(0, episodes)
    assert record["skipped"] and record["stale_dropped"] == 4 and record["staleness_max"] == 2
    trainer.version = 1
    record = trainer.learn(0, episodes)
    assert record["stale_dropped"] == 0 and record["rows"] == 4 and record["policy_version"] == 2


def test_lora_push_merges_the_adapters(tiny_model_dir: Path, tmp_path: Path):
    trainer = Trainer(config(tiny_model_dir, tmp_path / "lora", algo="dagger", env="agentenv/Maze-v0",
                             env_kwargs={"size": 3, "max_turns": 4}, steps=1, eval_every=0, lr=1e-2, lora_rank=4,
                             max_staleness=1))
    before = {k: v.clone() for k, v in trainer.policy.model.state_dict().items()}
    trainer.run()
    after = trainer.policy.model.state_dict()
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA targets the linear layers only
    merged = trainer.learner.model.merge_and_unload()
    assert all(torch.allclose(v, after[k], atol=1e-6) for k, v in merged.state_dict().items())
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model").state_dict()  # model=RUN/model
    assert all(torch.allclose(v, saved[k], atol=1e-6) for k, v in merged.state_dict().items())


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_training_against_a_policy_server(tiny_model_dir: Path, tmp_path: Path, lora_rank: int):
    import httpx

    from agentenv.policies.embedded_server import create_embedded_app
    from agentenv.serving import ServerThread

    app = create_embedded_app(str(tiny_model_dir), served_name="tiny", batch_wait_ms=5)
    with ServerThread(app) as server:
        trainer = Trainer(config(tiny_model_dir, tmp_path / "server", algo="grpo", steps=2, eval_every=1,
                                 policy=server.url + "/v1", max_staleness=1, lora_rank=lora_rank,
                                 entropy_coef=0.01))  # an entropy bonus: the weights move without a success
        records = trainer.run()
        assert [r["policy_version"] for r in records] == [0, 1, 2]
        assert httpx.get(server.url + "/weight_info").json()["weight_version"] in (2, "2")
        for r in records[1:]:
            assert r["rows"] == 4 and r["staleness_max"] <= 1
        # the server now samples from the learner's weights: its log-probs match a re-score by the learner
        prompt = trainer.tokenizer("count to three").input_ids
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 1.0, "seed": 3, "logprobs": 1,
                "return_token_ids": True}
        choice = httpx.post(server.url + "/v1/completions", json=body, timeout=60).json()["choices"][0]
        ids = torch.tensor([prompt + choice["token_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(trainer.learner.model(ids).logits[0].float(), dim=-1)
        expected = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(choice["token_ids"])]
        assert choice["logprobs"]["token_logprobs"] == pytest.approx(expected, abs=2e-4)
        from transformers import AutoModelForCausalLM

        start = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        with torch.no_grad():
            logp = torch.log_softmax(start(ids).logits[0].float(), dim=-1)
        untrained = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(choice["token_ids"])]
        assert max(abs(a - b) for a, b in zip(untrained, expected, strict=True)) > 1e-3  # the weights did move
    assert len(list((tmp_path / "server" / "weights").iterdir())) == 1  # earlier pushes are cleaned up


def test_dagger_evaluation_measures_agreement_with_the_teacher(tiny_model_dir: Path, tmp_path: Path):
    trainer = Trainer(config(tiny_model_dir, tmp_path / "agree", algo="dagger", env="agentenv/Maze-v0",
                             env_kwargs={"size": 3, "max_turns": 4}, steps=1, eval_every=1))
    first, _ = trainer.run()
    assert 0 <= first["eval_teacher_agreement"] <= 1 and first["eval_valid_actions"] <= 1


def test_a_run_ends_with_an_evaluation_and_a_time_budget_stops_it(tiny_model_dir: Path, tmp_path: Path):
    records = Trainer(config(tiny_model_dir, tmp_path / "tail", algo="grpo", steps=1, eval_every=5)).run()
    assert [(r["step"], "eval_success" in r, "loss" in r) for r in records] == [
        (0, True, False), (1, False, True), (1, True, False)]
    spent = Trainer(config(tiny_model_dir, tmp_path / "budget", algo="grpo", steps=50, max_minutes=0)).run()
    assert [r["step"] for r in spent] == [0]  # the budget was spent before the first step
    with pytest.raises(FileExistsError, match="resume=true"):  # never append a second run to a run's metrics
        Trainer(config(tiny_model_dir, tmp_path / "budget", algo="grpo")).run()


class AnyReplyCountdown(CountdownEnv):
    """Takes any reply as an action, so the tiny model's replies reach ``_step`` and its injected fault."""

    def parse_action(self, text: str) -> ParsedAction:
        return ParsedAction(text=text, command=text)


def test_failed_episodes_are_masked_counted_and_an_all_failed_step_is_skipped(tiny_model_dir: Path, tmp_path: Path):
    import agentenv

    agentenv.register("agentenv/TestAnyReplyCountdown-v0", f"{__name__}:AnyReplyCountdown", family="test")
    base = dict(env="agentenv/TestAnyReplyCountdown-v0", eval_every=0, steps=1)
    seeds = sorted({t.seed for t in Trainer(config(tiny_model_dir, tmp_path / "probe", **base)).collect(0)})
    assert len(seeds) == 2  # two tasks, each a group of two
    one = Trainer(config(tiny_model_dir, tmp_path / "one", **base,
                         env_kwargs={"raise_at": 1, "faulty_seeds": [seeds[0]]}))
    [record] = one.run()
    assert record["failed"] == 2 and record["episodes"] == 4 and record["rows"] == 2  # only the healthy group
    assert record["policy_version"] == 1
    every = Trainer(config(tiny_model_dir, tmp_path / "all", **{**base, "steps": 2}, env_kwargs={"raise_at": 1}))
    records = every.run()  # no crash: each step is logged as skipped and the run goes on
    assert [(r["failed"], r.get("skipped")) for r in records] == [(4, True), (4, True)]
    assert every.version == 0
