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

Under FSDP (``torchrun``, world_size > 1) :class:`GatheredPush` wraps the push: every rank joins the gather
of the full weights, and rank 0, which alone collects, hands them to its copy or its server.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .distributed import DistributedContext


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


def save_merged(model: Any, tokenizer: Any, where: Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the model (LoRA merged in) and its tokenizer as a plain Hugging Face model directory;
    ``state_dict``: the model's full weights when the caller has them already (gathered from shards)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.save_pretrained(where, state_dict=state_dict if state_dict is not None else merged_state_dict(model))
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
    def push(self, model: Any, version: int, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Make the collecting policy serve ``model``'s weights as ``version`` (``state_dict``: those
        weights, when the caller gathered them already)."""


class SharedModule(WeightSync):
    @contextlib.contextmanager
    def updating(self) -> Iterator[None]:
        with self.policy.updating_weights():
            yield

    def push(self, model: Any, version: int, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        self.policy.version = version


class CopiedModule(WeightSync):
    def push(self, model: Any, version: int, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        self.policy.load_state_dict(state_dict if state_dict is not None else merged_state_dict(model), version)


class ServerPush(WeightSync):
    """Writes ``RUN/weights/v{version}`` (safetensors and the tokenizer), has the server load it, and then
    removes the previous push (the server has read it by the time the update returns)."""

    def __init__(self, policy: Any, out: Path, tokenizer: Any):
        super().__init__(policy)
        self.root, self.tokenizer = out / "weights", tokenizer
        self.previous: Path | None = None

    def push(self, model: Any, version: int, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        where = save_merged(model, self.tokenizer, self.root / f"v{version:05d}", state_dict)
        asyncio.run(self.policy.update_weights(str(where.resolve()), version))
        if self.previous is not None and self.previous != where:
            shutil.rmtree(self.previous, ignore_errors=True)
        self.previous = where


class GatheredPush(WeightSync):
    """The push of a model sharded over ranks: every rank calls :meth:`push` (the gather is a collective)
    and rank 0's ``inner`` sync (a :class:`CopiedModule` or :class:`ServerPush`; None on the other ranks)
    receives the full weights."""

    def __init__(self, inner: WeightSync | None, dist: DistributedContext):
        if isinstance(inner, SharedModule):
            raise ValueError("a sharded model cannot also be the policy's module: use a CopiedModule")
        super().__init__(inner.policy if inner is not None else None)
        self.inner, self.dist = inner, dist

    def push(self, model: Any, version: int, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        full = self.dist.full_model_state_dict(model) if state_dict is None else state_dict
        if self.inner is not None:
            self.inner.push(model, version, full)
