"""The training loop: collect → advantages → update → push the weights → repeat.

The policy is the in-process transformers policy; the learner trains the same module, so pushing new
weights is a version bump and a cleared prefix cache. Every step appends one line of metrics to
``RUN/metrics.jsonl``; checkpoints (model, optimizer, step) go to ``RUN/checkpoints/step-N``; ``resume``
continues from the newest one, and collection stores are per step, so a resumed step re-collects nothing
it already has. An episode that failed (env error, timeout) is left out of the update and counted; a step
whose episodes all failed is logged and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agentenv.collector import CollectConfig, Collector
from agentenv.policy import SamplingParams
from agentenv.prompting import PromptConfig
from agentenv.store import TrajectoryStore
from agentenv.trajectory import Trajectory

from .algorithm import algorithm
from .config import TrainConfig
from .learner import Learner, LearnerConfig
from .runlog import RunLog

log = logging.getLogger("agentenv.train")


class Trainer:
    def __init__(self, config: TrainConfig):
        from agentenv.policies.embedded import TransformersPolicy

        self.config = config
        self.algo = algorithm(config.algo, config)
        self.out = config.out_dir
        self.policy = TransformersPolicy(config.model, dtype=config.dtype, name=f"{config.algo}-policy")
        model = self.policy.model
        if config.lora_rank:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
            self.policy.model = model
        ref_model = None
        if config.kl is not None and config.kl_coef > 0 and not config.lora_rank:
            import copy

            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.learner = Learner(model, LearnerConfig(lr=config.lr, weight_decay=config.weight_decay,
                                                    grad_clip=config.grad_clip,
                                                    micro_batch_tokens=config.micro_batch_tokens,
                                                    epochs=config.epochs, temperature=config.temperature),
                               self.algo.loss_config(), ref_model=ref_model, pad_id=self.policy.pad_id,
                               sft=self.algo.sft)
        self.step = 0

    # ----- collection ---------------------------------------------------------------------------------------
    def collect(self, step: int, evaluation: bool = False) -> list[Trajectory]:
        c = self.config
        kwargs = (c.eval_env_kwargs if c.eval_env_kwargs is not None else c.env_kwargs) if evaluation else c.env_kwargs
        cfg = CollectConfig(
            env_id=c.env, env_kwargs=dict(kwargs), n_tasks=c.eval_tasks if evaluation else c.tasks_per_step,
            group_size=1 if evaluation else c.group_size, concurrency=c.concurrency,
            seed=c.seed + (10_000_000 if evaluation else 1000 * step),
            sampling=SamplingParams(max_tokens=c.max_tokens, temperature=0.0 if evaluation else c.temperature),
            prompt=PromptConfig(window=c.window), progress="off")
        where = self.out / ("eval" if evaluation else "rollouts") / f"step-{step:05d}"
        teacher = None if evaluation else self.algo.teacher(step)
        Collector(cfg, self.policy, TrajectoryStore(where), teacher=teacher).run()
        return list(TrajectoryStore(where).episodes(errors="skip"))

    def evaluate(self, step: int) -> dict[str, float]:
        episodes = self.collect(step, evaluation=True)
        ok = [t for t in episodes if t.status == "ok"]
        return {"eval_success": sum(t.success for t in ok) / max(len(episodes), 1),
                "eval_episodes": float(len(episodes))}

    # ----- the loop -----------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(c), indent=2))
        if c.resume:
            self._load_latest_checkpoint()
        history = []
        with RunLog(self.out, c.steps, self.step, c.progress) as runlog:
            if self.step == 0 and c.eval_every:
                record = {"step": 0, "policy_version": self.policy.version, **self.evaluate(0)}
                runlog.record(record)
                history.append(record)
            while self.step < c.steps:
                record = self.train_step(self.step)
                self.step += 1
                if c.eval_every and self.step % c.eval_every == 0:
                    record.update(self.evaluate(self.step))
                runlog.record(record)
                history.append(record)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.save_checkpoint()
        self.save_checkpoint()
        from .plots import plot_run

        plot_run(self.out)
        asyncio.run(self.policy.aclose())
        return history

    def train_step(self, step: int) -> dict[str, Any]:
        started = time.perf_counter()
        episodes = self.collect(step)
        collect_seconds = time.perf_counter() - started
        ok = [t for t in episodes if t.status == "ok"]
        record: dict[str, Any] = {
            "step": step + 1, "episodes": len(episodes), "failed": len(episodes) - len(ok),
            "success_rate": sum(t.success for t in ok) / max(len(episodes), 1),
            "reward_mean": sum(t.reward for t in ok) / max(len(ok), 1),
            "turns_mean": sum(len(t.turns) for t in ok) / max(len(ok), 1),
            "collect_seconds": collect_seconds,
        }
        if not ok:
            log.warning("step %d: every episode failed; the update is skipped", step + 1)
            record.update(skipped=True, policy_version=self.policy.version)
            return record
        rows, advantages = self.algo.rows_and_advantages(ok, self.policy.label_tokens)
        if not rows:
            record.update(skipped=True, policy_version=self.policy.version)
            return record
        with self.policy.updating_weights():  # the in-process push: no generation while the weights change
            metrics = self.learner.update(rows, advantages)
        record.update(metrics)
        record["policy_version"] = self.policy.version
        return record

    # ----- bookkeeping --------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        where = self.out / "checkpoints" / f"step-{self.step:05d}"
        tmp = where.with_name(where.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        self.learner.model.save_pretrained(tmp)
        self.policy.tokenizer.save_pretrained(tmp)
        torch.save({"optimizer": self.learner.optimizer.state_dict(), "step": self.step,
                    "version": self.policy.version}, tmp / "trainer_state.pt")
        if where.exists():
            import shutil

            shutil.rmtree(where)
        tmp.rename(where)
        return where

    def _load_latest_checkpoint(self) -> None:
        checkpoints = sorted((self.out / "checkpoints").glob("step-[0-9]*[0-9]"))
        if not checkpoints:
            return
        latest = checkpoints[-1]
        if self.config.lora_rank:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.learner.model, load_file(latest / "adapter_model.safetensors"))
        else:
            self.policy.load_weights(latest, self.policy.version)
        state = torch.load(latest / "trainer_state.pt", weights_only=True)
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.step, self.policy.version = int(state["step"]), int(state["version"])
        log.info("resumed from %s (step %d)", latest, self.step)
