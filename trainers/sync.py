"""How the learner's new weights reach the policy that collects the next rollouts.

Three ways, one interface: the learner updates inside :meth:`WeightSync.updating`, then :meth:`push` makes
the collecting policy serve the new weights as version ``version``.

- :class:`SharedModule`: the in-process policy generates with the very module the learner trains, so
  the push is a version bump and a cleared prefix cache; generation is held off during the update, which
  is why it serves the synchronous loop only.
- :class:`CopiedModule`: the in-process policy has its own copy of the weights, so collection can go on
  while the learner updates (the asynchronous loop); the push copies the weights in between two batches.
- :class:`ServerPush`: the policy is a server (vLLM, or agentenv's embedded server); the push writes a
  Hugging Face checkpoint and asks the server to reload it (the Serving weight update).

With LoRA the pushed weights are the merged ones, so the collecting side never needs ``peft``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The model's weights with any LoRA adapters merged in, under the base model's parameter names."""
    if not hasattr(model, "merge_adapter"):
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.merge_adapter()
    try:
        state = {}
        for key, value in model.get_base_model().state_dict().items():
            if "lora_" in key:
                continue
            state[key.replace(".base_layer.", ".")] = value.detach().clone()
        return state
    finally:
        model.unmerge_adapter()


def save_merged(model: Any, tokenizer: Any, where: Path) -> Path:
    """Write the model (LoRA merged in) and its tokenizer as a plain Hugging Face model directory."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.save_pretrained(where, state_dict=merged_state_dict(model))
    tokenizer.save_pretrained(where)
    return where


class WeightSync(abc.ABC):
    """Moves the learner's weights to the collecting policy."""

    def __init__(self, policy: Any):
        self.policy = policy

    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        """Wraps the learner's update (the shared module must not generate meanwhile)."""
        yield

    @abc.abstractmethod
    def push(self, model: Any, version: int) -> None:
        """Make the collecting policy serve ``model``'s weights as ``version``."""


class SharedModule(WeightSync):
    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        with self.policy.updating_weights():
            yield

    def push(self, model: Any, version: int) -> None:
        self.policy.version = version


class CopiedModule(WeightSync):
    def push(self, model: Any, version: int) -> None:
        self.policy.load_state_dict(merged_state_dict(model), version)


class ServerPush(WeightSync):
    """Writes ``RUN/weights/v{version}`` (safetensors and the tokenizer), has the server load it, and then
    removes the previous push (the server has read it by the time the update returns)."""

    def __init__(self, policy: Any, out: Path, tokenizer: Any):
        super().__init__(policy)
        self.root, self.tokenizer = out / "weights", tokenizer
        self.previous: Path | None = None

    def push(self, model: Any, version: int) -> None:
        where = save_merged(model, self.tokenizer, self.root / f"v{version:05d}")
        asyncio.run(self.policy.update_weights(str(where.resolve()), version))
        if self.previous is not None and self.previous != where:
            shutil.rmtree(self.previous, ignore_errors=True)
        self.previous = where
