"""The update: re-score the sampled tokens, apply the loss, step AdamW.

Rows are packed into micro-batches by a token budget (not a row count), their gradients accumulate, and
each micro-batch's loss is scaled by its share of the whole batch's trained tokens (or rows, for the
sequence-mean aggregations), so the accumulated gradient equals the gradient of the whole batch's loss.
The current log-probs are computed at the sampling temperature, so that at θ = θ_old they equal the
behaviour log-probs the policy recorded and the ratio is 1.

Under ``torchrun`` (a :class:`~.distributed.DistributedContext` with ``world_size > 1``) the model is sharded
with FSDP and every rank runs its share of each mini-batch's rows with the same global normaliser; the
gradients are summed over the ranks and the metrics too, so the update and what rank 0 reports are the
single-process ones (see :mod:`.distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentenv.trajectory import Trajectory

from .distributed import DistributedContext
from .losses import EntropyStats, LossConfig, PolicyLoss, sft_loss
from .rows import Row, sequence_rows


@dataclass
class Batch:
    tokens: torch.Tensor  # [B, T] right-padded
    attention: torch.Tensor  # [B, T]
    mask: torch.Tensor  # [B, T] float: trained tokens
    old_logp: torch.Tensor  # [B, T]
    advantages: torch.Tensor  # [B, T]


def collate(rows: Sequence[Row], advantages: Sequence[float | Sequence[float]], pad_id: int,
            device: torch.device) -> Batch:
    """Right-padded tensors of ``rows``; an advantage is one number for the whole row or one per token."""
    width = max(len(r) for r in rows)
    shape = (len(rows), width)
    tokens = torch.full(shape, pad_id, dtype=torch.long)
    attention = torch.zeros(shape, dtype=torch.long)
    mask, old, adv = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    for b, (row, a) in enumerate(zip(rows, advantages, strict=True)):
        n = len(row)
        tokens[b, :n] = torch.tensor(row.tokens)
        attention[b, :n] = 1
        mask[b, :n] = torch.tensor(row.mask, dtype=torch.float32)
        old[b, :n] = torch.tensor(row.old_logp, dtype=torch.float32)
        adv[b, :n] = a if isinstance(a, (int, float)) else torch.tensor(list(a), dtype=torch.float32)
    return Batch(tokens.to(device), attention.to(device), mask.to(device), old.to(device), (adv * mask).to(device))


def token_logprobs(model: Any, batch: Batch, temperature: float = 1.0,
                   with_entropy: bool = False, entropy_grad: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``logp[b, i] = log π(tokens[b, i] | tokens[b, :i])`` at ``temperature`` for every position that some
    row trains on (0 elsewhere), and the exact entropy of those positions' distributions when asked (with a
    gradient only if ``entropy_grad``: as a mere metric it would otherwise keep another vocabulary-sized
    tensor alive for the backward pass).

    Only the positions that predict a trained token are projected onto the vocabulary (``logits_to_keep``):
    an agent's rows are long prompts with short completions, so this saves most of the LM head's compute
    and nearly all of the ``[B, T, V]`` log-softmax memory."""
    width = batch.tokens.shape[1]
    keep = batch.mask[:, 1:].bool().any(0).nonzero().squeeze(-1)
    if keep.numel() == 0:
        keep = torch.tensor([max(width - 2, 0)], device=batch.tokens.device)
    logits = model(input_ids=batch.tokens, attention_mask=batch.attention, logits_to_keep=keep).logits.float()
    logp_all = torch.log_softmax(logits if temperature in (0.0, 1.0) else logits / temperature, dim=-1)
    chosen = logp_all.gather(-1, batch.tokens[:, keep + 1, None]).squeeze(-1)
    logp = torch.zeros(batch.tokens.shape, dtype=chosen.dtype, device=chosen.device).index_copy(1, keep + 1, chosen)
    entropy = None
    if with_entropy:
        source = logp_all if entropy_grad else logp_all.detach()
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            kept = -(source.exp() * source).sum(-1)
            entropy = torch.zeros_like(logp).index_copy(1, keep + 1, kept)
    return logp, entropy


@dataclass
class LearnerConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    micro_batch_tokens: int = 4096
    epochs: int = 1
    temperature: float = 1.0
    #: bfloat16 autocast for the forward and backward passes (weights and optimizer stay as they are)
    amp: bool = False
    #: rows per optimizer step (None: all of a batch's rows in one step per epoch)
    minibatch_rows: int | None = None
    #: seeds the per-epoch shuffle of the rows into mini-batches
    seed: int = 0
    #: where AEPO's entropy-aware advantage normalises the entropy: micro | mini | global (§3h)
    entropy_norm_scope: str = "mini"
    #: λ of the auxiliary SFT loss on the rows marked ``sft`` (DynaWeb's aux_sft expert mode)
    aux_sft_coef: float = 0.0


class Learner:
    """Owns the trainable model's optimizer; ``update`` runs one optimisation step per epoch over the rows.

    With ``dist`` of ``world_size > 1`` the learner shards ``model`` in place (FSDP2), and every public
    method that runs the model is a collective: all ranks call it with the same rows. The frozen
    ``ref_model`` stays a whole copy on each rank (it only scores, without any collective)."""

    def __init__(self, model: Any, config: LearnerConfig, loss: LossConfig | None = None, ref_model: Any = None,
                 pad_id: int = 0, sft: bool = False, dist: DistributedContext | None = None):
        self.model, self.config, self.ref_model, self.pad_id, self.sft = model, config, ref_model, pad_id, sft
        self.dist = dist or DistributedContext()
        if self.dist.enabled:
            self.dist.shard(model)
            if ref_model is not None:
                ref_model.to(self.dist.device)
        self.loss = PolicyLoss(loss)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.device = next(model.parameters()).device
        self.steps = 0
        #: the mini-batch shuffle (checkpointed, so that a resumed run shuffles as an uninterrupted one would)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        #: held while the weights change: scoring episodes for a tree rollout that runs ahead (the async loop)
        #: waits for the update instead of reading half-updated weights
        self.weights_lock = threading.Lock()

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def collate(self, rows: Sequence[Row], advantages: Sequence[float | Sequence[float]] | None = None) -> Batch:
        return collate(rows, advantages if advantages is not None else [0.0] * len(rows), self.pad_id, self.device)

    def reference_logprobs(self, batch: Batch) -> torch.Tensor:
        """The frozen reference policy's log-probs: the reference model, or with LoRA the base model (the
        adapters switched off), which is the model the adapters started from."""
        with torch.no_grad(), self.autocast():
            if self.ref_model is not None:
                return token_logprobs(self.ref_model, batch, self.config.temperature)[0]
            if not hasattr(self.model, "disable_adapter"):
                raise ValueError("a KL term needs a reference model (or LoRA adapters over a frozen base)")
            with self.model.disable_adapter():
                return token_logprobs(self.model, batch, self.config.temperature)[0]

    def apply_gradients(self) -> float:
        """Clip the accumulated gradients and take one optimizer step; returns the gradient norm."""
        norm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                              self.config.grad_clip)
        self.optimizer.step()
        self.steps += 1
        if hasattr(norm, "full_tensor"):  # FSDP's gradients are sharded: the norm is a (replicated) DTensor
            norm = norm.full_tensor()
        return float(norm)

    def _micro_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Micro-batches of rows with these lengths, packed by tokens; under FSDP this rank's share of them,
        an empty micro-batch meaning "run :meth:`_idle_pass`" (see :func:`.distributed.rank_micro_batches`)."""
        return self.dist.micro_batches(lengths, self.config.micro_batch_tokens)

    def _idle_pass(self, model: Any, backward: bool) -> None:
        """A forward (and backward) pass worth exactly nothing, for a rank that has no rows left while the
        others still run some: FSDP's weight gathers and gradient reductions are collectives."""
        batch = self.collate([Row([self.pad_id] * 2, [0, 0], [0.0, 0.0], episode=-1)])
        with self.autocast():
            logp, _ = token_logprobs(model, batch, self.config.temperature)
        if backward:
            (logp.sum() * 0.0).backward()

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
        """What a checkpoint saves: the weights (None in one process: the model's own ``save_pretrained``)
        and the optimizer's state in ``torch.optim``'s format. Under FSDP both are gathered onto rank 0 (empty
        on the others; a collective), so a checkpoint does not depend on the world size that wrote it."""
        if self.dist.enabled:
            return self.dist.full_state_dicts(self.model, self.optimizer)
        return None, self.optimizer.state_dict()

    def load_checkpoint_state(self, weights: dict[str, torch.Tensor], optimizer: dict[str, Any]) -> None:
        """Load full (unsharded) weights, which may leave out tied ones, and a ``torch.optim`` state; under
        FSDP rank 0's are broadcast into every rank's shards (the other ranks pass empty dicts)."""
        if self.dist.enabled:
            self.dist.load_full_state_dicts(self.model, self.optimizer, weights, optimizer)
            return
        self.model.load_state_dict(weights, strict=False)
        self.optimizer.load_state_dict(optimizer)

    def entropy_stats(self, rows: Sequence[Row]) -> EntropyStats:
        """The policy's entropy over the trained tokens of ``rows`` (no gradient), for the entropy-aware
        advantage's normalisation over a mini-batch or the whole step."""
        stats = EntropyStats()
        with torch.no_grad():
            for group in self._micro_batches([len(r) for r in rows]):
                if not group:
                    self._idle_pass(self.model, backward=False)
                    continue
                batch = self.collate([rows[i] for i in group])
                with self.autocast():
                    _, entropy = token_logprobs(self.model, batch, self.config.temperature, with_entropy=True)
                assert entropy is not None
                stats.add(entropy.float(), batch.mask)
        if self.dist.enabled:
            total = self.dist.sum_metrics({"count": stats.count, "sum": stats.sum, "sum_sq": stats.sum_sq})
            stats = EntropyStats(total["count"], total["sum"], total["sum_sq"])
        return stats

    #: keep the trainable weights from before the latest update (APPO's future value compares the two)
    keep_previous: bool = False
    _previous: dict[str, torch.Tensor] | None = None

    def recorded_logprobs(self, episodes: Sequence[Trajectory]) -> list[list[float]]:
        """The current policy's log-probs of each episode's sampled action tokens, per token of its sequence
        row (0 on prompt and observation tokens)."""
        with self.weights_lock:
            return self._score(self.model, sequence_rows(episodes))

    def previous_logprobs(self, episodes: Sequence[Trajectory]) -> list[list[float]] | None:
        """The same under the weights before the latest update; None before the first one."""
        if self._previous is None:
            return None
        if self.dist.enabled:
            raise ValueError("the log-probs under the previous weights are not available under FSDP "
                             "(world_size > 1)")
        previous = self._previous

        def before(**inputs: Any) -> Any:
            return torch.func.functional_call(self.model, previous, args=(), kwargs=inputs, strict=False)

        with self.weights_lock:
            return self._score(before, sequence_rows(episodes))

    def _score(self, model: Any, rows: Sequence[Row]) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in rows]
        with torch.no_grad():
            for group in self._micro_batches([len(r) for r in rows]):
                if not group:
                    self._idle_pass(model, backward=False)
                    continue
                batch = self.collate([rows[i] for i in group])
                with self.autocast():
                    logp, _ = token_logprobs(model, batch, self.config.temperature)
                for b, i in enumerate(group):
                    out[i] = (logp[b, :len(rows[i])].float() * batch.mask[b, :len(rows[i])]).tolist()
        if self.dist.enabled:  # each rank scored its share
            for part in self.dist.gather_objects({i: v for i, v in enumerate(out) if v}):
                for i, v in part.items():
                    out[i] = v
        return out

    def update(self, rows: Sequence[Row], advantages: Sequence[float | Sequence[float]]) -> dict[str, float]:
        """``epochs`` passes over ``rows`` (with their per-row advantages), each split into mini-batches of
        ``minibatch_rows`` rows (one optimizer step each; all rows in one step by default), the rows shuffled
        per epoch when there are several mini-batches; returns the metrics averaged over the steps."""
        if not rows:
            raise ValueError("no rows to train on")
        with self.weights_lock:
            return self._update(rows, advantages)

    def _update(self, rows: Sequence[Row], advantages: Sequence[float | Sequence[float]]) -> dict[str, float]:
        started = time.perf_counter()
        c = self.config
        if not self.sft and c.aux_sft_coef == 0 and any(r.sft for r in rows):
            raise ValueError("rows are marked for the auxiliary SFT loss but aux_sft_coef is 0: set "
                             "aux_sft_coef > 0 (aux_sft expert mode) or do not mark rows sft")
        rows = self._with_recomputed_old_logp(rows)
        size = c.minibatch_rows or len(rows)
        order = list(range(len(rows)))
        sums: dict[str, float] = {}
        reports: dict[str, int] = {}
        steps = 0
        if self.keep_previous:
            if self.dist.enabled:
                raise ValueError("keeping the previous weights (APPO's branch selection) is not supported "
                                 "under FSDP (world_size > 1)")
            self._previous = {name: p.detach().clone() for name, p in self.model.named_parameters()
                              if p.requires_grad}
        self.model.train()
        self._global_entropy = None
        if self.loss.config.entropy_advantage and c.entropy_norm_scope == "global":
            self._global_entropy = self.entropy_stats([r for r in rows if self.sft or not r.sft])
        for _ in range(c.epochs):
            if size < len(rows):
                order = torch.randperm(len(rows), generator=self.shuffle).tolist()
            for start in range(0, len(rows), size):
                chosen = order[start:start + size]
                for k, v in self._step([rows[i] for i in chosen], [advantages[i] for i in chosen]).items():
                    sums[k] = sums.get(k, 0.0) + v
                    reports[k] = reports.get(k, 0) + 1
                steps += 1
        self.model.eval()
        metrics = {k: v / (reports[k] if k in _PER_REPORT else steps) for k, v in sums.items()}
        seconds = time.perf_counter() - started
        n_tokens = sum(len(r) for r in rows) * c.epochs
        metrics.update({"update_seconds": seconds, "update_tokens_per_s": n_tokens / max(seconds, 1e-9),
                        "trained_tokens": float(sum(r.n_trained for r in rows)), "rows": float(len(rows)),
                        "optimizer_steps": float(steps)})
        return metrics

    _global_entropy: EntropyStats | None = None

    def _with_recomputed_old_logp(self, rows: Sequence[Row]) -> Sequence[Row]:
        """Copies of the rows marked ``recompute_old_logp`` whose ``old_logp`` are the current (pre-update)
        policy's log-probs: an expert episode was not sampled by the policy, so π_old's log-probs of its tokens
        exist only once the update starts. Rows whose ``old_logp`` the loss never reads are left alone."""
        marked = [i for i, r in enumerate(rows) if r.recompute_old_logp and not r.sft and not self.sft]
        if not marked:
            return rows
        scored = self._score(self.model, [rows[i] for i in marked])
        out = list(rows)
        for i, logp in zip(marked, scored, strict=True):
            out[i] = dataclasses.replace(rows[i], old_logp=logp, recompute_old_logp=False)
        return out

    def _step(self, rows: Sequence[Row], advantages: Sequence[float | Sequence[float]]) -> dict[str, float]:
        """One optimizer step on a mini-batch: micro-batches packed by tokens, gradients accumulated so
        that they sum to the gradient of the mini-batch's loss.

        When the loss has no KL or entropy term, a row whose advantage is 0 contributes exactly nothing but
        its share of the normaliser, so it is not run through the model (a sparse-reward env's groups are
        often all failures); the normaliser still counts it, so the gradient is unchanged.

        Rows marked ``sft`` add ``aux_sft_coef`` times the token-mean NLL over all of the mini-batch's sft
        tokens; they are packed apart from the policy-gradient rows, whose loss and normaliser stay theirs."""
        self.optimizer.zero_grad(set_to_none=True)
        aux = [] if self.sft else [i for i, r in enumerate(rows) if r.sft]
        if aux:
            chosen = set(aux)
            pg = [i for i in range(len(rows)) if i not in chosen]
            sums = self._pg_step([rows[i] for i in pg], [advantages[i] for i in pg])
            sums.update(self._aux_sft([rows[i] for i in aux], sums))
        else:
            sums = self._pg_step(rows, advantages)
        for p in self.model.parameters():
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)  # an all-zero step still moves AdamW's state, as it would unskipped
        sums["grad_norm"] = self.apply_gradients()
        return sums

    def _aux_sft(self, rows: Sequence[Row], sums: dict[str, float]) -> dict[str, float]:
        """Accumulate the gradient of ``λ·NLL`` (token-mean over ``rows``' trained tokens); the metrics it adds."""
        c = self.config
        total = float(max(sum(r.n_trained for r in rows), 1))
        nll = 0.0
        for group in self._micro_batches([len(r) for r in rows]):
            if not group:
                self._idle_pass(self.model, backward=True)
                continue
            batch = self.collate([rows[i] for i in group])
            with self.autocast():
                logp, _ = token_logprobs(self.model, batch, c.temperature)
            part = -(logp * batch.mask).sum() / total
            (c.aux_sft_coef * part).backward()
            nll += float(part.detach())
        nll = self.dist.sum_metrics({"nll": nll})["nll"]
        return {"aux_sft_nll": nll, "loss": sums.get("loss", 0.0) + c.aux_sft_coef * nll}

    def _pg_step(self, rows: Sequence[Row], advantages: Sequence[float | Sequence[float]]) -> dict[str, float]:
        """Accumulate the gradient of the policy loss (or whole-algorithm SFT) over ``rows``; its metrics."""
        c, loss_cfg = self.config, self.loss.config
        per_row = loss_cfg.aggregation != "token-mean"
        total = float(len(rows) if per_row else sum(r.n_trained for r in rows))
        needs_entropy = loss_cfg.entropy_coef > 0
        entropy_adv = bool(loss_cfg.entropy_advantage) and not self.sft
        stats = self._global_entropy
        if entropy_adv and c.entropy_norm_scope == "mini":
            stats = self.entropy_stats(rows)
        inert = not self.sft and loss_cfg.kl is None and not needs_entropy
        live = [i for i in range(len(rows)) if not inert or _nonzero(advantages[i])]
        live_total = float(len(live) if per_row else sum(rows[i].n_trained for i in live))
        sums: dict[str, float] = {"loss": 0.0}
        for group in self._micro_batches([len(rows[i]) for i in live]):
            if not group:
                self._idle_pass(self.model, backward=True)
                continue
            chosen = [live[g] for g in group]
            batch = self.collate([rows[i] for i in chosen], [advantages[i] for i in chosen])
            with self.autocast():
                logp, entropy = token_logprobs(self.model, batch, c.temperature, with_entropy=True,
                                               entropy_grad=needs_entropy)
            size = len(group) if per_row else float(batch.mask.sum())
            if self.sft:
                out = sft_loss(logp, batch.mask, loss_cfg.aggregation)
            else:
                ref = self.reference_logprobs(batch) if loss_cfg.kl is not None else None
                out = self.loss(logp, batch.old_logp, batch.advantages, batch.mask, ref_logp=ref,
                                entropy=entropy if needs_entropy or entropy_adv else None,
                                entropy_stats=stats if entropy_adv else None)
            (out.loss * size / max(total, 1.0)).backward()
            share = size / max(live_total, 1.0)  # ratios and clipping describe the rows that were scored
            for k, v in out.metrics.items():  # a loss is the mini-batch's, skipped rows contributing 0
                sums[k] = sums.get(k, 0.0) + v * (size / max(total, 1.0) if k.endswith("loss") else share)
            if entropy is not None:
                sums["entropy"] = sums.get("entropy", 0.0) + float(
                    (entropy.detach() * batch.mask).sum() / batch.mask.sum().clamp(min=1)) * share
        return {"rows_skipped": float(len(rows) - len(live)), **self.dist.sum_metrics(sums)}


#: metrics of only some mini-batches, averaged over the steps that report them
_PER_REPORT = frozenset({"aux_sft_nll"})


def _nonzero(advantage: float | Sequence[float]) -> bool:
    return advantage != 0 if isinstance(advantage, (int, float)) else any(a != 0 for a in advantage)
