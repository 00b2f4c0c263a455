"""The training loop: collect → advantages → update → push the weights → repeat.

The collecting policy is the in-process transformers policy or, with ``policy=URL``, a policy server
(vLLM or agentenv's own) that receives each update through the Serving weight update (:mod:`.sync`).
Every step appends one line of metrics to ``RUN/metrics.jsonl``; checkpoints (model, optimizer, step) go to
``RUN/checkpoints/step-N``; ``resume`` continues from the newest one, and collection stores are per step,
so a resumed step re-collects nothing it already has. An episode that failed (env error, timeout) is left
out of the update and counted; a step whose episodes all failed is logged and skipped.

Synchronous by default. With ``max_staleness >= 1`` the collection of step k+1 runs while step k
updates, on the weights of the last push; each turn records the weight version that sampled it, the
clipped ratio against those recorded behaviour log-probs is the importance weight, and an episode with a
turn more than ``max_staleness`` versions behind the learner is dropped (and counted) rather than trained
on.

Under ``torchrun`` (world_size > 1) the learner's model is sharded with FSDP over the ranks. Rank 0 collects
(with its own whole copy of the weights, or through a policy server), turns the episodes into rows and
advantages and broadcasts them; every rank runs its share of the update, joins the gather of the new weights
for the push and of the checkpoints, and rank 0 alone pushes, evaluates, logs and writes. LoRA,
``max_staleness > 0`` and APPO's learner-scored branching are refused there (see :mod:`.distributed`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agentenv.collector import CollectConfig, Collector
from agentenv.policy import SamplingParams
from agentenv.prompting import PromptConfig
from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory

from .algorithm import BranchContext, algorithm
from .config import TrainConfig
from .distributed import DistributedContext
from .evaluation import episode_metrics
from .group_policy import mask_groups
from .kl_reward import KLReward
from .learner import Learner, LearnerConfig
from .rows import Row
from .runlog import RunLog
from .sync import CopiedModule, GatheredPush, ServerPush, SharedModule, WeightSync, save_merged
from .trees import check_groups

log = logging.getLogger("agentenv.train")

def within_staleness(episodes: list[Trajectory], version: int, max_staleness: int) -> list[Trajectory]:
    """The episodes every one of whose policy-sampled turns is at most ``max_staleness`` weight versions
    behind the learner's ``version`` (each turn records the version that sampled it, so an episode whose
    weights changed mid-way is judged by its oldest turn)."""
    return [t for t in episodes if all(version - turn.policy_version <= max_staleness
                                       for turn in t.turns if turn.actor == "student")]


class Trainer:
    def __init__(self, config: TrainConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from agentenv.policies.balanced import policy_client
        from agentenv.policies.catalog import resolve_model
        from agentenv.policies.embedded import TransformersPolicy

        self.config = c = config
        self.algo = algorithm(c.algo, c)
        self.out = c.out_dir
        self.dist = DistributedContext.from_env()
        if self.dist.enabled:
            _refuse_under_fsdp(c, self.algo.keeps_previous_weights())
        self.dist.init()
        path = resolve_model(c.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.policy: Any = None  # under torchrun rank 0 alone collects
        if self.dist.is_main and c.policy is not None:
            self.policy = policy_client(c.policy, tokenizer=self.tokenizer, concurrency=c.concurrency,
                                       name=f"{c.algo}-policy")
        elif self.dist.is_main:
            self.policy = TransformersPolicy(str(path), device=str(self.dist.device), dtype=c.dtype,
                                             name=f"{c.algo}-policy")
        if c.policy is None and c.max_staleness == 0 and not self.dist.enabled:
            model = self.policy.model  # one module: the policy generates with the weights being trained
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, c.dtype))
        if c.lora_rank:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        sync: WeightSync | None = None  # none on ranks > 0: they only join the gather of the weights
        if self.policy is not None and c.policy is not None:
            sync = ServerPush(self.policy, self.out, self.tokenizer)
        elif self.policy is not None and (c.max_staleness or self.dist.enabled):
            sync = CopiedModule(self.policy)  # a sharded model cannot also be the policy's module
        elif self.policy is not None:
            self.policy.model = model
            sync = SharedModule(self.policy)
        self.sync: WeightSync
        if self.dist.enabled:
            self.sync = GatheredPush(sync, self.dist)
        else:
            assert sync is not None
            self.sync = sync
        ref_model = None
        if ((c.kl is not None and c.kl_coef > 0) or c.kl_reward_coef > 0) and not c.lora_rank:
            import copy

            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.learner = Learner(model, LearnerConfig(lr=c.lr, weight_decay=c.weight_decay, grad_clip=c.grad_clip,
                                                    micro_batch_tokens=c.micro_batch_tokens, epochs=c.epochs,
                                                    temperature=c.temperature, amp=c.amp,
                                                    minibatch_rows=c.minibatch_rows, seed=c.seed,
                                                    aux_sft_coef=self.algo.aux_sft_coef()),
                               self.algo.loss_config(), ref_model=ref_model, pad_id=pad_id, sft=self.algo.sft,
                               dist=self.dist)
        self.learner.keep_previous = self.algo.keeps_previous_weights()
        if self.policy is not None:
            self.algo.prepare(self.policy, PromptConfig(window=c.window))
        self.kl_reward = KLReward(c.kl_reward_coef, c.kl_reward_target, c.kl_reward_horizon) \
            if c.kl_reward_coef > 0 else None
        self.step = 0
        self.version = 0
        self._runlog: RunLog | _QuietLog | None = None
        #: the Ray env workers (``ray=``), kept from step to step and shared by training and evaluation (whose
        #: envs, when they differ, replace each other's workers: a cluster's CPUs hold one set)
        self.ray_workers: Any = None

    # ----- collection ---------------------------------------------------------------------------------------
    def collect(self, step: int, evaluation: bool = False) -> list[Trajectory]:
        c = self.config
        env_id, kwargs = c.env, c.env_kwargs
        if evaluation:
            env_id = c.eval_env or c.env
            own = {} if env_id != c.env else c.env_kwargs  # another env's options are not the training env's
            kwargs = c.eval_env_kwargs if c.eval_env_kwargs is not None else own
        cfg = CollectConfig(
            env_id=env_id, env_kwargs=dict(kwargs), n_tasks=c.eval_tasks if evaluation else c.tasks_per_step,
            group_size=1 if evaluation else c.group_size, concurrency=c.concurrency,
            seed=c.seed + (10_000_000 if evaluation else 1000 * step),
            sampling=SamplingParams(max_tokens=c.max_tokens, temperature=0.0 if evaluation else c.temperature,
                                    top_logprobs=0 if evaluation else self.algo.sampling_top_logprobs()),
            prompt=PromptConfig(window=c.window), progress="off",
            env_retries=c.refill_retries if c.group_policy == "refill" and not evaluation else 0)
        where = self.out / ("eval" if evaluation else "rollouts") / f"step-{step:05d}"
        teacher = self.algo.eval_teacher() if evaluation else self.algo.teacher(step)
        branching = None if evaluation else self.algo.branching(step, self.branch_context())
        Collector(cfg, self.policy, TrajectoryStore(where), teacher=teacher, branching=branching,
                  remote=self._ray_workers()).run()
        episodes = list(TrajectoryStore(where).episodes(errors="skip"))
        if branching is not None:
            expected = branching.expected
            check_groups(episodes, lambda group: expected(int(group.lstrip("t"))) or c.group_size)
        return episodes

    def _ray_workers(self) -> Any:
        if self.config.ray is not None and self.ray_workers is None:
            from agentenv.ray_collect import RayEpisodes, RayOptions

            self.ray_workers = RayEpisodes(RayOptions(self.config.ray, workers=self.config.ray_workers),
                                           keep_workers=True)
        return self.ray_workers

    def branch_context(self) -> BranchContext:
        """What a tree rollout may use to choose its branch points: the vocabulary size (entropy proxies)
        and the learner's log-probs of recorded tokens (APPO's future value)."""
        if self.dist.enabled:  # scoring on the sharded learner needs every rank, but rank 0 alone collects
            return BranchContext(vocab_size=len(self.tokenizer), logprobs=_unsharded_scoring,
                                 previous_logprobs=_unsharded_scoring,
                                 token_text=lambda token: str(self.tokenizer.decode([token])))
        return BranchContext(vocab_size=len(self.tokenizer), logprobs=self.learner.recorded_logprobs,
                             previous_logprobs=self.learner.previous_logprobs,
                             token_text=lambda token: str(self.tokenizer.decode([token])))

    def evaluate(self, step: int) -> dict[str, float]:
        if not self.dist.is_main:
            return {}
        self._phase(f"evaluating after step {step}")
        return episode_metrics(self.collect(step, evaluation=True), prefix="eval_")

    def _timed_collect(self, step: int) -> tuple[list[Trajectory], float]:
        started = time.perf_counter()
        episodes = self.collect(step) if self.dist.is_main else []
        return episodes, time.perf_counter() - started

    # ----- the loop -----------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        c = self.config
        if self.dist.is_main:
            if not c.resume and (self.out / "metrics.jsonl").exists():
                raise FileExistsError(f"{self.out} already holds a run: resume=true continues it, or choose "
                                      "another out")
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(asdict(c), indent=2))
        if c.resume:
            self._load_latest_checkpoint()
        self.sync.push(self.learner.model, self.version)  # the collecting side starts on the learner's weights
        history = []
        runlog_or_quiet = RunLog(self.out, c.steps, self.step, c.progress) if self.dist.is_main else _QuietLog()
        with runlog_or_quiet as runlog, ThreadPoolExecutor(1) as pool:
            self._runlog = runlog
            if self.step == 0 and c.eval_every:
                record = {"step": 0, "policy_version": self.version, **self.evaluate(0)}
                runlog.record(record)
                history.append(record)
            ahead: Future[tuple[list[Trajectory], float]] | None = None
            deadline = None if c.max_minutes is None else time.monotonic() + 60 * c.max_minutes
            while self.step < c.steps:
                if deadline is not None and self.dist.broadcast_object(time.monotonic() > deadline):
                    log.info("the %.4g-minute budget is spent after %d steps", c.max_minutes, self.step)
                    if ahead is not None:
                        ahead.result()  # the collection running ahead must not overlap the evaluation
                    break
                step = self.step
                waited = time.perf_counter()
                if ahead is None:
                    self._phase(f"collecting step {step + 1}")
                    episodes, collect_seconds = self._timed_collect(step)
                else:
                    self._phase(f"waiting for step {step + 1}'s rollouts")
                    episodes, collect_seconds = ahead.result()
                waited_seconds = time.perf_counter() - waited
                eval_next = bool(c.eval_every) and (step + 1) % c.eval_every == 0
                ahead = None
                if c.max_staleness and step + 1 < c.steps and not eval_next:
                    ahead = pool.submit(self._timed_collect, step + 1)  # overlaps this step's update
                self._phase(f"updating step {step + 1}")
                record = self.learn(step, episodes)
                record.update(collect_seconds=collect_seconds, collect_wait_seconds=waited_seconds)
                self.step += 1
                if eval_next:
                    record.update(self.evaluate(self.step))
                runlog.record(record)
                history.append(record)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.save_checkpoint()
            evaluated = [r["step"] for r in history if "eval_success" in r]
            if c.eval_every and self.step and (not evaluated or evaluated[-1] != self.step):
                record = {"step": self.step, "policy_version": self.version, **self.evaluate(self.step)}
                runlog.record(record)  # every run that evaluates ends with an evaluation of its final weights
                history.append(record)
            self._runlog = None
        self.save_checkpoint()
        if self.dist.is_main:
            if self.config.lora_rank:  # the trained model as a plain model directory: model=RUN/model starts a run
                save_merged(self.learner.model, self.tokenizer, self.out / "model")
            from .plots import plot_run

            plot_run(self.out)
        return self.dist.broadcast_object(history)  # under torchrun every rank returns rank 0's records

    def close(self) -> None:
        """Release the policy (its client or batching worker) and the process group under torchrun; the
        trainer cannot collect afterwards."""
        if self.policy is not None:
            asyncio.run(self.policy.aclose())
        if self.ray_workers is not None:
            asyncio.run(self.ray_workers.shutdown())
        self.dist.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def learn(self, step: int, episodes: list[Trajectory]) -> dict[str, Any]:
        """Advantages and one update from a step's episodes, then the push of the new weights. Under torchrun
        rank 0's episodes (the others pass none) become the rows that every rank updates on."""
        prepared = self.dist.broadcast_object(self._rows_and_advantages(step, episodes) if self.dist.is_main else None)
        assert prepared is not None
        record, rows, advantages = prepared
        if not rows:
            record.update(skipped=True, policy_version=self.version)
            return record
        with self.sync.updating():
            metrics = self.learner.update(rows, advantages)
        self.version += 1
        started = time.perf_counter()
        self.sync.push(self.learner.model, self.version)
        record.update(metrics)
        record.update(push_seconds=time.perf_counter() - started, policy_version=self.version)
        return record

    def _rows_and_advantages(self, step: int, episodes: list[Trajectory]
                             ) -> tuple[dict[str, Any], list[Row], list[Any]]:
        """The step's record so far, and the rows and advantages to train on (none: skip the update)."""
        measured = self.algo.metrics(episodes)
        episodes = [t for t in episodes if t.kind != "pilot"]  # AEPO's probes are measured, never trained on
        ok = [t for t in episodes if t.status == "ok"]
        seen = episode_metrics(episodes)
        record: dict[str, Any] = {
            "step": step + 1, "episodes": len(episodes), "failed": len(episodes) - len(ok),
            "success_rate": seen["success"], "reward_mean": seen["reward"], "turns_mean": seen["turns"],
            "valid_actions": seen["valid_actions"], **measured,
        }
        lags = [self.version - turn.policy_version for t in ok for turn in t.turns if turn.actor == "student"]
        if lags:
            record.update(staleness_max=float(max(lags)), staleness_mean=sum(lags) / len(lags))
        fresh = within_staleness(ok, self.version, self.config.max_staleness)
        record["stale_dropped"] = len(ok) - len(fresh)
        if not self.algo.sft:  # group-relative advantages: failed members masked, too-small groups dropped
            masked = mask_groups(episodes, fresh, self.config.min_usable)
            fresh = masked.usable
            record.update(masked.metrics())
        if not fresh:
            log.warning("step %d: no episode to train on (%d failed, %d too stale or in too small a group); the "
                        "update is skipped", step + 1, len(episodes) - len(ok), len(ok))
            return record, [], []
        if self.kl_reward is not None:
            fresh, kl_metrics = self.kl_reward.apply(fresh, self.learner)
            record.update(kl_metrics)
        rows, advantages = self.algo.rows_and_advantages(fresh, self.policy.label_tokens)
        if not self.algo.sft:  # an SFT algorithm's rows have no advantages (and DAgger's span all steps)
            write_advantages(self.out / "rollouts" / f"step-{step:05d}" / "advantages.jsonl", rows, advantages)
        return record, rows, advantages

    def _phase(self, text: str) -> None:
        if self._runlog is not None:
            self._runlog.phase(text)

    # ----- bookkeeping --------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """``RUN/checkpoints/step-N``: the same files whatever the world size (a collective under torchrun,
        where rank 0 writes)."""
        return save_checkpoint(self.out / "checkpoints" / f"step-{self.step:05d}", self.learner, self.tokenizer,
                               {"step": self.step, "version": self.version})

    def _load_latest_checkpoint(self) -> None:
        checkpoints = sorted((self.out / "checkpoints").glob("step-[0-9]*[0-9]")) if self.dist.is_main else []
        latest = self.dist.broadcast_object(checkpoints[-1] if checkpoints else None)
        if latest is None:
            return
        state = load_checkpoint(latest, self.learner, lora=bool(self.config.lora_rank))
        if isinstance(self.sync, SharedModule):
            self.policy.clear_prefix_cache()
        self.step, self.version = self.dist.broadcast_object((int(state.get("step", 0)), int(state.get("version", 0))))
        if self.dist.is_main:
            done = [[t for t in TrajectoryStore(where).episodes(errors="skip") if t.status == "ok"]
                    for where in (self.out / "rollouts" / f"step-{k:05d}" for k in range(self.step))
                    if where.exists()]
            self.algo.restore(done, self.policy.label_tokens)
        log.info("resumed from %s (step %d)", latest, self.step)


def save_checkpoint(where: Path, learner: Learner, tokenizer: Any, extra: dict[str, Any]) -> Path:
    """Write ``where``: the model (``save_pretrained``), the tokenizer and ``trainer_state.pt`` (the optimizer
    state and ``extra``), through a temporary directory renamed into place. Under FSDP every rank calls it
    (the weights and optimizer state are gathered) and rank 0 writes the single-process format."""
    weights, optimizer = learner.checkpoint_state()
    if not learner.dist.is_main:
        return where
    tmp = where.with_name(where.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    learner.model.save_pretrained(tmp, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    torch.save({"optimizer": optimizer, "shuffle": learner.shuffle.get_state(), **extra}, tmp / "trainer_state.pt")
    if where.exists():
        import shutil

        shutil.rmtree(where)
    tmp.rename(where)
    return where


def load_checkpoint(where: Path, learner: Learner, lora: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` at any world size into ``learner``; returns the
    rest of ``trainer_state.pt`` (rank 0 reads the files; the others get an empty dict and the shards)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    weights: dict[str, torch.Tensor] = {}
    if learner.dist.is_main:
        state = torch.load(where / "trainer_state.pt", weights_only=True)
    if lora:  # one process: the adapters alone
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(learner.model, load_file(where / "adapter_model.safetensors"))
        learner.optimizer.load_state_dict(state["optimizer"])
    else:
        if learner.dist.is_main:
            for file in sorted(where.glob("*.safetensors")):
                weights.update(load_file(file))
        learner.load_checkpoint_state(weights, state.get("optimizer", {}))
    shuffle = learner.dist.broadcast_object(state.get("shuffle"))
    if shuffle is not None:  # older checkpoints lack it
        learner.shuffle.set_state(shuffle)
    return {k: v for k, v in state.items() if k not in ("optimizer", "shuffle")}


def write_advantages(where: Path, rows: list[Row], advantages: list[Any]) -> None:
    """What the update trained each episode (or turn) with, beside the step's rollouts, for the viewer: one
    line per row, ``{"trajectory_id", "turn" (None: the whole episode), "advantage"}``; a per-token advantage
    is given as its values on the trained tokens, in order. Written atomically; a failure only warns."""
    lines = []
    for row, advantage in zip(rows, advantages, strict=True):
        if not isinstance(advantage, (int, float)):
            advantage = [float(a) for a, m in zip(advantage, row.mask, strict=False) if m]
        lines.append(json.dumps({"trajectory_id": row.trajectory_id, "turn": row.turn, "advantage": advantage}))
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.with_name(where.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.rename(where)
    except OSError as e:
        log.warning("could not record the advantages in %s: %s", where, e)


class _QuietLog:
    """The run log of a rank other than 0 under torchrun: rank 0 alone logs."""

    def __enter__(self) -> _QuietLog:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def phase(self, text: str) -> None:
        return None

    def record(self, record: dict[str, Any]) -> None:
        return None


def _refuse_under_fsdp(c: TrainConfig, keeps_previous_weights: bool) -> None:
    """Options that do not work with a model sharded over ranks yet are errors, not silent no-ops."""
    refused = {"lora_rank > 0 (LoRA)": c.lora_rank > 0, "max_staleness > 0": c.max_staleness > 0,
               "APPO's post_update_policy reference": keeps_previous_weights}
    named = [name for name, on in refused.items() if on]
    if named:
        raise ValueError(f"not supported under torchrun with world_size > 1 (FSDP): {', '.join(named)}; "
                         "run it in one process")


def _unsharded_scoring(episodes: Any) -> list[list[float]]:
    raise ValueError("branch selection by the learner's log-probs (APPO) is not supported under torchrun with "
                     "world_size > 1: rank 0 collects alone, but the sharded learner scores on every rank")
