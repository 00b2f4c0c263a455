"""Data-parallel training with FSDP under ``torchrun`` (or ``accelerate launch``), one code path for CPUs
(gloo) and GPUs (NCCL).

Every rank holds the same rows and advantages; each runs its token-balanced share of every mini-batch, and
the gradients are *summed* over the ranks (FSDP's divide factor is 1) because each micro-batch's loss is
already scaled by its share of the whole mini-batch. The update is therefore the single-process update up to
float summation order. The model is sharded with PyTorch's own FSDP2 (:func:`fully_shard`, one unit per
decoder layer, then the root), so weights, gradients and AdamW's state are split across the ranks.

Checkpoints do not depend on the world size: the full weights and optimizer state are gathered onto rank 0
in the single-process format (``save_pretrained`` weights, ``torch.optim`` state numbered in the optimizer's
parameter order) and, on resume, read by rank 0 and broadcast into the shards.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing is initialised and every helper is the identity, so
the single-process path is untouched.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import torch

from .rows import pack_by_tokens

T = TypeVar("T")

#: how long a rank waits in a collective: the other ranks wait while rank 0 collects and evaluates, which
#: can take far longer than the usual 10-30 minute default
TIMEOUT = datetime.timedelta(hours=3)


class DistributedContext:
    """This process's place in the job, read from the launcher's environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``; ``MASTER_ADDR``/``MASTER_PORT`` are read by :func:`torch.distributed.init_process_group`).

    ``world_size == 1`` means one process: no process group, the CPU, and helpers that return their input.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self._owns_group = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistributedContext:
        env = os.environ if env is None else env
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that collects, evaluates, logs and writes checkpoints."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if torch.cuda.is_available() else "gloo"

    @property
    def device(self) -> torch.device:
        """This rank's GPU under NCCL; the CPU with gloo and in one process (where training always ran)."""
        if self.enabled and torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def __repr__(self) -> str:
        return f"DistributedContext(rank={self.rank}, world_size={self.world_size}, local_rank={self.local_rank})"

    # ----- the process group --------------------------------------------------------------------------------
    def init(self, timeout: datetime.timedelta = TIMEOUT) -> DistributedContext:
        """Join the process group (NCCL on GPUs, gloo on CPUs) and select this rank's device; nothing in one
        process. A group the caller already initialised is used as it is."""
        if not self.enabled:
            return self
        import torch.distributed as dist

        if dist.is_initialized():
            if (dist.get_rank(), dist.get_world_size()) != (self.rank, self.world_size):
                raise RuntimeError(f"the process group is rank {dist.get_rank()} of {dist.get_world_size()}, "
                                   f"but the environment says {self.rank} of {self.world_size}")
            return self
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            dist.init_process_group("nccl", timeout=timeout, device_id=self.device)
        else:
            dist.init_process_group("gloo", timeout=timeout)
        self._owns_group = True
        return self

    def close(self) -> None:
        """Leave the process group if :meth:`init` created it."""
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_group = False

    # ----- sharding -----------------------------------------------------------------------------------------
    def shard(self, model: torch.nn.Module) -> torch.nn.Module:
        """Shard ``model`` in place with FSDP2: each decoder layer is a unit (its weights are gathered just
        for its own forward and backward), then the root takes the rest (embeddings, final norm, head).

        The gradient reduction is a plain sum over the ranks (divide factor 1, sum-only collectives): the
        learner scales each micro-batch's loss by its share of the *global* mini-batch, so the sum is the
        whole batch's gradient."""
        if not self.enabled:
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if hasattr(model, "peft_config"):
            raise ValueError("LoRA adapters are not supported under FSDP (world_size > 1): train LoRA in one "
                             "process, or fine-tune all weights (lora_rank=0) under torchrun")
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        for layer in decoder_layers(model):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)
        return model

    def micro_batches(self, lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
        """This rank's micro-batches of rows with these ``lengths`` (see :func:`rank_micro_batches`)."""
        return rank_micro_batches(lengths, max_tokens, self.rank, self.world_size)

    # ----- collectives (the identity in one process) --------------------------------------------------------
    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable object; the others pass anything, e.g. None)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum_metrics(self, sums: Mapping[str, float]) -> dict[str, float]:
        """Per-key sums over the ranks of their partial sums (a key missing on a rank counts 0), in rank
        order, so rank 0 reports the global values."""
        if not self.enabled:
            return dict(sums)
        out: dict[str, float] = {}
        for part in self.gather_objects(dict(sums)):
            for key, value in part.items():
                out[key] = out.get(key, 0.0) + value
        return out

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    # ----- world-size independent state ---------------------------------------------------------------------
    def full_state_dicts(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The whole model's weights and the optimizer's state, gathered onto rank 0's CPU (empty dicts on
        the other ranks; a collective, so every rank calls it). The optimizer's state is in ``torch.optim``'s
        own format, parameters numbered in the optimizer's order: what one process saves."""
        import torch.distributed.checkpoint.state_dict as dcp

        options = dcp.StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = dcp.get_model_state_dict(model, options=options)
        named = dcp.get_optimizer_state_dict(model, optimizer, options=options)
        if not self.is_main:
            return {}, {}
        return cast(dict[str, torch.Tensor], weights), numbered_optimizer_state(named)

    def full_model_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's weights on rank 0's CPU (empty elsewhere; a collective), for a weight push."""
        import torch.distributed.checkpoint.state_dict as dcp

        options = dcp.StateDictOptions(full_state_dict=True, cpu_offload=True)
        return cast(dict[str, torch.Tensor], dcp.get_model_state_dict(model, options=options))

    def load_full_state_dicts(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                              weights: Mapping[str, torch.Tensor], optimizer_state: Mapping[str, Any]) -> None:
        """Load rank 0's full ``weights`` and ``optimizer_state`` (single-process format) into the shards of
        every rank; the other ranks' arguments are ignored (pass empty dicts). A collective."""
        import torch.distributed.checkpoint.state_dict as dcp

        options = dcp.StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
        dcp.set_model_state_dict(model, dict(weights) if self.is_main else {}, options=options)
        named = named_optimizer_state(optimizer_state, model, optimizer) if self.is_main else {}
        dcp.set_optimizer_state_dict(model, optimizer, named, options=options)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of a Hugging Face causal LM (``model.model.layers`` for Llama, Qwen,
    Mistral...; ``transformer.h`` for GPT-2-style models), each of which becomes one FSDP unit."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        found: Any = model
        for name in path.split("."):
            found = getattr(found, name, None)
        if isinstance(found, torch.nn.ModuleList) and len(found):
            return list(found)
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__} to shard (looked for "
                     "model.layers, transformer.h, gpt_neox.layers, model.decoder.layers)")


def split_rows(lengths: Sequence[int], world_size: int) -> list[list[int]]:
    """Row indices per rank, balanced by tokens: the longest row first, each to the rank with the fewest
    tokens so far (ties to the lowest rank). Deterministic, so every rank computes every rank's share."""
    loads = [0] * world_size
    parts: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        parts[rank].append(i)
        loads[rank] += lengths[i]
    return parts


def rank_micro_batches(lengths: Sequence[int], max_tokens: int, rank: int, world_size: int) -> list[list[int]]:
    """``rank``'s micro-batches (lists of row indices, packed by :func:`.rows.pack_by_tokens`) of its share
    of the rows, padded with empty micro-batches up to the most that any rank runs.

    Under FSDP each forward all-gathers weights and each backward reduce-scatters gradients, and these are
    collectives: a rank that ran out of rows must still take part (with a pass worth nothing) or the others
    wait forever. In one process this is exactly ``pack_by_tokens(lengths, max_tokens)``."""
    if world_size == 1:
        return pack_by_tokens(lengths, max_tokens)
    plans = [[[part[j] for j in group] for group in pack_by_tokens([lengths[i] for i in part], max_tokens)]
             for part in split_rows(lengths, world_size)]
    rounds = max(len(plan) for plan in plans)
    mine = plans[rank]
    return mine + [[] for _ in range(rounds - len(mine))]


def numbered_optimizer_state(named: Mapping[str, Any]) -> dict[str, Any]:
    """A full optimizer state dict keyed by parameter names (``torch.distributed.checkpoint``'s) in
    ``torch.optim``'s format, numbered by the order of the parameter groups' parameters."""
    order = [name for group in named["param_groups"] for name in group["params"]]
    number = {name: i for i, name in enumerate(order)}
    return {"state": {number[name]: value for name, value in named["state"].items()},
            "param_groups": [{**group, "params": [number[name] for name in group["params"]]}
                             for group in named["param_groups"]]}


def named_optimizer_state(numbered: Mapping[str, Any], model: torch.nn.Module,
                          optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The inverse of :func:`numbered_optimizer_state` for ``optimizer`` over ``model``'s parameters."""
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    if len(order) != sum(len(group["params"]) for group in numbered["param_groups"]):
        raise ValueError("the checkpoint's optimizer state does not match this model's trainable parameters")
    return {"state": {order[int(i)]: value for i, value in numbered["state"].items()},
            "param_groups": [{**group, "params": [order[int(i)] for i in group["params"]]}
                             for group in numbered["param_groups"]]}
