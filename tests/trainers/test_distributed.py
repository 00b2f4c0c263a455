"""Distributed training with FSDP on the CPU (gloo): two processes under torchrun make the single-process
update, checkpoints resume across world sizes, and ``agentenv train`` runs under torchrun end to end.

Run as a script (``python -m torch.distributed.run ... test_distributed.py SPEC``) this file is also the
worker those tests launch: it runs the learner jobs of SPEC and writes their weights and metrics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agentenv.trainers.distributed import (
    DistributedContext,
    named_optimizer_state,
    numbered_optimizer_state,
    rank_micro_batches,
    split_rows,
)
from agentenv.trainers.learner import Learner
from agentenv.trainers.rows import Row, pack_by_tokens

LR = 1e-3
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
#: the configurations the equality test covers: the plain clipped loss (zero-advantage rows skipped); one
#: with the other collective-bearing parts (a KL reference, AEPO's entropy statistics over the mini-batch,
#: per-sequence aggregation); and DynaWeb's auxiliary SFT loss on a row of each batch
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "kl_entropy": {"loss": {"kl": "low_var_kl", "kl_coef": 0.1, "entropy_advantage": 0.2,
                            "aggregation": "seq-mean-token-mean"}},
    "aux_sft": {"learner": {"aux_sft_coef": 0.5}, "sft_rows": [1]},
}
#: metrics that do not depend on how rows are packed into micro-batches
EXACT_METRICS = ("loss", "pg_loss", "kl", "aux_sft_nll", "grad_norm", "rows_skipped", "optimizer_steps",
                 "trained_tokens")
#: token means reported per micro-batch: with a per-row aggregation they are weighted by the micro-batch's
#: rows, so they depend on how rows are packed (in one process too); with token-mean they are exact
TOKEN_MEAN_METRICS = ("clip_fraction", "ratio_mean", "entropy", "entropy_adv_multiplier_mean")


# ----- the worker -----------------------------------------------------------------------------------------
def run_jobs(spec: dict[str, Any]) -> None:
    """Each job: a fresh tiny model, optionally resumed from a checkpoint, updated on each batch in turn
    (a checkpoint written after the first if asked); rank 0 saves the full weights after every batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentenv.trainers.learner import LearnerConfig
    from agentenv.trainers.loop import load_checkpoint, save_checkpoint
    from agentenv.trainers.losses import LossConfig

    dist = DistributedContext.from_env().init()
    batches = torch.load(spec["batches"], weights_only=False)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    for job in spec["jobs"]:
        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
        variant = VARIANTS[job["variant"]]
        loss = LossConfig(**variant.get("loss", {}))
        ref = None
        if loss.kl is not None:
            import copy

            ref = copy.deepcopy(model).eval().requires_grad_(False)
        config = LearnerConfig(lr=LR, micro_batch_tokens=60, minibatch_rows=3, seed=1, **variant.get("learner", {}))
        learner = Capturing(model, config, loss, ref_model=ref, pad_id=0, dist=dist)
        if job.get("resume"):
            load_checkpoint(Path(job["resume"]), learner)
        weights, metrics = [], []
        for index in job["batches"]:
            rows, advantages = batches[index]
            rows = [dataclasses.replace(row, sft=i in variant.get("sft_rows", ())) for i, row in enumerate(rows)]
            metrics.append(learner.update(rows, advantages))
            weights.append(dist.full_model_state_dict(model) if dist.enabled else
                           {k: v.detach().clone() for k, v in model.state_dict().items()})
            if job.get("save") and len(weights) == 1:
                save_checkpoint(Path(job["save"]), learner, tokenizer, {"step": 1})
        idle = dist.sum_metrics({"idle": learner.idle_passes})["idle"]
        if dist.is_main:
            torch.save({"weights": weights, "metrics": metrics, "gradient": learner.gradient, "idle_passes": idle},
                       job["out"])
    dist.close()


class Capturing(Learner):
    """Keeps the whole gradient of the first optimizer step (gathered from the shards: a collective)."""

    gradient: dict[str, torch.Tensor] | None = None
    idle_passes = 0

    def _idle_pass(self, model: Any, backward: bool) -> None:
        self.idle_passes += 1
        super()._idle_pass(model, backward)

    def apply_gradients(self) -> float:
        if self.gradient is None:
            self.gradient = {name: getattr(p.grad, "full_tensor", p.grad.detach)().clone()
                             for name, p in self.model.named_parameters()}
        return super().apply_gradients()


def peaked_model(model_dir: Path, where: Path) -> Path:
    """The tiny model with its (tied) embeddings scaled up tenfold: the random model's next-token
    distribution is uniform to 1e-5, which would make AEPO's entropy z-scores pure rounding noise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    model.save_pretrained(where)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(where)
    return where


def make_batches(model_dir: Path, where: Path) -> Path:
    """Two batches of rows of uneven lengths (prompt masked, completion trained) whose behaviour log-probs
    are the model's own, so the first update starts at ratio 1; one row per batch has advantage 0."""
    from transformers import AutoModelForCausalLM

    from agentenv.trainers.learner import collate, token_logprobs

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for lengths, advantages in (([40, 33, 25, 18, 12], [1.0, -0.5, 0.0, 0.8, -1.0]),
                                ([30, 22, 21, 15, 9], [-0.7, 0.0, 1.2, 0.4, -0.3])):
        rows = []
        for i, n in enumerate(lengths):
            tokens = torch.randint(1, 2000, (n,), generator=generator).tolist()
            prompt = n // 2
            rows.append(Row(tokens, [0] * prompt + [1] * (n - prompt), [0.0] * n, episode=i))
        batch = collate(rows, [0.0] * len(rows), pad_id=0, device=torch.device("cpu"))
        with torch.no_grad():
            logp, _ = token_logprobs(model, batch)
        for b, row in enumerate(rows):
            row.old_logp = (logp[b, :len(row)] * batch.mask[b, :len(row)]).tolist()
        batches.append((rows, advantages))
    path = where / "batches.pt"
    torch.save(batches, path)
    return path


def torchrun(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    done = subprocess.run([*TORCHRUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


def launch(spec: dict[str, Any], where: Path) -> None:
    path = where / f"spec-{len(list(where.glob('spec-*')))}.json"
    path.write_text(json.dumps(spec))
    torchrun([str(Path(__file__).resolve()), str(path)], cwd=where)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    keys = sorted(set(a) & set(b))
    assert len(keys) >= len(a) - 1  # at most the tied head is left out of one
    return max(float((a[k] - b[k]).abs().max()) for k in keys)


def assert_same_update(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], label: str) -> None:
    """Weights after AdamW steps agree within rounding. AdamW divides each gradient element by its own
    magnitude, so an element whose gradient is ~eps (1e-8) turns the gradient's rounding (packing rows
    differently moves it by ~1e-5 of its scale, in one process as much as across two) into a visible step
    difference: a handful of the 6.4M elements differ by more than 1e-6, none by 5% of a step (lr)."""
    keys = sorted(set(a) & set(b))
    differences = torch.cat([(a[k] - b[k]).abs().flatten() for k in keys])
    worst, off = float(differences.max()), int((differences > 1e-6).sum())
    print(f"{label}: max |difference| {worst:.3g}, {off} of {differences.numel()} elements beyond 1e-6")
    assert worst < 0.05 * LR and off < 1e-5 * differences.numel()


# ----- the integration tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process (here) and two (torchrun) on the same batches; checkpoints after the first batch in both,
    each resumed by the other world size for the second batch."""
    from transformers import AutoModelForCausalLM

    where = tmp_path_factory.mktemp("distributed")
    model_dir = peaked_model(tiny_model_dir, where / "model")
    spec = {"model": str(model_dir), "batches": str(make_batches(model_dir, where))}

    def job(name: str, variant: str, **extra: Any) -> dict[str, Any]:
        return {"variant": variant, "batches": [0, 1], "out": str(where / f"{name}.pt"), **extra}

    single = [job(f"one-{name}", name) for name in VARIANTS]
    single[0]["save"] = str(where / "ckpt-one")
    run_jobs({**spec, "jobs": single})
    double = [job(f"two-{name}", name) for name in VARIANTS]
    double[0]["save"] = str(where / "ckpt-two")
    double.append(job("two-resumed", "plain", batches=[1], resume=str(where / "ckpt-one")))
    launch({**spec, "jobs": double}, where)
    run_jobs({**spec, "jobs": [job("one-resumed", "plain", batches=[1], resume=str(where / "ckpt-two"))]})
    initial = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    out = {path.stem: torch.load(path, weights_only=False) for path in where.glob("*.pt") if path.stem != "batches"}
    return {"initial": initial, **out}


@pytest.mark.integration
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_make_the_single_process_update(runs: dict[str, Any], variant: str):
    one, two = runs[f"one-{variant}"], runs[f"two-{variant}"]
    scale = max(float(g.abs().max()) for g in one["gradient"].values())
    gradient = max_difference(one["gradient"], two["gradient"])
    print(f"{variant}: first step's gradient max |1-process - 2-process| {gradient:.3g} (largest {scale:.3g})")
    assert scale > 0 and gradient < 1e-4 * scale
    token_mean = VARIANTS[variant].get("loss", {}).get("aggregation", "token-mean") == "token-mean"
    for step in range(2):
        assert max_difference(one["weights"][step], runs["initial"]) > 0.5 * LR  # the weights moved
        assert_same_update(one["weights"][step], two["weights"][step], f"{variant} after batch {step}")
        for key in EXACT_METRICS + (TOKEN_MEAN_METRICS if token_mean else ()):
            if key in one["metrics"][step]:
                assert two["metrics"][step][key] == pytest.approx(one["metrics"][step][key], rel=1e-5, abs=1e-6)
    assert one["metrics"][0]["optimizer_steps"] == 2  # two mini-batches of at most 3 rows
    if variant == "plain":
        assert one["metrics"][0]["rows_skipped"] == 0.5  # the zero-advantage row (in one of the two mini-batches)
        assert one["idle_passes"] == 0 and two["idle_passes"] > 0  # a rank out of rows joined the others' passes


@pytest.mark.integration
@pytest.mark.parametrize("resumed", ["one-resumed", "two-resumed"])
def test_a_checkpoint_resumes_at_another_world_size(runs: dict[str, Any], resumed: str):
    """A checkpoint written by 2 processes resumed in 1 (and the reverse) makes the next update of an
    uninterrupted run: the weights, AdamW's moments and its step count all carried over."""
    uninterrupted = runs["one-plain"]["weights"]
    assert max_difference(uninterrupted[0], uninterrupted[1]) > 0.5 * LR
    assert_same_update(runs[resumed]["weights"][0], uninterrupted[1], resumed)


#: ``agentenv train`` with a test env registered (the tiny random model gets mixed rewards there)
TRAIN = """import sys
import agentenv
agentenv.register("agentenv/TestAnyReply-v0", "agentenv.testing:AnyReplyEnv", family="test")
from agentenv.cli import main
main(sys.argv[1:])
"""


@pytest.mark.integration
def test_grpo_under_torchrun_matches_one_process_and_resumes_in_one(tiny_model_dir: Path, tmp_path: Path):
    """``agentenv train grpo`` under torchrun: rank 0 collects, evaluates and logs, both ranks update; its
    first step is the single-process run's, and its checkpoint continues in one process."""
    import agentenv
    from agentenv.trainers.config import load_config
    from agentenv.trainers.loop import Trainer

    agentenv.register("agentenv/TestAnyReply-v0", "agentenv.testing:AnyReplyEnv", family="test")
    options = ["env=agentenv/TestAnyReply-v0", "env_kwargs={turns: 2}", f"model={tiny_model_dir}",
               "tasks_per_step=2", "group_size=4", "concurrency=8", "max_tokens=8", "lr=1e-3", "eval_every=2",
               "eval_tasks=2", "micro_batch_tokens=512", "checkpoint_every=1", "progress=off"]
    (tmp_path / "train.py").write_text(TRAIN)
    two, one = tmp_path / "two", tmp_path / "one"
    torchrun(["train.py", "train", "grpo", f"out={two}", "steps=2", *options], cwd=tmp_path)

    def metrics(run: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    records = metrics(two)
    assert [r["step"] for r in records] == [0, 1, 2]  # rank 0 alone logged, evaluations included
    assert "eval_success" in records[0] and "eval_success" in records[2]
    for r in records[1:]:
        assert r["episodes"] == 8 and r["rows"] == 8 and r["policy_version"] == r["step"]
        assert abs(r["ratio_mean"] - 1) < 1e-3  # rank 0's policy copy samples with every pushed update
    assert any(r["grad_norm"] > 0 for r in records[1:])  # mixed rewards: the weights moved
    assert (two / "checkpoints" / "step-00002" / "trainer_state.pt").exists()
    with Trainer(load_config("grpo", None, [*options, f"out={one}", "steps=1", "eval_every=0"])[0]) as single:
        single.run()
    [alone] = metrics(one)
    first = records[1]
    assert alone["reward_mean"] == first["reward_mean"]  # the same episodes
    for key in ("loss", "pg_loss", "kl", "grad_norm", "clip_fraction", "ratio_mean", "trained_tokens"):
        assert first[key] == pytest.approx(alone[key], rel=1e-4, abs=1e-6)
    with Trainer(load_config("grpo", None, [*options, f"out={two}", "steps=3", "resume=true"])[0]) as again:
        again.run()
        assert again.policy.version == 3
    assert metrics(two)[-1]["step"] == 3


@pytest.mark.integration
def test_the_fsdp_benchmark_times_a_step_under_torchrun(tmp_path: Path):
    """``benchmarks/fsdp_step.py``, the script for a GPU machine, on two CPU processes."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fsdp_step.py"
    done = torchrun([str(script), "--model", "tiny", "--rows", "4", "--tokens", "64", "--steps", "1"], cwd=tmp_path)
    assert "2 process(es), backend gloo" in done.stdout and "step 1:" in done.stdout
    assert "peak RSS per rank (GiB)" in done.stdout


def test_options_that_do_not_shard_are_refused_under_torchrun(tiny_model_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    from agentenv.trainers.config import TrainConfig
    from agentenv.trainers.loop import Trainer

    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)  # refused before any process group is joined
    for option, shown in (({"lora_rank": 4}, "LoRA"), ({"max_staleness": 1}, "max_staleness"),
                          ({"algo": "appo"}, "APPO")):
        with pytest.raises(ValueError, match=f"not supported under torchrun.*{shown}"):
            Trainer(TrainConfig(**{"model": str(tiny_model_dir), "out": str(tmp_path), **option}))


# ----- the pure parts --------------------------------------------------------------------------------------
def test_rows_are_split_by_tokens_and_every_rank_runs_as_many_micro_batches():
    lengths = [40, 33, 25, 18, 12, 5]
    parts = split_rows(lengths, 2)
    assert sorted(parts[0] + parts[1]) == list(range(6))
    assert abs(sum(lengths[i] for i in parts[0]) - sum(lengths[i] for i in parts[1])) <= 12
    plans = [rank_micro_batches(lengths, 40, rank, 2) for rank in range(2)]
    assert len(plans[0]) == len(plans[1])
    assert sorted(i for plan in plans for group in plan for i in group) == list(range(6))
    uneven = [rank_micro_batches([30, 30, 30], 30, rank, 2) for rank in range(2)]
    assert uneven == [[[0], [2]], [[1], []]]  # rank 1 runs an idle pass while rank 0 runs its second row
    assert rank_micro_batches(lengths, 40, 0, 1) == pack_by_tokens(lengths, 40)
    assert rank_micro_batches([], 40, 1, 2) == []


def test_one_process_needs_no_process_group_and_its_helpers_are_the_identity():
    ctx = DistributedContext.from_env({})
    assert not ctx.enabled and ctx.is_main and ctx.device == torch.device("cpu")
    assert ctx.init() is ctx and ctx.broadcast_object({"a": 1}) == {"a": 1}
    assert ctx.gather_objects(3) == [3] and ctx.sum_metrics({"loss": 2.0}) == {"loss": 2.0}
    model = torch.nn.Linear(2, 2)
    assert ctx.shard(model) is model and not hasattr(model, "reshard")
    torchrun_env = DistributedContext.from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert torchrun_env.enabled and not torchrun_env.is_main
    with pytest.raises(ValueError, match="rank 2"):
        DistributedContext(rank=2, world_size=2)


def test_optimizer_state_numbering_round_trips_through_parameter_names():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    numbered = optimizer.state_dict()
    named = named_optimizer_state(numbered, model, optimizer)
    assert list(named["state"]) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    again = numbered_optimizer_state(named)
    assert again["param_groups"] == numbered["param_groups"]
    assert all(torch.equal(again["state"][i]["exp_avg"], numbered["state"][i]["exp_avg"]) for i in range(4))


if __name__ == "__main__":
    run_jobs(json.loads(Path(sys.argv[1]).read_text()))
